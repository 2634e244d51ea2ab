"""`tlcore`: the command line, a thin shell over the engine API.

Every user error (:class:`~tlcore.errors.TransferLabError`) becomes one
``error: ...`` line on stderr and exit status 2; nothing is written to the run
store for input that fails validation.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Sequence

from .errors import TransferLabError


class ProgressBar:
    """A progress bar on stderr: redrawn in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, stream=None, width: int = 28):
        self.stream, self.width = stream or sys.stderr, width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0
        self.status = ""

    def __call__(self, run_id: str, event) -> None:
        kind = event.kind
        if kind == "started":
            self.stream.write(f"run {run_id}: {event.total_steps} steps on {event.device}, "
                              f"{event.threads} thread(s)\n")
        elif kind == "eval":
            self.status = f"src {event.source_accuracy:.3f} tgt {event.target_accuracy:.3f}"
        elif kind == "step":
            now = time.monotonic()
            final = event.step == event.total_steps
            if not final and now - self._last < (0.1 if self.tty else 5.0):
                return
            self._last = now
            frac = event.step / event.total_steps
            eta = event.elapsed_s / frac * (1 - frac) if frac > 0 else 0.0
            filled = int(self.width * frac)
            line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {event.step}/{event.total_steps} "
                    f"{event.phase} loss {event.losses.get('total', float('nan')):.4f} {self.status} eta {eta:.0f}s")
            self.stream.write(("\r" + line + " " * 4) if self.tty else line + "\n")
            if final and self.tty:
                self.stream.write("\n")
        self.stream.flush()


class DownloadBar:
    """Download progress (tlcore.download.DownloadProgress) on stderr, like :class:`ProgressBar`."""

    def __init__(self, stream=None):
        self.stream = stream or sys.stderr
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._last = 0.0

    def __call__(self, report) -> None:
        now = time.monotonic()
        if not report.finished and report.done_bytes and now - self._last < (0.2 if self.tty else 5.0):
            return
        self._last = now
        total = f"/{report.total_bytes / 1e6:.1f}" if report.total_bytes else ""
        line = f"downloading {report.filename}: {report.done_bytes / 1e6:.1f}{total} MB"
        if report.finished:
            line += " done"
        self.stream.write(("\r" + line + " " * 4 + ("\n" if report.finished else "")) if self.tty else line + "\n")
        self.stream.flush()


def _cmd_download(args) -> int:
    from .data.torchvision_data import SOURCES, download_dataset, resolve_data_dir
    names = list(SOURCES) if args.names == ["all"] else args.names
    for name in names:
        statuses = download_dataset(name, args.data_dir or None, progress=None if args.quiet else DownloadBar())
        print(f"{name}: {len(statuses)} file(s) verified in {resolve_data_dir(args.data_dir or None)}")
    return 0


def _cmd_models(args) -> int:
    from .models import MODELS
    for name, info in MODELS.items():
        print(f"  {name:<32} {'/'.join(sorted(info.kinds)):<7} {info.description}")
    return 0


def _cmd_datasets(args) -> int:
    from .data import describe_datasets, describe_shifts
    rows, shifts = describe_datasets(), describe_shifts()
    if args.json:
        print(json.dumps({"datasets": rows, "shifts": shifts}, indent=2))
        return 0
    print("datasets:")
    for r in rows:
        print(f"  {r['name']:<14} {r['kind']:<7} {'built-in' if r['builtin'] else ('files' if r['takes_argument'] else 'download'):<8}  {r['description']}")
    print("shifts (append to a dataset as NAME:SHIFT,SHIFT, e.g. digits:rotate=30,invert):")
    for s in shifts:
        arg = f"={s['value_name']}" if s["takes_value"] else ""
        print(f"  {s['name'] + arg:<18} {s['help']} [{', '.join(s['applies_to'])}]")
    return 0


def _cmd_strategies(args) -> int:
    from .config import form_fields
    from .strategies import STRATEGIES
    for name, cls in STRATEGIES.items():
        print(f"{name}: {cls.summary}")
        for f in form_fields(cls.Config):
            print(f"    {f.name}={f.default!r}  {f.help}")
    return 0


def _parse_params(items: list[str]) -> dict:
    params = {}
    for item in items or []:
        if "=" not in item:
            raise TransferLabError(f"--param needs NAME=VALUE, got {item!r}")
        k, v = item.split("=", 1)
        try:
            params[k.strip()] = json.loads(v)
        except json.JSONDecodeError:
            params[k.strip()] = v
    return params


def _cmd_run(args) -> int:
    from .api import run_experiment
    from .config import RunConfig
    from .runs import RunStore
    config = RunConfig(source=args.source, target=args.target, strategy=args.strategy,
                       params=_parse_params(args.param), target_labels=args.target_labels, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                       threads=args.threads, data_dir=args.data_dir or "", model=args.model)
    store = RunStore(args.store) if args.store else RunStore()
    bar = None if args.quiet else ProgressBar()
    from .download import download_progress
    with download_progress(None if args.quiet else DownloadBar()):
        out = run_experiment(config, store=store, on_event=bar, with_baseline=not args.no_baseline)
    m = out.metrics
    summary = {"run_id": out.run_id, "status": out.status, "strategy": args.strategy, "source": args.source,
               "target": args.target, "target_labels": args.target_labels, "seed": args.seed,
               "source_accuracy": m["source_accuracy"], "target_accuracy": m["target_accuracy"],
               "ntg": m.get("ntg"), "target_only_accuracy": m.get("target_only_accuracy"),
               "baseline_run_id": m.get("baseline_run_id"), "elapsed_s": m["elapsed_s"]}
    if args.json:
        print(json.dumps(summary))
    else:
        print(f"run {out.run_id} {out.status}: source accuracy {m['source_accuracy']:.4f}, "
              f"target accuracy {m['target_accuracy']:.4f}")
        if m.get("ntg") is not None:
            verdict = "negative transfer" if m["ntg"] > 0 else "positive transfer"
            print(f"target_only accuracy {m['target_only_accuracy']:.4f}; NTG {m['ntg']:+.4f} ({verdict})")
    return 0


def _cmd_gap(args) -> int:
    from .data import make_pair
    from .data.domain import as_float
    from .metrics import mmd_permutation_test, proxy_a_distance
    pair = make_pair(args.source, args.target, seed=args.seed, data_dir=args.data_dir or None)
    xs, xt = as_float(pair.source.x_train), as_float(pair.target.x_train)
    test = mmd_permutation_test(xs, xt, num_permutations=args.permutations, seed=args.seed)
    pad = proxy_a_distance(xs.flatten(1), xt.flatten(1), seed=args.seed)
    out = {"source": args.source, "target": args.target, "mmd2": test.mmd2, "p_value": test.p_value,
           "permutations": test.num_permutations, "proxy_a_distance": pad.pad,
           "domain_classifier_accuracy": pad.domain_accuracy, "harmonisation": list(pair.harmonisation)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.source} -> {args.target} (input space)")
        print(f"  MMD²  {test.mmd2:.5f}  (permutation p-value {test.p_value:.4f}, {test.num_permutations} permutations)")
        print(f"  proxy A-distance  {pad.pad:.4f}  (held-out domain classifier accuracy {pad.domain_accuracy:.3f})")
        if pair.harmonisation:
            print("harmonisation (applied to both domains before measuring):")
            for step in pair.harmonisation:
                print(f"  {step}")
    return 0


def _cmd_runs(args) -> int:
    from .runs import RunStore, runs_table
    store = RunStore(args.store) if args.store else RunStore()
    if args.delete:
        for rid in args.delete:
            store.delete_run(rid)
            print(f"deleted {rid}")
        return 0
    runs = store.list_runs(status=args.status, strategy=args.strategy, limit=args.limit)
    if args.csv:
        if args.csv == "-":
            store.export_csv(sys.stdout, runs)
        else:
            store.export_csv(args.csv, runs)
            print(f"wrote {len(runs)} run(s) to {args.csv}")
        return 0
    rows = runs_table(runs)
    if args.json:
        print(json.dumps(rows))
        return 0
    print(f"{'id':<13} {'status':<11} {'strategy':<21} {'k':>3} {'seed':>4} {'tgt acc':>8} {'ntg':>7}  source -> target")
    for r in rows:
        acc = r.get("target_accuracy")
        ntg = r.get("ntg")
        print(f"{r['id']:<13} {r['status']:<11} {r['strategy'] or '':<21} {r['target_labels'] or 0:>3} {r['seed'] or 0:>4} "
              f"{'' if acc in (None, '') else f'{float(acc):.4f}':>8} {'' if ntg in (None, '') else f'{float(ntg):+.3f}':>7}  "
              f"{r['source']} -> {r['target']}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    from .config import RunConfig
    d = RunConfig()
    p = argparse.ArgumentParser(prog="tlcore", description="Transfer Lab engine: train, measure domain gaps, list runs.")
    sub = p.add_subparsers(dest="command", required=True)

    s = sub.add_parser("datasets", help="list datasets and shifts")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_datasets)

    s = sub.add_parser("strategies", help="list strategies and their hyperparameters")
    s.set_defaults(func=_cmd_strategies)

    s = sub.add_parser("run", help="train one configuration and record it")
    s.add_argument("--source", required=True, help="source dataset spec, e.g. digits")
    s.add_argument("--target", required=True, help="target dataset spec, e.g. digits:invert")
    s.add_argument("--strategy", default="source_only")
    s.add_argument("--param", action="append", metavar="NAME=VALUE", help="strategy hyperparameter (repeatable)")
    s.add_argument("--target-labels", type=int, default=0, metavar="K", help="labelled target examples per class")
    s.add_argument("--epochs", type=int, default=d.epochs)
    s.add_argument("--batch-size", type=int, default=d.batch_size)
    s.add_argument("--lr", type=float, default=d.lr)
    s.add_argument("--seed", type=int, default=d.seed)
    s.add_argument("--device", default="auto")
    s.add_argument("--threads", type=int, default=0)
    s.add_argument("--data-dir", default="", help="dataset directory (default: $TRANSFER_LAB_DATA or <home>/data)")
    s.add_argument("--model", default=d.model, help="model name (see `tlcore models`); auto = mlp or lenet")
    s.add_argument("--store", default="", help="run store path (default: the per-user store)")
    s.add_argument("--no-baseline", action="store_true", help="skip the matched target_only baseline (no NTG)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    s.set_defaults(func=_cmd_run)

    s = sub.add_parser("gap", help="MMD² (with p-value) and proxy A-distance between two domains, in input space")
    s.add_argument("--source", required=True)
    s.add_argument("--target", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--permutations", type=int, default=200)
    s.add_argument("--data-dir", default="")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_gap)

    s = sub.add_parser("download", help="download and verify datasets into the data directory")
    s.add_argument("names", nargs="+", metavar="NAME", help="dataset names (mnist, usps, svhn, ...) or all")
    s.add_argument("--data-dir", default="", help="dataset directory (default: $TRANSFER_LAB_DATA or <home>/data)")
    s.add_argument("--quiet", action="store_true", help="no progress")
    s.set_defaults(func=_cmd_download)

    s = sub.add_parser("models", help="list models, torchvision backbones included")
    s.set_defaults(func=_cmd_models)

    s = sub.add_parser("runs", help="list, export or delete stored runs")
    s.add_argument("--status")
    s.add_argument("--strategy")
    s.add_argument("--limit", type=int)
    s.add_argument("--csv", metavar="PATH", help="export as CSV to PATH (- for stdout)")
    s.add_argument("--delete", nargs="+", metavar="RUN_ID")
    s.add_argument("--store", default="")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_runs)
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    try:
        return args.func(args)
    except TransferLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
