"""Feature extraction and 2-D projections (PCA at once, UMAP when ready).

umap-learn compiles its numba kernels on first use, which takes tens of
seconds on a cold start. :func:`warm_up_umap` runs a tiny fit in a background
thread so that the first real projection does not pay for compilation; the app
shows :func:`project_pca` meanwhile. umap is imported lazily: importing
``tlcore`` never pays for it.
"""
from __future__ import annotations

import os
import sys
import threading
from dataclasses import dataclass

import numpy as np
import torch

from .data.domain import as_float


@torch.no_grad()
def extract_features(model, x: torch.Tensor, batch_size: int | None = None,
                     device: torch.device | str = "cpu") -> np.ndarray:
    """Penultimate-layer features of ``model`` for inputs ``x`` (eval mode), as float32 numpy.

    ``x`` is a tensor or a streamed domain's :class:`~tlcore.data.lazy.LazyImages`,
    which is decoded ``batch_size`` rows at a time; by default as many rows (up to 1024) as fit
    :data:`tlcore.memory.EVAL_MEMORY_BUDGET` by the model's measured footprint per row."""
    if batch_size is None:
        from .memory import eval_rows

        batch_size = eval_rows(model, tuple(x.shape[1:])) if len(x) else 1
    was_training = model.training
    model.eval()
    out = []
    for i in range(0, len(x), batch_size):
        out.append(model.features(as_float(x[i:i + batch_size]).to(device)).float().cpu())
    model.train(was_training)
    return torch.cat(out).numpy()


def project_pca(features: np.ndarray, n_components: int = 2) -> np.ndarray:
    """Project rows of ``features`` on their leading principal components (SVD of centred data)."""
    x = np.asarray(features, dtype=np.float64).reshape(len(features), -1)
    x = x - x.mean(axis=0, keepdims=True)
    _, _, vt = np.linalg.svd(x, full_matrices=False)
    comps = vt[:n_components]
    # Fix the sign of each component so that projections are reproducible.
    signs = np.sign(comps[np.arange(len(comps)), np.abs(comps).argmax(axis=1)])
    return (x @ (comps * signs[:, None]).T).astype(np.float32)


NUMBA_CACHE_ENV = "NUMBA_CACHE_DIR"


def use_numba_cache() -> str | None:
    """Point numba's on-disk cache of compiled functions at the Transfer Lab home (unless
    ``NUMBA_CACHE_DIR`` is set already), so that the kernels UMAP compiles with ``cache=True``
    are compiled once per machine, not once per server start. Numba reads the setting when it is
    first imported: call this before (``_umap_class`` does). Returns the folder, or None when
    numba was imported already or the folder cannot be made (no cache then, only slower)."""
    if "numba" in sys.modules:
        return os.environ.get(NUMBA_CACHE_ENV)
    if NUMBA_CACHE_ENV not in os.environ:
        from .paths import numba_cache_dir

        folder = numba_cache_dir()
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError:
            return None
        os.environ[NUMBA_CACHE_ENV] = str(folder)
    return os.environ[NUMBA_CACHE_ENV]


def _umap_class():
    use_numba_cache()
    try:
        import umap  # noqa: F401  (slow import: numba)
    except ImportError as exc:  # pragma: no cover - depends on the environment
        raise ImportError("UMAP projections need umap-learn: pip install umap-learn") from exc
    return umap.UMAP


def project_umap(features: np.ndarray, seed: int = 0, n_neighbors: int = 15, min_dist: float = 0.1) -> np.ndarray:
    """UMAP (McInnes et al., 2018) of ``features`` to 2-D; deterministic for a seed (single-threaded).

    The nearest-neighbour graph always comes from NN-descent: below 4096 points
    umap-learn would otherwise compute exact distances through a Python-level
    callback (about a minute for 2,000 + 2,000 points on 2 cores, against about
    0.2 s for NN-descent), and the warm-up compiles this very path.
    """
    x = np.asarray(features, dtype=np.float32).reshape(len(features), -1)
    reducer = _umap_class()(n_components=2, n_neighbors=min(n_neighbors, max(2, len(x) - 1)),
                            min_dist=min_dist, random_state=seed, n_jobs=1,
                            force_approximation_algorithm=True)
    return reducer.fit_transform(x).astype(np.float32)


@dataclass
class _Warmup:
    thread: threading.Thread | None = None
    done: threading.Event = threading.Event()
    seconds: float = float("nan")
    error: str | None = None


_warmup = _Warmup()
_warmup_lock = threading.Lock()


def warm_up_umap() -> threading.Event:
    """Compile UMAP's numba kernels in a daemon thread (once per process).

    Returns an event that is set when the warm-up has finished; safe to call
    many times. Failure (e.g. umap missing) is recorded in ``umap_status()``.
    """
    import time

    def work():
        t0 = time.perf_counter()
        try:
            rng = np.random.default_rng(0)
            project_umap(rng.normal(size=(300, 8)).astype(np.float32), seed=0)
        except Exception as exc:  # noqa: BLE001 - reported through umap_status
            _warmup.error = f"{type(exc).__name__}: {exc}"
        finally:
            _warmup.seconds = time.perf_counter() - t0
            _warmup.done.set()

    with _warmup_lock:
        if _warmup.thread is None:
            _warmup.thread = threading.Thread(target=work, name="umap-warmup", daemon=True)
            _warmup.thread.start()
    return _warmup.done


def umap_status() -> dict:
    """``{"ready": bool, "seconds": float, "error": str | None}`` of the background warm-up."""
    return {"ready": _warmup.done.is_set(), "seconds": _warmup.seconds, "error": _warmup.error}
