"""A sweep's plan: every run it reports, with its result key and its matched baseline's key.

Planning can load data (a budget sweep's ``"all"`` is the smallest class count of the
target training set, per seed) and resolves every run's hyperparameters, so it is done
once per sweep job: :meth:`SweepSpec.plan` returns a :class:`SweepPlan`, and running or
collecting the sweep from that plan only reads the run store for the planned keys.
"""
from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Sequence

from ..config import RunConfig

if TYPE_CHECKING:
    from .specs import Arm, SweepSpec


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
class PlannedConfig:
    """One unique run config the sweep needs, with its result key and a progress message."""

    config: RunConfig
    key: str
    message: str


@dataclass(frozen=True)
class SweepPlan:
    """A resolved sweep: ``runs`` (what it reports, in training order), each run's
    :func:`~tlcore.api.result_key` in ``keys`` and its matched ``target_only`` baseline's key in
    ``baseline_keys`` (None without one), and ``configs``: the unique configs to train, each
    transfer run preceded by its baseline. Built by :meth:`SweepSpec.plan`; hold it for as long
    as the sweep's job lives instead of planning again."""

    spec: "SweepSpec"
    runs: tuple[PlannedRun, ...]
    keys: tuple[str, ...]
    baseline_keys: tuple[str | None, ...]
    configs: tuple[PlannedConfig, ...]

    @classmethod
    def of(cls, spec: "SweepSpec", runs: Sequence[PlannedRun]) -> "SweepPlan":
        """Resolve ``runs``: every hyperparameter is checked here, before the first run starts."""
        from ..api import baseline_config, result_key
        keys, baseline_keys = [], []
        ordered: dict[str, PlannedConfig] = {}
        for p in runs:
            base = baseline_config(p.config)
            base_key = result_key(base) if base is not None else None
            if base is not None:
                ordered.setdefault(base_key, PlannedConfig(base, base_key, f"target_only baseline, seed {p.seed}"))
            key = result_key(p.config)
            ordered.setdefault(key, PlannedConfig(p.config, key, f"{p.arm} at {p.x}, seed {p.seed}"
                                                  if p.x is not None else f"{p.arm}, seed {p.seed}"))
            keys.append(key)
            baseline_keys.append(base_key)
        return cls(spec=spec, runs=tuple(runs), keys=tuple(keys), baseline_keys=tuple(baseline_keys),
                   configs=tuple(ordered.values()))

    def __len__(self) -> int:
        return len(self.runs)


def as_plan(spec_or_plan: "SweepSpec | SweepPlan") -> SweepPlan:
    """``spec_or_plan`` as a plan: a held plan as it is, a spec planned now."""
    if isinstance(spec_or_plan, SweepPlan):
        return spec_or_plan
    if not callable(getattr(spec_or_plan, "plan", None)):
        raise TypeError(f"not a sweep spec or plan: {type(spec_or_plan).__name__}")
    return spec_or_plan.plan()


def plan_sweep(spec: "SweepSpec") -> tuple[PlannedRun, ...]:
    """Every run the sweep reports, in the order it trains them (by x, then seed, then arm).
    For a source sweep these are the outcome runs; its before part is :func:`score_sources`."""
    return as_plan(spec).runs


def run_config(base: RunConfig, source: str, target: str, arm: "Arm", target_labels: int, seed: int) -> RunConfig:
    """``base`` with one planned run's domains, strategy, label budget and seed."""
    return base.replace(source=source, target=target, strategy=arm.strategy, params=dict(arm.params),
                        target_labels=target_labels, seed=seed)


def largest_budget(source: str, target: str, seeds: Sequence[int], data_dir: str = "") -> int:
    """The largest label budget every target class can give: the smallest per-class count of
    the target training set, over ``seeds`` (shifts such as ``prior=`` depend on the seed)."""
    from ..data import make_pair
    counts = []
    for seed in seeds:
        pair = make_pair(source, target, seed=seed, target_labels=0, data_dir=data_dir or None)
        counts.append(min(pair.target.class_counts()))
    return min(counts)
