"""Training speed with streamed images (DataLoader, 0 and 2 workers) against resident images.

Writes a folder of PNG images (default 400, 4 classes, 80×60 px, read at 64 px)
to a temporary directory, then trains the same DANN configuration (source and
target streams, LeNet, batch size 64) three times in one process: resident
(decoded once up front, batched by indexing), streamed with the images decoded
in the training process (``loader_workers=0``) and streamed with two worker
processes. The three runs train on the same batches (the final accuracies are
printed to show it). Reported per mode: steps/s between the first and the last
step event (steady state), the whole run's wall time including loader start-up
and evaluations, and the ratio of each to the resident figure.

    python benchmarks/bench_streaming.py [--images 400 --size 64 --epochs 10 --threads 1]
"""
import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import torch

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
from tlcore import events as ev  # noqa: E402
from tlcore.config import RunConfig  # noqa: E402
from tlcore.data import folder as folder_module  # noqa: E402
from tlcore.train import Trainer, warm_up  # noqa: E402


def write_folder(root: Path, images: int, classes: int = 4, size=(80, 60), seed: int = 0) -> None:
    from PIL import Image

    rng = np.random.default_rng(seed)
    for i in range(images):
        label = i % classes
        base = np.array([40 + 50 * label, 128, 220 - 50 * label], dtype=np.float64)
        pixels = np.clip(base + rng.normal(0, 60, (size[1], size[0], 3)), 0, 255).astype(np.uint8)
        (root / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / f"class{label}" / f"img{i}.png")


def measure(config: RunConfig) -> dict:
    folder_module.clear_cache()  # resident runs decode up front; not part of the training figures
    trainer = Trainer(config)
    t0 = time.perf_counter()
    steps = []
    result = None
    for event in trainer.run():
        if isinstance(event, ev.StepEvent):
            steps.append((event.step, time.perf_counter()))
        elif isinstance(event, ev.ResultEvent):
            result = event
    wall = time.perf_counter() - t0
    (first_step, first_t), (last_step, last_t) = steps[0], steps[-1]
    return {"mode": trainer.data_mode, "steps_per_s": (last_step - first_step) / (last_t - first_t),
            "wall_s": wall, "steps": result.steps, "target_accuracy": result.target_accuracy}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--images", type=int, default=400)
    parser.add_argument("--size", type=int, default=64)
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    warm_up()
    with tempfile.TemporaryDirectory() as tmp:
        root = Path(tmp) / "images"
        write_folder(root, args.images)
        spec = f"folder:{root}:resize={args.size}"
        base = RunConfig(source=spec, target=f"{spec},rotate=20", strategy="dann", epochs=args.epochs,
                         batch_size=args.batch_size, seed=0, log_every=2, threads=args.threads, device=args.device)
        rows = [("resident", measure(base.replace(data_mode="resident")))]
        for workers in (0, 2):
            rows.append((f"stream, {workers} workers", measure(base.replace(data_mode="stream", loader_workers=workers))))
    print(f"{args.images} PNG images read at {args.size} px, DANN (source + target streams), LeNet, batch "
          f"{args.batch_size}, {rows[0][1]['steps']} steps, {args.threads} intra-op thread(s), {os.cpu_count()} CPU cores")
    reference = rows[0][1]
    print(f"{'mode':<22}{'steps/s':>9}{'ratio':>8}{'run wall s':>12}{'ratio':>8}{'target acc':>12}")
    for name, r in rows:
        print(f"{name:<22}{r['steps_per_s']:>9.1f}{r['steps_per_s'] / reference['steps_per_s']:>8.2f}"
              f"{r['wall_s']:>12.2f}{r['wall_s'] / reference['wall_s']:>8.2f}{r['target_accuracy']:>12.4f}")


if __name__ == "__main__":
    main()
