"""The app's charts: its colours and projector-friendly layout, and the plotly figures of the
Data, Inspect and Compare pages (data views, inspection views, comparison views).

Pure functions of their arguments: no session state, no engine calls.
"""
from __future__ import annotations

import base64
import io
from typing import Any, Sequence

import numpy as np
import plotly.graph_objects as go

from tlcore.data import DomainPair
from tlcore.data.domain import as_float
from tlcore.inspection import Cloud, RunInspection
from tlcore.ntg import NEGATIVE_TRANSFER, POSITIVE_TRANSFER, NTGSummary, ntg_label

# --- look ------------------------------------------------------------------------------------
SOURCE_COLOUR, TARGET_COLOUR = "#1f6fb4", "#e8710a"
DOMAIN_COLOURS = (SOURCE_COLOUR, TARGET_COLOUR)
DOMAIN_NAMES = ("source", "target")
CLASS_COLOURS = ("#1f77b4", "#ff7f0e", "#2ca02c", "#d62728", "#9467bd",
                 "#8c564b", "#e377c2", "#7f7f7f", "#bcbd22", "#17becf")
BAD, GOOD = "#d62728", "#2ca02c"
NEUTRAL = "#7f7f7f"         # no effect, within noise
MISSING = "#999999"         # no NTG at all
FONT = dict(size=16)


def class_colour(c: int) -> str:
    return CLASS_COLOURS[c % len(CLASS_COLOURS)]


def ntg_colour(ntg: float | NTGSummary | None) -> str:
    """The colour of an NTG: :data:`BAD` (red) for negative transfer, :data:`GOOD` (green) for
    positive, :data:`NEUTRAL` (grey) for no effect (exactly 0) or within noise. A summary over
    seeds reads its label (its t-interval); a single seed, which has none, reads its sign
    (``tlcore.ntg.ntg_label``)."""
    if ntg is None:
        return MISSING
    if isinstance(ntg, NTGSummary):
        label = ntg_label(ntg.mean) if ntg.n == 1 else ntg.label
    else:
        label = ntg_label(ntg)
    return {NEGATIVE_TRANSFER: BAD, POSITIVE_TRANSFER: GOOD}.get(label, NEUTRAL)


MMD2_NOTE = ("MMD² is estimated without bias (Gretton et al., 2012): the estimate scatters around the true "
             "value, so when the two samples come from the same or nearly the same distribution it can fall a "
             "little below 0. A squared distance cannot be negative: read a negative estimate as 0, no gap detected.")


def mmd2_shown(value: float) -> tuple[str, str]:
    """(text, hover) for an MMD² estimate: clipped at 0 for display, the raw value and why it can be
    negative on hover (:data:`MMD2_NOTE`)."""
    if value >= 0:
        return f"{value:.4f}", f"Raw estimate {value:.4f}. {MMD2_NOTE}"
    return "0.0000", f"Shown clipped at 0: the raw unbiased estimate is {value:.4f}. {MMD2_NOTE}"


def base_layout(title: str | None = None, height: int = 340) -> dict:
    """A projector-friendly layout: large type, tight margins, legend on top."""
    return {"title": {"text": title, "font": {"size": 18}, "y": 0.98, "yanchor": "top"} if title else None,
            "height": height, "font": FONT, "margin": {"l": 10, "r": 10, "t": 80 if title else 40, "b": 10},
            "legend": {"orientation": "h", "yanchor": "bottom", "y": 1.02, "xanchor": "left", "x": 0,
                       "font": {"size": 14}}}


def layout(fig: go.Figure, title: str | None = None, height: int = 340, **kw) -> go.Figure:
    fig.update_layout(**base_layout(title, height), **kw)
    return fig


# --- data views ------------------------------------------------------------------------------------
def png_data_uri(image: np.ndarray) -> str:
    from PIL import Image

    buf = io.BytesIO()
    Image.fromarray(image).save(buf, format="PNG")
    return "data:image/png;base64," + base64.b64encode(buf.getvalue()).decode("ascii")


def to_uint8_image(x) -> np.ndarray:
    """One image tensor (C, H, W) as (H, W, 3) uint8 for display."""
    arr = as_float(x).clamp(0, 1).mul(255).round().byte().numpy()
    arr = np.repeat(arr, 3, axis=0) if arr.shape[0] == 1 else arr[:3]
    return np.ascontiguousarray(arr.transpose(1, 2, 0))


def upscale(image: np.ndarray, factor: int) -> np.ndarray:
    return image.repeat(factor, axis=0).repeat(factor, axis=1)


def image_grid_figure(x, rows: list[list[int]], class_names: Sequence[str], title: str, gap: int = 2) -> go.Figure:
    """One row of example images per class, with the class names along the left edge."""
    per_row = max((len(r) for r in rows), default=0)
    if per_row == 0:
        return layout(go.Figure(), title)
    h, w = x.shape[-2], x.shape[-1]
    canvas = np.full((len(rows) * (h + gap), per_row * (w + gap), 3), 255, dtype=np.uint8)
    for i, row in enumerate(rows):
        for j, idx in enumerate(row):
            canvas[i * (h + gap):i * (h + gap) + h, j * (w + gap):j * (w + gap) + w] = to_uint8_image(x[idx])
    fig = go.Figure(go.Image(source=png_data_uri(canvas), hoverinfo="skip"))
    fig.update_yaxes(tickvals=[i * (h + gap) + h / 2 for i in range(len(rows))], ticktext=list(class_names),
                     showgrid=False, zeroline=False)
    fig.update_xaxes(showticklabels=False, showgrid=False, zeroline=False)
    return layout(fig, title, height=max(260, 46 * len(rows) + 60))


def points_figure(points: np.ndarray, labels: np.ndarray, class_names: Sequence[str], title: str,
                  domain: np.ndarray | None = None, by: str = "class", sizes: np.ndarray | None = None,
                  height: int = 420) -> go.Figure:
    """A scatter of 2-D points coloured by class (or by domain), with one trace per group."""
    fig = go.Figure()
    groups = []
    if by == "domain" and domain is not None:
        groups = [(np.flatnonzero(domain == d), DOMAIN_NAMES[d], DOMAIN_COLOURS[d]) for d in (0, 1)]
    else:
        groups = [(np.flatnonzero(labels == c), str(name), class_colour(c)) for c, name in enumerate(class_names)]
    for rows, name, colour in groups:
        if len(rows) == 0:
            continue
        marker: dict[str, Any] = {"color": colour, "size": 7, "opacity": 0.7}
        if name == DOMAIN_NAMES[1]:  # open diamonds keep the source visible where the domains overlap
            marker.update(symbol="diamond-open", line={"width": 1.5})
        if sizes is not None:
            marker["size"] = np.clip(4 + 6 * sizes[rows], 3, 40).tolist()
            marker["line"] = {"width": 0.5, "color": "white"}
        fig.add_trace(go.Scattergl(x=points[rows, 0], y=points[rows, 1], mode="markers", name=name, marker=marker))
    fig.update_yaxes(scaleanchor="x", scaleratio=1)
    return layout(fig, title, height=height)


def class_balance_figure(source_counts: Sequence[int], target_counts: Sequence[int],
                         class_names: Sequence[str]) -> go.Figure:
    names = [str(c) for c in class_names]
    fig = go.Figure([go.Bar(x=names, y=list(source_counts), name="source", marker_color=SOURCE_COLOUR),
                     go.Bar(x=names, y=list(target_counts), name="target", marker_color=TARGET_COLOUR)])
    fig.update_layout(barmode="group", xaxis={"title": "class", "type": "category"},
                      yaxis_title="training examples")
    return layout(fig, "Class balance (training sets)", height=320)


def cloud_figure(cloud: Cloud, class_names: Sequence[str], title: str) -> go.Figure:
    return points_figure(cloud.points, cloud.label, class_names, title, domain=cloud.domain, by="domain")


# --- inspection views --------------------------------------------------------------------------------
def embedding_figure(coords: np.ndarray, ins: RunInspection, by_class: bool, title: str) -> go.Figure:
    """A 2-D embedding of test features; hover tells domain, index, class and prediction, and
    each point's ``customdata[0]`` is its row in ``ins`` (for a selection)."""
    names = ins.class_names
    fig = go.Figure()
    if by_class:
        groups = [(np.flatnonzero(ins.label == c), str(n), class_colour(c)) for c, n in enumerate(names)]
    else:
        groups = [(np.flatnonzero(ins.domain == d), DOMAIN_NAMES[d], DOMAIN_COLOURS[d]) for d in (0, 1)]
    for rows, name, colour in groups:
        if len(rows) == 0:
            continue
        custom = [[int(r), DOMAIN_NAMES[ins.domain[r]], int(ins.index[r]), str(names[ins.label[r]]),
                   str(names[ins.prediction[r]])] for r in rows]
        # Source: filled circles; target: open diamonds, so that overlapping domains both stay visible.
        symbols = ["circle" if ins.domain[r] == 0 else "diamond-open" for r in rows]
        fig.add_trace(go.Scattergl(
            x=coords[rows, 0], y=coords[rows, 1], mode="markers", name=name, customdata=custom,
            marker={"color": colour, "size": 7, "opacity": 0.65, "symbol": symbols, "line": {"width": 1.5}},
            hovertemplate="%{customdata[1]} #%{customdata[2]}<br>class %{customdata[3]}"
                          "<br>predicted %{customdata[4]}<extra></extra>"))
    # No dragmode="select": with it, Streamlit's chart ignores clicks, and a click is how a point is
    # picked. Dragging pans; the toolbar's box select selects a region.
    fig.update_layout(xaxis={"showticklabels": False}, yaxis={"showticklabels": False},
                      clickmode="event+select")
    return layout(fig, title, height=440)


def selected_row(event: Any, fig: go.Figure) -> int | None:
    """The inspection row of the first point selected in an embedding chart, if any."""
    try:
        points = event["selection"]["points"]
    except (KeyError, TypeError):
        return None
    if not points:
        return None
    p = points[0]
    custom = p.get("customdata")
    if isinstance(custom, (list, tuple)) and custom:
        return int(custom[0])
    try:
        return int(fig.data[p["curve_number"]].customdata[p["point_index"]][0])
    except (KeyError, IndexError, TypeError):
        return None


def boundary_figure(grid, pair: DomainPair, title: str, weights: np.ndarray | None = None) -> go.Figure:
    """The decision regions over the 2-D plane, with source (circles) and target (crosses)
    test points coloured by their true class; source training points sized by importance
    weights when given."""
    names = pair.class_names
    fig = go.Figure()
    if grid.proba.shape[2] == 2:
        fig.add_trace(go.Contour(
            x=grid.xs, y=grid.ys, z=grid.proba[:, :, 1], zmin=0, zmax=1, showscale=False, hoverinfo="skip",
            colorscale=[[0, "#9ec5ea"], [0.5, "#ffffff"], [1, "#f7c08a"]], opacity=0.85,
            contours={"start": 0, "end": 1, "size": 0.1}, line={"width": 0}, name="p(class 1)"))
        fig.add_trace(go.Contour(x=grid.xs, y=grid.ys, z=grid.proba[:, :, 1], showscale=False, hoverinfo="skip",
                                 contours={"start": 0.5, "end": 0.5, "size": 1, "coloring": "none"},
                                 line={"width": 3, "color": "#333"}, name="boundary"))
    else:
        scale = [[i / max(1, len(names) - 1), class_colour(i)] for i in range(len(names))]
        fig.add_trace(go.Heatmap(x=grid.xs, y=grid.ys, z=grid.predicted, colorscale=scale, zmin=0,
                                 zmax=len(names) - 1, showscale=False, opacity=0.3, hoverinfo="skip"))
    src, tgt = pair.source, pair.target
    if weights is not None:
        xs = src.x_train.numpy()
        fig.add_trace(go.Scattergl(
            x=xs[:, 0], y=xs[:, 1], mode="markers", name="source (sized by importance weight)",
            marker={"size": np.clip(3 + 5 * weights, 2, 30).tolist(),
                    "color": [class_colour(c) for c in src.y_train.tolist()],
                    "line": {"width": 0.5, "color": "#222"}, "opacity": 0.8}))
    else:
        xs = src.x_test.numpy()
        fig.add_trace(go.Scattergl(x=xs[:, 0], y=xs[:, 1], mode="markers", name="source",
                                   marker={"size": 6, "color": [class_colour(c) for c in src.y_test.tolist()],
                                           "line": {"width": 0.5, "color": "#222"}}))
    xt = tgt.x_test.numpy()
    fig.add_trace(go.Scattergl(x=xt[:, 0], y=xt[:, 1], mode="markers", name="target",
                               marker={"size": 7, "symbol": "x",
                                       "color": [class_colour(c) for c in tgt.y_test.tolist()]}))
    fig.update_xaxes(range=[float(grid.xs[0]), float(grid.xs[-1])])
    fig.update_yaxes(range=[float(grid.ys[0]), float(grid.ys[-1])], scaleanchor="x", scaleratio=1)
    return layout(fig, title, height=460)


def confusion_figure(confusion: np.ndarray, class_names: Sequence[str], title: str) -> go.Figure:
    counts = np.asarray(confusion)
    recall = counts / np.maximum(counts.sum(axis=1, keepdims=True), 1)
    names = [str(c) for c in class_names]
    fig = go.Figure(go.Heatmap(z=recall, x=names, y=names, text=counts, texttemplate="%{text}", zmin=0, zmax=1,
                               colorscale="Blues", showscale=False,
                               hovertemplate="true %{y}, predicted %{x}: %{text}<extra></extra>"))
    fig.update_yaxes(autorange="reversed", title="true class", type="category")
    fig.update_xaxes(title="predicted class", type="category")
    return layout(fig, title, height=380)


def per_class_figure(named: list[tuple[str, Sequence[float], str]], class_names: Sequence[str]) -> go.Figure:
    names = [str(c) for c in class_names]
    fig = go.Figure([go.Bar(x=names, y=list(values), name=label, marker_color=colour)
                     for label, values, colour in named])
    fig.update_layout(barmode="group", yaxis={"range": [0, 1.02], "title": "accuracy"},
                      xaxis={"title": "target class", "type": "category"})
    return layout(fig, "Per-class accuracy on the target test set", height=340)


# --- comparison views ---------------------------------------------------------------------------------
def strategy_figure(summaries, title: str, reference: float | None = None) -> go.Figure:
    """Mean target accuracy per strategy with its spread; a bar that rests on a single run is
    hatched and labelled "1 run" (it has no spread to show)."""
    names = [s.strategy for s in summaries]
    fig = go.Figure(go.Bar(
        x=names, y=[s.mean for s in summaries], marker_color=SOURCE_COLOUR,
        marker_pattern_shape=["/" if s.runs == 1 else "" for s in summaries],
        error_y={"type": "data", "array": [0.0 if s.std is None else s.std for s in summaries],
                 "visible": any(s.std is not None for s in summaries)},
        text=[f"{s.mean:.3f}" + (f" ± {s.std:.3f} (n={s.runs})" if s.std is not None else " (1 run)")
              for s in summaries],
        textposition="outside", hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    if reference is not None:
        fig.add_hline(y=reference, line_dash="dash", line_color="#555",
                      annotation_text=f"target_only {reference:.3f}", annotation_position="top right")
    fig.update_layout(yaxis={"range": [0, 1.1], "title": "target accuracy"})
    return layout(fig, title, height=380)


def ntg_figure(summaries, title: str) -> go.Figure:
    rows = [s for s in summaries if s.ntg_mean is not None]
    fig = go.Figure(go.Bar(
        x=[s.strategy for s in rows], y=[s.ntg_mean for s in rows],
        marker_color=[ntg_colour(s.ntg_mean) for s in rows],
        error_y={"type": "data", "array": [0.0 if s.ntg_std is None else s.ntg_std for s in rows],
                 "visible": any(s.ntg_std is not None for s in rows)},
        text=[f"{s.ntg_mean:+.3f}" for s in rows], textposition="outside"))
    fig.add_hline(y=0, line_color="#333")
    fig.update_layout(yaxis={"title": "NTG (positive = negative transfer)"})
    return layout(fig, title, height=340)


# --- relations: Gromov–Wasserstein coupling, RKD distance matrices ------------------------------------
def _class_boundaries(labels: np.ndarray) -> list[float]:
    """Positions between runs of equal (sorted) labels, for the lines that separate class blocks."""
    return [i - 0.5 for i in range(1, len(labels)) if labels[i] != labels[i - 1]]


def coupling_heatmap_figure(view, class_names: Sequence[str], title: str) -> go.Figure:
    """The coupling, source rows and target columns each sorted by class: a right matching is block-diagonal.
    Each column is scaled to sum to 1 (where the target example's mass came from)."""
    plan = view.plan / np.maximum(view.plan.sum(0, keepdims=True), 1e-12)
    fig = go.Figure(go.Heatmap(z=plan, colorscale="Blues", showscale=True, colorbar=dict(title="share"),
                               hovertemplate="source %{y} → target %{x}: %{z:.3f}<extra></extra>"))
    shapes = [dict(type="line", x0=b, x1=b, y0=-0.5, y1=len(plan) - 0.5, line=dict(color=NEUTRAL, width=1))
              for b in _class_boundaries(view.target_labels)]
    shapes += [dict(type="line", y0=b, y1=b, x0=-0.5, x1=plan.shape[1] - 0.5, line=dict(color=NEUTRAL, width=1))
               for b in _class_boundaries(view.source_labels)]
    order = ", ".join(class_names)
    return layout(fig, title, height=420, shapes=shapes,
                  xaxis=dict(title=f"target examples, by true class ({order})", showticklabels=False),
                  yaxis=dict(title=f"source examples, by class ({order})", showticklabels=False, autorange="reversed"))


def matching_lines_figure(view, class_names: Sequence[str], title: str) -> go.Figure:
    """2-D domains: each subsampled target point (✕) joined to the source point (●) it takes most mass from."""
    xs, xt = view.source_points, view.target_points
    line_x = np.column_stack([xs[:, 0], xt[:, 0], np.full(len(xs), np.nan)]).ravel()
    line_y = np.column_stack([xs[:, 1], xt[:, 1], np.full(len(xs), np.nan)]).ravel()
    fig = go.Figure(go.Scatter(x=line_x, y=line_y, mode="lines", line=dict(color="#bbbbbb", width=1),
                               name="matched", hoverinfo="skip"))
    for points, symbol, role in ((xs, "circle", "source"), (xt, "x", "target")):
        fig.add_trace(go.Scatter(x=points[:, 0], y=points[:, 1], mode="markers", name=role,
                                 marker=dict(symbol=symbol, size=7,
                                             color=SOURCE_COLOUR if role == "source" else TARGET_COLOUR)))
    return layout(fig, title, height=420, xaxis=dict(scaleanchor="y"))


def distance_matrices_figure(matrices, class_names: Sequence[str]) -> go.Figure:
    """RKD's teacher and student distance matrices on the same target examples, side by side."""
    from plotly.subplots import make_subplots

    fig = make_subplots(rows=1, cols=2, subplot_titles=("teacher (trained on the source)", "student (target)"),
                        horizontal_spacing=0.08)
    top = float(max(matrices.teacher.max(), matrices.student.max()))
    for col, z in ((1, matrices.teacher), (2, matrices.student)):
        fig.add_trace(go.Heatmap(z=z, zmin=0, zmax=top, colorscale="Viridis", showscale=col == 2,
                                 hovertemplate="%{y} – %{x}: %{z:.2f}<extra></extra>"), row=1, col=col)
        fig.update_xaxes(showticklabels=False, row=1, col=col)
        fig.update_yaxes(showticklabels=False, autorange="reversed", row=1, col=col)
    return layout(fig, f"Distances / their mean, target examples by class; correlation {matrices.correlation:.2f}",
                  height=400)
