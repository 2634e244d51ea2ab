"""Intra-op thread count vs training speed for the lab's models on this CPU.

Prints examples/s for 1..N threads, for the 2-D MLP and the digits LeNet, at the
lab's batch sizes, and the ratio of each to the 1-thread figure. This is the
measurement behind tlcore.device.auto_threads.

    python benchmarks/bench_threads.py [--steps 200]
"""
import argparse
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tlcore.models import build_model  # noqa: E402


def examples_per_s(kind, shape, batch, threads, steps):
    torch.set_num_threads(threads)
    torch.manual_seed(0)
    model = build_model("auto", kind, shape, 10)
    opt = torch.optim.Adam(model.parameters(), 1e-3)
    x = torch.rand(batch, *shape)
    y = torch.randint(0, 10, (batch,))
    for i in range(steps + 20):
        if i == 20:
            t0 = time.perf_counter()
        loss = F.cross_entropy(model(x), y)
        opt.zero_grad()
        loss.backward()
        opt.step()
    return steps * batch / (time.perf_counter() - t0)


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--steps", type=int, default=200)
    args = ap.parse_args()
    cores = os.cpu_count()
    print(f"torch {torch.__version__}, {cores} cores")
    for kind, shape, batches in [("vector", (2,), (64, 128)), ("image", (1, 28, 28), (32, 64, 128, 256))]:
        for batch in batches:
            base = None
            for threads in range(1, cores + 1):
                eps = examples_per_s(kind, shape, batch, threads, args.steps)
                base = base or eps
                print(f"{kind:<6} batch {batch:>4} threads {threads}: {eps:>10.0f} examples/s  ({eps / base:.2f}x of 1 thread)")


if __name__ == "__main__":
    main()
