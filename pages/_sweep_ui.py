"""What the Negative-transfer and Lessons pages share: sweep jobs, stored results, figures.

A sweep runs as one background job of the tlcore worker (:func:`tlcore.sweeps.sweep_work`);
the page polls it with a fragment and redraws the curves from what the run store holds
(:func:`tlcore.sweeps.collect_sweep`), so they fill in live and survive a refresh. With no
job running, a page shows whatever the store already holds for its settings: a sweep
precomputed with ``tlcore sweep`` into the same store shows at once. A result can also come
from a file written by ``tlcore sweep … --export`` (:func:`tlcore.sweeps.load_sweep`).

Nothing here trains or measures by itself: the engine does; this module turns its frozen
results into figures and tables.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import json
import math
import threading
import uuid
from collections import OrderedDict
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Sequence

import plotly.graph_objects as go
import streamlit as st

from tlcore.errors import TransferLabError
from tlcore.ntg import format_ntg
from tlcore.sweeps import (ALL_LABELS, BudgetResult, ComparisonResult, GapRow, ShiftResult, SourceResult,
                           SourceSweep, SweepPlan, SweepResult, SweepSpec, collect_sweep, run_sweep,
                           shift_gaps, spec_from_dict, sweep_from_dict, sweep_from_json, sweep_to_dict)
from tlcore.worker import Job, get_worker

from pages import _figures, _policy, _runs, _state

SWEEP_INTERVAL_S = 1.0      # how often a running sweep's curves are redrawn
SHADE = "rgba(214, 39, 40, 0.18)"
ARM_COLOURS = ("#1f6fb4", "#e8710a", "#2ca02c", "#9467bd", "#8c564b", "#e377c2", "#17becf")
REFERENCE_COLOUR = "#333333"  # target_only: the line every transfer curve is judged against
GAP_COLOURS = {"mmd2": "#7f7f7f", "pad": "#bcbd22"}

MAX_KEPT_JOBS = 16          # sweep jobs whose plan and result this process keeps (least recently used go)


@dataclass
class SweepJob:
    """What this process keeps of one sweep job: its spec (as a dict, to reattach from a link),
    the plan resolved once when it started (every live redraw reads the store for the planned
    keys only, never plans again) and its final result, which holds what the store alone
    cannot give (the shift sweep's gaps, the source sweep's scores)."""

    spec: dict
    plan: SweepPlan
    result: SweepResult | None = None


class RecentJobs:
    """The last ``limit`` sweep jobs by id, least recently used dropped first; thread-safe (a
    job's worker thread stores its result while the page reads)."""

    def __init__(self, limit: int):
        self.limit = limit
        self._jobs: OrderedDict[str, SweepJob] = OrderedDict()
        self._lock = threading.Lock()

    def add(self, job_id: str, record: SweepJob) -> None:
        with self._lock:
            self._jobs[job_id] = record
            self._jobs.move_to_end(job_id)
            while len(self._jobs) > self.limit:
                self._jobs.popitem(last=False)

    def get(self, job_id: str | None) -> SweepJob | None:
        with self._lock:
            record = self._jobs.get(job_id) if job_id else None
            if record is not None:
                self._jobs.move_to_end(job_id)
            return record

    def set_result(self, job_id: str, result: SweepResult) -> None:
        with self._lock:
            if job_id in self._jobs:
                self._jobs[job_id].result = result

    def __len__(self) -> int:
        with self._lock:
            return len(self._jobs)


# Process-wide like the worker, keyed by job id; bounded, so a long-lived server does not grow.
_JOBS = RecentJobs(MAX_KEPT_JOBS)


# --- jobs ------------------------------------------------------------------------------------------
def start_sweep(spec: SweepSpec, before_only: bool = False) -> str:
    """Plan ``spec`` (once: the job keeps the plan) and start it in the worker; return the job id.
    ``before_only``: a source sweep's scores alone (its source_only runs, gaps and LogME), not the
    transfer runs. Raises TransferLabError when the settings do not make a sweep."""
    run_store = _runs.store()
    job_id = f"sweep-{uuid.uuid4().hex[:10]}"
    _policy.admit_sweep(spec)  # before planning, which may read the data
    plan = spec.plan()
    _policy.admit_plan(plan)

    def keep(result: SweepResult) -> None:
        _JOBS.set_result(job_id, result)

    _JOBS.add(job_id, SweepJob(spec=spec.to_dict(), plan=plan))
    # queued like every run, and trained in a worker process; the result comes back to keep()
    get_worker().start_sweep(plan, run_store, job_id=job_id, owner=_runs.owner(), before_only=before_only,
                             on_result=keep)
    return job_id


def job_spec(job_id: str) -> dict | None:
    """The spec (as a dict) a job of this process runs, or None."""
    record = _JOBS.get(job_id)
    return None if record is None else record.spec


def job_experiment(job_id: str) -> str | None:
    """The kind of sweep ("budget", "shift", "source", "comparison") a job runs, or None."""
    spec = job_spec(job_id)
    return None if spec is None else spec.get("kind")


def job(job_id: str | None) -> Job | None:
    return get_worker().job(job_id) if job_id else None


def job_result(job_id: str | None) -> SweepResult | None:
    record = _JOBS.get(job_id)
    return None if record is None else record.result


def stop_sweep(job_id: str | None) -> None:
    """Stop a sweep (a queued one leaves the queue); only its owner or a teacher may."""
    if job_id:
        try:
            get_worker().stop(job_id, wait=2.0, actor=_runs.actor())
        except TransferLabError as exc:
            _state.flash(str(exc), kind="error")


def spec_key(spec: SweepSpec) -> str:
    return json.dumps(spec.to_dict(), sort_keys=True)


def stored_count() -> int:
    """How many runs the store holds that are done: a cheap version number for cached results."""
    return _runs.store().count_runs(status="done")


@st.cache_data(show_spinner=False, max_entries=64)
def _stored_result(store_path: str, key: str, version: int) -> dict:
    from tlcore.runs import RunStore
    spec = spec_from_dict(json.loads(key))
    # A source sweep's scores come from its stored source_only runs (a checkpoint and LogME each).
    measured = isinstance(spec, SourceSweep)
    return sweep_to_dict(run_sweep(spec, RunStore(store_path), train=False, with_measurements=measured))


@st.cache_data(show_spinner=False, max_entries=32)
def _shift_gaps(key: str) -> list[dict]:
    spec = spec_from_dict(json.loads(key))
    return [g.to_dict() for g in shift_gaps(spec)]


def with_gaps(result: SweepResult) -> SweepResult:
    """A shift sweep's result with its input-space gaps (measured once per spec, cached)."""
    if not isinstance(result, ShiftResult) or result.gaps:
        return result
    gaps = tuple(GapRow(**g) for g in _shift_gaps(spec_key(result.spec)))
    return dataclasses.replace(result, gaps=gaps)


def stored_result(spec: SweepSpec) -> SweepResult:
    """What the run store holds for ``spec``, nothing trained: with the shift sweep's input-space
    gaps and the source sweep's scores of its stored source_only runs. Cached until the store
    gains a done run."""
    doc = _stored_result(str(_runs.store().path), spec_key(spec), stored_count())
    return with_gaps(result_from_dict(doc))


def live_result(spec: SweepSpec, job_id: str | None = None) -> SweepResult:
    """The runs stored so far (no new training): cheap enough for every live redraw. With the
    id of the job running ``spec``, its held plan is read, not planned again."""
    record = _JOBS.get(job_id)
    plan = record.plan if record is not None and record.plan.spec == spec else spec
    return with_gaps(collect_sweep(plan, _runs.store()))


def result_from_dict(doc: dict) -> SweepResult:
    """A result from :func:`tlcore.sweeps.sweep_to_dict`'s dict (the same route as an exported file)."""
    return sweep_from_dict(doc)


def load_uploaded(data: bytes, name: str) -> SweepResult:
    """A sweep file uploaded in the browser. Raises TransferLabError with the reason."""
    return sweep_from_json(data, Path(name).name or "sweep.json")


def export_json(result: SweepResult) -> bytes:
    return json.dumps(sweep_to_dict(result), indent=1).encode("utf-8")


def rows_csv(rows: Sequence[dict]) -> bytes:
    """``rows`` (flat dicts) as CSV, columns in order of first appearance (missing cells empty)."""
    buffer = io.StringIO()
    if rows:
        writer = csv.DictWriter(buffer, fieldnames=list(dict.fromkeys(k for row in rows for k in row)))
        writer.writeheader()
        writer.writerows(rows)
    return buffer.getvalue().encode("utf-8")


# --- progress ------------------------------------------------------------------------------------------
def job_progress(j: Job, result: SweepResult) -> tuple[float, str]:
    """(fraction, text) of a sweep job's progress bar: the job's own progress while it runs; once
    it has ended (done, stopped or failed), the fraction of ``result``'s planned runs stored, so a
    stopped sweep does not show a full bar."""
    text = j.message or "starting…"
    if j.queued:
        return 0.0, _runs.queue_note(j.job_id) or "queued"
    if j.alive:
        return min(max(j.progress, 0.0), 1.0), f"{j.progress:.0%} · {text}"
    fraction = stored_fraction(result)
    if j.error:
        return fraction, f"failed: {j.error.splitlines()[0]} · {completeness(result)}"
    return fraction, f"{text} · {completeness(result)}"


def stored_fraction(result: SweepResult) -> float:
    """The share of the planned runs that are stored (1.0 for an empty plan)."""
    planned = len(result.plan)
    return min(1.0, len(result.rows) / planned) if planned else 1.0


def completeness(result: SweepResult) -> str:
    done = len(result.rows)
    planned = len(result.plan)
    return f"{done} of {planned} planned runs stored"


# --- figures ------------------------------------------------------------------------------------------
def _colour(i: int) -> str:
    return ARM_COLOURS[i % len(ARM_COLOURS)]


def _ntg_text(point) -> str:
    return "" if point.ntg is None else f"<br>NTG {format_ntg(point.ntg)}"


def _arm_trace(points, xs_of, name: str, colour: str, dash: str | None = None) -> go.Scatter:
    """One arm's mean accuracy with its seed spread as error bars."""
    return go.Scatter(
        x=[xs_of(p.x) for p in points], y=[p.mean_accuracy for p in points], name=name, mode="lines+markers",
        line={"color": colour, "width": 3, "dash": dash}, marker={"size": 9},
        error_y={"type": "data", "array": [p.std_accuracy or 0.0 for p in points],
                 "visible": any(p.std_accuracy is not None for p in points)},
        customdata=[[_ntg_text(p), p.n] for p in points],
        hovertemplate=f"{name}<br>x=%{{x}}<br>accuracy %{{y:.3f}} (%{{customdata[1]}} seed(s))%{{customdata[0]}}"
                      "<extra></extra>")


def negative_regions(xs: Sequence[float], arm: Sequence[float], reference: Sequence[float]
                     ) -> list[tuple[list[float], list[float], list[float]]]:
    """The stretches of x where the ``arm`` curve lies below the ``reference`` curve (both
    piecewise linear through the points), with the exact crossings inserted: a list of
    ``(x, reference_y, arm_y)`` polylines, each to be filled between its two curves."""
    regions: list[tuple[list[float], list[float], list[float]]] = []
    current: tuple[list[float], list[float], list[float]] | None = None
    for i, x in enumerate(xs):
        d = reference[i] - arm[i]
        if i > 0:
            d0 = reference[i - 1] - arm[i - 1]
            if (d0 > 0) != (d > 0) and d0 != d:  # crossing between i-1 and i
                t = d0 / (d0 - d)
                xc = xs[i - 1] + t * (x - xs[i - 1])
                yc = reference[i - 1] + t * (reference[i] - reference[i - 1])
                if current is None:
                    current = ([xc], [yc], [yc])
                else:
                    current[0].append(xc), current[1].append(yc), current[2].append(yc)
                    regions.append(current)
                    current = None
        if d > 0:
            if current is None:
                current = ([], [], [])
            current[0].append(x), current[1].append(reference[i]), current[2].append(arm[i])
    if current is not None:
        regions.append(current)
    return regions


def _shade(fig: go.Figure, points, reference_points, position, name: str, log_x: bool = False,
           secondary: bool = False) -> bool:
    """Shade where ``points`` (one arm) lie below ``reference_points`` (target_only). True if any."""
    ref = {p.x: p.mean_accuracy for p in reference_points}
    common = [p for p in points if p.x in ref]
    if not common:
        return False
    to_axis = (lambda v: math.log10(v)) if log_x else (lambda v: v)
    from_axis = (lambda v: 10 ** v) if log_x else (lambda v: v)
    xs = [to_axis(position(p.x)) for p in common]
    shown = False
    for rx, ry, ay in negative_regions(xs, [p.mean_accuracy for p in common], [ref[p.x] for p in common]):
        if len(rx) == 1:  # one isolated point below: a thin band around it
            rx, ry, ay = [rx[0] - 0.02, rx[0] + 0.02], ry * 2, ay * 2
        x_line = [from_axis(v) for v in rx]
        fig.add_trace(go.Scatter(
            x=x_line + x_line[::-1], y=list(ry) + list(ay)[::-1], fill="toself", fillcolor=SHADE,
            line={"width": 0}, hoverinfo="skip", name=f"negative transfer ({name} below target_only)",
            legendgroup=f"shade-{name}", showlegend=not shown))
        shown = True
    return shown


def _legend_below(fig: go.Figure) -> go.Figure:
    """Put the legend under the plot: a sweep's legend is long, and on top it would cover the
    title, the chart's buttons and the crossover labels."""
    fig.update_layout(legend={"orientation": "h", "yanchor": "top", "y": -0.2, "xanchor": "left", "x": 0},
                      margin={"t": 60, "b": 10})
    return fig


def _arm_lines(fig: go.Figure, points, arms: Sequence[str], log_x: bool = False) -> None:
    """Every arm's line (target_only dashed, as the reference), each transfer arm's negative region
    shaded under it first."""
    reference = [p for p in points if p.arm == "target_only"]
    for arm in arms:
        if arm != "target_only":
            _shade(fig, [p for p in points if p.arm == arm], reference, float, arm, log_x=log_x)
    for i, arm in enumerate(arms):
        mine = [p for p in points if p.arm == arm]
        if arm == "target_only":
            fig.add_trace(_arm_trace(mine, float, "target_only (no source)", REFERENCE_COLOUR, dash="dash"))
        else:
            fig.add_trace(_arm_trace(mine, float, arm, _colour(i)))


def budget_figure(result: BudgetResult, title: str | None = None) -> go.Figure:
    """Target accuracy against labelled target examples per class (log x), one line per arm,
    seed spread as error bars, the negative-transfer region of each transfer arm shaded."""
    fig = go.Figure()
    arms = [a.label for a in result.spec.arms]
    clipped_all = ALL_LABELS in result.spec.budgets and result.budgets
    _arm_lines(fig, result.points, arms, log_x=True)
    ticks = list(result.budgets)
    text = [f"{k} (all)" if clipped_all and k == max(ticks) else str(k) for k in ticks]
    fig.update_xaxes(type="log", tickvals=ticks, ticktext=text, title="labelled target examples per class (k)")
    fig.update_yaxes(title="target accuracy", range=[0, 1.05])
    return _legend_below(_figures.layout(fig, title or f"Label budget: {result.spec.source} → {result.spec.target}",
                                         height=520))


def shift_figure(result: ShiftResult, title: str | None = None) -> go.Figure:
    """Target accuracy against the shift's strength for source_only, the adaptation strategy
    and target_only; the input-space MMD² and proxy A-distance on a second axis; shaded where a
    transfer arm falls below target_only; the crossover of each transfer arm marked."""
    spec = result.spec
    fig = go.Figure()
    arms = [a.label for a in spec.arms]
    _arm_lines(fig, result.points, arms)
    if result.gaps:
        for name, label in (("mmd2", "MMD² (inputs)"), ("pad", "proxy A-distance (inputs)")):
            values = [(v, result.mean_gap(v)) for v in spec.values]
            values = [(v, g) for v, g in values if g is not None]
            fig.add_trace(go.Scatter(
                x=[v for v, _ in values], y=[g[0] if name == "mmd2" else g[1] for _, g in values], name=label,
                yaxis="y2", mode="lines+markers", line={"color": GAP_COLOURS[name], "dash": "dot", "width": 2},
                marker={"symbol": "diamond", "size": 8},
                hovertemplate=f"{label}: %{{y:.3f}} at %{{x}}<extra></extra>"))
    for i, arm in enumerate(arms):
        if arm == "target_only":
            continue
        crossover = result.crossover_of(arm)
        if crossover is not None:
            fig.add_vline(x=crossover, line_color=_colour(i), line_dash="dash", line_width=2)
            fig.add_annotation(x=crossover, y=1.02, yref="y", text=f"{arm} turns negative at {crossover:g}",
                               showarrow=False, xanchor="left", font={"color": _colour(i), "size": 14},
                               yshift=-14 * i)
    fig.update_xaxes(title=spec.axis.axis_label, tickvals=list(spec.values))
    fig.update_layout(yaxis={"title": "target accuracy", "range": [0, 1.08]},
                      yaxis2={"title": "input-space gap (MMD², PAD)", "overlaying": "y", "side": "right",
                              "rangemode": "tozero", "showgrid": False})
    fig = _legend_below(_figures.layout(fig, title or f"Shift strength: {spec.shift} ({spec.axis.side} side)",
                                        height=540))
    fig.update_layout(margin={"r": 70})
    return fig


def source_scores_figure(result: SourceResult, title: str | None = None) -> go.Figure:
    """Before training: each candidate source's input-space gap to the target and its LogME."""
    rows = [s for s in result.summaries if s.logme is not None]
    fig = go.Figure()
    fig.add_trace(go.Bar(x=[s.source for s in rows], y=[s.mmd2 for s in rows], name="MMD² (lower = closer)",
                         marker_color=GAP_COLOURS["mmd2"], offsetgroup="mmd2"))
    fig.add_trace(go.Bar(x=[s.source for s in rows], y=[s.pad for s in rows], name="proxy A-distance",
                         marker_color=GAP_COLOURS["pad"], offsetgroup="pad"))
    fig.add_trace(go.Scatter(x=[s.source for s in rows], y=[s.logme for s in rows], name="LogME (higher = better)",
                             yaxis="y2", mode="markers", marker={"size": 16, "symbol": "star", "color": "#1f6fb4"},
                             hovertemplate="LogME %{y:.3f}<extra></extra>"))
    fig.update_layout(barmode="group", yaxis={"title": "domain gap", "rangemode": "tozero"},
                      yaxis2={"title": "LogME", "overlaying": "y", "side": "right", "showgrid": False})
    fig = _figures.layout(fig, title or f"Before training: candidate sources for {result.spec.target}", height=420)
    fig.update_layout(margin={"r": 70})
    return fig


def source_outcome_figure(result: SourceResult, title: str | None = None) -> go.Figure:
    """After training: the NTG each source gave (red: negative transfer), spread over seeds."""
    rows = [s for s in result.summaries if s.ntg is not None]
    fig = go.Figure(go.Bar(
        x=[s.source for s in rows], y=[s.ntg.mean for s in rows], marker_color=[_figures.ntg_colour(s.ntg) for s in rows],
        error_y={"type": "data", "array": [s.ntg.std or 0.0 for s in rows],
                 "visible": any(s.ntg.std is not None for s in rows)},
        text=[f"{s.ntg.mean:+.3f} ({s.ntg.label})" for s in rows], textposition="outside",
        hovertemplate="%{x}: NTG %{y:+.3f}<extra></extra>"))
    fig.add_hline(y=0, line_color="#333")
    fig.update_yaxes(title="NTG (positive = negative transfer)")
    return _figures.layout(fig, title or f"After training: what {result.spec.strategy} from each source gave",
                           height=420)


def score_vs_outcome_figure(result: SourceResult, score: str = "logme") -> go.Figure:
    """Each source as a point: its before-training ``score`` against the NTG it gave, with
    Spearman's ρ over the sources in the title."""
    rows = [s for s in result.summaries if s.ntg is not None and getattr(s, score) is not None]
    corr = next((c for c in result.correlations if c.score == score), None)
    names = {"logme": "LogME", "mmd2": "MMD²", "pad": "proxy A-distance"}
    fig = go.Figure(go.Scatter(
        x=[getattr(s, score) for s in rows], y=[s.ntg.mean for s in rows], text=[s.source for s in rows],
        mode="markers+text", textposition="top center", marker={"size": 14, "color": [_figures.ntg_colour(s.ntg) for s in rows]},
        hovertemplate="%{text}<br>" + names[score] + " %{x:.3f}<br>NTG %{y:+.3f}<extra></extra>", showlegend=False))
    fig.add_hline(y=0, line_color="#333", line_dash="dot")
    rho = "ρ undefined (needs 3+ sources that differ)" if corr is None or corr.rho is None else \
        f"Spearman ρ = {corr.rho:+.2f} over {corr.n} sources"
    fig.update_xaxes(title=f"{names[score]} (before training)")
    fig.update_yaxes(title="NTG (after)")
    return _figures.layout(fig, f"{names[score]} vs outcome: {rho}", height=400)


def comparison_figure(result: ComparisonResult, title: str | None = None) -> go.Figure:
    """One bar per arm: mean target accuracy over seeds, sd as error bars, each seed a dot."""
    labels = [label for label, _ in result.spec.arms]
    points = {p.arm: p for p in result.points}
    shown = [label for label in labels if label in points]
    fig = go.Figure(go.Bar(
        x=shown, y=[points[a].mean_accuracy for a in shown], name="mean over seeds",
        marker_color=[_colour(i) for i, _ in enumerate(shown)],
        error_y={"type": "data", "array": [points[a].std_accuracy or 0.0 for a in shown],
                 "visible": any(points[a].std_accuracy is not None for a in shown)},
        text=[f"{points[a].mean_accuracy:.3f}" + (f" ± {points[a].std_accuracy:.3f}"
                                                 if points[a].std_accuracy is not None else "") for a in shown],
        # inside the bar at its foot, where neither the error bar nor the seeds' dots (both near the top) cover it
        textposition="inside", insidetextanchor="start", textangle=0,
        insidetextfont={"color": "white", "size": 16}, hovertemplate="%{x}: %{y:.3f}<extra></extra>"))
    fig.add_trace(go.Scatter(
        x=[r.arm for r in result.rows], y=[r.target_accuracy for r in result.rows], mode="markers",
        name="one seed", marker={"color": "#222", "size": 8, "symbol": "circle-open"},
        customdata=[r.seed for r in result.rows], hovertemplate="%{x}, seed %{customdata}: %{y:.3f}<extra></extra>"))
    fig.update_yaxes(title="target accuracy", range=[0, 1.12])
    # long arm labels ("mmd weight 10, imbalanced target") wrap at their comma instead of overlapping
    fig.update_xaxes(tickangle=0, automargin=True, tickvals=shown, ticktext=[a.replace(", ", ",<br>") for a in shown])
    return _legend_below(_figures.layout(fig, title, height=480))


def result_figures(result: SweepResult) -> list[tuple[str, go.Figure]]:
    """Every figure of a result, named (the name goes in the chart's key)."""
    if isinstance(result, BudgetResult):
        return [("budget", budget_figure(result))]
    if isinstance(result, ShiftResult):
        return [("shift", shift_figure(result))]
    if isinstance(result, SourceResult):
        figs = []
        if any(s.logme is not None for s in result.summaries):
            figs.append(("scores", source_scores_figure(result)))
        if any(s.ntg is not None for s in result.summaries):
            figs.append(("outcome", source_outcome_figure(result)))
            figs.append(("logme_vs_ntg", score_vs_outcome_figure(result, "logme")))
        return figs
    return [("comparison", comparison_figure(result))]


# --- tables ------------------------------------------------------------------------------------------
def summary_table(result: SweepResult) -> list[dict]:
    """The rows a page shows under its figure (per point or per source)."""
    if isinstance(result, SourceResult):
        return result.to_rows()
    rows = []
    for p in result.points:
        row = {"arm": p.arm, "x": p.x, "seeds": p.n, "mean accuracy": round(p.mean_accuracy, 4),
               "sd": None if p.std_accuracy is None else round(p.std_accuracy, 4)}
        ntg = p.ntg
        row.update({"NTG mean": None if ntg is None else round(ntg.mean, 4),
                    "NTG sd": None if ntg is None or ntg.std is None else round(ntg.std, 4),
                    "verdict": "reference" if p.arm == "target_only" else (ntg.label if ntg else "")})
        rows.append(row)
    if isinstance(result, ComparisonResult):
        for row in rows:
            row.pop("x")
    return rows


def plan_choices(result: SweepResult) -> list[tuple[str, Any]]:
    """(label, planned run) of every point, to re-run one live."""
    out = []
    for p in result.plan:
        where = "" if p.x is None else f" at {p.x}"
        out.append((f"{p.arm}{where}, seed {p.seed}", p))
    return out


def rerun_point(planned) -> None:
    """Button callback: put a sweep point's config on the Data/Train pages and start it there."""
    try:
        _state.apply_config(planned.config)
        _runs.start_run(planned.config, tags={"rerun_of_sweep_point": f"{planned.arm}|{planned.x}|{planned.seed}"})
    except TransferLabError as exc:
        _state.flash(f"The run could not start: {exc}", kind="error")
        return
    st.session_state["s.sweep.goto_train"] = True


def goto_train_if_requested() -> None:
    if st.session_state.pop("s.sweep.goto_train", False):
        st.switch_page("pages/train.py")


def result_outputs(result: SweepResult, page: str, name: str) -> None:
    """Downloads (CSV of every run, the summary CSV, the sweep as a JSON file the app and the
    CLI can load) and a picker to re-run any point live on the Train page."""
    a, b, c = st.columns(3)
    a.download_button("Runs as CSV", rows_csv(result.to_rows()), file_name=f"{name}-runs.csv", mime="text/csv",
                      key=f"btn.{page}.{name}.csv", icon=":material/download:", width="stretch")
    b.download_button("Summary as CSV", rows_csv(summary_table(result)), file_name=f"{name}-summary.csv",
                      mime="text/csv", key=f"btn.{page}.{name}.summary_csv", icon=":material/download:",
                      width="stretch")
    c.download_button("Sweep file (JSON)", export_json(result), file_name=f"{name}.json", mime="application/json",
                      key=f"btn.{page}.{name}.json", icon=":material/download:", width="stretch",
                      help="Load it on this page later, or share it: configs and results, no recomputation.")
    choices = plan_choices(result)
    if choices:
        left, right = st.columns([3, 1], vertical_alignment="bottom")
        picked = left.selectbox("Re-run one point live (opens the Train page)", range(len(choices)),
                                format_func=lambda i: choices[i][0], key=f"btn.{page}.{name}.point")
        right.button("Re-run live", key=f"btn.{page}.{name}.rerun", icon=":material/replay:", width="stretch",
                     on_click=rerun_point, args=(choices[picked][1],))
