"""The sweep figures of the Negative-transfer and Lessons pages, on results with known numbers.

The results are built from hand-written rows through the engine's own constructor
(``spec.build_result``, the one ``load_sweep`` uses), so every shaded region, crossover and
correlation below is known in advance.
"""
from __future__ import annotations

import pytest

from pages import _sweep_ui as sw
from pages._figures import BAD, GOOD
from tlcore.config import RunConfig
from tlcore.sweeps import (BudgetSweep, ComparisonSweep, GapRow, RunRow, ShiftSweep, SourceScore,
                           SourceSweep, plan_sweep, sweep_to_dict)


def rows_for(plan, accuracy):
    """One RunRow per planned run, ``accuracy(arm, x, seed)`` giving its target accuracy, with the
    NTG against the target_only row of the same x and seed."""
    acc = {(p.arm, p.x, p.seed): accuracy(p.arm, p.x, p.seed) for p in plan}
    rows = []
    for i, p in enumerate(plan):
        base = acc.get(("target_only", p.x, p.seed))
        ntg = None if p.arm == "target_only" or base is None else base - acc[(p.arm, p.x, p.seed)]
        rows.append(RunRow(arm=p.arm, strategy=p.config.strategy, x=p.x, seed=p.seed,
                           target_accuracy=acc[(p.arm, p.x, p.seed)], source_accuracy=0.9, ntg=ntg,
                           target_only_accuracy=None if p.arm == "target_only" else base, run_id=f"r{i}"))
    return tuple(rows)


def test_negative_regions_inserts_the_exact_crossings():
    # arm below reference on [1, 2] and after the crossing at 2.5 (arm: 1, 1, 3, 1; reference: 2, 2, 2, 2)
    regions = sw.negative_regions([0, 1, 2, 3], [3, 1, 1, 3], [2, 2, 2, 2])
    assert len(regions) == 1
    x, ref, arm = regions[0]
    assert x == pytest.approx([0.5, 1, 2, 2.5])
    assert ref == pytest.approx([2, 2, 2, 2])
    assert arm == pytest.approx([2, 1, 1, 2])
    # two separate stretches, one at the start and one at the end
    regions = sw.negative_regions([0, 1, 2], [0, 2, 0], [1, 1, 1])
    assert [r[0] for r in regions] == [pytest.approx([0, 0.5]), pytest.approx([1.5, 2])]
    # never below: nothing; equal: nothing
    assert sw.negative_regions([0, 1], [2, 2], [1, 1]) == []
    assert sw.negative_regions([0, 1], [1, 1], [1, 1]) == []


def budget_result():
    spec = BudgetSweep(source="moons", target="moons:rotate=60", adaptation="dann", budgets=(1, 2, 5, "all"),
                       seeds=(0, 1), base=RunConfig(epochs=1))
    plan = plan_sweep(spec)
    # finetune helps at k = 1, 2 and hurts at 5 and all; dann never hurts
    table = {"target_only": {1: 0.6, 2: 0.7, 5: 0.95, plan[-1].x: 0.99},
             "finetune": {1: 0.85, 2: 0.85, 5: 0.88, plan[-1].x: 0.9}}

    def accuracy(arm, x, seed):
        return table[arm][x] + 0.01 * seed if arm in table else 0.999
    return spec.build_result(plan, rows_for(plan, accuracy), ())


def test_budget_figure_shades_exactly_the_negative_region_of_each_arm():
    result = budget_result()
    assert result.negative_budgets("finetune") == (5, result.budgets[-1])
    assert result.negative_budgets("dann") == ()
    fig = sw.budget_figure(result)
    shaded = [t for t in fig.data if t.fill == "toself"]
    assert {t.name for t in shaded} == {"negative transfer (finetune below target_only)"}
    # the shaded polygon starts at the crossing between k = 2 and k = 5 (in log k) and ends at the largest k
    xs = [x for t in shaded for x in t.x]
    assert 2 < min(xs) < 5 and max(xs) == pytest.approx(result.budgets[-1])
    lines = {t.name: t for t in fig.data if t.fill != "toself"}
    assert set(lines) == {"target_only (no source)", "finetune", "dann"}
    assert list(lines["finetune"].y) == pytest.approx([0.855, 0.855, 0.885, 0.905])
    assert lines["finetune"].error_y.visible  # two seeds: a spread to show
    assert fig.layout.xaxis.type == "log"
    assert list(fig.layout.xaxis.ticktext)[-1].endswith("(all)")


def test_shift_figure_marks_the_crossover_and_draws_the_gap_on_a_second_axis():
    spec = ShiftSweep(source="moons", target="moons", shift="rotate", values=(0, 30, 60), adaptation="dann",
                      target_labels=2, seeds=(0,), base=RunConfig(epochs=1))
    plan = plan_sweep(spec)
    acc = {"source_only": {0: 0.99, 30: 0.85, 60: 0.4}, "dann": {0: 0.99, 30: 0.98, 60: 0.9},
           "target_only": {0: 0.75, 30: 0.8, 60: 0.78}}
    rows = rows_for(plan, lambda arm, x, seed: acc[arm][x])
    gaps = tuple(GapRow(value=v, seed=0, mmd2=v / 1000, pad=v / 100) for v in spec.values)
    result = spec.build_result(plan, rows, (), gaps=gaps)
    assert result.crossover_of("source_only") == 60.0 and result.crossover is None
    fig = sw.shift_figure(result)
    second = [t for t in fig.data if t.yaxis == "y2"]
    assert {t.name for t in second} == {"MMD² (inputs)", "proxy A-distance (inputs)"}
    assert list(next(t for t in second if t.name.startswith("MMD")).y) == pytest.approx([0, 0.03, 0.06])
    assert fig.layout.yaxis2.overlaying == "y"
    crossovers = [s for s in fig.layout.shapes if s.type == "line"]
    assert [s.x0 for s in crossovers] == [60.0]
    assert any("source_only turns negative at 60" in a.text for a in fig.layout.annotations)
    assert [t.name for t in fig.data if t.fill == "toself"] == ["negative transfer (source_only below target_only)"]


def test_source_figures_show_scores_before_and_ntg_after_with_the_rank_correlation():
    spec = SourceSweep(target="digits", sources=("digits:rotate=15", "digits:invert", "digits:permute"),
                       target_labels=2, seeds=(0,), base=RunConfig(epochs=1))
    plan = plan_sweep(spec)
    gain = {"digits:rotate=15": 0.9, "digits:invert": 0.7, "digits:permute": 0.5}
    rows = rows_for(plan, lambda arm, x, seed: 0.75 if arm == "target_only" else gain[x])
    scores = tuple(SourceScore(source=s, seed=0, mmd2=m, pad=p, logme=l, run_id=f"s{i}") for i, (s, m, p, l) in
                   enumerate([("digits:rotate=15", 0.1, 0.5, 1.0), ("digits:invert", 0.7, 2.0, 0.5),
                              ("digits:permute", 0.0, 0.0, 1.5)]))
    result = spec.build_result(plan, rows, (), scores=scores)
    names = [name for name, _ in sw.result_figures(result)]
    assert names == ["scores", "outcome", "logme_vs_ntg"]
    outcome = dict(sw.result_figures(result))["outcome"]
    assert list(outcome.data[0].y) == pytest.approx([-0.15, 0.05, 0.25])
    assert list(outcome.data[0].marker.color) == [GOOD, BAD, BAD]
    # LogME ranks permute first and it is the worst: rho(logme, ntg) = +0.5 (the wrong way)
    scatter = dict(sw.result_figures(result))["logme_vs_ntg"]
    assert "Spearman ρ = +0.50 over 3 sources" in scatter.layout.title.text


def test_comparison_figure_has_one_bar_per_arm_and_one_dot_per_seed():
    spec = ComparisonSweep(arms=(("a", RunConfig(strategy="source_only", epochs=1)),
                                 ("b", RunConfig(strategy="dann", epochs=1))), seeds=(0, 1, 2))
    plan = plan_sweep(spec)
    result = spec.build_result(plan, rows_for(plan, lambda arm, x, seed: (0.6 if arm == "a" else 0.8) + 0.01 * seed), ())
    fig = sw.comparison_figure(result, "t")
    bars, dots = fig.data
    assert list(bars.x) == ["a", "b"] and list(bars.y) == pytest.approx([0.61, 0.81])
    assert list(bars.error_y.array) == pytest.approx([0.01, 0.01])
    assert len(dots.x) == 6
    # the value labels sit inside the bars at their foot, clear of the error bars and dots drawn at the top
    assert bars.textposition == "inside" and bars.insidetextanchor == "start"
    assert all(y > 0.5 for y in dots.y) and all(y > 0.5 for y in bars.y)


def test_results_round_trip_through_the_page_file_format():
    result = budget_result()
    again = sw.load_uploaded(sw.export_json(result), "x.json")
    assert sweep_to_dict(again) == sweep_to_dict(result)
    csv_text = sw.rows_csv(result.to_rows()).decode()
    assert csv_text.splitlines()[0] == "strategy,k,seed,target_accuracy,ntg,run_id"
    assert len(csv_text.splitlines()) == 1 + len(result.rows)


@pytest.mark.parametrize("data, words", [(b"not json", "cannot read sweep file"),
                                         (b'{"format": "other"}', "not a Transfer Lab sweep file"),
                                         (b'{"format": "transfer-lab-sweep", "version": 99}', "update Transfer Lab")])
def test_a_bad_sweep_file_gets_a_clear_error(data, words):
    from tlcore.errors import TransferLabError
    with pytest.raises(TransferLabError, match=words):
        sw.load_uploaded(data, "bad.json")


def test_the_sweep_jobs_a_process_keeps_are_bounded_least_recently_used_first():
    plan = ComparisonSweep(arms=(("a", RunConfig(strategy="source_only", epochs=1)),), seeds=(0,)).plan()
    jobs = sw.RecentJobs(3)
    for i in range(5):
        jobs.add(f"j{i}", sw.SweepJob(spec={"kind": "comparison"}, plan=plan))
    assert len(jobs) == 3 and jobs.get("j0") is None and jobs.get("j1") is None
    assert jobs.get("j2") is not None  # read: now the most recently used
    jobs.add("j5", sw.SweepJob(spec={}, plan=plan))
    assert jobs.get("j3") is None and jobs.get("j2") is not None and len(jobs) == 3
    jobs.set_result("j3", object())  # a job dropped before it finished: its result is not kept either
    assert len(jobs) == 3 and jobs.get("j3") is None
    # The page module's own record is one of these, of the documented size.
    assert isinstance(sw._JOBS, sw.RecentJobs) and sw._JOBS.limit == sw.MAX_KEPT_JOBS
