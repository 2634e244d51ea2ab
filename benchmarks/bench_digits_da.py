"""MNIST → USPS: target accuracy and wall time of source_only, dann and mmd, next to published numbers.

    python benchmarks/bench_digits_da.py [--data-dir DIR] [--epochs 10] [--seeds 0 1 2] [--model lenet]

Needs the real MNIST and USPS files in the data directory, in torchvision's
layout (``DIR/MNIST/raw/*-ubyte[.gz]``, ``DIR/usps.bz2``, ``DIR/usps.t.bz2``);
get them with ``tlcore download mnist usps --data-dir DIR``. It never
downloads: without the files it says which are missing and exits with status 2.

Everything goes through the engine's one loop (``tlcore.train.Trainer``), with
unsupervised adaptation (no target labels), and the preprocessing the pair
records (USPS 16×16 resized to 28×28, bilinear; uint8 scaled to [0, 1]; no
normalisation) is printed above the table. The published figures
(``shared/REFERENCES.md``) used other budgets, backbones and model selection:
they calibrate, they are not targets. ``mmd`` is multi-kernel MMD on the
features, the DAN column of the references.
"""
from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from tlcore import events as ev  # noqa: E402
from tlcore.config import RunConfig  # noqa: E402
from tlcore.data.torchvision_data import dataset_status, resolve_data_dir  # noqa: E402
from tlcore.train import Trainer  # noqa: E402

# Published MNIST → USPS target accuracy (%), shared/REFERENCES.md.
PUBLISHED = {
    "source_only": [("TLlib, LeNet, 28 px", "82.1"), ("skada-bench, oracle checkpoint", "94.2"),
                    ("PyKale, 10 seeds", "49.5 ± 4.6")],
    "dann": [("TLlib, LeNet, 28 px", "91.7"), ("skada-bench, oracle checkpoint", "92.5"),
             ("PyKale, 10 seeds", "80.4 ± 5.3")],
    "mmd": [("TLlib DAN, LeNet, 28 px", "86.0")],
}


def parse_args() -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="", help="dataset directory (default: $TRANSFER_LAB_DATA or <home>/data)")
    parser.add_argument("--strategies", nargs="+", default=["source_only", "dann", "mmd"])
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--lr", type=float, default=RunConfig().lr)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--model", default="lenet", help="lenet, lenet_wide, ... (tlcore models)")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser.parse_args()


def files_present(data_dir: Path) -> bool:
    """True when MNIST and USPS are usable offline; otherwise say what is missing."""
    problems = [status for name in ("mnist", "usps") for status in dataset_status(name, data_dir)
                if status.state not in ("ok", "extract")]
    if not problems:
        return True
    print(f"MNIST and USPS are not complete in {data_dir}; this benchmark does not download.", file=sys.stderr)
    for status in problems:
        print(f"  [{status.state}] {status.detail}", file=sys.stderr)
    print(f"Get them with: tlcore download mnist usps --data-dir {data_dir}", file=sys.stderr)
    return False


def run_one(config: RunConfig) -> tuple[float, float, Trainer]:
    start = time.perf_counter()
    trainer = Trainer(config)
    result = None
    for event in trainer.run():
        if isinstance(event, ev.ResultEvent):
            result = event
    assert result is not None
    return result.target_accuracy, time.perf_counter() - start, trainer


def main() -> int:
    args = parse_args()
    data_dir = resolve_data_dir(args.data_dir or None)
    if not files_present(data_dir):
        return 2
    rows, described = [], False
    for strategy in args.strategies:
        accuracies, seconds = [], []
        for seed in args.seeds:
            config = RunConfig(source="mnist", target="usps", strategy=strategy, epochs=args.epochs,
                               batch_size=args.batch_size, lr=args.lr, seed=seed, model=args.model,
                               device=args.device, threads=args.threads, data_dir=str(data_dir))
            accuracy, wall, trainer = run_one(config)
            if not described:
                print("preprocessing (as recorded with every run):")
                for line in trainer.pair.describe():
                    print(f"  {line}")
                print(f"model {args.model}, {args.epochs} epochs of the larger (source) set, batch {args.batch_size} "
                      f"per stream, Adam lr {args.lr} ({config.lr_schedule} schedule), no target labels, "
                      f"last-epoch model (no checkpoint selection); device {trainer.device}, torch {torch.__version__}\n")
                described = True
            accuracies.append(accuracy)
            seconds.append(wall)
            print(f"  {strategy} seed {seed}: target accuracy {100 * accuracy:.1f}%, {wall:.1f} s", flush=True)
        rows.append({"strategy": strategy, "target_accuracy": accuracies, "wall_s": seconds})

    print(f"\nMNIST → USPS, target test accuracy (%), {len(args.seeds)} seed(s):")
    print(f"{'strategy':<12} {'ours':>14} {'wall s':>8}   published (other preprocessing and budgets)")
    for row in rows:
        values = [100 * a for a in row["target_accuracy"]]
        mean = statistics.mean(values)
        spread = f" ± {statistics.stdev(values):.1f}" if len(values) > 1 else ""
        published = "; ".join(f"{where} {value}" for where, value in PUBLISHED.get(row["strategy"], []))
        print(f"{row['strategy']:<12} {mean:>8.1f}{spread:<6} {statistics.mean(row['wall_s']):>8.1f}   {published}")
    if args.json:
        Path(args.json).write_text(json.dumps({"epochs": args.epochs, "model": args.model, "seeds": args.seeds,
                                               "rows": rows, "published": PUBLISHED}, indent=2))
    return 0


if __name__ == "__main__":
    sys.exit(main())
