"""Small builders shared by the engine tests."""
from __future__ import annotations

from tlcore.config import RunConfig

# Short runs: a few dozen steps, enough to exercise every code path in seconds.
FAST = dict(epochs=1, batch_size=32, log_every=5, device="cpu", threads=1)


def fast_config(**overrides) -> RunConfig:
    values = dict(source="moons", target="moons:rotate=30", strategy="source_only", **FAST)
    values.update(overrides)
    return RunConfig(**values)


def strip_timing(event_dicts):
    """Event dicts without wall-clock fields, for comparing histories."""
    drop = {"elapsed_s", "examples_per_s", "seq"}
    return [{k: v for k, v in e.items() if k not in drop} for e in event_dicts]
