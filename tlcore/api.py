"""The engine's entry points, shared by the CLI and the app.

:func:`run_experiment` trains one configuration through the one loop, records
it in the run store (config, status, events, metrics, checkpoint) and, when the
run has a labelled target budget, pairs it with its matched ``target_only``
baseline (same pair, budget and seed; reused when stored) to report the
negative-transfer gap.
"""
from __future__ import annotations

import os
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Callable

import torch

from . import events as ev
from .config import RunConfig, result_fields
from .device import compute_precision, select_device
from .errors import NonFiniteLossError, TransferLabError
from .metrics import negative_transfer_gap
from .paths import checkpoint_dir
from .runs import RunStore, config_key, register_live, unregister_live
from .strategies import STRATEGIES
from .train import StopFlag, Trainer, recipe_note, resolved_config

NTG_BASELINE = "target_only"  # the reference that the negative-transfer gap is measured against
HEARTBEAT_INTERVAL_S = 5.0  # how often a run waiting for its baseline stamps its own heartbeat


def result_key(config: RunConfig, precision: str | None = None) -> str:
    """Identifies runs that compute the same thing (used to find or reuse a baseline).

    The key hashes :func:`tlcore.config.result_fields`: the fields marked as changing the
    result (their ``result`` mode in :mod:`tlcore.config`) and the arithmetic precision,
    which ``precision`` gives or, when None, is resolved from the config's device and ``amp``
    on this machine (:func:`tlcore.device.compute_precision`): a bf16 GPU run never reuses a
    CPU baseline, while the device's name alone is not part of the key.
    """
    if precision is None:
        precision = compute_precision(select_device(config.device), config.amp)
    return config_key(result_fields(resolved_config(config), precision))


def baseline_config(config: RunConfig) -> RunConfig | None:
    """The matched ``target_only`` run for ``config``, or None when there is none
    (no labelled target budget, or ``config`` is itself a target-only reference)."""
    if config.target_labels < 1 or STRATEGIES[config.strategy].role == "reference":
        return None
    return config.replace(strategy=NTG_BASELINE, params={})


@dataclass(frozen=True)
class RunOutcome:
    run_id: str
    status: str
    metrics: dict[str, Any]


def _metrics_from(result: ev.ResultEvent) -> dict[str, Any]:
    m = {"source_accuracy": result.source_accuracy, "target_accuracy": result.target_accuracy,
         "target_per_class_accuracy": list(result.target_per_class_accuracy),
         "steps": result.steps, "elapsed_s": result.elapsed_s}
    m.update(result.extras)
    return m


def preprocessing_record(trainer: Trainer) -> dict[str, Any]:
    """How the data reached the model, in words, for the run record: each domain's steps, the
    pair's harmonisation (channels, size, class order), the label budget, whether the data was
    resident or streamed (``data_mode``: the mode actually used), the model's own input handling
    and, on a GPU, the batch size that fitted (``batch_size_fit``); and which weights the model
    started from (pretrained backbones); and ``data_warnings`` about the data's files (a copy whose
    checksum differs from the published one), when there are any."""
    lines = list(trainer.pair.describe())
    lines.append(trainer.data_note)
    lines.append(recipe_note(trainer.config))
    lines += trainer.strategy.notes(trainer.ctx)
    notes = getattr(trainer.model, "input_notes", None)
    if notes:
        lines.append(f"model: {notes}")
    record: dict[str, Any] = {"preprocessing": lines, "data_mode": trainer.data_mode}
    fit = trainer.batch_size_fit
    if fit is not None:
        lines.append(fit.describe())
        record["batch_size_fit"] = fit.to_dict()
    weights = getattr(trainer.model, "weights_note", None)
    if weights:
        record["model_weights"] = weights
    warnings = trainer.pair.warnings()
    if warnings:  # metrics, not config: a warning never changes the result key
        record["data_warnings"] = warnings
    return record


def run_experiment(config: RunConfig, *, store: RunStore | None = None, stop: StopFlag | None = None,
                   on_event: Callable[[str, ev.Event], None] | None = None, with_baseline: bool = True,
                   run_id: str | None = None, tags: dict | None = None, flush_interval_s: float = 0.2,
                   trainer: Trainer | None = None) -> RunOutcome:
    """Train ``config`` and record it. Bad input raises before anything is stored.

    ``run_id`` continues a record that a worker created as ``queued``;
    ``on_event(run_id, event)`` sees every event as it is produced (the CLI's
    progress bar). A NaN loss marks the run failed with its step and re-raises.
    ``trainer`` reuses a :class:`Trainer` already built from ``config`` (the worker
    builds one to validate the config before queueing it).
    """
    store = store or RunStore()
    trainer = trainer or Trainer(config)  # validates everything before the store is touched
    resolved = trainer.config.to_dict()
    key = result_key(config)
    if run_id is None:
        run_id = store.create_run(resolved, status="running", tags=tags, key=key)
    else:
        store.update_run(run_id, config=resolved, key=key)
        if tags:
            store.update_tags(run_id, tags)
        store.set_status(run_id, "running")
    register_live(run_id)  # this process runs it: the store's listings must not take it for orphaned
    try:
        return _train_and_record(config, trainer, store, run_id, stop, on_event, with_baseline,
                                 flush_interval_s)
    finally:
        unregister_live(run_id)


def _train_and_record(config: RunConfig, trainer: Trainer, store: RunStore, run_id: str,
                      stop: StopFlag | None, on_event: Callable[[str, ev.Event], None] | None,
                      with_baseline: bool, flush_interval_s: float) -> RunOutcome:
    pending: list[dict] = []
    last_flush = time.perf_counter()
    result: ev.ResultEvent | None = None
    try:
        for event in trainer.run(stop):
            pending.append(ev.to_dict(event))
            if on_event is not None:
                on_event(run_id, event)
            if isinstance(event, ev.ResultEvent):
                result = event
            if not isinstance(event, ev.StepEvent) or time.perf_counter() - last_flush > flush_interval_s:
                store.append_events(run_id, pending)
                pending, last_flush = [], time.perf_counter()
        store.append_events(run_id, pending)
    except NonFiniteLossError as exc:
        store.append_events(run_id, pending)
        store.finish(run_id, "failed", {"failed_step": exc.step}, error=str(exc))
        raise
    except BaseException as exc:
        store.append_events(run_id, pending)
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        store.finish(run_id, status, None, error=f"{type(exc).__name__}: {exc}")
        raise
    assert result is not None
    metrics = _metrics_from(result)
    metrics.update(preprocessing_record(trainer))
    # Everything after training (checkpoint, matched baseline, final record) can still fail: a full
    # disk, a baseline whose data went away, Ctrl-C while the baseline trains. The run is then
    # finished as failed (or interrupted) with the reason, never left "running".
    stage = "writing the checkpoint"
    try:
        ckpt = save_checkpoint(trainer, run_id)
        base = baseline_config(config)
        if with_baseline and base is not None and result.status == "done":
            store.update_run(run_id, metrics=metrics, checkpoint_path=str(ckpt))  # visible while the baseline trains
            stage = f"the matched {NTG_BASELINE} baseline"
            beat = _HeartbeatOf(store, run_id)  # the baseline's events keep this run's heartbeat too
            b = find_or_run(base, store=store, stop=stop, tags={"baseline_of": run_id}, on_event=beat)
            if b is not None:
                metrics.update(baseline_run_id=b.run_id, target_only_accuracy=b.metrics["target_accuracy"],
                               ntg=negative_transfer_gap(result.target_accuracy, b.metrics["target_accuracy"]))
        stage = "recording the result"
        store.finish(run_id, result.status, metrics, checkpoint_path=str(ckpt))
    except BaseException as exc:
        status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
        store.finish(run_id, status, metrics, error=f"after training, {stage}: {type(exc).__name__}: {exc}")
        raise
    return RunOutcome(run_id, result.status, metrics)


class _HeartbeatOf:
    """An ``on_event`` hook that stamps one run's heartbeat, at most every
    :data:`HEARTBEAT_INTERVAL_S` (a run whose events another run is writing)."""

    def __init__(self, store: RunStore, run_id: str):
        self.store, self.run_id, self._last = store, run_id, time.monotonic()

    def __call__(self, _run_id: str, _event: ev.Event) -> None:
        if time.monotonic() - self._last >= HEARTBEAT_INTERVAL_S:
            self.store.heartbeat(self.run_id)
            self._last = time.monotonic()


def find_or_run(config: RunConfig, *, store: RunStore, stop: StopFlag | None = None,
                tags: dict | None = None,
                on_event: Callable[[str, ev.Event], None] | None = None) -> RunOutcome | None:
    """A stored, finished run that computes ``config``, or a fresh one; None if stopped."""
    found = store.find_run(result_key(config), status="done")
    if found is not None:
        return RunOutcome(found.id, found.status, found.metrics)
    out = run_experiment(config, store=store, stop=stop, with_baseline=False, tags=tags, on_event=on_event)
    return out if out.status == "done" else None


def save_checkpoint(trainer: Trainer, run_id: str) -> Path:
    """Write the run's checkpoint atomically: to a temporary file in the same directory, then
    renamed over ``<run_id>.pt``, so a failed write (a full disk) never leaves a truncated
    checkpoint under the final name; the temporary file is removed on failure."""
    path = checkpoint_dir() / f"{run_id}.pt"
    path.parent.mkdir(parents=True, exist_ok=True)
    fd, tmp = tempfile.mkstemp(prefix=f".{run_id}.", suffix=".pt.part", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            torch.save({"config": trainer.config.to_dict(), "model": trainer.model.state_dict(),
                        "modules": trainer.ctx.modules.state_dict(), "artifacts": trainer.artifacts()}, f)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    return path


def load_trained(run_id: str, store: RunStore | None = None) -> tuple[Trainer, dict[str, Any]]:
    """Rebuild a stored run's trainer (pair and model) with its trained weights, and its artifacts."""
    store = store or RunStore()
    rec = store.get_run(run_id)
    if not rec.checkpoint_path or not Path(rec.checkpoint_path).exists():
        raise TransferLabError(f"run {run_id} has no checkpoint (status {rec.status})")
    ckpt = torch.load(rec.checkpoint_path, map_location="cpu", weights_only=True)
    config = RunConfig.from_dict({**ckpt["config"], "device": "cpu"})
    trainer = Trainer(config)
    trainer.model.load_state_dict(ckpt["model"])
    trainer.ctx.modules.load_state_dict(ckpt["modules"])
    trainer.model.eval()
    return trainer, ckpt.get("artifacts", {})
