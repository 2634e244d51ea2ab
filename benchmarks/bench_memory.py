"""Peak memory of a 1-epoch run on an image folder at 224 px, next to the analytic estimate.

Writes a folder of small PNG images (default 300, 4 classes, 8×8 px, read at the
default 224 px) to a temporary directory, then runs one ``source_only`` epoch
(LeNet, CPU, resident data) in a fresh subprocess per setting and reports that
process's peak RSS (``resource.getrusage``), the uint8 data size, the engine's
estimate (:func:`tlcore.memory.estimate_run_peak`), and the evaluation rows
per forward pass. ``--eval-rows 1024`` reproduces the old fixed evaluation
batch (before the budget), next to the budgeted default.

    python benchmarks/bench_memory.py [--images 300 --size 224 --batch-size 32]
"""
import argparse
import json
import os
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np

ROOT = os.path.join(os.path.dirname(__file__), "..")

CHILD = r"""
import json, resource, sys
sys.path.insert(0, {root!r})
from tlcore.config import RunConfig
from tlcore.train import Trainer
cfg = RunConfig(source={spec!r}, target={spec!r}, strategy="source_only", epochs=1, batch_size={batch},
                device="cpu", threads=1, log_every=50, model="lenet")
base = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
trainer = Trainer(cfg)
if {eval_rows} > 0:
    trainer.batches.eval_rows = {eval_rows}
for _ in trainer.run():
    pass
est = trainer.peak_estimate
print(json.dumps(dict(peak_rss=resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024, import_rss=base * 1024,
                      data=est.data_bytes, estimate=est.total, eval_rows=trainer.batches.eval_rows,
                      per_row=trainer.per_row_bytes)))
"""


def write_folder(root: Path, images: int, size: int, classes: int = 4) -> None:
    from PIL import Image

    rng = np.random.default_rng(0)
    for i in range(images):
        label = i % classes
        pixels = rng.integers(0, 256, (size, size, 3), dtype=np.uint8)
        (root / f"class{label}").mkdir(parents=True, exist_ok=True)
        Image.fromarray(pixels).save(root / f"class{label}" / f"img{i}.png")


def run(spec: str, batch: int, eval_rows: int) -> dict:
    code = CHILD.format(root=ROOT, spec=spec, batch=batch, eval_rows=eval_rows)
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--images", type=int, default=300)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch-size", type=int, default=32)
    ap.add_argument("--old", action="store_true", help="also run with the old fixed 1024 evaluation rows")
    args = ap.parse_args()
    mb = 2 ** 20
    with tempfile.TemporaryDirectory() as tmp:
        write_folder(Path(tmp), args.images, 8)
        spec = f"folder:{tmp}:resize={args.size}"
        settings = [("budgeted", 0)] + ([("fixed 1024", 1024)] if args.old else [])
        print(f"{args.images} PNGs (8×8 px) at {args.size} px, batch size {args.batch_size}, 1 epoch source_only, LeNet, CPU")
        for name, rows in settings:
            r = run(spec, args.batch_size, rows)
            print(f"{name:>11}: eval rows {r['eval_rows']:>4}, peak RSS {r['peak_rss'] / mb:7.0f} MB "
                  f"(after imports {r['import_rss'] / mb:.0f} MB), estimate {r['estimate'] / mb:7.0f} MB "
                  f"(uint8 data {r['data'] / mb:.0f} MB, {r['per_row'] / mb:.1f} MB/row), "
                  f"peak/estimate {r['peak_rss'] / r['estimate']:.2f}")


if __name__ == "__main__":
    main()
