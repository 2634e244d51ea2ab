"""What a queued job does, wherever it runs: in a worker process of this machine
(:func:`process_main`, started by :class:`tlcore.worker.Worker`) or as a Ray task
(:mod:`tlcore.ray_executor`).

A job is a picklable *payload* (a dict): ``{"kind": "run", "config", "run_id",
"with_baseline", "tags"}`` or ``{"kind": "sweep", "plan", "before_only"}``. :func:`execute`
runs it against a run store and a stop flag, and reports to whoever scheduled it through
``emit(message)``, where a message is a tuple: ``("run", run_id)`` for every run it records,
``("progress", fraction, text)``, ``("result", sweep_result)`` at the end of a sweep. The
run store is the only channel for a run's events: the pages read them from there.
"""
from __future__ import annotations

import os
import traceback
from typing import Any, Callable

from .errors import TransferLabError
from .runs import RunStore

Emit = Callable[[tuple], None]


def run_payload(config, run_id: str, *, with_baseline: bool = True, tags: dict | None = None) -> dict[str, Any]:
    """The payload of a single run that the scheduler has recorded as queued under ``run_id``."""
    return {"kind": "run", "config": config.to_dict(), "run_id": run_id, "with_baseline": with_baseline,
            "tags": dict(tags or {})}


def sweep_payload(plan, before_only: bool = False) -> dict[str, Any]:
    """The payload of a sweep (its :class:`~tlcore.sweeps.SweepPlan`, resolved once)."""
    return {"kind": "sweep", "plan": plan, "before_only": before_only}


def execute(payload: dict[str, Any], store: RunStore, stop, emit: Emit) -> None:
    """Run ``payload`` against ``store`` with the stop flag ``stop`` (anything with ``is_set()``)."""
    if payload["kind"] == "run":
        from .api import run_experiment
        from .config import RunConfig
        emit(("run", payload["run_id"]))
        run_experiment(RunConfig.from_dict(payload["config"]), store=store, stop=stop, run_id=payload["run_id"],
                       with_baseline=payload["with_baseline"], tags=payload["tags"] or None)
        emit(("progress", 1.0, "stopped" if stop.is_set() else "done"))
    elif payload["kind"] == "sweep":
        from .sweeps import run_sweep, score_sources

        def progress(fraction: float, message: str) -> None:
            emit(("progress", fraction, message))

        def on_run(run_id: str) -> None:
            emit(("run", run_id))

        plan = payload["plan"]
        if payload["before_only"]:
            result = score_sources(plan, store, stop=stop, progress=progress, on_run=on_run)
        else:
            result = run_sweep(plan, store, stop=stop, progress=progress, on_run=on_run)
        emit(("result", result))
        emit(("progress", 1.0, "stopped" if stop.is_set() else "done"))
    else:
        raise TransferLabError(f"unknown job kind {payload['kind']!r}")


def execute_reporting(payload: dict[str, Any], store: RunStore, stop, emit: Emit) -> None:
    """:func:`execute`, with any failure reported as ``("error", text, details)`` instead of raised
    (a run records its own failure in the store; this tells the scheduler)."""
    try:
        execute(payload, store, stop, emit)
    except TransferLabError as exc:
        emit(("error", str(exc), ""))
    except BaseException as exc:  # noqa: BLE001 - reported to the scheduler, which records it
        emit(("error", f"{type(exc).__name__}: {exc}", traceback.format_exc(limit=5)))


def process_main(payload: dict[str, Any], store_path: str, owner: str | None, conn, stop) -> None:
    """The entry point of a job's worker process: open the store under the job's owner (so the
    baselines and sweep runs it creates are theirs), run the job, report through ``conn``."""
    def emit(message: tuple) -> None:
        try:
            conn.send(message)
        except (BrokenPipeError, OSError):
            pass  # the scheduler went away; the store still gets everything
    try:
        store = RunStore(store_path, owner=owner)
        execute_reporting(payload, store, stop, emit)
    finally:
        conn.close()
    # Everything is in the store (one short transaction per write, nothing buffered): leave now
    # rather than spend seconds tearing down torch, which would hold the job's slot meanwhile.
    os._exit(0)
