"""Real digit pairs: every unsupervised strategy over seeds, mean ± sd, wall time and the published figures.

    python benchmarks/bench_digits_da.py [--data-dir DIR] [--pairs mnist-usps usps-mnist svhn-mnist mnist-mnistm]
                                         [--strategies ...] [--seeds 0 1 2] [--epochs 10] [--download]

Pairs: MNIST → USPS, USPS → MNIST, SVHN → MNIST and MNIST → MNIST-M (the lab's
reconstruction, built from the MNIST files). The files are read from the data
directory in torchvision's layout (``DIR/MNIST/raw/*-ubyte[.gz]``,
``DIR/usps.bz2``, ``DIR/usps.t.bz2``, ``DIR/train_32x32.mat``,
``DIR/test_32x32.mat``). One command runs every pair whose files are there; a
pair whose files are missing or corrupt is named with the files it needs and
skipped. Nothing is downloaded unless ``--download`` asks (then through
``tlcore.data.torchvision_data.download_dataset``, checksums verified). The
exit status is 2 when no pair could run.

The strategies default to every registered one that applies to an unlabelled
target: it trains on the source and needs no target labels
(:func:`applicable_strategies`, read from ``tlcore.strategies.STRATEGIES``).
Everything goes through the engine's one loop (``tlcore.train.Trainer``), with
each strategy's defaults (``RunConfig``), no target labels and the last-epoch
model (no checkpoint selection). Each pair's preprocessing, as recorded with
every run, is printed above its table, with any data warning (a file whose
checksum differs from torchvision's).

The published column (``shared/REFERENCES.md``) comes from other budgets,
backbones, preprocessing and model selection: it calibrates, it is not a
target. ``mmd`` is multi-kernel MMD on the features (the DAN column), ``coral``
Deep CORAL, ``cdan`` CDAN(+E). Our MNIST-M is a reconstruction with other
backgrounds (see its preprocessing line).
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Sequence

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))  # run from a checkout without installing

import torch  # noqa: E402

from tlcore import events as ev  # noqa: E402
from tlcore.config import RunConfig  # noqa: E402
from tlcore.data.torchvision_data import dataset_status, download_dataset, resolve_data_dir  # noqa: E402
from tlcore.errors import TransferLabError  # noqa: E402
from tlcore.ntg import mean_sd  # noqa: E402
from tlcore.strategies import STRATEGIES  # noqa: E402
from tlcore.train import Trainer  # noqa: E402


@dataclass(frozen=True)
class Pair:
    key: str
    source: str
    target: str
    title: str


PAIRS = {p.key: p for p in (
    Pair("mnist-usps", "mnist", "usps", "MNIST → USPS"),
    Pair("usps-mnist", "usps", "mnist", "USPS → MNIST"),
    Pair("svhn-mnist", "svhn", "mnist", "SVHN → MNIST"),
    Pair("mnist-mnistm", "mnist", "mnistm", "MNIST → MNIST-M"),
)}

# Published target accuracy (%), shared/REFERENCES.md: pair -> strategy -> [(where, figure)].
TLLIB, SKADA, PYKALE, GANIN = ("TLlib, LeNet, 28 px", "skada-bench, oracle checkpoint", "PyKale, 10 seeds",
                               "Ganin et al. JMLR 2016, Table 2")
PUBLISHED: dict[str, dict[str, list[tuple[str, str]]]] = {
    "mnist-usps": {
        "source_only": [(TLLIB, "82.1"), (SKADA, "94.2"), (PYKALE, "49.5 ± 4.6")],
        "dann": [(TLLIB, "91.7"), (SKADA, "92.5"), (PYKALE, "80.4 ± 5.3")],
        "mmd": [(f"{TLLIB} (DAN)", "86.0")],
        "coral": [(f"{SKADA} (DeepCORAL)", "97.1")],
        "cdan": [(TLLIB, "96.0"), (PYKALE, "79.4 ± 3.5")],
    },
    "usps-mnist": {
        "source_only": [(TLLIB, "74.6"), (SKADA, "73.3")],
        "dann": [(TLLIB, "95.2"), (SKADA, "86.7")],
        "mmd": [(f"{TLLIB} (DAN)", "89.5")],
        "coral": [(f"{SKADA} (DeepCORAL)", "89.8")],
        "cdan": [(TLLIB, "97.7")],
    },
    "svhn-mnist": {
        "source_only": [(GANIN, "54.90"), ("TLlib, DTN, 32 px", "74.1")],
        "dann": [(GANIN, "73.85"), ("TLlib, DTN, 32 px", "90.8")],
        "cdan": [("TLlib, DTN, 32 px", "93.8")],
    },
    "mnist-mnistm": {
        "source_only": [(f"{GANIN}, real MNIST-M", "52.25")],
        "dann": [(f"{GANIN}, real MNIST-M", "76.66")],
    },
}


def applicable_strategies() -> list[str]:
    """Registered strategies that apply to an unlabelled target: they train on the source and need
    no target labels (so no reference such as target_only or oracle), in registry order."""
    return [name for name, cls in STRATEGIES.items()
            if cls.role != "reference" and cls.uses_source() and not cls.needs_target_labels]


def published_words(pair: str, strategy: str) -> str:
    figures = PUBLISHED.get(pair, {}).get(strategy, [])
    return "; ".join(f"{figure} ({where})" for where, figure in figures) or "—"


def parse_args(argv: Sequence[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--data-dir", default="", help="dataset directory (default: $TRANSFER_LAB_DATA or <home>/data)")
    parser.add_argument("--pairs", nargs="+", choices=list(PAIRS), default=list(PAIRS))
    parser.add_argument("--strategies", nargs="+", choices=applicable_strategies(), default=applicable_strategies())
    parser.add_argument("--epochs", type=int, default=10)
    parser.add_argument("--batch-size", type=int, default=64)
    parser.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    parser.add_argument("--model", default="auto", help="auto (each strategy's default), lenet, lenet_bn, ...")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--threads", type=int, default=0)
    parser.add_argument("--download", action="store_true", help="download missing files first (checksums verified)")
    parser.add_argument("--json", metavar="PATH", help="also write the results as JSON")
    return parser.parse_args(argv)


def unusable_files(pair: Pair, data_dir: Path) -> list[str]:
    """The files a pair lacks (missing or corrupt), in words; [] when it can be read offline.
    A file whose checksum differs is usable: it is checked when loaded."""
    names = dict.fromkeys("mnist" if name == "mnistm" else name for name in (pair.source, pair.target))
    return [f"[{status.state}] {status.detail}" for name in names for status in dataset_status(name, data_dir)
            if status.state in ("missing", "corrupt")]


def run_one(config: RunConfig) -> tuple[float, float, Trainer]:
    start = time.perf_counter()
    trainer = Trainer(config)
    result = None
    for event in trainer.run():
        if isinstance(event, ev.ResultEvent):
            result = event
    if result is None:
        raise RuntimeError(f"{config.strategy}: the run ended without a result")
    return result.target_accuracy, time.perf_counter() - start, trainer


def run_pair(pair: Pair, args: argparse.Namespace, data_dir: Path) -> list[dict]:
    rows = []
    described = False
    for strategy in args.strategies:
        accuracies, seconds = [], []
        for seed in args.seeds:
            config = RunConfig(source=pair.source, target=pair.target, strategy=strategy, epochs=args.epochs,
                               batch_size=args.batch_size, seed=seed, model=args.model, device=args.device,
                               threads=args.threads, data_dir=str(data_dir))
            accuracy, wall, trainer = run_one(config)
            if not described:
                print("preprocessing (as recorded with every run):")
                for line in trainer.pair.describe():
                    print(f"  {line}")
                for line in trainer.pair.warnings():
                    print(f"  WARNING {line}")
                print(f"{args.epochs} epoch(s), batch {args.batch_size} per stream, each strategy's default recipe "
                      f"and model ({args.model}), no target labels, last-epoch model; device {trainer.device}, "
                      f"torch {torch.__version__}")
                described = True
            accuracies.append(100 * accuracy)
            seconds.append(wall)
            print(f"  {pair.title} {strategy} seed {seed}: target accuracy {100 * accuracy:.1f}%, {wall:.1f} s",
                  flush=True)
        rows.append({"strategy": strategy, "target_accuracy": accuracies, "wall_s": seconds,
                     "published": PUBLISHED.get(pair.key, {}).get(strategy, [])})
    return rows


def table(pair: Pair, rows: list[dict], n_seeds: int) -> list[str]:
    lines = [f"### {pair.title}: target test accuracy (%), {n_seeds} seed(s)", "",
             "| strategy | ours (mean ± sd) | wall s per run | published (other preprocessing and budgets) |",
             "|---|---|---|---|"]
    for row in rows:
        mean, sd = mean_sd(row["target_accuracy"])
        ours = f"{mean:.1f}" + (f" ± {sd:.1f}" if sd is not None else "")
        lines.append(f"| {row['strategy']} | {ours} | {mean_sd(row['wall_s'])[0]:.1f} | "
                     f"{published_words(pair.key, row['strategy'])} |")
    return lines


def main(argv: Sequence[str] | None = None) -> int:
    args = parse_args(argv)
    data_dir = resolve_data_dir(args.data_dir or None)
    results, tables, skipped = {}, [], []
    for key in args.pairs:
        pair = PAIRS[key]
        if args.download:
            for name in dict.fromkeys("mnist" if n == "mnistm" else n for n in (pair.source, pair.target)):
                try:
                    download_dataset(name, data_dir)
                except TransferLabError as exc:
                    print(f"error: {exc}", file=sys.stderr)
        problems = unusable_files(pair, data_dir)
        if problems:
            print(f"{pair.title}: skipped, its files are not complete in {data_dir} (this benchmark downloads only "
                  "with --download):", file=sys.stderr)
            for problem in problems:
                print(f"  {problem}", file=sys.stderr)
            print(f"  get them with: tlcore download {pair.source} {pair.target} --data-dir {data_dir}",
                  file=sys.stderr)
            skipped.append(key)
            continue
        print(f"\n== {pair.title}")
        try:
            rows = run_pair(pair, args, data_dir)
        except TransferLabError as exc:  # e.g. a copy whose content did not check out
            print(f"{pair.title}: skipped: {exc}", file=sys.stderr)
            skipped.append(key)
            continue
        results[key] = rows
        tables += ["", *table(pair, rows, len(args.seeds))]
    print("\n".join(tables))
    if skipped:
        print(f"\nskipped (files missing or corrupt): {', '.join(PAIRS[k].title for k in skipped)}")
    if args.json:
        Path(args.json).write_text(json.dumps({"epochs": args.epochs, "model": args.model, "seeds": args.seeds,
                                               "pairs": results, "skipped": skipped}, indent=2))
    return 0 if results else 2


if __name__ == "__main__":
    sys.exit(main())
