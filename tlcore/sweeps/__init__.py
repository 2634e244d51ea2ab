"""Sweeps: many short runs through the one engine, for the negative-transfer experiments.

Three experiments answer "when does transfer hurt?", and a fourth, plain
comparison serves the classroom lessons (:mod:`tlcore.lessons`):

* :class:`BudgetSweep` — target accuracy against the label budget ``k``
  (labelled target examples per class) for ``target_only``, ``finetune`` and
  one adaptation strategy; the budgets where a transfer strategy lies below
  ``target_only`` are the negative-transfer region.
* :class:`ShiftSweep` — target accuracy of ``source_only``, an adaptation
  strategy and ``target_only`` against the strength of one shift, with the
  input-space MMD² and proxy A-distance at each strength, and the crossover
  where transfer turns negative. Which domain the shift is applied to is fixed
  per shift (:data:`SWEEPABLE_SHIFTS`): ``rotate`` moves the *target* away from
  a clean source; ``label_noise`` and ``permute`` corrupt the *source* while the
  target task, the one measured, stays clean.
* :class:`SourceSweep` — "which source?": up to five candidate sources for one
  target. *Before* training the transfer strategy (:func:`score_sources`), each
  source's input-space domain gap and its LogME transferability score
  (:mod:`tlcore.transferability`) on the labelled target examples, from the
  features of a ``source_only`` model; *after*, the NTG each source gave and
  the Spearman rank correlation between each score and the NTG.
* :class:`ComparisonSweep` — named arms (one run config each) over seeds.

Every sweep is a list of :class:`PlannedRun` executed by
:func:`tlcore.api.run_experiment` into the run store, so the runs show up in
the app like any other. A run whose :func:`~tlcore.api.result_key` is already
stored as done is reused, never trained again: re-running a sweep is cheap,
and a sweep stopped halfway resumes where it stopped. Every run with a label
budget is preceded by its matched ``target_only`` baseline (same pair, budget,
seed), which is how each row gets its NTG.

One progress value in [0, 1] covers the whole sweep; :func:`sweep_work`
wraps a sweep as a :meth:`tlcore.worker.Worker.start_job` job (stop flag,
progress, message and run ids), and :func:`collect_sweep` reads what is stored
so far without training, for curves that fill in live. Results are frozen
dataclasses of floats and strings; ``to_rows()`` gives flat dicts for CSV or
JSON, and :func:`export_sweep` / :func:`load_sweep` write and read a
self-contained, versioned JSON file (configs and results) that the app can
show without recomputing anything.

Layout: :mod:`.specs` (the four kinds, each owning its plan and result), :mod:`.plan`
(:class:`SweepPlan`: resolved once per job, held while it runs), :mod:`.execute` (running
and collecting), :mod:`.results` (rows, points, result classes) and :mod:`.io` (JSON).
"""
from __future__ import annotations

from .execute import ProgressCallback, collect_sweep, run_sweep, score_sources, shift_gaps, sweep_work
from .io import (SWEEP_FORMAT, SWEEP_FORMAT_VERSION, export_sweep, load_sweep, sweep_from_dict, sweep_from_json,
                 sweep_to_dict)
from .plan import PlannedRun, SweepPlan, largest_budget, plan_sweep
from .results import (ArmPoint, BudgetResult, ComparisonResult, FailedRun, GapRow, RankCorrelation, RunRow,
                      ShiftResult, SourceResult, SourceScore, SourceSummary, SweepResult)
from .specs import (ALL_LABELS, MAX_SOURCES, SWEEP_KINDS, SWEEPABLE_SHIFTS, Arm, BudgetSweep, ComparisonSweep,
                    ShiftAxis, ShiftSweep, SourceSweep, SweepSpec, resolve_budgets, spec_from_dict)

__all__ = [
    "SWEEP_FORMAT",
    "SWEEP_FORMAT_VERSION",
    "SWEEPABLE_SHIFTS",
    "SWEEP_KINDS",
    "ALL_LABELS",
    "MAX_SOURCES",
    "ProgressCallback",
    "ShiftAxis",
    "Arm",
    "BudgetSweep",
    "ShiftSweep",
    "SourceSweep",
    "ComparisonSweep",
    "SweepSpec",
    "PlannedRun",
    "SweepPlan",
    "RunRow",
    "FailedRun",
    "ArmPoint",
    "BudgetResult",
    "GapRow",
    "ShiftResult",
    "SourceScore",
    "SourceSummary",
    "RankCorrelation",
    "SourceResult",
    "ComparisonResult",
    "SweepResult",
    "plan_sweep",
    "largest_budget",
    "resolve_budgets",
    "run_sweep",
    "collect_sweep",
    "score_sources",
    "shift_gaps",
    "sweep_work",
    "sweep_to_dict",
    "sweep_from_dict",
    "sweep_from_json",
    "export_sweep",
    "load_sweep",
    "spec_from_dict",
]
