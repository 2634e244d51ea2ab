"""Running a planned sweep through :func:`tlcore.api.run_experiment`, or reading what is stored.

Every unique config of a :class:`SweepPlan` is looked up in the run store by its result
key and trained only when it is missing (and training is allowed): re-running a sweep is
cheap, and a stopped one resumes. The spec decides what else its kind measures
(:meth:`SweepSpec.execute`); this module holds the shared machinery.
"""
from __future__ import annotations

import math
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Callable

from ..config import RunConfig
from ..errors import NonFiniteLossError
from ..runs import RunStore, register_live, unregister_live
from .plan import SweepPlan, as_plan
from .results import FailedRun, GapRow, RunRow, SourceResult, SourceScore, SweepResult

if TYPE_CHECKING:
    from .specs import ShiftSweep, SourceSweep, SweepSpec

#: ``progress(fraction, message)``: the whole sweep's progress in [0, 1] and what runs now.
ProgressCallback = Callable[[float, str], None]


class Progress:
    """One progress value over ``total`` units of work (a run or a measurement each)."""

    def __init__(self, total: int, callback: ProgressCallback | None):
        self.total, self.done, self.callback = max(total, 1), 0, callback

    def report(self, within: float, message: str) -> None:
        if self.callback is not None:
            self.callback(min(1.0, (self.done + within) / self.total), message)

    def finish_unit(self, message: str) -> None:
        self.done += 1
        self.report(0.0, message)


@dataclass
class _Outcome:
    run_id: str
    target_accuracy: float
    source_accuracy: float


class Executor:
    """Runs unique configs through :func:`tlcore.api.run_experiment`, reusing stored runs."""

    def __init__(self, store: RunStore, stop, progress: Progress, on_run: Callable[[str], None] | None,
                 train: bool, tags: dict):
        self.store, self.stop, self.progress, self.on_run = store, stop, progress, on_run
        self.train, self.tags = train, tags
        self.outcomes: dict[str, _Outcome] = {}
        self.failures: dict[str, str] = {}
        self.missing: set[str] = set()  # looked up and absent while not training: not asked again

    @property
    def stopped(self) -> bool:
        return self.stop is not None and self.stop.is_set()

    def lookup(self, key: str) -> _Outcome | None:
        if key not in self.outcomes and (self.train or key not in self.missing):
            found = self.store.find_run(key, status="done")
            if found is not None and "target_accuracy" in found.metrics:
                self.outcomes[key] = _Outcome(found.id, float(found.metrics["target_accuracy"]),
                                              float(found.metrics.get("source_accuracy", math.nan)))
            elif not self.train:
                # Collecting trains nothing, so one store query per key is enough (a redraw
                # looks each key up twice: for the runs, then for their rows and baselines).
                self.missing.add(key)
        return self.outcomes.get(key)

    def ensure(self, config: RunConfig, message: str, key: str | None = None) -> _Outcome | None:
        """The stored outcome of ``config`` (result key ``key`` when known), training it first
        when allowed and needed."""
        if key is None:
            from ..api import result_key
            key = result_key(config)
        found = self.lookup(key)
        if found is not None or not self.train or self.stopped or key in self.failures:
            self.progress.finish_unit(message)
            return found
        found = self._train(config, key, message)
        self.progress.finish_unit(message)
        return found

    def _baseline_stored(self, config: RunConfig) -> bool:
        from ..api import baseline_config, result_key
        base = baseline_config(config)
        return base is not None and self.lookup(result_key(base)) is not None

    def _train(self, config: RunConfig, key: str, message: str) -> _Outcome | None:
        from .. import events as ev
        from ..api import run_experiment
        from ..train import Trainer, resolved_config

        trainer = Trainer(config)  # validates and loads the data before anything is stored
        run_id = self.store.create_run(resolved_config(config).to_dict(), status="queued", tags=self.tags)
        register_live(run_id)
        if self.on_run is not None:
            self.on_run(run_id)

        def on_event(_run_id: str, event) -> None:
            if isinstance(event, ev.StepEvent):
                self.progress.report(event.step / max(1, event.total_steps), message)

        try:
            # A planned baseline trains before the runs it serves (see SweepPlan.configs), so
            # run_experiment finds it and records the NTG; a run whose baseline is not stored
            # (the source_only runs that score sources) is recorded without one rather than
            # training an extra run outside the sweep's plan.
            outcome = run_experiment(config, store=self.store, stop=self.stop, run_id=run_id, tags=self.tags,
                                     on_event=on_event, with_baseline=self._baseline_stored(config),
                                     trainer=trainer)
        except NonFiniteLossError as exc:
            self.failures[key] = str(exc)  # recorded as failed by run_experiment; the sweep goes on
            return None
        finally:
            unregister_live(run_id)
        if outcome.status != "done":
            return None
        m = outcome.metrics
        found = _Outcome(outcome.run_id, float(m["target_accuracy"]), float(m.get("source_accuracy", math.nan)))
        self.outcomes[key] = found
        return found


def execute_plan(plan: SweepPlan, store: RunStore, stop, progress: Progress, on_run, train: bool) -> Executor:
    """Look up (and, with ``train``, train the missing of) every config of ``plan``, in order."""
    executor = Executor(store, stop, progress, on_run, train, tags={"sweep": plan.spec.kind})
    for planned in plan.configs:
        executor.ensure(planned.config, planned.message, planned.key)
    return executor


def rows_from(plan: SweepPlan, executor: Executor) -> tuple[tuple[RunRow, ...], tuple[FailedRun, ...]]:
    """The row of every planned run the executor found (with its NTG against its stored baseline),
    and the planned runs that failed."""
    from ..metrics import negative_transfer_gap
    rows, failed = [], []
    for p, key, base_key in zip(plan.runs, plan.keys, plan.baseline_keys):
        outcome = executor.lookup(key)
        if outcome is None:
            if key in executor.failures:
                failed.append(FailedRun(p.arm, p.x, p.seed, executor.failures[key]))
            continue
        baseline = executor.lookup(base_key) if base_key is not None else None
        ntg = (negative_transfer_gap(outcome.target_accuracy, baseline.target_accuracy)
               if baseline is not None else None)
        rows.append(RunRow(arm=p.arm, strategy=p.config.strategy, x=p.x, seed=p.seed,
                           target_accuracy=outcome.target_accuracy, source_accuracy=outcome.source_accuracy,
                           ntg=ntg, target_only_accuracy=None if baseline is None else baseline.target_accuracy,
                           run_id=outcome.run_id))
    return tuple(rows), tuple(failed)


def run_plan(plan: SweepPlan, store: RunStore, stop, progress: ProgressCallback | None, on_run, train: bool,
             measurements: int = 0):
    """Execute ``plan`` with ``measurements`` more units of progress to come; return
    ``(rows, failed, tracker)`` (the tracker carries on over the measurements)."""
    tracker = Progress(len(plan.configs) + measurements, progress)
    executor = execute_plan(plan, store, stop, tracker, on_run, train)
    rows, failed = rows_from(plan, executor)
    return rows, failed, tracker


# ---------------------------------------------------------------------------- measurements
def shift_gaps(spec: "ShiftSweep", max_points: int = 500, stop=None,
               progress: Callable[[str], None] | None = None) -> tuple[GapRow, ...]:
    """Input-space MMD² and proxy A-distance between the source and target training inputs at
    every shift value and seed (:func:`tlcore.inspection.input_gap`, no permutation test).
    Label shifts (``label_noise``, ``permute``) leave the inputs alone, so their gap stays near 0:
    an input-space gap cannot see a change of task."""
    from ..data import make_pair
    from ..inspection import input_gap
    gaps = []
    for value in spec.values:
        source, target = spec.specs_at(value)
        for seed in spec.seeds:
            if stop is not None and stop.is_set():
                return tuple(gaps)
            pair = make_pair(source, target, seed=seed, data_dir=spec.base.data_dir or None)
            report = input_gap(pair, seed=seed, max_points=max_points, num_permutations=0)
            gaps.append(GapRow(value=value, seed=seed, mmd2=report.mmd2, pad=report.pad))
            if progress is not None:
                progress(f"domain gap at {spec.shift}={value:g}, seed {seed}")
    return tuple(gaps)


def _source_score(source: str, seed: int, run_id: str, store: RunStore, max_points: int) -> SourceScore:
    import torch

    from ..api import load_trained
    from ..embed import extract_features
    from ..inspection import input_gap
    from ..transferability import logme_score

    trainer, _ = load_trained(run_id, store)
    pair = trainer.pair
    labelled = pair.target_labelled
    with torch.no_grad():
        features = extract_features(trainer.model, pair.target.x_train[labelled], device=trainer.device)
    logme = logme_score(features, pair.target.y_train[labelled].numpy())
    gap = input_gap(pair, seed=seed, max_points=max_points, num_permutations=0)
    return SourceScore(source=source, seed=seed, mmd2=gap.mmd2, pad=gap.pad, logme=logme, run_id=run_id)


def _scores(spec: "SourceSweep", executor: Executor, max_points: int) -> tuple[SourceScore, ...]:
    scores = []
    for source in spec.sources:
        for seed in spec.seeds:
            message = f"scoring source {source}, seed {seed}"
            outcome = executor.ensure(spec.source_only_config(source, seed), message)
            if outcome is None:
                continue
            scores.append(_source_score(source, seed, outcome.run_id, executor.store, max_points))
    return tuple(scores)


def run_source(plan: SweepPlan, store: RunStore, stop, progress_callback, on_run, *, train_outcomes: bool,
               max_points: int = 500, train_scores: bool = True) -> SourceResult:
    """A source sweep with its before part: score every source (training its source_only runs when
    ``train_scores``), then the outcome runs (trained when ``train_outcomes``)."""
    spec: SourceSweep = plan.spec
    outcome_configs = plan.configs if train_outcomes else ()
    progress = Progress(len(spec.sources) * len(spec.seeds) + len(outcome_configs), progress_callback)
    executor = Executor(store, stop, progress, on_run, train_scores, tags={"sweep": spec.kind})
    scores = _scores(spec, executor, max_points)
    executor.train = train_outcomes
    for planned in outcome_configs:
        executor.ensure(planned.config, planned.message, planned.key)
    rows, failed = rows_from(plan, executor)
    complete = len(scores) == len(spec.sources) * len(spec.seeds) and (not train_outcomes or len(rows) == len(plan))
    return spec.build_result(plan.runs, rows, failed, scores=scores, complete=complete)


def score_sources(spec: "SourceSweep | SweepPlan", store: RunStore | None = None, *, stop=None,
                  progress: ProgressCallback | None = None, on_run: Callable[[str], None] | None = None,
                  max_points: int = 500) -> SourceResult:
    """The *before* part of a source sweep alone: one ``source_only`` run per source and seed
    (reused when stored), then each source's gap and LogME (:class:`SourceScore`). The result's
    ``rows`` hold whatever outcome runs are already stored (none are trained)."""
    return run_source(as_plan(spec), store or RunStore(), stop, progress, on_run, train_outcomes=False,
                      max_points=max_points)


# ---------------------------------------------------------------------------- the entry points
def run_sweep(spec: "SweepSpec | SweepPlan", store: RunStore | None = None, *, stop=None,
              progress: ProgressCallback | None = None, on_run: Callable[[str], None] | None = None,
              train: bool = True, with_measurements: bool = True) -> SweepResult:
    """Run (or, with ``train=False``, only collect) a sweep and summarise it.

    Parameters
    ----------
    spec : BudgetSweep | ShiftSweep | SourceSweep | ComparisonSweep | SweepPlan
        The sweep, or its plan (:meth:`SweepSpec.plan`) resolved before: then nothing is
        planned again.
    store : RunStore
        Where runs are found and recorded (default: the per-user store).
    stop : object with ``is_set()``, optional
        Checked between runs and, inside a run, between steps; a stopped sweep
        returns what it has (``complete`` False).
    progress : ``progress(fraction, message)``, optional
        The whole sweep's progress in [0, 1], updated within runs too.
    on_run : ``on_run(run_id)``, optional
        Called with the id of every run the sweep creates, before it trains.
    train : bool
        False: train nothing, report what the store holds.
    with_measurements : bool
        Shift sweeps: compute the input-space gaps; source sweeps: the before
        part (scores). Without them the result has empty ``gaps`` / ``scores``.
    """
    plan = as_plan(spec)
    return plan.spec.execute(plan, store or RunStore(), stop=stop, progress=progress, on_run=on_run, train=train,
                             measure=with_measurements)


def collect_sweep(spec: "SweepSpec | SweepPlan", store: RunStore | None = None) -> SweepResult:
    """What the store holds for the sweep now, without training or measuring anything. Given the
    sweep's held :class:`SweepPlan`, it only reads the stored runs of the planned keys: cheap
    enough for every redraw while a sweep job fills the store (curves that fill in live)."""
    return run_sweep(spec, store, train=False, with_measurements=False)


def sweep_work(spec: "SweepSpec | SweepPlan", store: RunStore,
               on_result: Callable[[SweepResult], None] | None = None) -> Callable[[Any], None]:
    """A ``work(job)`` function for :meth:`tlcore.worker.Worker.start_job`: runs the sweep (or its
    held plan) with the job's stop flag, keeps ``job.progress`` / ``job.message`` current,
    appends every new run id to ``job.run_ids``, and hands the final result to ``on_result``."""
    def work(job) -> None:
        def progress(fraction: float, message: str) -> None:
            job.progress, job.message = fraction, message

        result = run_sweep(spec, store, stop=job.stop_event, progress=progress, on_run=job.run_ids.append)
        job.message = "stopped" if job.stop_event.is_set() else "done"
        if on_result is not None:
            on_result(result)
    return work
