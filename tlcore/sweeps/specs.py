"""The four kinds of sweep. Each spec is a frozen, validated dataclass that owns its
:meth:`plan` (which runs it needs), its :meth:`execute` (what it measures besides them) and
its :meth:`build_result` (the result class of its kind); :data:`SWEEP_KINDS` maps the
``kind`` written in files to the class."""
from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any, Callable, Mapping, Sequence, Union

from ..config import RunConfig
from ..errors import ConfigError
from ..runs import RunStore
from .plan import PlannedRun, SweepPlan, largest_budget, run_config
from .results import (BudgetResult, ComparisonResult, FailedRun, GapRow, RunRow, ShiftResult, SourceResult,
                      SourceScore, SweepResult, arm_points, source_summaries)

MAX_SOURCES = 5
ALL_LABELS = "all"


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
    seeds = spec.seeds
    if not seeds:
        raise ConfigError("a sweep needs at least one seed")
    if len(set(seeds)) != len(seeds) or not all(isinstance(s, int) and s >= 0 for s in seeds):
        raise ConfigError(f"seeds must be distinct non-negative integers, got {list(seeds)}")


def _check_transfer_strategy(name: str, what: str) -> None:
    from ..strategies import STRATEGIES
    if name not in STRATEGIES:
        from ..errors import UnknownNameError
        raise UnknownNameError("strategy", name, STRATEGIES)
    if not STRATEGIES[name].uses_source():
        raise ConfigError(f"{what} must use the source; {name!r} does not")


def _with_shift(spec: str, shift: str, value: float) -> str:
    """``spec`` with ``shift=value`` appended as its last shift; unchanged at value 0 (the clean
    domain, which shares its runs with every other sweep of that domain)."""
    from ..data.shifts import format_value
    from ..data.spec import parse_spec

    if value == 0:
        return spec
    separator = "," if ":" in spec else ":"
    return str(parse_spec(f"{spec}{separator}{shift}={format_value(value)}"))


class _SweepKind:
    """What every sweep spec does. A kind sets ``kind`` and overrides :meth:`_runs` and
    :meth:`build_result`; kinds that measure more than their runs override :meth:`execute`."""

    kind = ""
    seeds: tuple[int, ...]

    def _runs(self) -> list[PlannedRun]:
        raise NotImplementedError

    def plan(self) -> SweepPlan:
        """Every run the sweep reports, in the order it trains them (by x, then seed, then arm),
        resolved: result keys computed and every hyperparameter checked. May load data (a budget
        sweep's ``"all"``), so plan once per job and hold the plan."""
        return SweepPlan.of(self, self._runs())

    def build_result(self, plan: Sequence[PlannedRun], rows: Sequence[RunRow], failed: Sequence[FailedRun] = (), *,
                     gaps: Sequence[GapRow] = (), scores: Sequence[SourceScore] = (),
                     budgets: Sequence[int] | None = None, complete: bool | None = None,
                     measured: bool = True) -> SweepResult:
        """The result of this kind from its parts (running, collecting and loading a file all
        come here). ``complete`` defaults to: every planned run present and, for a shift sweep
        when ``measured``, every gap. Parts a kind does not hold are ignored."""
        raise NotImplementedError

    def execute(self, plan: SweepPlan, store: RunStore, *, stop=None, progress: Callable | None = None,
                on_run: Callable[[str], None] | None = None, train: bool = True, measure: bool = True) -> SweepResult:
        """Run (or with ``train=False`` collect) ``plan`` of this spec; see :func:`run_sweep`."""
        from .execute import run_plan
        rows, failed, _ = run_plan(plan, store, stop, progress, on_run, train)
        return self.build_result(plan.runs, rows, failed, measured=measure)

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]):
        """The spec written by ``to_dict()`` (its ``kind`` already removed)."""
        d = dict(values)
        d["base"] = RunConfig.from_dict(d["base"])
        for name in ("budgets", "values", "seeds", "sources"):
            if name in d:
                d[name] = tuple(d[name])
        return cls(**d)


@dataclass(frozen=True)
class BudgetSweep(_SweepKind):
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

    def resolve_budgets(self) -> tuple[int, ...]:
        """``budgets`` as sorted, distinct integers, ``"all"`` and larger ones clipped to
        :func:`largest_budget` (which loads the target training set of every seed)."""
        largest = largest_budget(self.source, self.target, self.seeds, self.base.data_dir)
        if largest < 1:
            raise ConfigError(f"target {self.target!r} has a class without training examples")
        return tuple(sorted({largest if k == ALL_LABELS else min(int(k), largest) for k in self.budgets}))

    def _runs(self) -> list[PlannedRun]:
        return [PlannedRun(arm.label, k, seed, run_config(self.base, self.source, self.target, arm, k, seed))
                for k in self.resolve_budgets() for seed in self.seeds for arm in self.arms]

    def build_result(self, plan, rows, failed=(), *, gaps=(), scores=(), budgets=None, complete=None,
                     measured=True) -> BudgetResult:
        plan, rows = tuple(plan), tuple(rows)
        budgets = tuple(budgets) if budgets is not None else tuple(sorted({p.x for p in plan}))
        return BudgetResult(spec=self, budgets=budgets, plan=plan, rows=rows,
                            points=arm_points(rows, [a.label for a in self.arms], budgets), failed=tuple(failed),
                            complete=len(rows) == len(plan) if complete is None else complete)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "source": self.source, "target": self.target, "adaptation": self.adaptation,
                "adaptation_params": dict(self.adaptation_params), "finetune_params": dict(self.finetune_params),
                "budgets": list(self.budgets), "seeds": list(self.seeds), "base": self.base.to_dict()}


@dataclass(frozen=True)
class ShiftSweep(_SweepKind):
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
    def adaptation_arm(self) -> Arm:
        return Arm.of(self.adaptation, self.adaptation_params)

    @property
    def arms(self) -> tuple[Arm, ...]:
        arms = [Arm.of("source_only"), self.adaptation_arm, Arm.of("target_only")]
        return tuple({a.label: a for a in arms}.values())

    def specs_at(self, value: float) -> tuple[str, str]:
        """(source spec, target spec) with the shift applied at ``value`` to its side."""
        if self.axis.side == "source":
            return _with_shift(self.source, self.shift, value), self.target
        return self.source, _with_shift(self.target, self.shift, value)

    def _runs(self) -> list[PlannedRun]:
        runs = []
        for value in self.values:
            source, target = self.specs_at(value)
            runs += [PlannedRun(arm.label, value, seed, run_config(self.base, source, target, arm,
                                                                  self.target_labels, seed))
                     for seed in self.seeds for arm in self.arms]
        return runs

    def execute(self, plan, store, *, stop=None, progress=None, on_run=None, train=True, measure=True) -> ShiftResult:
        """The planned runs, then (when ``measure``) the input-space gap at every value and seed."""
        from .execute import run_plan, shift_gaps
        measurements = len(self.values) * len(self.seeds) if measure else 0
        rows, failed, tracker = run_plan(plan, store, stop, progress, on_run, train, measurements)
        gaps = shift_gaps(self, stop=stop, progress=tracker.finish_unit) if measure else ()
        return self.build_result(plan.runs, rows, failed, gaps=gaps, measured=measure)

    def build_result(self, plan, rows, failed=(), *, gaps=(), scores=(), budgets=None, complete=None,
                     measured=True) -> ShiftResult:
        plan, rows, gaps = tuple(plan), tuple(rows), tuple(gaps)
        if complete is None:
            complete = len(rows) == len(plan) and (not measured or len(gaps) == len(self.values) * len(self.seeds))
        return ShiftResult(spec=self, plan=plan, rows=rows,
                           points=arm_points(rows, [a.label for a in self.arms], self.values),
                           gaps=gaps, failed=tuple(failed), complete=complete)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "source": self.source, "target": self.target, "shift": self.shift,
                "values": list(self.values), "adaptation": self.adaptation,
                "adaptation_params": dict(self.adaptation_params), "target_labels": self.target_labels,
                "seeds": list(self.seeds), "base": self.base.to_dict()}


@dataclass(frozen=True)
class SourceSweep(_SweepKind):
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

    def source_only_config(self, source: str, seed: int) -> RunConfig:
        """The ``source_only`` run that scores ``source`` for ``seed`` (the before part)."""
        return run_config(self.base, source, self.target, Arm.of("source_only"), self.target_labels, seed)

    def _runs(self) -> list[PlannedRun]:
        return [PlannedRun(arm.label, source, seed, run_config(self.base, source, self.target, arm,
                                                               self.target_labels, seed))
                for source in self.sources for seed in self.seeds for arm in self.arms]

    def execute(self, plan, store, *, stop=None, progress=None, on_run=None, train=True, measure=True
                ) -> SourceResult:
        """With ``measure``: the before part (scores) first, then the outcome runs."""
        if not measure:
            return super().execute(plan, store, stop=stop, progress=progress, on_run=on_run, train=train,
                                   measure=False)
        from .execute import run_source
        return run_source(plan, store, stop, progress, on_run, train_outcomes=train, train_scores=train)

    def build_result(self, plan, rows, failed=(), *, gaps=(), scores=(), budgets=None, complete=None,
                     measured=True) -> SourceResult:
        plan, rows, scores = tuple(plan), tuple(rows), tuple(scores)
        summaries, correlations = source_summaries(self, scores, rows)
        return SourceResult(spec=self, plan=plan, scores=scores, rows=rows,
                            points=arm_points(rows, [a.label for a in self.arms], self.sources),
                            summaries=summaries, correlations=correlations, failed=tuple(failed),
                            complete=len(rows) == len(plan) if complete is None else complete)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "target": self.target, "sources": list(self.sources), "strategy": self.strategy,
                "params": dict(self.params), "target_labels": self.target_labels, "seeds": list(self.seeds),
                "base": self.base.to_dict()}


@dataclass(frozen=True)
class ComparisonSweep(_SweepKind):
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

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> "ComparisonSweep":
        return cls(arms=tuple((a["label"], RunConfig.from_dict(a["config"])) for a in values["arms"]),
                   seeds=tuple(values["seeds"]))

    def _runs(self) -> list[PlannedRun]:
        return [PlannedRun(label, None, seed, config.replace(seed=seed))
                for seed in self.seeds for label, config in self.arms]

    def build_result(self, plan, rows, failed=(), *, gaps=(), scores=(), budgets=None, complete=None,
                     measured=True) -> ComparisonResult:
        plan, rows = tuple(plan), tuple(rows)
        return ComparisonResult(spec=self, plan=plan, rows=rows,
                                points=arm_points(rows, [label for label, _ in self.arms], [None]),
                                failed=tuple(failed), complete=len(rows) == len(plan) if complete is None else complete)

    def to_dict(self) -> dict:
        return {"kind": self.kind, "arms": [{"label": label, "config": config.to_dict()} for label, config in self.arms],
                "seeds": list(self.seeds)}


SweepSpec = Union[BudgetSweep, ShiftSweep, SourceSweep, ComparisonSweep]

#: Every sweep kind, by the ``kind`` its ``to_dict()`` writes.
SWEEP_KINDS: dict[str, type] = {cls.kind: cls for cls in (BudgetSweep, ShiftSweep, SourceSweep, ComparisonSweep)}


def spec_from_dict(values: Mapping[str, Any]) -> SweepSpec:
    """The sweep spec written by ``spec.to_dict()``."""
    d = dict(values)
    kind = d.pop("kind", None)
    if kind not in SWEEP_KINDS:
        raise ConfigError(f"unknown sweep kind {kind!r}; valid: {', '.join(SWEEP_KINDS)}")
    return SWEEP_KINDS[kind].from_dict(d)


def resolve_budgets(spec: BudgetSweep) -> tuple[int, ...]:
    """``spec.budgets`` resolved (see :meth:`BudgetSweep.resolve_budgets`)."""
    return spec.resolve_budgets()
