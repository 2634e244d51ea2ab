"""One live refresh of a sweep's curves: planning again (the old way) against reading with the
plan the sweep job holds, as a ratio measured in one run.

    python benchmarks/bench_sweep_refresh.py [--seeds 3 --repeats 5 --fill]

While a sweep job runs, the Negative-transfer and Lessons pages redraw every second from what
the run store holds. Before, every redraw called ``collect_sweep(spec)``: it planned the
sweep again (a budget sweep's ``"all"`` loads the data pair of every seed) and resolved
every run's hyperparameters and result key. Now the job plans once (``spec.plan()``) and a
redraw calls ``collect_sweep(plan)``, which only looks up the planned keys in the store.

Sweeps timed: the Negative-transfer page's budget experiment on digits (``digits`` →
``digits:rotate=45``, k = 1, 2, 5, 10, 50, all, finetune and dann) and the digits lesson
(``negative_transfer_unrelated_source``), over ``--seeds`` seeds, in a fresh run store.
``--fill`` first trains every planned run (the budget sweep for one epoch, the lesson as it is), so that every lookup finds a run
(a redraw near the end of a sweep); without it every lookup misses (the start).
Times are the best of ``--repeats`` interleaved rounds after one warm-up each.
"""
from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

from tlcore.config import RunConfig  # noqa: E402
from tlcore.lessons import LESSONS  # noqa: E402
from tlcore.runs import RunStore  # noqa: E402
from tlcore.sweeps import BudgetSweep, collect_sweep, run_sweep  # noqa: E402


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--seeds", type=int, default=3, help="seeds of each sweep")
    parser.add_argument("--repeats", type=int, default=5, help="timed rounds after a warm-up; the best counts")
    parser.add_argument("--fill", action="store_true", help="train every planned run before timing")
    parser.add_argument("--threads", type=int, default=2, help="torch intra-op threads")
    return parser.parse_args()


def best_of(fn, repeats: int) -> float:
    fn()  # warm-up: imports, dataset caches
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return min(times)


def main() -> None:
    args = parse_args()
    torch.set_num_threads(args.threads)
    seeds = tuple(range(args.seeds))
    sweeps = {
        "budget sweep, digits": BudgetSweep(source="digits", target="digits:rotate=45", adaptation="dann",
                                            seeds=seeds, base=RunConfig(epochs=1, device="cpu")),
        "lesson negative_transfer_unrelated_source": LESSONS["negative_transfer_unrelated_source"].with_seeds(seeds)
        .sweep,
    }
    print(f"torch {torch.__version__}, {args.threads} threads, {args.seeds} seeds, "
          f"store {'filled (every lookup hits)' if args.fill else 'empty (every lookup misses)'}")
    with tempfile.TemporaryDirectory() as tmp:
        store = RunStore(Path(tmp) / "runs.sqlite")
        for name, spec in sweeps.items():
            spec.plan()  # a first plan loads (and caches) the datasets: not what a job start costs
            start = time.perf_counter()
            plan = spec.plan()  # what the job does once, when it starts
            plan_s = time.perf_counter() - start
            if args.fill:
                run_sweep(plan, store, with_measurements=False)
            held = collect_sweep(plan, store)
            replanned = collect_sweep(spec, store)
            assert held == replanned, "the held plan must read exactly what planning again reads"
            old = new = float("inf")
            for _ in range(args.repeats):  # interleaved, so drift on a shared machine hits both
                old = min(old, best_of(lambda: collect_sweep(spec, store), 1))
                new = min(new, best_of(lambda: collect_sweep(plan, store), 1))
            print(f"{name}: {len(plan)} planned runs, {len(plan.configs)} unique configs, {len(held.rows)} stored")
            print(f"  plan once at job start         {plan_s * 1000:8.1f} ms")
            print(f"  refresh, planning again (old)  {old * 1000:8.1f} ms")
            print(f"  refresh, held plan (new)       {new * 1000:8.1f} ms")
            print(f"  ratio old/new                  {old / new:8.1f}x")


if __name__ == "__main__":
    main()
