"""Summaries of stored runs by strategy: mean and spread over seeds, and the negative-transfer gap.

Used by the app's Compare page; pure (no store access, no plotting). A run
counts when its metrics hold the summarised metric; its NTG counts when the
run was paired with a ``target_only`` baseline (metric ``ntg``).
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Protocol

from .ntg import mean_sd
from .strategies import STRATEGIES

__all__ = ["StrategySummary", "summarise_by_strategy"]


class _Run(Protocol):
    strategy: str | None
    seed: int | None
    metrics: dict[str, Any]


@dataclass(frozen=True)
class StrategySummary:
    """One strategy's runs: ``mean`` and ``std`` of the metric (sample standard deviation
    over runs, ``tlcore.ntg.mean_sd``; None for a single run, which has no spread), the
    seeds they used, and the same for the NTG over the runs that have one (``ntg_mean`` None
    when none has)."""

    strategy: str
    runs: int
    seeds: tuple[int, ...]
    mean: float
    std: float | None
    ntg_runs: int
    ntg_mean: float | None
    ntg_std: float | None


def _finite(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value)


def summarise_by_strategy(runs: Iterable[_Run], metric: str = "target_accuracy") -> list[StrategySummary]:
    """One :class:`StrategySummary` per strategy present, in registry order (unknown names last)."""
    groups: dict[str, list[_Run]] = {}
    for run in runs:
        if run.strategy and _finite(run.metrics.get(metric)):
            groups.setdefault(run.strategy, []).append(run)
    order = {name: i for i, name in enumerate(STRATEGIES)}
    out = []
    for strategy in sorted(groups, key=lambda s: (order.get(s, len(order)), s)):
        members = groups[strategy]
        mean, std = mean_sd([float(r.metrics[metric]) for r in members])
        ntgs = [float(r.metrics["ntg"]) for r in members if _finite(r.metrics.get("ntg"))]
        ntg_mean, ntg_std = mean_sd(ntgs) if ntgs else (None, None)
        seeds = tuple(sorted({int(r.seed) for r in members if r.seed is not None}))
        out.append(StrategySummary(strategy=strategy, runs=len(members), seeds=seeds, mean=mean, std=std,
                                   ntg_runs=len(ntgs), ntg_mean=ntg_mean, ntg_std=ntg_std))
    return out
