"""What a sweep gave: frozen rows per run, points per arm and x, and one result class per sweep kind.

Every result holds its spec, its plan (every planned run's config, to re-run any point),
the ``rows`` of the runs stored so far and the ``points`` summarising them over seeds;
``to_rows()`` gives flat dicts for CSV or JSON. The spec builds its result
(:meth:`SweepSpec.build_result`); nothing here trains or reads the store.
"""
from __future__ import annotations

import dataclasses
import math
import warnings
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence, Union

from ..config import RunConfig
from ..ntg import NTGSummary, mean_sd, summarise_ntg
from .plan import PlannedRun

if TYPE_CHECKING:
    from .specs import BudgetSweep, ComparisonSweep, ShiftSweep, SourceSweep


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


# ---------------------------------------------------------------------------- summaries
def arm_points(rows: Sequence[RunRow], arms: Sequence[str], xs: Sequence[Any]) -> tuple[ArmPoint, ...]:
    """One :class:`ArmPoint` per (x, arm) with at least one row, in the order of ``xs`` then ``arms``."""
    points = []
    for x in xs:
        for arm in arms:
            group = [r for r in rows if r.arm == arm and r.x == x]
            if not group:
                continue
            mean, std = mean_sd(r.target_accuracy for r in group)
            gaps = [r.ntg for r in group if r.ntg is not None]
            points.append(ArmPoint(arm=arm, strategy=group[0].strategy, x=x, n=len(group), mean_accuracy=mean,
                                   std_accuracy=std, ntg=summarise_ntg(gaps) if gaps else None))
    return tuple(points)


def _mean_or_none(values: Sequence[float]) -> float | None:
    return mean_sd(values)[0] if values else None


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


def source_summaries(spec: "SourceSweep", scores: Sequence[SourceScore], rows: Sequence[RunRow]
                     ) -> tuple[tuple[SourceSummary, ...], tuple[RankCorrelation, ...]]:
    """Per source: mean scores and outcome over seeds; Spearman's ρ of each score with the NTG."""
    arm = spec.arms[0].label
    summaries = []
    for source in spec.sources:
        mine = [s for s in scores if s.source == source]
        outcome = [r for r in rows if r.arm == arm and r.x == source]
        gaps = [r.ntg for r in outcome if r.ntg is not None]
        summaries.append(SourceSummary(
            source=source, mmd2=_mean_or_none([s.mmd2 for s in mine]), pad=_mean_or_none([s.pad for s in mine]),
            logme=_mean_or_none([s.logme for s in mine]),
            target_accuracy=_mean_or_none([r.target_accuracy for r in outcome]),
            ntg=summarise_ntg(gaps) if gaps else None))
    correlations = []
    for name in ("logme", "mmd2", "pad"):
        usable = [s for s in summaries if getattr(s, name) is not None and s.ntg is not None]
        correlations.append(_spearman([getattr(s, name) for s in usable], [s.ntg.mean for s in usable], name))
    return tuple(summaries), tuple(correlations)


class _RowsMixin:
    """Lookups shared by every result (they all hold ``plan``, ``rows`` and ``points``)."""

    plan: tuple[PlannedRun, ...]
    rows: tuple[RunRow, ...]
    points: tuple[ArmPoint, ...]

    def accuracy_by_seed(self, arm: str, x: Any = None) -> dict[int, float]:
        """``{seed: target accuracy}`` of ``arm`` at ``x``."""
        return {r.seed: r.target_accuracy for r in self.rows if r.arm == arm and r.x == x}

    def point(self, arm: str, x: Any = None) -> ArmPoint | None:
        return next((p for p in self.points if p.arm == arm and p.x == x), None)

    def config_for(self, arm: str, x: Any, seed: int) -> RunConfig | None:
        """The run config of one point, to re-run it live."""
        return next((p.config for p in self.plan if p.arm == arm and p.x == x and p.seed == seed), None)

    def measurements_dict(self) -> dict:
        """What this kind of result holds beyond its runs, as JSON-ready lists (for :func:`sweep_to_dict`)."""
        return {}


# ---------------------------------------------------------------------------- results
@dataclass(frozen=True)
class BudgetResult(_RowsMixin):
    """A :class:`BudgetSweep`'s runs and summary. ``budgets`` are the resolved ``k`` values."""

    spec: "BudgetSweep"
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

    def measurements_dict(self) -> dict:
        return {"budgets": list(self.budgets)}


@dataclass(frozen=True)
class ShiftResult(_RowsMixin):
    """A :class:`ShiftSweep`'s runs, gaps and crossover (see :meth:`crossover_of`)."""

    spec: "ShiftSweep"
    plan: tuple[PlannedRun, ...]
    rows: tuple[RunRow, ...]
    points: tuple[ArmPoint, ...]
    gaps: tuple[GapRow, ...]
    failed: tuple[FailedRun, ...] = ()
    complete: bool = True

    @property
    def crossover(self) -> float | None:
        """The first shift value where the adaptation strategy falls below target_only, or None."""
        return self.crossover_of(self.spec.adaptation_arm.label)

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
        return mean_sd(g.mmd2 for g in group)[0], mean_sd(g.pad for g in group)[0]

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

    def measurements_dict(self) -> dict:
        return {"gaps": [g.to_dict() for g in self.gaps]}


@dataclass(frozen=True)
class SourceResult(_RowsMixin):
    """A :class:`SourceSweep`: ``scores`` before training, ``rows`` of the outcome runs (empty
    when only the before part was computed), per-source ``summaries`` and ``correlations``."""

    spec: "SourceSweep"
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

    def measurements_dict(self) -> dict:
        return {"scores": [s.to_dict() for s in self.scores]}


@dataclass(frozen=True)
class ComparisonResult(_RowsMixin):
    """A :class:`ComparisonSweep`'s runs and one point per arm (``x`` is None)."""

    spec: "ComparisonSweep"
    plan: tuple[PlannedRun, ...]
    rows: tuple[RunRow, ...]
    points: tuple[ArmPoint, ...]
    failed: tuple[FailedRun, ...] = ()
    complete: bool = True

    def to_rows(self) -> list[dict]:
        return [{"arm": r.arm, "strategy": r.strategy, "seed": r.seed, "target_accuracy": r.target_accuracy,
                 "source_accuracy": r.source_accuracy, "ntg": r.ntg, "run_id": r.run_id} for r in self.rows]


SweepResult = Union[BudgetResult, ShiftResult, SourceResult, ComparisonResult]
