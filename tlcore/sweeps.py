"""Sweeps: many short runs through the one engine, for the negative-transfer experiments.

Three experiments answer "when does transfer hurt?", and a fourth, plain
comparison serves the classroom lessons (:mod:`tlcore.lessons`):

* :class:`BudgetSweep` — target accuracy against the label budget ``k``
  (labelled target examples per class) for ``target_only``, ``finetune`` and
  one adaptation strategy; the budgets where a transfer strategy lies below
  ``target_only`` are the negative-transfer region.
* :class:`ShiftSweep` — target accuracy of ``source_only``, an adaptation
  strategy and ``target_only`` against the strength of one shift, with the
  input-space MMD² and proxy A-distance at each strength, and the crossover
  where transfer turns negative. Which domain the shift is applied to is fixed
  per shift (:data:`SWEEPABLE_SHIFTS`): ``rotate`` moves the *target* away from
  a clean source; ``label_noise`` and ``permute`` corrupt the *source* while the
  target task, the one measured, stays clean.
* :class:`SourceSweep` — "which source?": up to five candidate sources for one
  target. *Before* training the transfer strategy (:func:`score_sources`), each
  source's input-space domain gap and its LogME transferability score
  (:mod:`tlcore.transferability`) on the labelled target examples, from the
  features of a ``source_only`` model; *after*, the NTG each source gave and
  the Spearman rank correlation between each score and the NTG.
* :class:`ComparisonSweep` — named arms (one run config each) over seeds.

Every sweep is a list of :class:`PlannedRun` executed by
:func:`tlcore.api.run_experiment` into the run store, so the runs show up in
the app like any other. A run whose :func:`~tlcore.api.result_key` is already
stored as done is reused, never trained again: re-running a sweep is cheap,
and a sweep stopped halfway resumes where it stopped. Every run with a label
budget is preceded by its matched ``target_only`` baseline (same pair, budget,
seed), which is how each row gets its NTG.

One progress value in [0, 1] covers the whole sweep; :func:`sweep_work`
wraps a sweep as a :meth:`tlcore.worker.Worker.start_job` job (stop flag,
progress, message and run ids), and :func:`collect_sweep` reads what is stored
so far without training, for curves that fill in live. Results are frozen
dataclasses of floats and strings; ``to_rows()`` gives flat dicts for CSV or
JSON, and :func:`export_sweep` / :func:`load_sweep` write and read a
self-contained, versioned JSON file (configs and results) that the app can
show without recomputing anything.
"""
from __future__ import annotations

import dataclasses
import json
import math
import os
import statistics
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Callable, Mapping, Sequence, Union

from .config import RunConfig
from .errors import ConfigError, NonFiniteLossError, TransferLabError
from .ntg import NTGSummary, summarise_ntg
from .runs import RunStore, register_live, unregister_live

__all__ = [
    "SWEEP_FORMAT",
    "SWEEP_FORMAT_VERSION",
    "SWEEPABLE_SHIFTS",
    "ShiftAxis",
    "Arm",
    "BudgetSweep",
    "ShiftSweep",
    "SourceSweep",
    "ComparisonSweep",
    "SweepSpec",
    "PlannedRun",
    "RunRow",
    "FailedRun",
    "ArmPoint",
    "BudgetResult",
    "GapRow",
    "ShiftResult",
    "SourceScore",
    "SourceSummary",
    "RankCorrelation",
    "SourceResult",
    "ComparisonResult",
    "SweepResult",
    "plan_sweep",
    "run_sweep",
    "collect_sweep",
    "score_sources",
    "shift_gaps",
    "sweep_work",
    "sweep_to_dict",
    "export_sweep",
    "load_sweep",
    "spec_from_dict",
]

SWEEP_FORMAT = "transfer-lab-sweep"
SWEEP_FORMAT_VERSION = 1
MAX_SOURCES = 5
ALL_LABELS = "all"

#: ``progress(fraction, message)``: the whole sweep's progress in [0, 1] and what runs now.
ProgressCallback = Callable[[float, str], None]


# ============================================================================ specs
@dataclass(frozen=True)
class ShiftAxis:
    """A shift a :class:`ShiftSweep` can sweep: which spec it is applied to, and why."""

    name: str
    side: str                     # "source" or "target"
    axis_label: str
    default_values: tuple[float, ...]
    why: str


SWEEPABLE_SHIFTS: dict[str, ShiftAxis] = {
    "rotate": ShiftAxis(
        "rotate", "target", "rotation of the target (degrees)", (0.0, 15.0, 30.0, 45.0, 60.0, 90.0),
        "the target is rotated away from a clean source: the inputs move, the task stays"),
    "label_noise": ShiftAxis(
        "label_noise", "source", "label-noise rate of the source", (0.0, 0.2, 0.4, 0.6, 0.8),
        "the source's training labels are corrupted; the target, whose task is measured, stays clean"),
    "permute": ShiftAxis(
        "permute", "source", "fraction of the source's classes with permuted labels", (0.0, 0.25, 0.5, 0.75, 1.0),
        "the source keeps its inputs but learns a different task; the target task stays clean"),
}


@dataclass(frozen=True)
class Arm:
    """One curve of a sweep: a strategy with its hyperparameters, under a display ``label``."""

    label: str
    strategy: str
    params: dict = field(default_factory=dict)

    @classmethod
    def of(cls, strategy: str, params: Mapping[str, Any] | None = None) -> "Arm":
        """An arm labelled by its strategy, plus its non-default settings, e.g. ``finetune (freeze_depth=-1)``."""
        params = dict(params or {})
        label = strategy if not params else f"{strategy} ({', '.join(f'{k}={v}' for k, v in sorted(params.items()))})"
        return cls(label, strategy, params)

    def to_dict(self) -> dict:
        return {"label": self.label, "strategy": self.strategy, "params": dict(self.params)}


def _normalise_seeds(spec) -> None:
    """Store ``spec.seeds`` as a tuple (lists come from JSON and the CLI) and check it."""
    object.__setattr__(spec, "seeds", tuple(spec.seeds))
    _check_seeds(spec.seeds)


def _check_seeds(seeds: Sequence[int]) -> None:
    if not seeds:
        raise ConfigError("a sweep needs at least one seed")
    if len(set(seeds)) != len(seeds) or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"seeds must be distinct non-negative integers, got {list(seeds)}")


def _check_transfer_strategy(name: str, what: str) -> None:
    from .strategies import STRATEGIES
    if name not in STRATEGIES:
        from .errors import UnknownNameError
        raise UnknownNameError("strategy", name, STRATEGIES)
    if not STRATEGIES[name].uses_source():
        raise ConfigError(f"{what} must use the source; {name!r} does not")


@dataclass(frozen=True)
class BudgetSweep:
    """Target accuracy against the label budget ``k`` (labelled target examples per class).

    Arms: ``target_only``, ``finetune`` (with ``finetune_params``) and, unless
    None, the ``adaptation`` strategy (with ``adaptation_params``; it sees the
    same ``k`` labelled target examples). ``budgets`` are positive integers or
    ``"all"``: the largest budget every target class can give (smallest class
    count of the target training set over the seeds); larger budgets are
    clipped to it. ``base`` holds the settings every run shares (epochs, lr,
    model, device, ...); its source, target, strategy, params, budget and seed
    are set by the sweep.
    """

    source: str
    target: str
    adaptation: str | None = "dann"
    adaptation_params: dict = field(default_factory=dict)
    finetune_params: dict = field(default_factory=dict)
    budgets: tuple = (1, 2, 5, 10, 50, ALL_LABELS)
    seeds: tuple[int, ...] = (0,)
    base: RunConfig = field(default_factory=RunConfig)
    kind = "budget"

    def __post_init__(self) -> None:
        _normalise_seeds(self)
        object.__setattr__(self, "budgets", tuple(self.budgets))
        if not self.budgets:
            raise ConfigError("a budget sweep needs at least one budget")
        for k in self.budgets:
            if k != ALL_LABELS and not (isinstance(k, int) and not isinstance(k, bool) and k >= 1):
                raise ConfigError(f"budgets are positive integers or {ALL_LABELS!r}, got {k!r}")
        if self.adaptation is not None:
            _check_transfer_strategy(self.adaptation, "the adaptation strategy")

    @property
    def arms(self) -> tuple[Arm, ...]:
        arms = [Arm.of("target_only"), Arm.of("finetune", self.finetune_params)]
        if self.adaptation is not None:
            extra = Arm.of(self.adaptation, self.adaptation_params)
            if extra.label not in {a.label for a in arms}:
                arms.append(extra)
        return tuple(arms)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "source": self.source, "target": self.target, "adaptation": self.adaptation,
                "adaptation_params": dict(self.adaptation_params), "finetune_params": dict(self.finetune_params),
                "budgets": list(self.budgets), "seeds": list(self.seeds), "base": self.base.to_dict()}


@dataclass(frozen=True)
class ShiftSweep:
    """Target accuracy against the strength of one shift (see :data:`SWEEPABLE_SHIFTS`).

    ``values`` are the shift's values in sweep order (value 0 leaves the spec
    unchanged); ``source`` and ``target`` are the specs before the shift.
    Arms: ``source_only``, the ``adaptation`` strategy and ``target_only``, all
    with ``target_labels`` labelled target examples per class (at least 1:
    ``target_only`` needs them; ``source_only`` ignores them).
    """

    source: str
    target: str
    shift: str = "rotate"
    values: tuple[float, ...] = ()
    adaptation: str = "dann"
    adaptation_params: dict = field(default_factory=dict)
    target_labels: int = 5
    seeds: tuple[int, ...] = (0,)
    base: RunConfig = field(default_factory=RunConfig)
    kind = "shift"

    def __post_init__(self) -> None:
        _normalise_seeds(self)
        if self.shift not in SWEEPABLE_SHIFTS:
            raise ConfigError(f"a shift sweep sweeps one of {', '.join(SWEEPABLE_SHIFTS)}, not {self.shift!r}")
        if not self.values:
            object.__setattr__(self, "values", SWEEPABLE_SHIFTS[self.shift].default_values)
        object.__setattr__(self, "values", tuple(float(v) for v in self.values))
        if len(set(self.values)) != len(self.values):
            raise ConfigError(f"shift values must be distinct, got {list(self.values)}")
        if self.target_labels < 1:
            raise ConfigError("a shift sweep compares with target_only, which needs target_labels of 1 or more")
        _check_transfer_strategy(self.adaptation, "the adaptation strategy")

    @property
    def axis(self) -> ShiftAxis:
        return SWEEPABLE_SHIFTS[self.shift]

    @property
    def arms(self) -> tuple[Arm, ...]:
        arms = [Arm.of("source_only"), Arm.of(self.adaptation, self.adaptation_params), Arm.of("target_only")]
        return tuple({a.label: a for a in arms}.values())

    def specs_at(self, value: float) -> tuple[str, str]:
        """(source spec, target spec) with the shift applied at ``value`` to its side."""
        if self.axis.side == "source":
            return _with_shift(self.source, self.shift, value), self.target
        return self.source, _with_shift(self.target, self.shift, value)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "source": self.source, "target": self.target, "shift": self.shift,
                "values": list(self.values), "adaptation": self.adaptation,
                "adaptation_params": dict(self.adaptation_params), "target_labels": self.target_labels,
                "seeds": list(self.seeds), "base": self.base.to_dict()}


@dataclass(frozen=True)
class SourceSweep:
    """Which of up to five candidate ``sources`` transfers best to ``target``?

    *Before* (:func:`score_sources`): per source and seed, one ``source_only``
    run (with the same label budget, so the same labelled target examples),
    then the input-space MMD² and proxy A-distance between the source and
    target training inputs and the LogME score of that model's features on the
    ``target_labels`` labelled target examples per class. *After*: ``strategy``
    (default ``finetune``) from each source, with its matched ``target_only``
    baseline, and the NTG it gave.

    What the scores can and cannot see: the input-space gaps ignore labels, and
    LogME rates features for a *new* linear head. A source with the right
    inputs and a different task (``permute``) therefore looks ideal before
    training, yet fine-tuning its head with a small learning rate is negative
    transfer. Measured on digits with k = 2, finetune from ``digits:permute``
    gave NTG +0.24 with the best LogME of four sources. With
    ``reset_head=True`` the same source helps.
    """

    target: str
    sources: tuple[str, ...]
    strategy: str = "finetune"
    params: dict = field(default_factory=dict)
    target_labels: int = 5
    seeds: tuple[int, ...] = (0,)
    base: RunConfig = field(default_factory=RunConfig)
    kind = "source"

    def __post_init__(self) -> None:
        _normalise_seeds(self)
        object.__setattr__(self, "sources", tuple(self.sources))
        if not 1 <= len(self.sources) <= MAX_SOURCES:
            raise ConfigError(f"give 1 to {MAX_SOURCES} candidate sources, got {len(self.sources)}")
        if len(set(self.sources)) != len(self.sources):
            raise ConfigError(f"candidate sources must be distinct, got {list(self.sources)}")
        if self.target_labels < 1:
            raise ConfigError("a source sweep scores sources on labelled target examples: target_labels of 1 or more")
        _check_transfer_strategy(self.strategy, "the transfer strategy")

    @property
    def arms(self) -> tuple[Arm, ...]:
        return (Arm.of(self.strategy, self.params), Arm.of("target_only"))

    def to_dict(self) -> dict:
        return {"kind": self.kind, "target": self.target, "sources": list(self.sources), "strategy": self.strategy,
                "params": dict(self.params), "target_labels": self.target_labels, "seeds": list(self.seeds),
                "base": self.base.to_dict()}


@dataclass(frozen=True)
class ComparisonSweep:
    """Named arms, each one complete run config (its seed is replaced), over ``seeds``."""

    arms: tuple[tuple[str, RunConfig], ...]
    seeds: tuple[int, ...] = (0, 1, 2)
    kind = "comparison"

    def __post_init__(self) -> None:
        _normalise_seeds(self)
        object.__setattr__(self, "arms", tuple((str(label), config) for label, config in self.arms))
        labels = [label for label, _ in self.arms]
        if not labels or len(set(labels)) != len(labels):
            raise ConfigError(f"a comparison needs distinct arm labels, got {labels}")

    def to_dict(self) -> dict:
        return {"kind": self.kind, "arms": [{"label": label, "config": config.to_dict()} for label, config in self.arms],
                "seeds": list(self.seeds)}


SweepSpec = Union[BudgetSweep, ShiftSweep, SourceSweep, ComparisonSweep]


def spec_from_dict(values: Mapping[str, Any]) -> SweepSpec:
    """The sweep spec written by ``spec.to_dict()``."""
    d = dict(values)
    kind = d.pop("kind", None)
    if kind == "comparison":
        return ComparisonSweep(arms=tuple((a["label"], RunConfig.from_dict(a["config"])) for a in d["arms"]),
                               seeds=tuple(d["seeds"]))
    classes = {"budget": BudgetSweep, "shift": ShiftSweep, "source": SourceSweep}
    if kind not in classes:
        raise ConfigError(f"unknown sweep kind {kind!r}; valid: {', '.join([*classes, 'comparison'])}")
    d["base"] = RunConfig.from_dict(d["base"])
    for name in ("budgets", "values", "seeds", "sources"):
        if name in d:
            d[name] = tuple(d[name])
    return classes[kind](**d)


def _with_shift(spec: str, shift: str, value: float) -> str:
    """``spec`` with ``shift=value`` appended as its last shift; unchanged at value 0 (the clean
    domain, which shares its runs with every other sweep of that domain)."""
    from .data.shifts import format_value
    from .data.spec import parse_spec

    if value == 0:
        return spec
    separator = "," if ":" in spec else ":"
    return str(parse_spec(f"{spec}{separator}{shift}={format_value(value)}"))


# ============================================================================ plans and rows
@dataclass(frozen=True)
class PlannedRun:
    """One point of a sweep: ``arm`` at ``x`` (k, shift value, source spec, or None) for ``seed``."""

    arm: str
    x: Any
    seed: int
    config: RunConfig

    def to_dict(self) -> dict:
        return {"arm": self.arm, "x": self.x, "seed": self.seed, "config": self.config.to_dict()}


@dataclass(frozen=True)
class RunRow:
    """What one planned run gave. ``ntg`` = ``target_only_accuracy − target_accuracy`` against
    the matched ``target_only`` run (None without a label budget or for target_only itself)."""

    arm: str
    strategy: str
    x: Any
    seed: int
    target_accuracy: float
    source_accuracy: float
    ntg: float | None
    target_only_accuracy: float | None
    run_id: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class FailedRun:
    """A planned run whose loss went non-finite (recorded as failed in the store)."""

    arm: str
    x: Any
    seed: int
    error: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ArmPoint:
    """One arm at one ``x`` over its seeds: mean and sample standard deviation of the target
    accuracy (std None for one seed), and the NTG summary (None for ``target_only``)."""

    arm: str
    strategy: str
    x: Any
    n: int
    mean_accuracy: float
    std_accuracy: float | None
    ntg: NTGSummary | None

    @property
    def below_target_only(self) -> bool:
        """Mean accuracy under the matched target_only mean: the negative-transfer region."""
        return self.ntg is not None and self.ntg.mean > 0

    def to_dict(self) -> dict:
        return {"arm": self.arm, "strategy": self.strategy, "x": self.x, "n": self.n,
                "mean_accuracy": self.mean_accuracy, "std_accuracy": self.std_accuracy,
                "ntg": None if self.ntg is None else self.ntg.to_dict(), "below_target_only": self.below_target_only}


def _mean_std(values: Sequence[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), (statistics.stdev(values) if len(values) > 1 else None)


def _arm_points(rows: Sequence[RunRow], arms: Sequence[str], xs: Sequence[Any]) -> tuple[ArmPoint, ...]:
    points = []
    for x in xs:
        for arm in arms:
            group = [r for r in rows if r.arm == arm and r.x == x]
            if not group:
                continue
            mean, std = _mean_std([r.target_accuracy for r in group])
            gaps = [r.ntg for r in group if r.ntg is not None]
            points.append(ArmPoint(arm=arm, strategy=group[0].strategy, x=x, n=len(group), mean_accuracy=mean,
                                   std_accuracy=std, ntg=summarise_ntg(gaps) if gaps else None))
    return tuple(points)


class _RowsMixin:
    """Lookups shared by every result (they all hold ``rows`` and ``points``)."""

    rows: tuple[RunRow, ...]
    points: tuple[ArmPoint, ...]

    def accuracy_by_seed(self, arm: str, x: Any = None) -> dict[int, float]:
        """``{seed: target accuracy}`` of ``arm`` at ``x``."""
        return {r.seed: r.target_accuracy for r in self.rows if r.arm == arm and r.x == x}

    def point(self, arm: str, x: Any = None) -> ArmPoint | None:
        return next((p for p in self.points if p.arm == arm and p.x == x), None)

    def config_for(self, arm: str, x: Any, seed: int) -> RunConfig | None:
        """The run config of one point, to re-run it live."""
        return next((p.config for p in self.plan if p.arm == arm and p.x == x and p.seed == seed), None)  # type: ignore[attr-defined]


# ============================================================================ results
@dataclass(frozen=True)
class BudgetResult(_RowsMixin):
    """A :class:`BudgetSweep`'s runs and summary. ``budgets`` are the resolved ``k`` values."""

    spec: BudgetSweep
    budgets: tuple[int, ...]
    plan: tuple[PlannedRun, ...]
    rows: tuple[RunRow, ...]
    points: tuple[ArmPoint, ...]
    failed: tuple[FailedRun, ...] = ()
    complete: bool = True

    def negative_budgets(self, arm: str) -> tuple[int, ...]:
        """The budgets where ``arm`` lies below ``target_only`` on average over seeds."""
        return tuple(p.x for p in self.points if p.arm == arm and p.below_target_only)

    def to_rows(self) -> list[dict]:
        return [{"strategy": r.arm, "k": r.x, "seed": r.seed, "target_accuracy": r.target_accuracy,
                 "ntg": r.ntg, "run_id": r.run_id} for r in self.rows]

    def summary_rows(self) -> list[dict]:
        return [{"strategy": p.arm, "k": p.x, "n": p.n, "mean_accuracy": p.mean_accuracy, "std_accuracy": p.std_accuracy,
                 "ntg_mean": p.ntg.mean if p.ntg else None, "ntg_label": p.ntg.label if p.ntg else None,
                 "negative_transfer_region": p.below_target_only} for p in self.points]


@dataclass(frozen=True)
class GapRow:
    """Input-space domain gap between the source and target training inputs at one shift value."""

    value: float
    seed: int
    mmd2: float
    pad: float

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class ShiftResult(_RowsMixin):
    """A :class:`ShiftSweep`'s runs, gaps and crossover (see :meth:`crossover_of`)."""

    spec: ShiftSweep
    plan: tuple[PlannedRun, ...]
    rows: tuple[RunRow, ...]
    points: tuple[ArmPoint, ...]
    gaps: tuple[GapRow, ...]
    failed: tuple[FailedRun, ...] = ()
    complete: bool = True

    @property
    def crossover(self) -> float | None:
        """The first shift value where the adaptation strategy falls below target_only, or None."""
        return self.crossover_of(Arm.of(self.spec.adaptation, self.spec.adaptation_params).label)

    def crossover_of(self, arm: str) -> float | None:
        """The first value (in sweep order) where ``arm``'s mean accuracy is below target_only's."""
        for value in self.spec.values:
            point = self.point(arm, value)
            if point is not None and point.below_target_only:
                return value
        return None

    def mean_gap(self, value: float) -> tuple[float, float] | None:
        """(mean MMD², mean proxy A-distance) over seeds at ``value``."""
        group = [g for g in self.gaps if g.value == value]
        if not group:
            return None
        return statistics.fmean(g.mmd2 for g in group), statistics.fmean(g.pad for g in group)

    def to_rows(self) -> list[dict]:
        """One row per run, with the input-space gap of its shift value and seed (None if not measured)."""
        gaps = {(g.value, g.seed): g for g in self.gaps}
        rows = []
        for r in self.rows:
            gap = gaps.get((r.x, r.seed))
            rows.append({"strategy": r.arm, "shift": self.spec.shift, "shift_value": r.x, "seed": r.seed,
                         "target_accuracy": r.target_accuracy, "ntg": r.ntg, "run_id": r.run_id,
                         "mmd2": None if gap is None else gap.mmd2, "pad": None if gap is None else gap.pad})
        return rows

    def gap_rows(self) -> list[dict]:
        return [{"shift": self.spec.shift, "shift_value": g.value, "seed": g.seed, "mmd2": g.mmd2, "pad": g.pad}
                for g in self.gaps]


@dataclass(frozen=True)
class SourceScore:
    """One candidate source before training the transfer strategy: input-space MMD² and
    proxy A-distance to the target, and the LogME of a source_only model's features of
    the labelled target examples (``run_id``: that source_only run)."""

    source: str
    seed: int
    mmd2: float
    pad: float
    logme: float
    run_id: str

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SourceSummary:
    """One source over seeds: mean scores before, and what the transfer strategy gave after
    (``target_accuracy`` and ``ntg`` None until the outcome runs exist)."""

    source: str
    mmd2: float | None
    pad: float | None
    logme: float | None
    target_accuracy: float | None
    ntg: NTGSummary | None

    def to_dict(self) -> dict:
        return {"source": self.source, "mmd2": self.mmd2, "pad": self.pad, "logme": self.logme,
                "target_accuracy": self.target_accuracy, "ntg": None if self.ntg is None else self.ntg.to_dict()}


@dataclass(frozen=True)
class RankCorrelation:
    """Spearman's ρ between a before-training ``score`` ("logme", "mmd2" or "pad") and the
    mean NTG over the sources (``n`` of them); None when undefined (fewer than 3 sources,
    or a constant column). A score that predicts transfer well has ρ < 0 for LogME (higher
    score, smaller NTG) and ρ > 0 for the gaps."""

    score: str
    rho: float | None
    p_value: float | None
    n: int

    def to_dict(self) -> dict:
        return dataclasses.asdict(self)


@dataclass(frozen=True)
class SourceResult(_RowsMixin):
    """A :class:`SourceSweep`: ``scores`` before training, ``rows`` of the outcome runs (empty
    when only the before part was computed), per-source ``summaries`` and ``correlations``."""

    spec: SourceSweep
    plan: tuple[PlannedRun, ...]
    scores: tuple[SourceScore, ...]
    rows: tuple[RunRow, ...]
    points: tuple[ArmPoint, ...]
    summaries: tuple[SourceSummary, ...]
    correlations: tuple[RankCorrelation, ...]
    failed: tuple[FailedRun, ...] = ()
    complete: bool = True

    def to_rows(self) -> list[dict]:
        rows = []
        for s in self.summaries:
            rows.append({"source": s.source, "mmd2": s.mmd2, "pad": s.pad, "logme": s.logme,
                         "strategy": self.spec.strategy, "target_accuracy": s.target_accuracy,
                         "ntg_mean": s.ntg.mean if s.ntg else None, "ntg_std": s.ntg.std if s.ntg else None,
                         "ntg_label": s.ntg.label if s.ntg else None})
        return rows

    def run_rows(self) -> list[dict]:
        return [{"source": r.x, "strategy": r.arm, "seed": r.seed, "target_accuracy": r.target_accuracy,
                 "ntg": r.ntg, "run_id": r.run_id} for r in self.rows]


@dataclass(frozen=True)
class ComparisonResult(_RowsMixin):
    """A :class:`ComparisonSweep`'s runs and one point per arm (``x`` is None)."""

    spec: ComparisonSweep
    plan: tuple[PlannedRun, ...]
    rows: tuple[RunRow, ...]
    points: tuple[ArmPoint, ...]
    failed: tuple[FailedRun, ...] = ()
    complete: bool = True

    def to_rows(self) -> list[dict]:
        return [{"arm": r.arm, "strategy": r.strategy, "seed": r.seed, "target_accuracy": r.target_accuracy,
                 "source_accuracy": r.source_accuracy, "ntg": r.ntg, "run_id": r.run_id} for r in self.rows]


SweepResult = Union[BudgetResult, ShiftResult, SourceResult, ComparisonResult]


# ============================================================================ planning
def _config(base: RunConfig, source: str, target: str, arm: Arm, target_labels: int, seed: int) -> RunConfig:
    return base.replace(source=source, target=target, strategy=arm.strategy, params=dict(arm.params),
                        target_labels=target_labels, seed=seed)


def largest_budget(source: str, target: str, seeds: Sequence[int], data_dir: str = "") -> int:
    """The largest label budget every target class can give: the smallest per-class count of
    the target training set, over ``seeds`` (shifts such as ``prior=`` depend on the seed)."""
    from .data import make_pair
    counts = []
    for seed in seeds:
        pair = make_pair(source, target, seed=seed, target_labels=0, data_dir=data_dir or None)
        counts.append(min(pair.target.class_counts()))
    return min(counts)


def resolve_budgets(spec: BudgetSweep) -> tuple[int, ...]:
    """``spec.budgets`` as sorted, distinct integers, ``"all"`` and larger ones clipped to
    :func:`largest_budget`."""
    largest = largest_budget(spec.source, spec.target, spec.seeds, spec.base.data_dir)
    if largest < 1:
        raise ConfigError(f"target {spec.target!r} has a class without training examples")
    return tuple(sorted({largest if k == ALL_LABELS else min(int(k), largest) for k in spec.budgets}))


def plan_sweep(spec: SweepSpec) -> tuple[PlannedRun, ...]:
    """Every run the sweep reports, in the order it trains them (by x, then seed, then arm).
    For a source sweep these are the outcome runs; its before part is :func:`score_sources`."""
    plan: list[PlannedRun] = []
    if isinstance(spec, BudgetSweep):
        for k in resolve_budgets(spec):
            for seed in spec.seeds:
                for arm in spec.arms:
                    plan.append(PlannedRun(arm.label, k, seed, _config(spec.base, spec.source, spec.target, arm, k, seed)))
    elif isinstance(spec, ShiftSweep):
        for value in spec.values:
            source, target = spec.specs_at(value)
            for seed in spec.seeds:
                for arm in spec.arms:
                    plan.append(PlannedRun(arm.label, value, seed,
                                           _config(spec.base, source, target, arm, spec.target_labels, seed)))
    elif isinstance(spec, SourceSweep):
        for source in spec.sources:
            for seed in spec.seeds:
                for arm in spec.arms:
                    plan.append(PlannedRun(arm.label, source, seed,
                                           _config(spec.base, source, spec.target, arm, spec.target_labels, seed)))
    elif isinstance(spec, ComparisonSweep):
        for seed in spec.seeds:
            for label, config in spec.arms:
                plan.append(PlannedRun(label, None, seed, config.replace(seed=seed)))
    else:
        raise TypeError(f"not a sweep spec: {type(spec).__name__}")
    return tuple(plan)


def _source_only_config(spec: SourceSweep, source: str, seed: int) -> RunConfig:
    return _config(spec.base, source, spec.target, Arm.of("source_only"), spec.target_labels, seed)


# ============================================================================ execution
class _Progress:
    """One progress value over ``total`` units of work (a run or a measurement each)."""

    def __init__(self, total: int, callback: ProgressCallback | None):
        self.total, self.done, self.callback = max(total, 1), 0, callback

    def report(self, within: float, message: str) -> None:
        if self.callback is not None:
            self.callback(min(1.0, (self.done + within) / self.total), message)

    def finish_unit(self, message: str) -> None:
        self.done += 1
        self.report(0.0, message)


@dataclass
class _Outcome:
    run_id: str
    target_accuracy: float
    source_accuracy: float


class _Executor:
    """Runs unique configs through :func:`tlcore.api.run_experiment`, reusing stored runs."""

    def __init__(self, store: RunStore, stop, progress: _Progress, on_run: Callable[[str], None] | None,
                 train: bool, tags: dict):
        self.store, self.stop, self.progress, self.on_run = store, stop, progress, on_run
        self.train, self.tags = train, tags
        self.outcomes: dict[str, _Outcome] = {}
        self.failures: dict[str, str] = {}

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def lookup(self, key: str) -> _Outcome | None:
        if key not in self.outcomes:
            found = self.store.find_run(key, status="done")
            if found is not None and "target_accuracy" in found.metrics:
                self.outcomes[key] = _Outcome(found.id, float(found.metrics["target_accuracy"]),
                                              float(found.metrics.get("source_accuracy", math.nan)))
        return self.outcomes.get(key)

    def ensure(self, config: RunConfig, message: str) -> _Outcome | None:
        """The stored outcome of ``config``, training it first when allowed and needed."""
        from .api import result_key
        key = result_key(config)
        found = self.lookup(key)
        if found is not None or not self.train or self.stopped or key in self.failures:
            self.progress.finish_unit(message)
            return found
        found = self._train(config, key, message)
        self.progress.finish_unit(message)
        return found

    def _baseline_stored(self, config: RunConfig) -> bool:
        from .api import baseline_config, result_key
        base = baseline_config(config)
        return base is not None and self.lookup(result_key(base)) is not None

    def _train(self, config: RunConfig, key: str, message: str) -> _Outcome | None:
        from . import events as ev
        from .api import run_experiment
        from .train import Trainer, resolved_config

        trainer = Trainer(config)  # validates and loads the data before anything is stored
        run_id = self.store.create_run(resolved_config(config).to_dict(), status="queued", tags=self.tags)
        register_live(run_id)
        if self.on_run is not None:
            self.on_run(run_id)

        def on_event(_run_id: str, event) -> None:
            if isinstance(event, ev.StepEvent):
                self.progress.report(event.step / max(1, event.total_steps), message)

        try:
            # A planned baseline trains before the runs it serves (see _with_baselines), so
            # run_experiment finds it and records the NTG; a run whose baseline is not stored
            # (the source_only runs that score sources) is recorded without one rather than
            # training an extra run outside the sweep's plan.
            outcome = run_experiment(config, store=self.store, stop=self.stop, run_id=run_id, tags=self.tags,
                                     on_event=on_event, with_baseline=self._baseline_stored(config),
                                     trainer=trainer)
        except NonFiniteLossError as exc:
            self.failures[key] = str(exc)  # recorded as failed by run_experiment; the sweep goes on
            return None
        finally:
            unregister_live(run_id)
        if outcome.status != "done":
            return None
        m = outcome.metrics
        found = _Outcome(outcome.run_id, float(m["target_accuracy"]), float(m.get("source_accuracy", math.nan)))
        self.outcomes[key] = found
        return found


def _with_baselines(plan: Sequence[PlannedRun]) -> list[tuple[RunConfig, str]]:
    """Unique configs in plan order, each transfer run preceded by its matched target_only run."""
    from .api import baseline_config, result_key
    ordered: dict[str, tuple[RunConfig, str]] = {}
    for p in plan:
        base = baseline_config(p.config)
        if base is not None:
            ordered.setdefault(result_key(base), (base, f"target_only baseline, seed {p.seed}"))
        ordered.setdefault(result_key(p.config), (p.config, f"{p.arm} at {p.x}, seed {p.seed}" if p.x is not None
                                                  else f"{p.arm}, seed {p.seed}"))
    return list(ordered.values())


def _rows_from(plan: Sequence[PlannedRun], executor: _Executor) -> tuple[tuple[RunRow, ...], tuple[FailedRun, ...]]:
    from .api import baseline_config, result_key
    from .metrics import negative_transfer_gap
    rows, failed = [], []
    for p in plan:
        key = result_key(p.config)
        outcome = executor.lookup(key)
        if outcome is None:
            if key in executor.failures:
                failed.append(FailedRun(p.arm, p.x, p.seed, executor.failures[key]))
            continue
        base = baseline_config(p.config)
        baseline = executor.lookup(result_key(base)) if base is not None else None
        ntg = (negative_transfer_gap(outcome.target_accuracy, baseline.target_accuracy)
               if baseline is not None else None)
        rows.append(RunRow(arm=p.arm, strategy=p.config.strategy, x=p.x, seed=p.seed,
                           target_accuracy=outcome.target_accuracy, source_accuracy=outcome.source_accuracy,
                           ntg=ntg, target_only_accuracy=None if baseline is None else baseline.target_accuracy,
                           run_id=outcome.run_id))
    return tuple(rows), tuple(failed)


def _execute(spec: SweepSpec, plan: Sequence[PlannedRun], store: RunStore, stop, progress: _Progress,
             on_run, train: bool) -> _Executor:
    from .train import resolved_config
    configs = _with_baselines(plan)
    for config, _ in configs:
        resolved_config(config)  # every hyperparameter valid before the first run starts
    executor = _Executor(store, stop, progress, on_run, train, tags={"sweep": spec.kind})
    for config, message in configs:
        executor.ensure(config, message)
    return executor


def shift_gaps(spec: ShiftSweep, max_points: int = 500, stop=None,
               progress: Callable[[str], None] | None = None) -> tuple[GapRow, ...]:
    """Input-space MMD² and proxy A-distance between the source and target training inputs at
    every shift value and seed (:func:`tlcore.inspection.input_gap`, no permutation test).
    Label shifts (``label_noise``, ``permute``) leave the inputs alone, so their gap stays near 0:
    an input-space gap cannot see a change of task."""
    from .data import make_pair
    from .inspection import input_gap
    gaps = []
    for value in spec.values:
        source, target = spec.specs_at(value)
        for seed in spec.seeds:
            if stop is not None and stop.is_set():
                return tuple(gaps)
            pair = make_pair(source, target, seed=seed, data_dir=spec.base.data_dir or None)
            report = input_gap(pair, seed=seed, max_points=max_points, num_permutations=0)
            gaps.append(GapRow(value=value, seed=seed, mmd2=report.mmd2, pad=report.pad))
            if progress is not None:
                progress(f"domain gap at {spec.shift}={value:g}, seed {seed}")
    return tuple(gaps)


def _source_score(spec: SourceSweep, source: str, seed: int, run_id: str, store: RunStore,
                  max_points: int) -> SourceScore:
    import torch

    from .api import load_trained
    from .embed import extract_features
    from .inspection import input_gap
    from .transferability import logme_score

    trainer, _ = load_trained(run_id, store)
    pair = trainer.pair
    labelled = pair.target_labelled
    with torch.no_grad():
        features = extract_features(trainer.model, pair.target.x_train[labelled], device=trainer.device)
    logme = logme_score(features, pair.target.y_train[labelled].numpy())
    gap = input_gap(pair, seed=seed, max_points=max_points, num_permutations=0)
    return SourceScore(source=source, seed=seed, mmd2=gap.mmd2, pad=gap.pad, logme=logme, run_id=run_id)


def _scores(spec: SourceSweep, executor: _Executor, max_points: int) -> tuple[SourceScore, ...]:
    scores = []
    for source in spec.sources:
        for seed in spec.seeds:
            message = f"scoring source {source}, seed {seed}"
            outcome = executor.ensure(_source_only_config(spec, source, seed), message)
            if outcome is None:
                continue
            scores.append(_source_score(spec, source, seed, outcome.run_id, executor.store, max_points))
    return tuple(scores)


def score_sources(spec: SourceSweep, store: RunStore | None = None, *, stop=None,
                  progress: ProgressCallback | None = None, on_run: Callable[[str], None] | None = None,
                  max_points: int = 500) -> SourceResult:
    """The *before* part of a source sweep alone: one ``source_only`` run per source and seed
    (reused when stored), then each source's gap and LogME (:class:`SourceScore`). The result's
    ``rows`` hold whatever outcome runs are already stored (none are trained)."""
    return _run_source(spec, store or RunStore(), stop, progress, on_run, train_outcomes=False,
                       max_points=max_points)


def _spearman(scores: Sequence[float], outcomes: Sequence[float], name: str) -> RankCorrelation:
    n = len(scores)
    if n < 3 or len(set(scores)) < 2 or len(set(outcomes)) < 2:
        return RankCorrelation(score=name, rho=None, p_value=None, n=n)
    from scipy.stats import spearmanr
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        result = spearmanr(scores, outcomes)
    rho, p = float(result.statistic), float(result.pvalue)
    return RankCorrelation(score=name, rho=rho if math.isfinite(rho) else None,
                           p_value=p if math.isfinite(p) else None, n=n)


def _source_summaries(spec: SourceSweep, scores: Sequence[SourceScore], rows: Sequence[RunRow]
                      ) -> tuple[tuple[SourceSummary, ...], tuple[RankCorrelation, ...]]:
    arm = spec.arms[0].label
    summaries = []
    for source in spec.sources:
        mine = [s for s in scores if s.source == source]
        outcome = [r for r in rows if r.arm == arm and r.x == source]
        gaps = [r.ntg for r in outcome if r.ntg is not None]

        def mean(values):
            return statistics.fmean(values) if values else None
        summaries.append(SourceSummary(
            source=source, mmd2=mean([s.mmd2 for s in mine]), pad=mean([s.pad for s in mine]),
            logme=mean([s.logme for s in mine]), target_accuracy=mean([r.target_accuracy for r in outcome]),
            ntg=summarise_ntg(gaps) if gaps else None))
    correlations = []
    for name in ("logme", "mmd2", "pad"):
        usable = [s for s in summaries if getattr(s, name) is not None and s.ntg is not None]
        correlations.append(_spearman([getattr(s, name) for s in usable], [s.ntg.mean for s in usable], name))
    return tuple(summaries), tuple(correlations)


def _run_source(spec: SourceSweep, store: RunStore, stop, progress_callback, on_run, *, train_outcomes: bool,
                max_points: int = 500, train_scores: bool = True) -> SourceResult:
    plan = plan_sweep(spec)
    outcome_configs = _with_baselines(plan) if train_outcomes else []
    progress = _Progress(len(spec.sources) * len(spec.seeds) + len(outcome_configs), progress_callback)
    executor = _Executor(store, stop, progress, on_run, train_scores, tags={"sweep": spec.kind})
    scores = _scores(spec, executor, max_points)
    executor.train = train_outcomes
    for config, message in outcome_configs:
        executor.ensure(config, message)
    rows, failed = _rows_from(plan, executor)
    summaries, correlations = _source_summaries(spec, scores, rows)
    complete = len(scores) == len(spec.sources) * len(spec.seeds) and (not train_outcomes or len(rows) == len(plan))
    return SourceResult(spec=spec, plan=plan, scores=scores, rows=rows,
                        points=_arm_points(rows, [a.label for a in spec.arms], spec.sources),
                        summaries=summaries, correlations=correlations, failed=failed, complete=complete)


def _build(spec: SweepSpec, plan: tuple[PlannedRun, ...], rows: tuple[RunRow, ...], failed: tuple[FailedRun, ...],
           gaps: tuple[GapRow, ...] = (), scores: tuple[SourceScore, ...] = (),
           budgets: tuple[int, ...] | None = None, complete: bool | None = None,
           measured: bool = True) -> SweepResult:
    """A result from its parts (shared by running, collecting and loading an exported file).
    ``complete`` defaults to: every planned run present and, when ``measured``, every gap."""
    if complete is None:
        complete = len(rows) == len(plan)
        if measured and isinstance(spec, ShiftSweep):
            complete = complete and len(gaps) == len(spec.values) * len(spec.seeds)
    if isinstance(spec, BudgetSweep):
        budgets = budgets if budgets is not None else tuple(sorted({p.x for p in plan}))
        return BudgetResult(spec=spec, budgets=budgets, plan=plan, rows=rows,
                            points=_arm_points(rows, [a.label for a in spec.arms], budgets), failed=failed,
                            complete=complete)
    if isinstance(spec, ShiftSweep):
        return ShiftResult(spec=spec, plan=plan, rows=rows, points=_arm_points(rows, [a.label for a in spec.arms],
                                                                               spec.values),
                           gaps=gaps, failed=failed, complete=complete)
    if isinstance(spec, SourceSweep):
        summaries, correlations = _source_summaries(spec, scores, rows)
        return SourceResult(spec=spec, plan=plan, scores=scores, rows=rows,
                            points=_arm_points(rows, [a.label for a in spec.arms], spec.sources),
                            summaries=summaries, correlations=correlations, failed=failed, complete=complete)
    return ComparisonResult(spec=spec, plan=plan, rows=rows,
                            points=_arm_points(rows, [label for label, _ in spec.arms], [None]), failed=failed,
                            complete=complete)


def run_sweep(spec: SweepSpec, store: RunStore | None = None, *, stop=None,
              progress: ProgressCallback | None = None, on_run: Callable[[str], None] | None = None,
              train: bool = True, with_measurements: bool = True) -> SweepResult:
    """Run (or, with ``train=False``, only collect) a sweep and summarise it.

    Parameters
    ----------
    spec : BudgetSweep | ShiftSweep | SourceSweep | ComparisonSweep
    store : RunStore
        Where runs are found and recorded (default: the per-user store).
    stop : object with ``is_set()``, optional
        Checked between runs and, inside a run, between steps; a stopped sweep
        returns what it has (``complete`` False).
    progress : ``progress(fraction, message)``, optional
        The whole sweep's progress in [0, 1], updated within runs too.
    on_run : ``on_run(run_id)``, optional
        Called with the id of every run the sweep creates, before it trains.
    train : bool
        False: train nothing, report what the store holds.
    with_measurements : bool
        Shift sweeps: compute the input-space gaps; source sweeps: the before
        part (scores). Without them the result has empty ``gaps`` / ``scores``.
    """
    store = store or RunStore()
    if isinstance(spec, SourceSweep):
        if not with_measurements:
            plan = plan_sweep(spec)
            tracker = _Progress(len(_with_baselines(plan)), progress)
            executor = _execute(spec, plan, store, stop, tracker, on_run, train)
            rows, failed = _rows_from(plan, executor)
            return _build(spec, plan, rows, failed)
        return _run_source(spec, store, stop, progress, on_run, train_outcomes=train, train_scores=train)
    plan = plan_sweep(spec)
    measurements = len(spec.values) * len(spec.seeds) if isinstance(spec, ShiftSweep) and with_measurements else 0
    tracker = _Progress(len(_with_baselines(plan)) + measurements, progress)
    executor = _execute(spec, plan, store, stop, tracker, on_run, train)
    rows, failed = _rows_from(plan, executor)
    gaps: tuple[GapRow, ...] = ()
    if measurements:
        gaps = shift_gaps(spec, stop=stop, progress=tracker.finish_unit)
    budgets = tuple(sorted({p.x for p in plan})) if isinstance(spec, BudgetSweep) else None
    return _build(spec, plan, rows, failed, gaps=gaps, budgets=budgets, measured=with_measurements)


def collect_sweep(spec: SweepSpec, store: RunStore | None = None) -> SweepResult:
    """What the store holds for ``spec`` now, without training or measuring anything: cheap
    enough to call on every redraw while a sweep job fills the store (curves that fill in live)."""
    return run_sweep(spec, store, train=False, with_measurements=False)


def sweep_work(spec: SweepSpec, store: RunStore,
               on_result: Callable[[SweepResult], None] | None = None) -> Callable[[Any], None]:
    """A ``work(job)`` function for :meth:`tlcore.worker.Worker.start_job`: runs the sweep with the
    job's stop flag, keeps ``job.progress`` / ``job.message`` current, appends every new run id to
    ``job.run_ids``, and hands the final result to ``on_result``."""
    def work(job) -> None:
        def progress(fraction: float, message: str) -> None:
            job.progress, job.message = fraction, message

        result = run_sweep(spec, store, stop=job.stop_event, progress=progress, on_run=job.run_ids.append)
        job.message = "stopped" if job.stop_event.is_set() else "done"
        if on_result is not None:
            on_result(result)
    return work


# ============================================================================ export
def sweep_to_dict(result: SweepResult) -> dict:
    """Everything :func:`export_sweep` writes, as a JSON-ready dict (also ``tlcore sweep --json``):
    format and version, spec, plan (every run's config), rows, measurements, the per-point
    ``summary`` and the flat ``table`` of ``result.to_rows()``."""
    doc = {"format": SWEEP_FORMAT, "version": SWEEP_FORMAT_VERSION, "kind": result.spec.kind,
           "spec": result.spec.to_dict(), "complete": result.complete,
           "plan": [p.to_dict() for p in result.plan], "rows": [r.to_dict() for r in result.rows],
           "failed": [f.to_dict() for f in result.failed]}
    if isinstance(result, BudgetResult):
        doc["budgets"] = list(result.budgets)
    if isinstance(result, ShiftResult):
        doc["gaps"] = [g.to_dict() for g in result.gaps]
    if isinstance(result, SourceResult):
        doc["scores"] = [s.to_dict() for s in result.scores]
    doc["summary"] = [p.to_dict() for p in result.points]
    doc["table"] = result.to_rows()
    return doc


def export_sweep(result: SweepResult, path: str | os.PathLike) -> Path:
    """Write ``result`` as a self-contained JSON file: format name and version, the spec, every
    planned run's config (to re-run any point), the run rows and measurements, and the summary
    (informative; :func:`load_sweep` recomputes it from the rows)."""
    target = Path(path).expanduser()
    target.parent.mkdir(parents=True, exist_ok=True)
    text = json.dumps(sweep_to_dict(result), indent=1, allow_nan=True)
    tmp = target.with_name(target.name + ".tmp")
    tmp.write_text(text, encoding="utf-8")
    tmp.replace(target)
    return target


def load_sweep(path: str | os.PathLike) -> SweepResult:
    """Read a file written by :func:`export_sweep` back into the same result."""
    source = Path(path).expanduser()
    try:
        doc = json.loads(source.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise TransferLabError(f"cannot read sweep file {source}: {exc}") from exc
    if not isinstance(doc, dict) or doc.get("format") != SWEEP_FORMAT:
        raise TransferLabError(f"{source} is not a Transfer Lab sweep file (no format {SWEEP_FORMAT!r})")
    version = doc.get("version")
    if not isinstance(version, int) or version > SWEEP_FORMAT_VERSION:
        raise TransferLabError(f"{source} has sweep format version {version!r}; this Transfer Lab reads up to "
                               f"{SWEEP_FORMAT_VERSION}: update Transfer Lab")
    try:
        spec = spec_from_dict(doc["spec"])
        plan = tuple(PlannedRun(p["arm"], p["x"], p["seed"], RunConfig.from_dict(p["config"])) for p in doc["plan"])
        rows = tuple(RunRow(**r) for r in doc["rows"])
        failed = tuple(FailedRun(**f) for f in doc.get("failed", []))
        gaps = tuple(GapRow(**g) for g in doc.get("gaps", []))
        scores = tuple(SourceScore(**s) for s in doc.get("scores", []))
        budgets = tuple(doc["budgets"]) if "budgets" in doc else None
    except (KeyError, TypeError) as exc:
        raise TransferLabError(f"{source}: malformed sweep file ({type(exc).__name__}: {exc})") from exc
    return _build(spec, plan, rows, failed, gaps=gaps, scores=scores, budgets=budgets,
                  complete=bool(doc.get("complete", True)))
