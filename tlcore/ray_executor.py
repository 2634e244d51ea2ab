"""Runs and sweeps as Ray tasks on a cluster, with the one run store on the head.

With ``$TRANSFER_LAB_RAY_ADDRESS`` (or ``tlcore run|sweep --executor ray[=ADDRESS]``) the
:class:`~tlcore.worker.Worker` hands each job to :class:`RayExecutor` instead of a local worker
process. The job body is the same (:func:`tlcore.jobs.execute`); what differs is where it runs
and how it reaches the store:

* The job is a Ray *streaming generator task*: it yields the job's messages (the runs it
  records, progress, a sweep's result), which the head reads as they come.
* Every store call of the task (a run's record, its event batches, its final metrics, the
  lookups of stored runs that let a sweep reuse them) goes through :class:`StoreActor`, an
  actor pinned to the node of the process that scheduled the job (the lab's server or the CLI),
  which owns the one SQLite file. A checkpoint written on a worker node is sent along and
  written under the head's checkpoint folder. So the pages read the store exactly as with local
  jobs, live curves included.
* A task that trains on a GPU (device ``cuda``, or ``auto`` on a cluster with GPUs) requests one
  (``num_gpus=1``); Ray places it.
* Stop sets a flag in the actor that the task polls (at most every :data:`STOP_POLL_S`) between
  steps, so the run ends as ``stopped``; after the grace period the task is cancelled.

Ray is an optional extra (``pip install -e ".[ray]"``); without it the local queue is used.
"""
from __future__ import annotations

import os
import queue
import tempfile
import threading
import time
from pathlib import Path
from typing import Any, Callable

from .errors import TransferLabError

#: How often a Ray task asks the store actor whether its job was stopped (seconds).
STOP_POLL_S = 0.25


def _ray():
    try:
        import ray
    except ImportError:
        raise TransferLabError(
            "the Ray executor needs Ray: pip install -e \".[ray]\" (or pip install ray); "
            "without TRANSFER_LAB_RAY_ADDRESS / --executor ray the lab runs jobs locally") from None
    return ray


def parse_executor(text: str | None) -> tuple[str, str | None]:
    """``"local"``, ``"ray"`` or ``"ray=ADDRESS"`` as (kind, address)."""
    text = (text or "local").strip()
    kind, _, address = text.partition("=")
    if kind not in ("local", "ray") or (kind == "local" and address):
        raise TransferLabError(f"--executor {text!r}: use local, ray or ray=ADDRESS (e.g. ray=auto, "
                               "ray=ray://head:10001)")
    if kind == "ray" and not address:  # the server's setting, else a Ray started on this machine
        address = os.environ.get("TRANSFER_LAB_RAY_ADDRESS", "").strip()
    return kind, (None if address in ("", "local") else address)


class StoreActor:
    """The head's run store, as a Ray actor: the one writer of the SQLite file for Ray tasks, and
    the stop flags of their jobs."""

    def __init__(self, store_path: str):
        from .runs import RunStore
        self._stores: dict[str | None, RunStore] = {}
        self._path = store_path
        self._stopped: set[str] = set()
        RunStore(store_path)  # creates or upgrades the schema once, here

    def _store(self, owner: str | None):
        from .runs import RunStore
        if owner not in self._stores:
            self._stores[owner] = RunStore(self._path, owner=owner)
        return self._stores[owner]

    def call(self, owner: str | None, method: str, args: tuple, kwargs: dict) -> Any:
        if method not in StoreProxy.FORWARDED:
            raise TransferLabError(f"the store actor does not forward {method!r}")
        return getattr(self._store(owner), method)(*args, **kwargs)

    def put_checkpoint(self, run_id: str, data: bytes) -> str:
        """Write a checkpoint that a worker node sent under this node's checkpoint folder (atomically)."""
        from .paths import checkpoint_dir
        path = checkpoint_dir() / f"{run_id}.pt"
        path.parent.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(prefix=f".{run_id}.", suffix=".pt.part", dir=path.parent)
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.replace(tmp, path)
        return str(path)

    def stop(self, job_id: str) -> None:
        self._stopped.add(job_id)

    def stopped(self, job_id: str) -> bool:
        return job_id in self._stopped

    def forget(self, job_id: str) -> None:
        self._stopped.discard(job_id)


class StoreProxy:
    """What a Ray task uses as its :class:`~tlcore.runs.RunStore`: each call is forwarded to the
    :class:`StoreActor` on the head. Checkpoint paths are replaced by the head's copy."""

    FORWARDED = ("create_run", "update_run", "update_tags", "set_status", "append_events", "heartbeat",
                 "finish", "find_run", "get_run", "list_runs", "events", "count_runs")

    def __init__(self, actor, owner: str | None, path: str):
        self._actor, self.owner, self.path = actor, owner, Path(path)

    def _call(self, method: str, *args, **kwargs):
        ray = _ray()
        return ray.get(self._actor.call.remote(self.owner, method, args, kwargs))

    def _head_checkpoint(self, run_id: str, kwargs: dict) -> None:
        local = kwargs.get("checkpoint_path")
        if local is not None:
            ray = _ray()
            data = Path(local).read_bytes()
            kwargs["checkpoint_path"] = ray.get(self._actor.put_checkpoint.remote(run_id, data))

    def finish(self, run_id, status, metrics, checkpoint_path=None, error=None):
        kwargs = {"checkpoint_path": checkpoint_path, "error": error}
        self._head_checkpoint(run_id, kwargs)
        return self._call("finish", run_id, status, metrics, **kwargs)

    def update_run(self, run_id, **kwargs):
        self._head_checkpoint(run_id, kwargs)
        return self._call("update_run", run_id, **kwargs)

    def __getattr__(self, name: str):
        if name in StoreProxy.FORWARDED:
            return lambda *args, **kwargs: self._call(name, *args, **kwargs)
        raise AttributeError(name)


class RemoteStop:
    """A stop flag (``is_set()``) read from the store actor, at most every :data:`STOP_POLL_S`."""

    def __init__(self, actor, job_id: str):
        self._actor, self._job_id = actor, job_id
        self._set, self._checked = False, 0.0

    def is_set(self) -> bool:
        if not self._set and time.monotonic() - self._checked >= STOP_POLL_S:
            ray = _ray()
            self._set = bool(ray.get(self._actor.stopped.remote(self._job_id)))
            self._checked = time.monotonic()
        return self._set


def _job_task(payload: dict, actor, job_id: str, owner: str | None, store_path: str):
    """The Ray task (a streaming generator): run the job in a thread, yield its messages."""
    from .jobs import execute_reporting
    messages: queue.Queue = queue.Queue()
    done = object()
    store = StoreProxy(actor, owner, store_path)

    def body() -> None:
        try:
            execute_reporting(payload, store, RemoteStop(actor, job_id), messages.put)
        finally:
            messages.put(done)

    threading.Thread(target=body, name=f"tl-ray-{job_id}", daemon=True).start()
    while (message := messages.get()) is not done:
        yield message


def _wants_gpu(payload: dict, cluster_gpus: float) -> bool:
    if payload["kind"] == "run":
        devices = [payload["config"].get("device", "auto")]
    else:
        devices = [p.config.device for p in payload["plan"].configs]
    return any(d.startswith("cuda") or (d == "auto" and cluster_gpus > 0) for d in devices)


class RayExecutor:
    """Runs each job as a Ray task (see the module's docstring). ``address`` is given to
    ``ray.init`` (``"auto"``, ``"ray://head:10001"``); None uses a Ray already initialised in
    this process, or starts a local one."""

    name = "Ray"

    def __init__(self, address: str | None = None):
        self.address = address
        self._actors: dict[str, Any] = {}
        self._lock = threading.Lock()

    def _init(self):
        ray = _ray()
        if not ray.is_initialized():
            ray.init(address=self.address, ignore_reinit_error=True, log_to_driver=False)
        return ray

    def default_slots(self) -> int:
        """Jobs at once: the cluster's CPUs (Ray queues what does not fit)."""
        ray = self._init()
        return max(1, int(ray.cluster_resources().get("CPU", 1)))

    def _actor(self, store_path: str):
        ray = self._init()
        with self._lock:
            if store_path not in self._actors:
                from ray.util.scheduling_strategies import NodeAffinitySchedulingStrategy
                here = ray.get_runtime_context().get_node_id()  # the node that holds the SQLite file
                cls = ray.remote(num_cpus=0)(StoreActor)
                self._actors[store_path] = cls.options(
                    scheduling_strategy=NodeAffinitySchedulingStrategy(here, soft=False)).remote(store_path)
            return self._actors[store_path]

    def start(self, job, emit: Callable[[tuple], None]) -> Any:
        ray = self._init()
        actor = self._actor(str(job.store.path))
        gpus = 1 if _wants_gpu(job.payload, ray.cluster_resources().get("GPU", 0)) else 0
        task = ray.remote(_job_task).options(num_returns="streaming", num_cpus=1, num_gpus=gpus,
                                             name=f"tl-{job.kind}-{job.job_id}")
        generator = task.remote(job.payload, actor, job.job_id, job.owner, str(job.store.path))
        return {"generator": generator, "actor": actor, "cancelled": False}

    def watch(self, job, emit: Callable[[tuple], None], grace_s: float,
              before_kill: Callable[[], None]) -> str | None:
        ray = self._init()
        handle = job.handle
        problem = None
        try:
            for ref in handle["generator"]:
                emit(ray.get(ref))
        except (ray.exceptions.TaskCancelledError, ray.exceptions.WorkerCrashedError) as exc:
            if not job.stop_event.is_set():
                problem = f"its Ray task ended: {type(exc).__name__}"
        except ray.exceptions.RayError as exc:
            problem = f"its Ray task failed: {exc}"
        handle["actor"].forget.remote(job.job_id)
        if handle["cancelled"]:
            return f"its Ray task did not stop within {grace_s:g} s of Stop and was cancelled"
        return problem

    def cancel(self, job, now: bool = False, before_kill: Callable[[], None] | None = None) -> None:
        """Ask the task to stop (the flag it polls); cancel it after the grace period, or ``now``."""
        ray = self._init()
        handle = job.handle
        handle["actor"].stop.remote(job.job_id)

        def force() -> None:
            if job.alive:
                handle["cancelled"] = not now
                if before_kill is not None:
                    before_kill()
                ray.cancel(handle["generator"], force=True)

        if now:
            force()
        else:
            from .worker import STOP_GRACE_S
            timer = threading.Timer(STOP_GRACE_S, force)
            timer.daemon = True
            timer.start()
