"""The one training loop against a plain hand-written torch loop.

Same model (architecture and initial weights), same resident data, batch size,
thread count, device, number of steps and evaluations per epoch. The plain loop
is what a careful person writes by hand: resident tensors, a seeded
permutation per epoch, cross-entropy, Adam, an accuracy pass per epoch.
Ours adds event emission, NaN tracking, the feature-MMD evaluation extra and
the phase/stream machinery. Target: ours >= 0.9x the plain loop's examples/s.

    python benchmarks/bench_loop.py [--source digits --target digits:rotate=30 --epochs 5 --device cpu]
"""
import argparse
import copy
import os
import sys
import time

import torch
import torch.nn.functional as F

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tlcore.config import RunConfig  # noqa: E402
from tlcore.data.domain import as_float  # noqa: E402
from tlcore.train import Trainer, warm_up  # noqa: E402


def plain_loop(model, data, steps_per_epoch, epochs, batch_size, lr, device, seed):
    xs, ys = data["source"].x, data["source"].y
    gen = torch.Generator().manual_seed(seed)
    opt = torch.optim.Adam(model.parameters(), lr=lr)
    n = len(ys)
    t0 = time.perf_counter()
    perm, pos = None, n
    for epoch in range(epochs):
        model.train()
        for _ in range(steps_per_epoch):
            if pos + batch_size > n:
                perm, pos = torch.randperm(n, generator=gen).to(device), 0
            idx = perm[pos:pos + batch_size]
            pos += batch_size
            loss = F.cross_entropy(model(as_float(xs[idx])), ys[idx])
            opt.zero_grad(set_to_none=True)
            loss.backward()
            opt.step()
        model.eval()
        with torch.no_grad():
            for split in ("source_test", "target_test"):
                x, y = data[split].x, data[split].y
                preds = torch.cat([model(as_float(x[i:i + 1024])).argmax(1) for i in range(0, len(x), 1024)])
                (preds == y).float().mean().item()
    return time.perf_counter() - t0


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--source", default="digits")
    ap.add_argument("--target", default="digits:rotate=30")
    ap.add_argument("--epochs", type=int, default=5)
    ap.add_argument("--batch-size", type=int, default=64)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--threads", type=int, default=1)
    ap.add_argument("--repeats", type=int, default=3)
    args = ap.parse_args()
    torch.set_num_threads(args.threads)
    warm_up()
    config = RunConfig(source=args.source, target=args.target, strategy="source_only", epochs=args.epochs,
                       batch_size=args.batch_size, device=args.device, threads=args.threads, seed=0)
    ours_t, plain_t = [], []
    for _ in range(args.repeats):
        trainer = Trainer(config)
        init = copy.deepcopy(trainer.model.state_dict())
        t0 = time.perf_counter()
        events = list(trainer.run())
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        ours_t.append(time.perf_counter() - t0)
        steps = events[-1].steps
        trainer.model.load_state_dict(init)
        t = plain_loop(trainer.model, trainer.ctx.data, trainer.ctx.steps_per_epoch, args.epochs,
                       args.batch_size, config.lr, trainer.device, 1)
        if trainer.device.type == "cuda":
            torch.cuda.synchronize()
        plain_t.append(t)
    ours, plain = min(ours_t), min(plain_t)
    examples = steps * args.batch_size
    print(f"{args.source} -> {args.target}, {trainer.model.name}, batch {args.batch_size}, {steps} steps, "
          f"device {trainer.device}, {args.threads} thread(s), best of {args.repeats}")
    print(f"  plain torch loop: {examples / plain:9.0f} examples/s ({plain:.2f} s)")
    print(f"  tlcore loop:      {examples / ours:9.0f} examples/s ({ours:.2f} s)")
    print(f"  ratio ours/plain: {plain / ours:.3f}x  (target >= 0.9x)")


if __name__ == "__main__":
    main()
