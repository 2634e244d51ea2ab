"""`tlcore`: the command line, a thin shell over the engine API.

Every user error (:class:`~tlcore.errors.TransferLabError`, or an OSError such as an
output path that cannot be written) becomes one ``error: ...`` line on stderr and exit
status 2; nothing is written to the run store for input that fails validation. Ctrl-C
(SIGINT), SIGTERM and SIGHUP end a run as ``interrupted`` in the store, with exit status
128 + the signal number.
"""
from __future__ import annotations

import argparse
import json
import signal
import sys
import threading
import time
from typing import Sequence

from .errors import TransferLabError
from .ntg import format_ntg


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
        other = sum(status.state == "unverified" for status in statuses)
        print(f"{name}: {len(statuses) - other} file(s) verified in {resolve_data_dir(args.data_dir or None)}"
              + (f"; {other} differ from torchvision's checksum but their content checked out (loaded with a "
                 "warning)" if other else ""))
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


def _on_executor(args):
    """A :class:`~tlcore.worker.Worker` on Ray for ``--executor ray[=ADDRESS]``, or None (local:
    the command trains in this process, as always)."""
    from .ray_executor import parse_executor
    kind, address = parse_executor(getattr(args, "executor", None))
    if kind == "local":
        return None
    from .ray_executor import RayExecutor
    from .worker import Worker
    return Worker(executor=RayExecutor(address))


def _wait_for_job(worker, job_id: str):
    """Wait for a job of ``worker``; Ctrl-C stops it. Raises its error; returns the job."""
    try:
        worker.wait(job_id)
    except KeyboardInterrupt:
        worker.stop(job_id, wait=30)
        raise
    job = worker.job(job_id)
    if job.error:
        raise TransferLabError(job.error)
    return job


def _cmd_run(args) -> int:
    from .api import RunOutcome, run_experiment
    from .config import RunConfig
    from .runs import RunStore
    config = RunConfig(source=args.source, target=args.target, strategy=args.strategy,
                       params=_parse_params(args.param), target_labels=args.target_labels, epochs=args.epochs,
                       batch_size=args.batch_size, lr=args.lr, seed=args.seed, device=args.device,
                       threads=args.threads, data_dir=args.data_dir or "", model=args.model,
                       data_mode=args.data_mode, loader_workers=args.loader_workers)
    store = RunStore(args.store) if args.store else RunStore()
    bar = None if args.quiet else ProgressBar()
    from .download import download_progress
    worker = _on_executor(args)
    if worker is not None:  # a Ray task; the store here receives its events
        run_id = worker.start_run(config, store, with_baseline=not args.no_baseline)
        if not args.quiet:
            print(f"run {run_id} queued on Ray ({worker.executor.address or 'local'})", file=sys.stderr)
        _wait_for_job(worker, run_id)
        rec = store.get_run(run_id)
        out = RunOutcome(rec.id, rec.status, rec.metrics)
    else:
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
            print(f"target_only accuracy {m['target_only_accuracy']:.4f}; NTG {format_ntg(m['ntg'], digits=4)}")
    return 0


MAX_GAP_POINTS = 5_000     # `tlcore gap --max-points`: a (2·5000)² float64 kernel matrix is 800 MB
MAX_PERMUTATIONS = 10_000  # `tlcore gap`: about 20 s on the built-in digits on one CPU core (~2 ms per permutation)


def _cmd_gap(args) -> int:
    from .data import make_pair
    from .inspection import GAP_POINTS, input_gap
    max_points = GAP_POINTS if args.max_points is None else args.max_points
    if not 1 <= args.permutations <= MAX_PERMUTATIONS:
        raise TransferLabError(f"--permutations must be between 1 and {MAX_PERMUTATIONS} (the p-value's resolution "
                               f"is 1/(B+1); more only cost time), got {args.permutations}")
    if not 2 <= max_points <= MAX_GAP_POINTS:
        raise TransferLabError(f"--max-points must be between 2 and {MAX_GAP_POINTS} (the test builds one "
                               f"(2·max-points)² kernel matrix), got {max_points}")
    pair = make_pair(args.source, args.target, seed=args.seed, data_dir=args.data_dir or None)
    # The same seeded sample as the app's Data page (tlcore.inspection.input_gap), so both give the same numbers.
    gap = input_gap(pair, seed=args.seed, max_points=max_points, num_permutations=args.permutations)
    out = {"source": args.source, "target": args.target, "mmd2": gap.mmd2, "p_value": gap.p_value,
           "permutations": args.permutations, "proxy_a_distance": gap.pad,
           "domain_classifier_accuracy": gap.domain_accuracy, "n_source": gap.n_source, "n_target": gap.n_target,
           "of_source": gap.of_source, "of_target": gap.of_target, "harmonisation": list(pair.harmonisation)}
    if args.json:
        print(json.dumps(out))
    else:
        print(f"{args.source} -> {args.target} (input space, seed {args.seed})")
        print(f"  on {gap.n_source} of {gap.of_source} source and {gap.n_target} of {gap.of_target} target "
              f"training points (a seeded sample, as the app's Data page draws it; --max-points to change)")
        print(f"  MMD²  {gap.mmd2:.5f}  (permutation p-value {gap.p_value:.4f}, {args.permutations} permutations)")
        if gap.mmd2 < 0:
            print(f"  (MMD² is an unbiased estimate: it scatters around the true value, so when the domains are "
                  f"alike it can fall below 0; read it as 0, no gap detected)")
        print(f"  proxy A-distance  {gap.pad:.4f}  (held-out domain classifier accuracy {gap.domain_accuracy:.3f})")
        if pair.harmonisation:
            print("harmonisation (applied to both domains before measuring):")
            for step in pair.harmonisation:
                print(f"  {step}")
    return 0


def _cmd_runs(args) -> int:
    from .runs import RunStore, quarantine_store, runs_table
    if args.quarantine:
        moved = quarantine_store(args.store or None)
        print(f"moved the damaged run store aside to {moved}; a new, empty store starts at its old place. "
              f"To get runs back out of it: sqlite3 {moved} .recover | sqlite3 recovered.sqlite")
        return 0
    store = RunStore(args.store) if args.store else RunStore()
    if store.readonly_note:
        print(f"note: {store.readonly_note}", file=sys.stderr)
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


class SweepBar:
    """A whole sweep's progress on stderr, in :class:`ProgressBar`'s style: one bar over every
    run of the sweep, redrawn in place on a terminal, a line every few seconds otherwise."""

    def __init__(self, stream=None, width: int = 28):
        self.stream, self.width = stream or sys.stderr, width
        self.tty = hasattr(self.stream, "isatty") and self.stream.isatty()
        self._start = self._last = time.monotonic()
        self._drawn = self._final_drawn = False

    def __call__(self, fraction: float, message: str) -> None:
        now = time.monotonic()
        final = fraction >= 1.0
        if self._final_drawn or (not final and now - self._last < (0.1 if self.tty else 5.0)):
            return
        self._last, self._final_drawn = now, final
        elapsed = now - self._start
        eta = elapsed / fraction * (1 - fraction) if fraction > 0 else 0.0
        filled = int(self.width * fraction)
        line = (f"[{'#' * filled}{'.' * (self.width - filled)}] {100 * fraction:3.0f}% {message} "
                f"elapsed {elapsed:.0f}s eta {eta:.0f}s")
        self.stream.write(("\r" + line + " " * 4) if self.tty else line + "\n")
        self._drawn = True
        self.stream.flush()

    def close(self) -> None:
        if self.tty and self._drawn:
            self.stream.write("\n")
            self.stream.flush()


def _mean_sd(mean: float, std: float | None) -> str:
    return f"{mean:.4f}" + (f" ± {std:.4f}" if std is not None else "")


def _print_points(points, x_name: str) -> None:
    print(f"  {x_name:>14}  {'strategy':<36} {'target accuracy':<17}  NTG (mean ± sd over seeds, 95% CI): verdict")
    for p in points:
        x = "" if p.x is None else (f"{p.x:g}" if isinstance(p.x, float) else str(p.x))
        print(f"  {x:>14}  {p.arm:<36} {_mean_sd(p.mean_accuracy, p.std_accuracy):<17}  {format_ntg(p.ntg)}")


def _print_sweep(result, lesson=None) -> None:
    from .sweeps import BudgetResult, ShiftResult, SourceResult
    spec = result.spec
    seeds = " ".join(map(str, spec.seeds))
    if lesson is not None:
        print(f"lesson {lesson.name}: {lesson.title} (seeds {seeds})")
    if isinstance(result, BudgetResult):
        print(f"label budget: {spec.source} -> {spec.target} (seeds {seeds})")
        _print_points(result.points, "k")
        for arm in spec.arms[1:]:
            ks = result.negative_budgets(arm.label)
            print(f"negative-transfer region of {arm.label} (below target_only): "
                  f"{'k = ' + ', '.join(map(str, ks)) if ks else 'none'}")
    elif isinstance(result, ShiftResult):
        axis = spec.axis
        print(f"shift strength: {spec.shift} applied to the {axis.side} ({axis.why}); "
              f"{spec.source} -> {spec.target}, k = {spec.target_labels} (seeds {seeds})")
        _print_points(result.points, spec.shift)
        print(f"  {spec.shift:>14}  input-space MMD²   proxy A-distance")
        for value in spec.values:
            gap = result.mean_gap(value)
            if gap is not None:
                print(f"  {value:>14g}  {gap[0]:<17.5f}  {gap[1]:.4f}")
        print(f"crossover (first {spec.shift} value where {spec.adaptation} falls below target_only): "
              f"{'none' if result.crossover is None else f'{result.crossover:g}'}")
    elif isinstance(result, SourceResult):
        print(f"which source for {spec.target}? strategy {spec.strategy}, k = {spec.target_labels} (seeds {seeds})")
        print(f"  {'source':<28} {'MMD²':>9} {'PAD':>7} {'LogME':>9}  {'target acc':>10}  NTG (mean ± sd over seeds, 95% CI): verdict")
        for s in result.summaries:
            def number(value, width, digits):
                return f"{'':>{width}}" if value is None else f"{value:>{width}.{digits}f}"
            print(f"  {s.source:<28} {number(s.mmd2, 9, 5)} {number(s.pad, 7, 3)} {number(s.logme, 9, 4)}  "
                  f"{number(s.target_accuracy, 10, 4)}  {format_ntg(s.ntg)}")
        if not result.rows:
            print("after training: not run yet (scores only); run without --before-only for the NTGs")
        for c in result.correlations if result.rows else ():
            rho = "undefined (needs 3 or more distinct sources)" if c.rho is None else \
                f"{c.rho:+.3f} (p = {c.p_value:.3f})"
            print(f"Spearman rank correlation of {c.score} with the NTG over {c.n} source(s): {rho}")
    else:
        _print_points(result.points, "")
    if result.failed:
        print(f"{len(result.failed)} run(s) failed (non-finite loss): "
              + "; ".join(f"{f.arm} {f.x} seed {f.seed}" for f in result.failed))
    if not result.complete:
        print("incomplete: stopped before every run finished; run the same command again to resume")


def _sweep_spec(args):
    from .config import RunConfig
    from .sweeps import BudgetSweep, ShiftSweep, SourceSweep
    base = RunConfig(epochs=args.epochs, batch_size=args.batch_size, lr=args.lr, device=args.device,
                     threads=args.threads, data_dir=args.data_dir or "", model=args.model)
    seeds = tuple(args.seeds) if args.seeds else (0,)
    if args.experiment == "budget":
        budgets = tuple(b if b == "all" else _positive_int(b, "--budgets") for b in args.budgets)
        adaptation = None if args.adaptation == "none" else args.adaptation
        return BudgetSweep(source=args.source, target=args.target, adaptation=adaptation,
                           adaptation_params=_parse_params(args.param), budgets=budgets, seeds=seeds, base=base)
    if args.experiment == "shift":
        return ShiftSweep(source=args.source, target=args.target, shift=args.shift, values=tuple(args.values or ()),
                          adaptation=args.adaptation, adaptation_params=_parse_params(args.param),
                          target_labels=args.target_labels, seeds=seeds, base=base)
    return SourceSweep(target=args.target, sources=tuple(args.sources), strategy=args.strategy,
                       params=_parse_params(args.param), target_labels=args.target_labels, seeds=seeds, base=base)


def _positive_int(text: str, option: str) -> int:
    try:
        return int(text)
    except ValueError:
        raise TransferLabError(f"{option} takes positive integers or 'all', got {text!r}") from None


def _cmd_sweep(args) -> int:
    from .download import download_progress
    from .lessons import LESSONS
    from .runs import RunStore
    from .sweeps import export_sweep, run_sweep, score_sources, sweep_to_dict

    lesson = LESSONS.get(args.experiment)
    if lesson is not None:
        if args.seeds:
            lesson = lesson.with_seeds(args.seeds)
        spec = lesson.sweep
    else:
        spec = _sweep_spec(args)
    store = RunStore(args.store) if args.store else RunStore()
    bar = None if args.quiet else SweepBar()
    worker = _on_executor(args)
    try:
        if worker is not None:  # one Ray task runs the sweep; the store here receives its runs
            job = worker.start_sweep(spec, store, job_id="cli-sweep", before_only=getattr(args, "before_only", False))
            if bar is not None:
                while not worker.wait(job.job_id, 0.5):
                    bar(job.progress, job.message)
            result = _wait_for_job(worker, job.job_id).result
            if result is None:
                raise TransferLabError("the sweep's Ray task ended without a result")
        else:
            with download_progress(None if args.quiet else DownloadBar()):
                if getattr(args, "before_only", False):
                    result = score_sources(spec, store, progress=bar)
                else:
                    result = run_sweep(spec, store, progress=bar)
    finally:
        if bar is not None:
            bar.close()
    checks = lesson.check(result) if lesson is not None else ()
    if args.export:
        path = export_sweep(result, args.export)
        print(f"wrote sweep ({len(result.rows)} run(s)) to {path}", file=sys.stderr)
    if args.json:
        doc = sweep_to_dict(result)
        if lesson is not None:
            doc["lesson"] = lesson.name
            doc["claims"] = [c.to_dict() for c in checks]
        print(json.dumps(doc))
    elif args.csv:
        import csv
        rows = result.to_rows()
        fieldnames = list(rows[0]) if rows else []
        if args.csv == "-":
            writer = csv.DictWriter(sys.stdout, fieldnames=fieldnames)
            writer.writeheader()
            writer.writerows(rows)
        else:
            with open(args.csv, "w", newline="", encoding="utf-8") as handle:
                writer = csv.DictWriter(handle, fieldnames=fieldnames)
                writer.writeheader()
                writer.writerows(rows)
            print(f"wrote {len(rows)} row(s) to {args.csv}")
    else:
        _print_sweep(result, lesson)
        for check in checks:
            spread = f" ± {check.std_difference:.4f}" if check.std_difference is not None else ""
            print(f"claim {'holds' if check.holds else 'does NOT hold'}: {check.text} "
                  f"(mean difference {check.mean_difference:+.4f}{spread} over seeds {list(check.seeds)})")
    return 0


def _add_sweep_parser(sub, defaults) -> None:
    from .lessons import LESSONS
    from .sweeps import SWEEPABLE_SHIFTS
    s = sub.add_parser("sweep", help="negative-transfer sweeps (budget, shift, source) and classroom lessons",
                       description="Run a sweep of short runs into the run store (stored runs are reused). "
                                   "Lessons: " + ", ".join(LESSONS))
    experiments = s.add_subparsers(dest="experiment", required=True, metavar="{budget,shift,source,LESSON}")

    def output_options(p, lesson: bool = False):
        if not lesson:
            p.add_argument("--epochs", type=int, default=defaults.epochs)
            p.add_argument("--batch-size", type=int, default=defaults.batch_size)
            p.add_argument("--lr", type=float, default=defaults.lr)
            p.add_argument("--device", default="auto")
            p.add_argument("--threads", type=int, default=0)
            p.add_argument("--model", default=defaults.model)
            p.add_argument("--data-dir", default="", help="dataset directory (default: $TRANSFER_LAB_DATA or <home>/data)")
        p.add_argument("--seeds", type=int, nargs="+", metavar="SEED",
                       help="seeds (default: " + ("the lesson's" if lesson else "0") + ")")
        p.add_argument("--store", default="", help="run store path (default: the per-user store)")
        p.add_argument("--executor", default="local", metavar="local|ray[=ADDRESS]",
                       help="where jobs run: local (this process) or ray[=ADDRESS], a Ray cluster "
                            "(ADDRESS as for ray.init: auto, ray://head:10001; none: $TRANSFER_LAB_RAY_ADDRESS or a local Ray)")
        p.add_argument("--export", metavar="FILE.json", help="also write the sweep (configs and results) as a file "
                                                            "the app can load")
        p.add_argument("--quiet", action="store_true", help="no progress bar")
        out = p.add_mutually_exclusive_group()
        out.add_argument("--json", action="store_true", help="print the whole result as one JSON object")
        out.add_argument("--csv", metavar="PATH", help="write one row per run (source sweeps: per source) as CSV "
                                                      "(- for stdout)")
        p.set_defaults(func=_cmd_sweep)

    p = experiments.add_parser("budget", help="target accuracy against labelled target examples per class")
    p.add_argument("--source", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--adaptation", default="dann", help="adaptation strategy besides finetune (none: skip)")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="adaptation hyperparameter (repeatable)")
    p.add_argument("--budgets", nargs="+", default=["1", "2", "5", "10", "50", "all"], metavar="K",
                   help="labelled target examples per class; all = as many as every class has")
    output_options(p)

    p = experiments.add_parser("shift", help="target accuracy and domain gap against the strength of one shift")
    p.add_argument("--source", required=True)
    p.add_argument("--target", required=True)
    p.add_argument("--shift", default="rotate", choices=tuple(SWEEPABLE_SHIFTS),
                   help="; ".join(f"{a.name}: the {a.side}" for a in SWEEPABLE_SHIFTS.values()))
    p.add_argument("--values", type=float, nargs="+", metavar="VALUE", help="shift values (default: per shift)")
    p.add_argument("--adaptation", default="dann")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="adaptation hyperparameter (repeatable)")
    p.add_argument("--target-labels", type=int, default=5, metavar="K")
    output_options(p)

    p = experiments.add_parser("source", help="which of up to five sources transfers best to a target")
    p.add_argument("--target", required=True)
    p.add_argument("--sources", nargs="+", required=True, metavar="SPEC")
    p.add_argument("--strategy", default="finetune")
    p.add_argument("--param", action="append", metavar="NAME=VALUE", help="strategy hyperparameter (repeatable)")
    p.add_argument("--target-labels", type=int, default=5, metavar="K")
    p.add_argument("--before-only", action="store_true",
                   help="only the scores before training (gap and LogME; one source_only run per source)")
    output_options(p)

    for name, lesson in LESSONS.items():
        output_options(experiments.add_parser(name, help=f"lesson: {lesson.title}"), lesson=True)


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
    s.add_argument("--data-mode", default=d.data_mode, choices=("auto", "resident", "stream"),
                   help="image data held resident as uint8, or streamed from disk through a DataLoader (auto: "
                        "stream when above $TRANSFER_LAB_MAX_RESIDENT_MB)")
    s.add_argument("--loader-workers", type=int, default=d.loader_workers,
                   help="DataLoader worker processes when streaming")
    s.add_argument("--store", default="", help="run store path (default: the per-user store)")
    s.add_argument("--executor", default="local", metavar="local|ray[=ADDRESS]",
                   help="where jobs run: local (this process) or ray[=ADDRESS], a Ray cluster "
                            "(ADDRESS as for ray.init: auto, ray://head:10001; none: $TRANSFER_LAB_RAY_ADDRESS or a local Ray)")
    s.add_argument("--no-baseline", action="store_true", help="skip the matched target_only baseline (no NTG)")
    s.add_argument("--quiet", action="store_true", help="no progress bar")
    s.add_argument("--json", action="store_true", help="print one JSON object on stdout")
    s.set_defaults(func=_cmd_run)

    s = sub.add_parser("gap", help="MMD² (with p-value) and proxy A-distance between two domains, in input space")
    s.add_argument("--source", required=True)
    s.add_argument("--target", required=True)
    s.add_argument("--seed", type=int, default=0)
    s.add_argument("--permutations", type=int, default=200)
    s.add_argument("--max-points", type=int, default=None, metavar="N",
                   help="points per domain, a seeded sample (default: as many as the app's Data page uses)")
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
    s.add_argument("--quarantine", action="store_true",
                   help="move a damaged run store aside (to NAME.corrupt-TIME, kept) so that a new one starts")
    s.add_argument("--store", default="")
    s.add_argument("--json", action="store_true")
    s.set_defaults(func=_cmd_runs)

    _add_sweep_parser(sub, d)
    return p


class Terminated(KeyboardInterrupt):
    """SIGTERM or SIGHUP, raised in the main thread like Ctrl-C's KeyboardInterrupt, so that a
    run being trained is finished as ``interrupted`` in the store instead of left "running"."""

    def __init__(self, signum: int):
        self.signum = signum
        super().__init__(f"terminated by {signal.Signals(signum).name}")


def _raise_terminated(signum, _frame):
    raise Terminated(signum)


def _ending_signals() -> list[int]:
    return [getattr(signal, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal, name)]


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(argv)
    previous = {}
    if threading.current_thread() is threading.main_thread():  # signal handlers live in the main thread
        for signum in _ending_signals():
            previous[signum] = signal.signal(signum, _raise_terminated)
    try:
        return args.func(args)
    except TransferLabError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    except Terminated as exc:
        print(f"interrupted: {exc}", file=sys.stderr)
        return 128 + exc.signum
    except OSError as exc:  # an output path that cannot be written (a missing directory, a full disk)
        where = f": {exc.filename}" if exc.filename else ""
        print(f"error: {exc.strerror or exc}{where}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("interrupted", file=sys.stderr)
        return 130
    finally:
        for signum, handler in previous.items():
            if handler is not None:  # None: set outside Python, cannot be put back
                signal.signal(signum, handler)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(main())
