"""Events that the training loop yields: small frozen records of floats.

The UI and the CLI render them; the run store keeps them as JSON. No event holds
a tensor, so producing one never keeps device memory alive, and the loop emits
them every ``log_every`` steps so that logging costs one device sync per
interval, not one per step.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any, Mapping, Union


@dataclass(frozen=True)
class RunStarted:
    """Emitted once before the first step."""

    total_steps: int
    phases: tuple[str, ...]
    device: str
    threads: int
    num_source_train: int
    num_target_train: int
    num_target_labelled: int
    kind: str = field(default="started", init=False)


@dataclass(frozen=True)
class StepEvent:
    """Loss terms averaged over the last ``log_every`` steps (raw, before weighting)."""

    step: int
    total_steps: int
    phase: str
    epoch: float
    losses: Mapping[str, float]
    weights: Mapping[str, float]
    extras: Mapping[str, float]
    elapsed_s: float
    examples_per_s: float
    kind: str = field(default="step", init=False)


@dataclass(frozen=True)
class EvalEvent:
    """Accuracies on the held-out test splits, plus strategy extras (e.g. domain accuracy)."""

    step: int
    total_steps: int
    phase: str
    source_accuracy: float
    target_accuracy: float
    extras: Mapping[str, float]
    elapsed_s: float
    kind: str = field(default="eval", init=False)


@dataclass(frozen=True)
class ResultEvent:
    """The final record of a run. ``status`` is "done" or "stopped"."""

    status: str
    steps: int
    source_accuracy: float
    target_accuracy: float
    target_per_class_accuracy: tuple[float, ...]
    elapsed_s: float
    extras: Mapping[str, float]
    kind: str = field(default="result", init=False)


Event = Union[RunStarted, StepEvent, EvalEvent, ResultEvent]
EVENT_TYPES: dict[str, type] = {"started": RunStarted, "step": StepEvent, "eval": EvalEvent, "result": ResultEvent}


def to_dict(event: Event) -> dict[str, Any]:
    """A JSON-ready dict with a ``kind`` key."""
    d = asdict(event)
    return {k: (list(v) if isinstance(v, tuple) else dict(v) if isinstance(v, Mapping) else v) for k, v in d.items()}


def from_dict(data: Mapping[str, Any]) -> Event:
    """Inverse of :func:`to_dict` (extra keys such as the store's ``seq`` are ignored)."""
    cls = EVENT_TYPES[data["kind"]]
    names = {f for f in cls.__dataclass_fields__ if f != "kind"}
    kwargs = {k: (tuple(v) if isinstance(v, list) else v) for k, v in data.items() if k in names}
    return cls(**kwargs)
