"""Background execution of runs, outside any UI thread, with a real stop.

A :class:`Worker` runs jobs in daemon threads. Each job owns a
``threading.Event``; :meth:`Worker.stop` sets it and the training loop sees it
between steps, so a run stops within one step (milliseconds on the built-in
data) and is recorded as ``stopped``. The UI never talks to a job directly: it
reads the run store, which the job writes, so a page can reattach after a
refresh or from another tab. The worker registers every job's runs as live in
the store module, so :meth:`RunStore.mark_interrupted` only flags runs whose
process is really gone.

One worker per process (:func:`get_worker`) is shared by every browser
session; jobs are addressed by run id and are never shared through a cache.
"""
from __future__ import annotations

import threading
import time
import traceback
from dataclasses import dataclass, field
from typing import Callable

from .config import RunConfig
from .errors import TransferLabError
from .runs import RunStore, register_live, unregister_live


@dataclass
class Job:
    """One background job: a single run or a sweep of runs."""

    job_id: str
    kind: str
    stop_event: threading.Event = field(default_factory=threading.Event)
    thread: threading.Thread | None = None
    run_ids: list[str] = field(default_factory=list)
    error: str | None = None
    started_at: float = field(default_factory=time.time)
    finished_at: float | None = None
    progress: float = 0.0            # 0..1 over the whole job (sweeps: runs done / runs planned)
    message: str = ""

    @property
    def alive(self) -> bool:
        return self.thread is not None and self.thread.is_alive()


KEEP_FINISHED_JOBS = 100  # finished jobs a worker remembers (their error and progress); older ones are pruned


class Worker:
    """Runs jobs in background threads; thread-safe. Finished jobs beyond ``keep_finished`` are
    forgotten, oldest first, when a new job starts, so the job table stays bounded."""

    def __init__(self, keep_finished: int = KEEP_FINISHED_JOBS):
        self._jobs: dict[str, Job] = {}
        self._lock = threading.Lock()
        self.keep_finished = keep_finished

    # --- single runs ------------------------------------------------------------
    def start_run(self, config: RunConfig, store: RunStore, *, with_baseline: bool = True,
                  tags: dict | None = None) -> str:
        """Validate ``config``, record it as queued, and train it in the background.

        Returns the run id at once (also the job id). Bad input raises here,
        before anything is stored, exactly as :func:`tlcore.api.run_experiment` does.
        """
        from .api import run_experiment
        from .train import Trainer, resolved_config

        trainer = Trainer(config)  # validates (and loads the data once); raises TransferLabError
        run_id = store.create_run(resolved_config(config).to_dict(), status="queued", tags=tags)
        register_live(run_id)
        job = Job(job_id=run_id, kind="run", run_ids=[run_id])

        def work():
            try:
                run_experiment(config, store=store, stop=job.stop_event, run_id=run_id,
                               with_baseline=with_baseline, tags=tags, trainer=trainer)
            except TransferLabError as exc:
                job.error = str(exc)
            except Exception as exc:  # noqa: BLE001 - recorded in the store and on the job
                job.error = f"{type(exc).__name__}: {exc}"
                job.message = traceback.format_exc(limit=5)
            finally:
                job.progress, job.finished_at = 1.0, time.time()
                unregister_live(run_id)

        self._launch(job, work)
        return run_id

    # --- generic jobs (sweeps) -----------------------------------------------------
    def start_job(self, kind: str, work: Callable[[Job], None], job_id: str) -> Job:
        """Run ``work(job)`` in the background; ``work`` checks ``job.stop_event`` and
        appends the ids of the runs it records to ``job.run_ids`` (registering them live)."""
        job = Job(job_id=job_id, kind=kind)

        def wrapped():
            try:
                work(job)
            except TransferLabError as exc:
                job.error = str(exc)
            except Exception as exc:  # noqa: BLE001
                job.error = f"{type(exc).__name__}: {exc}"
                job.message = traceback.format_exc(limit=5)
            finally:
                job.progress, job.finished_at = 1.0, time.time()

        self._launch(job, wrapped)
        return job

    def _launch(self, job: Job, target: Callable[[], None]) -> None:
        job.thread = threading.Thread(target=target, name=f"tl-{job.kind}-{job.job_id}", daemon=True)
        with self._lock:
            self._jobs[job.job_id] = job
            self._prune()
        job.thread.start()

    def _prune(self) -> None:
        """Forget all but the ``keep_finished`` most recently finished jobs (the process lives as
        long as the app; their runs stay in the store). Call with the lock held."""
        finished = [j for j in self._jobs.values() if j.finished_at is not None and not j.alive]
        finished.sort(key=lambda j: j.finished_at)
        for job in finished[: max(0, len(finished) - self.keep_finished)]:
            del self._jobs[job.job_id]

    # --- control and queries ---------------------------------------------------------
    def stop(self, job_id: str, wait: float | None = None) -> bool:
        """Ask a job to stop; optionally wait up to ``wait`` seconds. True if it has ended."""
        job = self.job(job_id)
        if job is None:
            return True
        job.stop_event.set()
        if wait and job.thread is not None:
            job.thread.join(wait)
        return not job.alive

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
        job = self.job(job_id)
        if job is not None and job.thread is not None:
            job.thread.join(timeout)
        return not self.is_alive(job_id)


_worker: Worker | None = None
_worker_lock = threading.Lock()


def get_worker() -> Worker:
    """The process-wide worker."""
    global _worker
    with _worker_lock:
        if _worker is None:
            _worker = Worker()
        return _worker
