"""UMAP warm-up: a cold start (empty numba cache) against a warm one (the cache the first left).

The app warms UMAP up in a helper process at every server start (pages/_umap_worker.py):
umap-learn compiles its numba kernels on first use. ``tlcore.embed.use_numba_cache`` points
numba's on-disk cache at ``<home>/numba-cache``, so only the first start on a machine compiles.
Each measurement is a fresh Python process (as a server start is) running
``tlcore.embed.warm_up_umap``, with its own temporary Transfer Lab home:

    python benchmarks/bench_umap_warmup.py            # prints JSON: cold_s, warm_s, ratio
"""
from __future__ import annotations

import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
CHILD = ("import time; t0 = time.perf_counter(); import tlcore.embed as e; e.warm_up_umap().wait(); "
         "s = e.umap_status(); assert s['error'] is None, s; print(time.perf_counter() - t0)")


def start(home: str) -> float:
    """Seconds from a fresh process's start to a finished UMAP warm-up (imports included)."""
    env = {**os.environ, "TRANSFER_LAB_HOME": home}
    env.pop("NUMBA_CACHE_DIR", None)
    t0 = time.perf_counter()
    out = subprocess.run([sys.executable, "-c", CHILD], env=env, cwd=ROOT, capture_output=True, text=True,
                         check=True, timeout=1800)
    wall = time.perf_counter() - t0
    return max(wall, float(out.stdout.strip().splitlines()[-1]))


def main() -> dict:
    with tempfile.TemporaryDirectory(prefix="transfer-lab-umap-") as home:
        cold = start(home)
        files = sum(1 for _ in (Path(home) / "numba-cache").rglob("*.nbi"))
        warm = start(home)
    figures = {"cold_s": round(cold, 1), "warm_s": round(warm, 1), "ratio_warm_to_cold": round(warm / cold, 3),
               "cached_function_indexes": files, "cpus": os.cpu_count(),
               "load_average_1min": round(os.getloadavg()[0], 1)}
    print(json.dumps(figures))
    return figures


if __name__ == "__main__":
    main()
