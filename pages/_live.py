"""The Train page's live view: events as curves, progress text and the live charts.

The charts are plain plotly figure dicts (validated once by ``st.plotly_chart``), so that a
refresh every :data:`LIVE_INTERVAL_S` stays cheap even on a long run.
"""
from __future__ import annotations

import math
import statistics
from typing import Any, Sequence

from tlcore.runs import ACTIVE_STATUSES

from pages._figures import SOURCE_COLOUR, TARGET_COLOUR, base_layout

LIVE_INTERVAL_S = 0.5       # the Train page's live refresh at first; then as fast as the run logs (refresh_interval)
REFRESH_STEPS_S = (0.5, 1.0, 2.0, 5.0)  # the live refresh intervals it chooses from
PENDING_INTERVAL_S = 1.0    # the Inspect page's check for a finished baseline or UMAP
FIRST_POINT_WAIT_S = 0.6    # after Start, the first draw waits this long at most for the first point


def series(events: Sequence[dict]) -> dict[str, Any]:
    """Events as plottable series: loss terms per step, accuracies and extras per evaluation."""
    steps, losses = [], {}
    eval_steps, src_acc, tgt_acc, extras = [], [], [], {}
    started, phases = None, []
    for e in events:
        kind = e["kind"]
        if kind == "started":
            started = e
        elif kind == "step":
            if phases and phases[-1][1] != e["phase"]:  # a new phase began after the previous step event
                phases.append((steps[-1], e["phase"]))
            elif not phases:
                phases.append((0, e["phase"]))
            steps.append(e["step"])
            for name, value in e["losses"].items():
                if name != "total":
                    losses.setdefault(name, [None] * (len(steps) - 1)).append(value)
            for name in losses:
                if len(losses[name]) < len(steps):
                    losses[name].append(None)
        elif kind == "eval":
            eval_steps.append(e["step"])
            src_acc.append(e["source_accuracy"])
            tgt_acc.append(e["target_accuracy"])
            for name, value in e["extras"].items():
                extras.setdefault(name, [None] * (len(eval_steps) - 1)).append(value)
            for name in extras:
                if len(extras[name]) < len(eval_steps):
                    extras[name].append(None)
    return {"started": started, "phases": phases[1:], "steps": steps, "losses": losses, "eval_steps": eval_steps,
            "source_accuracy": src_acc, "target_accuracy": tgt_acc, "extras": extras}


def shown_status(events: Sequence[dict], status: str) -> str:
    """The status to show: ``status`` as last read from the store, unless the events have moved
    past it (a record read as "queued" while its steps are already arriving is running)."""
    if status == "queued" and any(e["kind"] in ("started", "step", "eval", "result") for e in events):
        return "running"
    return status


def progress(events: Sequence[dict], status: str) -> tuple[float, str]:
    """(fraction done, "step 120 / 480 · 3.1 s elapsed · ETA 9 s") from the latest events."""
    last = next((e for e in reversed(events) if e["kind"] in ("step", "eval")), None)
    result = next((e for e in reversed(events) if e["kind"] == "result"), None)
    if result is not None:
        total = last["total_steps"] if last else result["steps"]
        return (min(1.0, result["steps"] / max(1, total)),
                f"{result['status']} after {result['steps']} / {total} steps · {result['elapsed_s']:.1f} s")
    if last is None:
        return 0.0, "starting…" if status in ACTIVE_STATUSES else status
    step, total, elapsed = last["step"], last["total_steps"], last["elapsed_s"]
    eta = elapsed / max(step, 1) * (total - step)
    return (min(1.0, step / max(1, total)),
            f"step {step} / {total} · {elapsed:.1f} s elapsed · ETA {eta:.0f} s")


LOSS_NAMES = {"task": "task (cross-entropy)", "mmd": "MMD²", "coral": "CORAL", "domain": "domain (discriminator)",
              "mcc": "class confusion (MCC)", "pseudo_label": "pseudo-label (target)"}


# Each live chart's title and subtitle, drawn as text above the chart (see :func:`chart_head`): a title
# inside a half-width chart runs under plotly's toolbar.
CHART_HEADS = {
    "losses": ("Loss terms", "raw, before weighting"),
    "accuracy": ("Accuracy", "on the source and target test sets"),
    "domain": ("Domain-discriminator accuracy", "0.5 = chance: it cannot tell the domains apart"),
    "mmd": ("Feature MMD², source vs target", "≈ 0 when aligned; an unbiased estimate, so it can dip a little "
            "below 0 when the features match (read that as 0)"),
    "pseudo_labels": ("Pseudo-labels on the target", "coverage: the fraction trained on; accuracy: how many of "
                      "those are right (read from the target labels, for display only)"),
}


def chart_head(name: str) -> str:
    """The markdown drawn above live chart ``name``: its title in bold and what to read in it."""
    title, note = CHART_HEADS[name]
    return f"**{title}** · {note}"


def _lines(traces: list[dict], x_title: str, y_title: str, y_range=None, height=300,
           phases: Sequence[tuple[int, str]] = ()) -> dict:
    # A plain figure dict, which st.plotly_chart validates once: a few ms in all, against ~30 ms for a
    # go.Figure built with update_layout. This keeps the live refresh cheap.
    shapes = [{"type": "line", "xref": "x", "yref": "paper", "x0": step, "x1": step, "y0": 0, "y1": 1,
               "line": {"dash": "dot", "color": "#777", "width": 2}} for step, _ in phases]
    notes = [{"xref": "x", "yref": "paper", "x": step, "y": 1, "text": name, "showarrow": False,
              "xanchor": "left", "yanchor": "top", "font": {"size": 14, "color": "#555"}} for step, name in phases]
    if not traces:  # plotly refuses a figure dict without data
        traces = [{"type": "scatter", "x": [], "y": [], "showlegend": False}]
    xaxis, yaxis = {"title": {"text": x_title}}, {"title": {"text": y_title}, "range": y_range}
    if not any(len(t.get("x") or []) for t in traces):
        # Nothing to draw yet: no made-up axes (plotly's default -1…6), a word instead.
        xaxis.update(showticklabels=False, showgrid=False, zeroline=False, range=[0, 1])
        yaxis.update(showticklabels=False, showgrid=False, zeroline=False, range=[0, 1])
        notes = notes + [{"xref": "paper", "yref": "paper", "x": 0.5, "y": 0.5, "showarrow": False,
                          "text": "appears when the run starts", "font": {"size": 16, "color": "#888"}}]
    return {"data": traces, "layout": {
        **base_layout(None, height), "showlegend": True, "shapes": shapes, "annotations": notes,
        "xaxis": xaxis, "yaxis": yaxis,
        "uirevision": "live"}}  # keeps a user's zoom across refreshes


MAX_CURVE_POINTS = 500  # longer curves are thinned for display, so a refresh stays cheap on long runs


def _thin(values: list, every: int) -> list:
    """Every ``every``-th value, always with the first and the last."""
    if every <= 1 or len(values) <= 2:
        return values
    kept = values[::every]
    return kept + values[-1:] if (len(values) - 1) % every else kept


def thinned(s: dict) -> dict:
    """``series`` with every curve cut to about MAX_CURVE_POINTS points (keeping the last one)."""
    step_every = math.ceil(len(s["steps"]) / MAX_CURVE_POINTS)
    eval_every = math.ceil(len(s["eval_steps"]) / MAX_CURVE_POINTS)
    if step_every <= 1 and eval_every <= 1:
        return s
    return {**s, "steps": _thin(s["steps"], step_every),
            "losses": {k: _thin(v, step_every) for k, v in s["losses"].items()},
            "eval_steps": _thin(s["eval_steps"], eval_every),
            "source_accuracy": _thin(s["source_accuracy"], eval_every),
            "target_accuracy": _thin(s["target_accuracy"], eval_every),
            "extras": {k: _thin(v, eval_every) for k, v in s["extras"].items()}}


def live_figures(events: Sequence[dict]) -> list[tuple[str, dict]]:
    """The Train page's charts, as plotly figure dicts: loss terms; source and target accuracy;
    domain-discriminator accuracy (when the strategy has one), feature MMD² over time, and the
    pseudo-labels' coverage and accuracy (self-training)."""
    s = thinned(series(events))
    figs = []
    loss_traces = [{"type": "scatter", "mode": "lines", "x": s["steps"], "y": v, "name": LOSS_NAMES.get(k, k),
                    "line": {"width": 3}} for k, v in s["losses"].items()]
    figs.append(("losses", _lines(loss_traces, "step", "loss",
                                  phases=s["phases"])))
    acc_traces = [
        {"type": "scatter", "mode": "lines+markers", "x": s["eval_steps"], "y": s["source_accuracy"],
         "name": "source test", "line": {"width": 3, "color": SOURCE_COLOUR}},
        {"type": "scatter", "mode": "lines+markers", "x": s["eval_steps"], "y": s["target_accuracy"],
         "name": "target test", "line": {"width": 3, "color": TARGET_COLOUR}},
    ]
    figs.append(("accuracy", _lines(acc_traces, "step", "accuracy", y_range=[0, 1.02],
                                    phases=s["phases"])))
    extras = s["extras"]
    if "domain_accuracy" in extras:
        figs.append(("domain", _lines(
            [{"type": "scatter", "mode": "lines+markers", "x": s["eval_steps"], "y": extras["domain_accuracy"],
              "name": "discriminator", "line": {"width": 3, "color": "#6a3d9a"}},
             {"type": "scatter", "mode": "lines", "x": [s["eval_steps"][0], s["eval_steps"][-1]] if s["eval_steps"]
              else [], "y": [0.5, 0.5], "name": "chance (0.5)", "line": {"dash": "dash", "color": "#888"}}],
            "step", "accuracy", y_range=[0.3, 1.02])))
    if "feature_mmd2" in extras:
        figs.append(("mmd", _lines(
            [{"type": "scatter", "mode": "lines+markers", "x": s["eval_steps"], "y": extras["feature_mmd2"],
              "name": "feature MMD²", "line": {"width": 3, "color": "#33a02c"},
              "hovertemplate": "step %{x}: MMD² %{y:.4f} (unbiased estimate: below 0 reads as 0)<extra></extra>"}],
            "step", "MMD²")))
    if "pseudo_label_coverage" in extras:  # self-training: how many pseudo-labels, and how many right
        figs.append(("pseudo_labels", _lines(
            [{"type": "scatter", "mode": "lines+markers", "x": s["eval_steps"], "y": extras["pseudo_label_coverage"],
              "name": "coverage (trained on)", "line": {"width": 3, "color": "#ff7f00"}},
             {"type": "scatter", "mode": "lines+markers", "x": s["eval_steps"],
              "y": extras.get("pseudo_label_accuracy", [None] * len(s["eval_steps"])),
              "name": "accuracy of those pseudo-labels", "line": {"width": 3, "color": TARGET_COLOUR}}],
            "step", "fraction", y_range=[0, 1.02], phases=s["phases"])))
    return figs


def refresh_interval(events: Sequence[dict], current: float = LIVE_INTERVAL_S) -> float:
    """Seconds between two live refreshes: about the time the run takes to log a new point (the
    mean gap over its last five step or eval events), rounded up to one of :data:`REFRESH_STEPS_S`.

    A refresh faster than the run logs only redraws what is on screen, and each refresh costs the
    server's CPU that the training shares (issue 14: four viewers made a 63 s run take 550 s), so a
    slow run, or one slowed down by many viewers, is polled less often. It changes only when the
    pace leaves the band ``[current / 2, 1.25 · current]``, so a pace near a step does not make it
    flip at every refresh (each change redraws the page once).
    """
    times = [e["elapsed_s"] for e in events if e["kind"] in ("step", "eval")][-5:]
    if len(times) < 2:
        return current
    gap = (times[-1] - times[0]) / (len(times) - 1)
    if current / 2 <= gap <= 1.25 * current:
        return current
    return next((s for s in REFRESH_STEPS_S if s >= gap), REFRESH_STEPS_S[-1])


class FigureMemo:
    """The live figures of the last events drawn, rebuilt only when events were added: a refresh
    with nothing new re-sends the same figures without recomputing the curves (O(events))."""

    def __init__(self):
        self._key: tuple[str, int] | None = None
        self._figures: list[tuple[str, dict]] = []

    def figures(self, run_id: str, events: Sequence[dict]) -> list[tuple[str, dict]]:
        key = (run_id, len(events))
        if key != self._key:
            self._key, self._figures = key, live_figures(events)
        return self._figures


def median_ms(values: Sequence[float]) -> float:
    return statistics.median(values) if values else float("nan")
