"""Runs of one configuration over several seeds, and their negative-transfer gap.

A run's NTG (``metrics["ntg"]``, see :func:`tlcore.metrics.negative_transfer_gap`)
speaks for one seed. Runs that compute the same thing except for the seed
(:func:`seed_free_key`: :func:`tlcore.api.result_key` of the config with its
seed set to 0) are *seed siblings*; their NTGs, one per seed, summarised by
:func:`tlcore.ntg.summarise_ntg`, say whether the source helps or hurts beyond
the noise of one seed.

Only finished (``done``) runs that carry a finite NTG count, one per seed: when
a seed was run twice, the newest run of that seed is used. Reads go through the
public :class:`~tlcore.runs.RunStore` API only.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

from .api import result_key
from .config import RunConfig
from .errors import TransferLabError
from .ntg import NTGSummary, summarise_ntg
from .runs import RunRecord, RunStore

__all__ = ["ConfigurationNTG", "seed_free_key", "seed_siblings", "ntg_over_seeds", "ntg_by_configuration"]


def _config(config: RunConfig | Mapping[str, Any]) -> RunConfig:
    return config if isinstance(config, RunConfig) else RunConfig.from_dict(config)


def seed_free_key(config: RunConfig | Mapping[str, Any]) -> str:
    """The :func:`~tlcore.api.result_key` of ``config`` with its seed normalised to 0: equal for
    runs that differ only in their seed (and in settings that do not change the result, such as
    the device or the logging interval).

    Raises
    ------
    ConfigError
        ``config`` is a mapping that is not a valid :class:`RunConfig`.
    """
    return result_key(_config(config).replace(seed=0))


def _ntg(record: RunRecord) -> float | None:
    value = record.metrics.get("ntg")
    if isinstance(value, (int, float)) and not isinstance(value, bool) and math.isfinite(value):
        return float(value)
    return None


def _record_key(record: RunRecord) -> str | None:
    """The seed-free key of a stored run, or None when its stored config is no longer a valid
    :class:`RunConfig` (a record written by an older version, a strategy since removed)."""
    try:
        return seed_free_key(record.config)
    except (TransferLabError, TypeError, KeyError):
        return None


def _one_per_seed(records: Iterable[RunRecord]) -> list[RunRecord]:
    """The newest run of each seed (``records`` newest first, as the store lists them), ordered by seed."""
    by_seed: dict[int | None, RunRecord] = {}
    for r in records:
        by_seed.setdefault(r.seed, r)
    return sorted(by_seed.values(), key=lambda r: (r.seed is None, r.seed or 0))


def seed_siblings(record: RunRecord, store: RunStore) -> list[RunRecord]:
    """The finished runs of ``record``'s configuration with an NTG, one per seed, ordered by seed.

    ``record`` itself is among them when it is ``done`` and has an NTG. Runs whose settings
    differ in anything but the seed (strategy, hyperparameters, data, label budget, schedule)
    are not.
    """
    key = _record_key(record)
    if key is None:
        return []
    candidates = store.list_runs(status="done", strategy=record.strategy, source=record.source,
                                 target=record.target)
    return _one_per_seed(r for r in candidates if _ntg(r) is not None and _record_key(r) == key)


def ntg_over_seeds(record: RunRecord, store: RunStore, confidence: float = 0.95) -> NTGSummary | None:
    """:func:`~tlcore.ntg.summarise_ntg` of the NTGs of ``record``'s seed siblings (see
    :func:`seed_siblings`), or None when none of them has an NTG (no labelled target budget,
    a target-only reference, or a run that did not finish)."""
    gaps = [_ntg(r) for r in seed_siblings(record, store)]
    return summarise_ntg(gaps, confidence) if gaps else None


@dataclass(frozen=True)
class ConfigurationNTG:
    """One configuration's runs over seeds: the newest run (``record``, for its settings), the
    seeds and run ids used (one run per seed, ordered by seed), their NTGs and the summary."""

    key: str
    record: RunRecord
    seeds: tuple[int | None, ...]
    run_ids: tuple[str, ...]
    gaps: tuple[float, ...]
    summary: NTGSummary


def ntg_by_configuration(records: Iterable[RunRecord], confidence: float = 0.95) -> list[ConfigurationNTG]:
    """Group ``records`` (newest first, as :meth:`RunStore.list_runs` gives them) by
    :func:`seed_free_key` and summarise each group's NTG over seeds.

    Only ``done`` runs with a finite NTG count, one per seed (the newest). Groups come in the
    order of their newest run.
    """
    groups: dict[str, list[RunRecord]] = {}
    for r in records:
        if r.status != "done" or _ntg(r) is None:
            continue
        key = _record_key(r)
        if key is not None:
            groups.setdefault(key, []).append(r)
    out = []
    for key, members in groups.items():
        runs = _one_per_seed(members)
        gaps = tuple(_ntg(r) for r in runs)
        out.append(ConfigurationNTG(key=key, record=members[0], seeds=tuple(r.seed for r in runs),
                                    run_ids=tuple(r.id for r in runs), gaps=gaps,
                                    summary=summarise_ntg(gaps, confidence)))
    return out
