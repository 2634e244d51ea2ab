"""Gromov–Wasserstein solve time against the number of examples, on CPU, in one run.

    python benchmarks/bench_gromov.py [--sizes 250 500 1000 2000 --restarts 1]

For each n: n points of the blobs ring with unequal class shares (as ``blobs:prior=5``) as the
source, and another n sent to 20-D by the ``embed`` shift as the target (a heterogeneous pair), their Euclidean structure matrices
(``tlcore.transport.structure_matrix``) and one call of ``tlcore.transport.gromov_coupling``
(POT's ``ot.gromov.gromov_wasserstein``, ``--restarts`` starts). Prints the seconds per
solve, each size's time as a ratio to the smallest size's, the fitted exponent of
time ~ n^a, and the transported-label accuracy (how good the coupling is at that n).

The lab subsamples each domain to ``tlcore.strategies.gromov.DEFAULT_MAX_POINTS`` examples
above it (the gromov strategy's ``max_points``); this prints that point and the measured
time there, for the run record.
"""
from __future__ import annotations

import argparse
import math
import os
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tlcore.data.builtin import sample_blobs  # noqa: E402
from tlcore.data.domain import Domain  # noqa: E402
from tlcore.data.shifts import derive_generator, embed  # noqa: E402
from tlcore.strategies.gromov import DEFAULT_MAX_POINTS  # noqa: E402
from tlcore.transport import gromov_coupling, structure_matrix, transport_labels  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[250, 500, 1000, 2000])
    parser.add_argument("--restarts", type=int, default=1, help="GW starts per solve")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1, help="BLAS / torch threads (a busy shared machine "
                                                               "oversubscribes more)")
    return parser.parse_args()


def rows(n: int, seed: int, part: int, dimension: int | None) -> tuple[torch.Tensor, torch.Tensor]:
    """n ``blobs`` points with class shares 1 : 0.45 : 0.2 (as ``prior=5``, which breaks the ring's
    symmetry), sent to ``dimension`` dimensions by the ``embed`` shift when given."""
    generator = derive_generator("bench_gromov", seed, part)
    x, y = sample_blobs(6 * n, generator)
    shares = torch.tensor([1.0, 5 ** -0.5, 0.2])
    counts = (n * shares / shares.sum()).floor().to(torch.int64)
    counts[0] += n - int(counts.sum())
    keep = torch.cat([torch.nonzero(y == c).flatten()[: int(counts[c])] for c in range(3)])
    x, y = x[keep], y[keep]
    if dimension is not None:
        domain = Domain("blobs", "vector", x, y, x[:1], y[:1], ("A", "B", "C"))
        x = embed(domain, dimension, generator).x_train
    return x, y


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    print(f"# GW solve time, CPU, {args.threads} thread(s), {args.restarts} start(s) per solve, "
          f"POT {__import__('ot').__version__}, {os.cpu_count()} cores")
    print(f"{'n':>6} {'seconds':>9} {'x smallest':>10} {'label acc':>9}")
    warm = rows(50, args.seed, 0, None)[0]
    gromov_coupling(structure_matrix(warm), structure_matrix(warm), restarts=1)  # imports and first calls
    times = []
    for n in args.sizes:
        xs, ys = rows(n, args.seed, 0, None)
        xt, yt = rows(n, args.seed, 1, 20)
        start = time.perf_counter()
        coupling = gromov_coupling(structure_matrix(xs), structure_matrix(xt), restarts=args.restarts, seed=args.seed)
        seconds = time.perf_counter() - start
        times.append(seconds)
        accuracy = float((transport_labels(coupling.plan, ys, 3).argmax(1) == yt).double().mean())
        print(f"{n:>6} {seconds:>9.2f} {seconds / times[0]:>10.1f} {accuracy:>9.3f}", flush=True)
    if len(times) > 1:
        exponent = math.log(times[-1] / times[0]) / math.log(args.sizes[-1] / args.sizes[0])
        print(f"time ~ n^{exponent:.2f} between n={args.sizes[0]} and n={args.sizes[-1]}")
    print(f"subsampling point: the gromov strategy solves on at most {DEFAULT_MAX_POINTS} examples per domain "
          f"(max_points); above it a seeded random subsample, the other target rows take their nearest "
          f"subsampled row's label")


if __name__ == "__main__":
    main()
