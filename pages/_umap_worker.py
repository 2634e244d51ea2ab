"""UMAP in a helper process, so that its compilation never competes with the app for the GIL.

umap-learn compiles its numba kernels on first use: about a minute of mostly
Python-level work on a loaded 2-core machine. Done in a thread of the app's
process, it holds the GIL for much of that minute, and the training worker
and the page scripts slow down with it (measured: a default run's first live
point came after 1.09 s instead of 0.20 s, and the run took 3.5× longer).
One spawned helper process does the warm-up (``tlcore.embed.warm_up_umap``)
and then every projection, on its own core and with its own GIL.

This module imports no streamlit: the helper process imports it by name.
"""
from __future__ import annotations

import multiprocessing
import multiprocessing.connection
import os
import threading
import time
from concurrent.futures import Future, ProcessPoolExecutor

import numpy as np


# --- what runs in the helper process ------------------------------------------------------
def _init_helper() -> None:
    """Set up the helper process: a lower CPU priority (on a 2-core machine its minute of
    compilation must not slow the training worker, the server or the browser), and exit as
    soon as the app's process is gone (a pool worker would otherwise wait for work forever)."""
    try:
        os.nice(10)
    except (AttributeError, OSError):  # pragma: no cover - not on this platform
        pass
    parent = multiprocessing.parent_process()
    if parent is not None:
        def exit_with_parent() -> None:
            multiprocessing.connection.wait([parent.sentinel])
            os._exit(0)

        threading.Thread(target=exit_with_parent, name="exit-with-app", daemon=True).start()


def _warm_up() -> dict:
    from tlcore.embed import umap_status, warm_up_umap

    warm_up_umap().wait()
    return umap_status()


def _project(features: np.ndarray, seed: int) -> tuple[np.ndarray, float]:
    from tlcore.embed import project_umap

    t0 = time.perf_counter()
    coords = project_umap(features, seed=seed)
    return coords, time.perf_counter() - t0


# --- the app's side ------------------------------------------------------------------------
class UmapService:
    """One helper process for UMAP: a warm-up at start, then projections, one at a time.

    Results are kept per key (e.g. store path, run id, last update) so that a
    run's projection is computed once and shared by every session: it is data,
    not a model. Thread-safe.
    """

    def __init__(self, max_results: int = 32):
        self._pool: ProcessPoolExecutor | None = None
        self._warm: Future | None = None
        self._warm_started = float("nan")
        self._jobs: dict[object, Future] = {}
        self._max_results = max_results
        self._lock = threading.Lock()

    def _executor(self) -> ProcessPoolExecutor:
        if self._pool is None:
            # spawn, not fork: forking a process that runs threads (the server, torch) can deadlock.
            self._pool = ProcessPoolExecutor(max_workers=1, mp_context=multiprocessing.get_context("spawn"),
                                             initializer=_init_helper)
        return self._pool

    def warm_up(self) -> Future:
        """Start the helper process and compile UMAP there (once)."""
        with self._lock:
            if self._warm is None:
                self._warm_started = time.perf_counter()
                self._warm = self._executor().submit(_warm_up)
            return self._warm

    def status(self) -> dict:
        """``{"started", "ready", "seconds", "error"}`` of the warm-up."""
        with self._lock:
            warm = self._warm
        if warm is None:
            return {"started": False, "ready": False, "seconds": float("nan"), "error": None}
        if not warm.done():
            return {"started": True, "ready": False, "seconds": time.perf_counter() - self._warm_started,
                    "error": None}
        try:
            result = warm.result()
        except Exception as exc:  # noqa: BLE001 - e.g. the helper process could not start
            return {"started": True, "ready": True, "seconds": float("nan"), "error": f"{type(exc).__name__}: {exc}"}
        return {"started": True, **result}

    def project(self, key: object, features: np.ndarray, seed: int) -> Future:
        """The UMAP of ``features`` (a future of ``(coords, seconds)``), computed once per ``key``."""
        with self._lock:
            job = self._jobs.get(key)
            if job is None:  # a failed job stays failed: the page shows its error instead of retrying
                job = self._executor().submit(_project, np.ascontiguousarray(features, dtype=np.float32), seed)
                self._jobs[key] = job
                while len(self._jobs) > self._max_results:
                    self._jobs.pop(next(iter(self._jobs)))
            return job

    def done(self, key: object) -> bool:
        """Whether the projection for ``key`` has finished (or failed); False when never asked for."""
        with self._lock:
            job = self._jobs.get(key)
        return job is not None and job.done()

    def shutdown(self) -> None:
        with self._lock:
            pool, self._pool = self._pool, None
        if pool is not None:
            pool.shutdown(wait=False, cancel_futures=True)


_service: UmapService | None = None
_service_lock = threading.Lock()


def service() -> UmapService:
    """The process-wide UMAP service."""
    global _service
    with _service_lock:
        if _service is None:
            _service = UmapService()
        return _service
