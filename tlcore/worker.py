"""Background execution: a bounded, fair job queue whose runs and sweeps train in worker
processes, and plain background threads for light jobs (downloads).

A :class:`Worker` runs at most :attr:`Worker.slots` runs or sweeps at once
(``$TRANSFER_LAB_SLOTS``; by default one per CPU core, since a run on the CPU uses one
intra-op thread, see :func:`default_slots`). Each runs in its own *spawned process*
(:func:`tlcore.jobs.process_main`), so a crashing or GIL-heavy run cannot stall the app's
pages: the server only schedules and reads the run store, which the worker process writes.
The rest wait in FIFO order, fair per owner: the next job to start is the oldest of the
owner who has waited longest since a job of theirs last started (round-robin across owners),
so one user's 50-run sweep does not starve another's single run. One owner may have at
most ``$TRANSFER_LAB_MAX_QUEUED`` jobs waiting (:class:`~tlcore.errors.QueueFullError`).

Stop removes a queued job (a queued run is recorded as stopped) and stops a running one:
a cooperative stop flag that the training loop checks between steps, then, after
:data:`STOP_GRACE_S`, the process is terminated and its runs recorded as stopped.
Stopping takes an :class:`~tlcore.owners.Actor`: only a job's owner or a teacher may.

A queued run is recorded in the store at once (status ``queued``) and registered live in this
process, so :meth:`RunStore.mark_interrupted` flags it only when the server is gone (a restart
marks it interrupted with a clear reason; nothing finished is touched).

One worker per process (:func:`get_worker`) is shared by every browser session; jobs are
addressed by their id (a run's id for a single run) and are never shared through a cache.
"""
from __future__ import annotations

import collections
import multiprocessing
import os
import statistics
import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Any, Callable

from .config import RunConfig
from .errors import QueueFullError, TransferLabError
from .owners import Actor, check_actor
from .runs import ACTIVE_STATUSES, RunStore, register_live, unregister_live

#: Seconds a running job has to stop on its own after Stop before its process is terminated.
STOP_GRACE_S = 10.0  # a fresh process's first optimiser step alone can take seconds on a busy machine
#: Environment variables: jobs run at once; queued jobs one owner may have.
SLOTS_ENV, MAX_QUEUED_ENV = "TRANSFER_LAB_SLOTS", "TRANSFER_LAB_MAX_QUEUED"
#: Set to a Ray address (``auto``, ``ray://head:10001``; ``local`` starts a Ray on this machine) to
#: run jobs as Ray tasks (:mod:`tlcore.ray_executor`).
RAY_ADDRESS_ENV = "TRANSFER_LAB_RAY_ADDRESS"
DEFAULT_MAX_QUEUED = 5
KEEP_FINISHED_JOBS = 100  # finished jobs a worker remembers (their error and progress); older ones are pruned

QUEUED, RUNNING, FINISHED = "queued", "running", "finished"


def _cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # pragma: no cover - macOS, Windows
        return os.cpu_count() or 1


def default_slots() -> int:
    """How many jobs run at once: ``$TRANSFER_LAB_SLOTS`` or, by default, one per CPU core (a run
    on the CPU uses one intra-op thread, see :func:`tlcore.device.auto_threads`); with GPUs, at
    most two per GPU (the lab's runs are small, but each holds a CUDA context)."""
    text = os.environ.get(SLOTS_ENV, "").strip()
    if text:
        try:
            value = int(text)
        except ValueError:
            raise TransferLabError(f"{SLOTS_ENV}={text!r} is not a whole number of job slots") from None
        if value < 1:
            raise TransferLabError(f"{SLOTS_ENV}={text!r}: at least 1 job slot is needed")
        return value
    cores = _cores()
    import torch
    if torch.cuda.is_available():
        return max(1, min(cores, 2 * torch.cuda.device_count()))
    return max(1, cores)


def default_max_queued() -> int:
    text = os.environ.get(MAX_QUEUED_ENV, "").strip()
    if not text:
        return DEFAULT_MAX_QUEUED
    try:
        value = int(text)
    except ValueError:
        raise TransferLabError(f"{MAX_QUEUED_ENV}={text!r} is not a whole number of jobs") from None
    if value < 1:
        raise TransferLabError(f"{MAX_QUEUED_ENV}={text!r}: at least 1 queued job per user is needed")
    return value


@dataclass
class Job:
    """One background job: a single run or a sweep of runs (queued, in a worker process), or a
    light background thread (a download)."""

    job_id: str
    kind: str
    owner: str | None = None
    state: str = QUEUED                    # queued -> running -> finished (process jobs)
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    run_ids: list[str] = field(default_factory=list)
    error: str | None = None
    submitted_at: float = field(default_factory=time.time)
    started_at: float | None = None
    finished_at: float | None = None
    progress: float = 0.0            # 0..1 over the whole job (sweeps: runs done / runs planned)
    message: str = ""
    result: Any = None               # a sweep's result, once it has finished
    units: int = 1                   # runs the job trains at most (the wait estimate's unit)
    label: str = ""                  # what it is, in words (the queue page)
    # process jobs only
    payload: dict | None = None
    store: RunStore | None = None
    on_result: Callable[[Any], None] | None = None
    seq: int = 0
    stop_requested_at: float | None = None
    handle: Any = None               # the worker process (or the executor's task handle)

    @property
    def alive(self) -> bool:
        """Queued or running (a thread job: its thread is running)."""
        if self.payload is None:
            return self.thread is not None and self.thread.is_alive()
        return self.state != FINISHED

    @property
    def queued(self) -> bool:
        return self.payload is not None and self.state == QUEUED


@dataclass(frozen=True)
class QueueEntry:
    """A queued or running job as the queue page shows it."""

    job_id: str
    kind: str
    owner: str | None
    state: str
    position: int | None       # 1 = starts next; None while running
    wait_s: float | None        # estimated seconds until it starts (None: no estimate yet)
    label: str
    run_ids: tuple[str, ...]
    progress: float
    message: str
    submitted_at: float
    started_at: float | None


class LocalProcesses:
    """Runs each job in a spawned worker process (spawn, not fork: forking a server that runs
    threads, torch among them, can deadlock)."""

    name = "local processes"

    def __init__(self):
        self._context = multiprocessing.get_context("spawn")

    def start(self, job: Job, emit: Callable[[tuple], None]) -> Any:
        from .jobs import process_main
        receiver, sender = self._context.Pipe(duplex=False)
        stop = self._context.Event()
        process = self._context.Process(
            target=process_main, name=f"tl-{job.kind}-{job.job_id}", daemon=True,
            args=(job.payload, str(job.store.path), job.owner, sender, stop))
        process.start()
        sender.close()  # the child holds the only writing end: EOF when it ends
        return {"process": process, "conn": receiver, "stop": stop}

    def watch(self, job: Job, emit: Callable[[tuple], None], grace_s: float,
              before_kill: Callable[[], None]) -> str | None:
        """Forward the job's messages to ``emit`` until its process ends; terminate it once a
        stop has waited ``grace_s``, after ``before_kill()`` (which records its runs as stopped
        while the process still lives, so no reader takes them for orphans first). Returns why
        it ended abnormally, or None."""
        handle = job.handle
        process, conn = handle["process"], handle["conn"]
        terminated = False
        while True:
            if job.stop_event.is_set() and not handle["stop"].is_set():
                handle["stop"].set()
            try:
                if conn.poll(0.1):
                    emit(conn.recv())
                    continue
            except (EOFError, OSError):
                break
            if (job.stop_requested_at is not None and not terminated and process.is_alive()
                    and time.time() - job.stop_requested_at > grace_s):
                before_kill()
                process.terminate()
                terminated = True
            if not process.is_alive() and not conn.poll(0):
                break
        process.join(10)
        conn.close()
        if terminated:
            return f"its worker process did not stop within {grace_s:g} s of Stop and was terminated"
        if process.exitcode not in (0, None) and not job.stop_event.is_set():
            return f"its worker process ended with exit code {process.exitcode}"
        return None

    def cancel(self, job: Job, now: bool = False, before_kill: Callable[[], None] | None = None) -> None:
        """Set the job's stop flag; ``now``: terminate its process at once, after ``before_kill()``
        (it has not started training anything yet, so there is nothing to finish cleanly)."""
        job.handle["stop"].set()
        if now:
            if before_kill is not None:
                before_kill()
            job.handle["process"].terminate()


class Worker:
    """The job queue (runs and sweeps in worker processes) and background threads; thread-safe.

    Finished jobs beyond ``keep_finished`` are forgotten, oldest first, when a new job starts,
    so the job table stays bounded.
    """

    def __init__(self, keep_finished: int = KEEP_FINISHED_JOBS, slots: int | None = None,
                 max_queued: int | None = None, executor: Any = None, stop_grace_s: float = STOP_GRACE_S):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.RLock()
        self._changed = threading.Condition(self._lock)
        self.keep_finished = keep_finished
        self.executor = executor if executor is not None else default_executor()
        if slots is None:  # the environment's, else the executor's own (a Ray cluster's CPUs), else local
            own = getattr(self.executor, "default_slots", None)
            slots = own() if own is not None and not os.environ.get(SLOTS_ENV, "").strip() else default_slots()
        self.slots = slots
        self.max_queued = max_queued if max_queued is not None else default_max_queued()
        self.stop_grace_s = stop_grace_s
        self._seq = 0
        self._last_start: dict[str | None, int] = {}   # owner -> seq of the last start (fairness)
        self._durations: collections.deque[float] = collections.deque(maxlen=20)  # seconds per run

    # --- single runs ------------------------------------------------------------
    def start_run(self, config: RunConfig, store: RunStore, *, with_baseline: bool = True,
                  tags: dict | None = None, owner: str | None = None) -> str:
        """Validate ``config``, record it as queued (owned by ``owner``) and put it in the queue;
        it starts at once when a slot is free.

        Returns the run id at once (also the job id). Bad input raises here, before anything
        is stored, exactly as :func:`tlcore.api.run_experiment` does; so does a full queue
        (:class:`~tlcore.errors.QueueFullError`).
        """
        from .jobs import run_payload
        from .train import Trainer, resolved_config

        self._check_room(owner)
        trainer = Trainer(config)  # validates (and loads the data once); raises TransferLabError
        resolved = resolved_config(config)
        del trainer  # the worker process builds its own
        run_id = store.create_run(resolved.to_dict(), status="queued", tags=tags, owner=owner)
        register_live(run_id)  # this process is responsible for it until a worker process takes it
        units = 2 if with_baseline and config.target_labels > 0 else 1
        job = Job(job_id=run_id, kind="run", owner=owner, run_ids=[run_id], store=store, units=units,
                  payload=run_payload(config, run_id, with_baseline=with_baseline, tags=tags),
                  label=f"{config.strategy} · {config.source} → {config.target} · seed {config.seed}")
        self._submit(job)
        return run_id

    # --- sweeps -------------------------------------------------------------------
    def start_sweep(self, plan, store: RunStore, *, job_id: str, owner: str | None = None,
                    before_only: bool = False, on_result: Callable[[Any], None] | None = None) -> Job:
        """Queue a sweep (its spec or :class:`~tlcore.sweeps.SweepPlan`); ``on_result(result)`` receives
        its :class:`~tlcore.sweeps.SweepResult` in this process when it ends."""
        from .jobs import sweep_payload
        from .sweeps.plan import as_plan
        plan = as_plan(plan)  # a spec is planned here, once
        self._check_room(owner)
        job = Job(job_id=job_id, kind="sweep", owner=owner, store=store, on_result=on_result,
                  payload=sweep_payload(plan, before_only), units=max(1, len(plan.configs)),
                  label=f"{plan.spec.kind} sweep · {len(plan.configs)} runs")
        self._submit(job)
        return job

    # --- light jobs in a thread (downloads) -----------------------------------------
    def start_job(self, kind: str, work: Callable[[Job], None], job_id: str, owner: str | None = None) -> Job:
        """Run ``work(job)`` in a background thread of this process, outside the queue (for light,
        I/O-bound jobs such as downloads); ``work`` checks ``job.stop_event``."""
        job = Job(job_id=job_id, kind=kind, owner=owner, state=RUNNING, started_at=time.time())

        def wrapped():
            try:
                work(job)
            except TransferLabError as exc:
                job.error = str(exc)
            except Exception as exc:  # noqa: BLE001
                job.error = f"{type(exc).__name__}: {exc}"
                job.message = traceback.format_exc(limit=5)
            finally:
                job.progress, job.finished_at, job.state = 1.0, time.time(), FINISHED

        job.thread = threading.Thread(target=wrapped, name=f"tl-{job.kind}-{job.job_id}", daemon=True)
        with self._lock:
            self._jobs[job.job_id] = job
            self._prune()
        job.thread.start()
        return job

    # --- the queue ------------------------------------------------------------------
    def _check_room(self, owner: str | None) -> None:
        if owner is None:
            return  # the command line: its user owns the machine
        with self._lock:
            waiting = sum(1 for j in self._jobs.values() if j.queued and j.owner == owner)
            free = self.slots - sum(1 for j in self._jobs.values() if j.state == RUNNING and j.payload is not None)
        if waiting >= self.max_queued and free <= 0:
            raise QueueFullError(
                f"you already have {waiting} jobs waiting in the queue, the most one user may have "
                f"({MAX_QUEUED_ENV}={self.max_queued}); wait for one to start, or stop one")

    def _submit(self, job: Job) -> None:
        with self._lock:
            self._seq += 1
            job.seq = self._seq
            self._jobs[job.job_id] = job
            self._prune()
            self._schedule()

    def _fair_order(self) -> list[Job]:
        """The queued jobs in the order they will start: each owner's jobs first in, first out;
        across owners, whoever's job started longest ago (or never) goes next. Call locked."""
        queues: dict[str | None, collections.deque[Job]] = {}
        for job in sorted((j for j in self._jobs.values() if j.queued), key=lambda j: j.seq):
            queues.setdefault(job.owner, collections.deque()).append(job)
        served, turn, order = dict(self._last_start), self._seq, []
        while queues:
            owner = min(queues, key=lambda o: (served.get(o, -1), queues[o][0].seq))
            order.append(queues[owner].popleft())
            turn += 1
            served[owner] = turn
            if not queues[owner]:
                del queues[owner]
        return order

    def _running(self) -> list[Job]:
        return [j for j in self._jobs.values() if j.state == RUNNING and j.payload is not None]

    def _schedule(self) -> None:
        """Start queued jobs while slots are free. Call locked."""
        free = self.slots - len(self._running())
        if free <= 0:
            return
        for job in self._fair_order()[:free]:
            self._seq += 1
            self._last_start[job.owner] = self._seq
            job.state, job.started_at, job.message = RUNNING, time.time(), "starting a worker process…"
            try:
                job.handle = self.executor.start(job, lambda message, job=job: self._on_message(job, message))
            except Exception as exc:  # noqa: BLE001 - e.g. no process can be started: the job fails, the app goes on
                job.error = f"the job could not start: {type(exc).__name__}: {exc}"
                self._finish(job, None)
                continue
            threading.Thread(target=self._watch, args=(job,), name=f"tl-watch-{job.job_id}", daemon=True).start()

    def _on_message(self, job: Job, message: tuple) -> None:
        kind = message[0]
        if kind == "run":
            if message[1] not in job.run_ids:
                job.run_ids.append(message[1])
        elif kind == "progress":
            job.progress, job.message = float(message[1]), str(message[2])
        elif kind == "result":
            job.result = message[1]
            if job.on_result is not None:
                try:
                    job.on_result(message[1])
                except Exception as exc:  # noqa: BLE001 - the page's keeper failing must not stop the queue
                    job.error = f"keeping the result failed: {type(exc).__name__}: {exc}"
        elif kind == "error":
            job.error = message[1]
            if len(message) > 2 and message[2]:
                job.message = message[2]

    def _watch(self, job: Job) -> None:
        problem = None
        try:
            problem = self.executor.watch(job, lambda message: self._on_message(job, message), self.stop_grace_s,
                                          lambda: self._record_stopped(job))
        except Exception as exc:  # noqa: BLE001
            problem = f"watching its worker failed: {type(exc).__name__}: {exc}"
        with self._lock:
            self._finish(job, problem)
            self._schedule()

    def _finish(self, job: Job, problem: str | None) -> None:
        """Record a job's end: any of its runs still queued or running is finished as stopped (a
        stop was asked) or failed (with ``problem``). Call locked."""
        stopped = job.stop_event.is_set()
        for run_id in job.run_ids:
            try:
                record = job.store.get_run(run_id)
                if record.status in ACTIVE_STATUSES:
                    if stopped:
                        status, reason = "stopped", problem or (
                            "stopped before it started" if record.status == "queued" else "stopped")
                    else:
                        status = "failed"
                        reason = f"failed: {problem or job.error or 'its job ended before the run finished'}"
                    job.store.finish(run_id, status, None, error=reason)
            except TransferLabError:
                pass  # deleted meanwhile, or a store that cannot be written: its readers settle it
            unregister_live(run_id)
        if problem and not job.error and not stopped:
            job.error = problem
        if job.state == RUNNING and job.started_at is not None and not job.error and not stopped:
            self._durations.append((time.time() - job.started_at) / max(1, job.units))
        job.progress, job.finished_at, job.state = 1.0, time.time(), FINISHED
        job.handle = None
        self._changed.notify_all()

    def _record_stopped(self, job: Job, reason: str = "stopped") -> None:
        """Record the job's unfinished runs as stopped, before its process is terminated."""
        for run_id in job.run_ids:
            try:
                record = job.store.get_run(run_id)
                if record.status in ACTIVE_STATUSES:
                    job.store.finish(run_id, "stopped", None, error=(
                        "stopped before it started" if record.status == "queued" else reason))
            except TransferLabError:
                pass

    def _prune(self) -> None:
        """Forget all but the ``keep_finished`` most recently finished jobs (the process lives as
        long as the app; their runs stay in the store). Call with the lock held."""
        finished = [j for j in self._jobs.values() if j.finished_at is not None and not j.alive]
        finished.sort(key=lambda j: j.finished_at)
        for job in finished[: max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job.job_id]

    # --- control and queries ---------------------------------------------------------
    def stop(self, job_id: str, wait: float | None = None, actor: Actor | None = None) -> bool:
        """Stop a job: a queued one leaves the queue (its run is recorded as stopped); a running
        one gets its stop flag, and its process is terminated if it has not stopped after the
        grace period. Optionally wait up to ``wait`` seconds. True if it has ended.

        ``actor`` (None: the command line) must own the job or be a teacher, else
        :class:`~tlcore.errors.PermissionDeniedError`.
        """
        job = self.job(job_id)
        if job is None:
            return True
        check_actor(actor, job.owner, f"{job.kind} {job_id}", "stop")
        with self._lock:
            job.stop_event.set()
            if job.queued:
                job.message = "stopped before it started"
                self._finish(job, None)
                return True
            if job.stop_requested_at is None:
                job.stop_requested_at = time.time()
            if job.handle is not None and job.payload is not None:
                self.executor.cancel(job, now=not self._has_started_work(job),
                                     before_kill=lambda: self._record_stopped(job))
        if wait:
            self.wait(job_id, wait)
        return not self.is_alive(job_id)

    @staticmethod
    def _has_started_work(job: Job) -> bool:
        """Whether the job's process has taken up any of its runs (else it is still starting)."""
        if job.kind != "run":
            return True  # a sweep may be measuring or reading the store: let it stop cleanly
        for run_id in job.run_ids:
            try:
                if job.store.get_run(run_id).status != "queued":
                    return True
            except TransferLabError:
                return True
        return False

    def job(self, job_id: str) -> Job | None:
        with self._lock:
            return self._jobs.get(job_id)

    def is_alive(self, job_id: str) -> bool:
        job = self.job(job_id)
        return job is not None and job.alive

    def active_jobs(self) -> list[Job]:
        with self._lock:
            return [j for j in self._jobs.values() if j.alive]

    def wait(self, job_id: str, timeout: float | None = None) -> bool:
        """Wait until the job has ended (or ``timeout`` seconds); True if it has."""
        job = self.job(job_id)
        if job is None:
            return True
        if job.payload is None:
            if job.thread is not None:
                job.thread.join(timeout)
            return not job.alive
        deadline = None if timeout is None else time.monotonic() + timeout
        with self._changed:
            while job.alive:
                left = None if deadline is None else deadline - time.monotonic()
                if left is not None and left <= 0:
                    break
                self._changed.wait(left if left is not None else 1.0)
        return not job.alive

    # --- what the pages show -----------------------------------------------------------
    def run_seconds(self, store: RunStore | None = None) -> float | None:
        """The typical seconds one run takes here, start to end: the median over this worker's
        recent jobs; before any has finished, the training time of the store's recent finished
        runs; None when neither is known."""
        with self._lock:
            durations = list(self._durations)
        if durations:
            return statistics.median(durations)
        if store is not None:
            try:
                recent = [r.metrics.get("elapsed_s") for r in store.list_runs(status="done", limit=20)]
            except TransferLabError:
                return None
            recent = [float(t) for t in recent if isinstance(t, (int, float))]
            if recent:
                return statistics.median(recent)
        return None

    def queue(self) -> list[QueueEntry]:
        """Every running and queued job of the queue: running first, then queued in the order
        they will start, with positions and estimated waits."""
        now = time.time()
        with self._lock:
            running = sorted(self._running(), key=lambda j: j.started_at or 0.0)
            order = self._fair_order()
        per_run = self.run_seconds(order[0].store if order else None)
        entries = [QueueEntry(j.job_id, j.kind, j.owner, RUNNING, None, 0.0, j.label, tuple(j.run_ids),
                              j.progress, j.message, j.submitted_at, j.started_at) for j in running]
        # Slot i frees after what its job has left; each queued job takes the earliest free slot.
        free_at = [0.0] * max(0, self.slots - len(running))
        if per_run is not None:
            free_at += [max(0.0, per_run * j.units - (now - (j.started_at or now))) for j in running]
        for position, j in enumerate(order, start=1):
            wait = None
            if per_run is not None and free_at:
                free_at.sort()
                wait = free_at[0]
                free_at[0] = wait + per_run * j.units
            elif not free_at:
                wait = None
            entries.append(QueueEntry(j.job_id, j.kind, j.owner, QUEUED, position, wait, j.label, tuple(j.run_ids),
                                      j.progress, j.message, j.submitted_at, None))
        return entries

    def queue_entry(self, job_id: str) -> QueueEntry | None:
        """This job's :class:`QueueEntry` while it is queued or running, else None."""
        return next((e for e in self.queue() if e.job_id == job_id), None)


def default_executor():
    """Ray when ``$TRANSFER_LAB_RAY_ADDRESS`` is set (see :mod:`tlcore.ray_executor`), else
    :class:`LocalProcesses`."""
    address = os.environ.get(RAY_ADDRESS_ENV, "").strip()
    if address:
        from .ray_executor import RayExecutor
        return RayExecutor(None if address == "local" else address)
    return LocalProcesses()


_worker: Worker | None = None
_worker_lock = threading.Lock()


def get_worker() -> Worker:
    """The process-wide worker."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = Worker()
        return _worker
