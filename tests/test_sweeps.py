"""Sweeps: plans, reuse of stored runs, NTG pairing, progress, stop, the worker job, export and the CLI.

Runs here are one-epoch moons runs (well under a second each): these tests check the
machinery; tests/test_lessons.py checks the science.
"""
import csv
import json
import threading

import pytest
from scipy.stats import spearmanr

from tlcore import runs as runs_module
from tlcore.cli import main
from tlcore.config import RunConfig
from tlcore.errors import ConfigError, TransferLabError, UnknownNameError
from tlcore.runs import RunStore
from tlcore.sweeps import (SWEEP_FORMAT_VERSION, Arm, ArmPoint, BudgetSweep, ComparisonSweep, ShiftResult,
                           GapRow, RunRow, ShiftSweep, SourceScore, SourceSweep, SweepPlan, collect_sweep,
                           export_sweep, load_sweep, plan_sweep, resolve_budgets, run_sweep, score_sources,
                           spec_from_dict, sweep_from_dict, sweep_to_dict, sweep_work)
from tlcore.ntg import summarise_ntg
from tlcore.worker import Worker

BASE = RunConfig(epochs=1, device="cpu", log_every=5)


def budget_spec(**changes):
    values = dict(source="moons", target="moons:rotate=30", adaptation="dann", budgets=(1, 5), seeds=(0, 1),
                  base=BASE)
    values.update(changes)
    return BudgetSweep(**values)


def test_budgets_resolve_all_and_clip_to_the_smallest_class():
    assert resolve_budgets(budget_spec(budgets=(5, 1, 2000, "all", 5))) == (1, 5, 500)  # moons: 500 per class
    # A class-prior shift leaves the rarest target class with fewer examples: "all" is that count.
    skewed = budget_spec(target="moons:prior=4", budgets=("all",), seeds=(0,))
    (largest,) = resolve_budgets(skewed)
    from tlcore.data import make_pair
    assert largest == min(make_pair("moons", "moons:prior=4", seed=0).target.class_counts()) < 500


def test_budget_sweep_rows_ntg_and_negative_region():
    store, progress, created = RunStore(), [], []
    spec = budget_spec()
    result = run_sweep(spec, store, progress=lambda f, m: progress.append(f), on_run=created.append)
    assert result.complete and result.budgets == (1, 5)
    assert [a.label for a in spec.arms] == ["target_only", "finetune", "dann"]
    assert len(result.rows) == 3 * 2 * 2
    # Exactly the planned runs were trained, each once, and none is left registered as live.
    assert sorted(created) == sorted(r.id for r in store.list_runs()) and len(created) == 12
    assert not set(created) & runs_module.live_ids
    # One progress value for the whole sweep: never goes back, ends at 1.
    assert progress == sorted(progress) and progress[-1] == 1.0 and len(progress) > 12
    target_only = {(r.x, r.seed): r for r in result.rows if r.arm == "target_only"}
    for row in result.rows:
        if row.arm == "target_only":
            assert row.ntg is None
            continue
        base = target_only[(row.x, row.seed)]
        assert row.ntg == pytest.approx(base.target_accuracy - row.target_accuracy)
        # ...the same pairing the engine recorded on the run itself.
        assert store.get_run(row.run_id).metrics["baseline_run_id"] == base.run_id
    for point in result.points:
        gaps = [r.ntg for r in result.rows if r.arm == point.arm and r.x == point.x and r.ntg is not None]
        assert point.ntg == (summarise_ntg(gaps) if gaps else None)
        assert (point.x in result.negative_budgets(point.arm)) == (point.ntg is not None and point.ntg.mean > 0)
    assert result.to_rows()[0].keys() == {"strategy", "k", "seed", "target_accuracy", "ntg", "run_id"}


def test_rerunning_a_sweep_reuses_every_stored_run():
    store = RunStore()
    first = run_sweep(budget_spec(seeds=(0,)), store)
    count = len(store.list_runs())
    progress = []
    again = run_sweep(budget_spec(seeds=(0,)), store, progress=lambda f, m: progress.append(f))
    assert len(store.list_runs()) == count and again.rows == first.rows and progress[-1] == 1.0
    # A larger sweep trains only what is new.
    bigger = run_sweep(budget_spec(seeds=(0,), budgets=(1, 5, 2)), store)
    assert len(store.list_runs()) == count + 3 and set(first.rows) <= set(bigger.rows)


def test_collect_trains_nothing():
    store = RunStore()
    empty = collect_sweep(budget_spec(), store)
    assert empty.rows == () and not empty.complete and store.list_runs() == []
    run_sweep(budget_spec(seeds=(0,)), store)
    partial = collect_sweep(budget_spec(), store)  # seed 1 not run yet
    assert {r.seed for r in partial.rows} == {0} and not partial.complete


def test_collecting_from_a_held_plan_reads_the_store_and_never_plans_again(monkeypatch):
    store = RunStore()
    spec = budget_spec(adaptation=None, budgets=(1, "all"), seeds=(0,))
    plan = spec.plan()
    assert isinstance(plan, SweepPlan) and plan.runs == plan_sweep(spec) and len(plan.keys) == len(plan.runs)
    trained = run_sweep(plan, store)
    assert trained.complete and trained.budgets == (1, 500)
    replanned = collect_sweep(spec, store)

    def no_planning(*args, **kwargs):
        raise AssertionError("the held plan was planned again")
    # Planning resolves "all" by loading every seed's data and computes every result key: neither may run.
    import tlcore.api
    import tlcore.data
    monkeypatch.setattr(BudgetSweep, "plan", no_planning)
    monkeypatch.setattr(tlcore.data, "make_pair", no_planning)
    monkeypatch.setattr(tlcore.api, "result_key", no_planning)
    held = collect_sweep(plan, store)
    assert held == replanned == trained
    with pytest.raises(AssertionError, match="planned again"):
        collect_sweep(spec, store)


def _result_of_every_kind():
    """One result of each kind from hand-written rows (no training): budget, shift, source, comparison."""
    def rows(plan, seed_step=0.01):
        return tuple(RunRow(arm=p.arm, strategy=p.config.strategy, x=p.x, seed=p.seed,
                            target_accuracy=0.5 + seed_step * p.seed + (0.1 if p.arm == "target_only" else 0.0),
                            source_accuracy=0.9, ntg=None if p.arm == "target_only" else 0.1,
                            target_only_accuracy=None if p.arm == "target_only" else 0.6, run_id=f"r{i}")
                     for i, p in enumerate(plan))
    budget = budget_spec()
    shift = ShiftSweep("moons", "moons", values=(0, 45), target_labels=1, seeds=(0, 1), base=BASE)
    source = SourceSweep("moons", ("moons:rotate=15", "moons:rotate=60"), target_labels=1, seeds=(0,), base=BASE)
    comparison = ComparisonSweep(arms=(("a", BASE), ("b", BASE.replace(strategy="dann"))), seeds=(0, 1))
    results = []
    for spec in (budget, shift, source, comparison):
        plan = plan_sweep(spec)
        gaps = tuple(GapRow(value=v, seed=s, mmd2=v / 100, pad=v / 50) for v in (0.0, 45.0) for s in (0, 1))
        scores = (SourceScore("moons:rotate=15", 0, 0.1, 0.2, 1.5, "s0"),
                  SourceScore("moons:rotate=60", 0, 0.7, 1.2, 0.5, "s1"))
        results.append(spec.build_result(plan, rows(plan)[:-1], (), gaps=gaps, scores=scores))
    return results


@pytest.mark.parametrize("index", range(4), ids=["budget", "shift", "source", "comparison"])
def test_sweep_from_dict_round_trips_every_kind(index):
    result = _result_of_every_kind()[index]
    doc = json.loads(json.dumps(sweep_to_dict(result)))
    again = sweep_from_dict(doc)
    assert again == result and type(again) is type(result) and not again.complete
    assert sweep_to_dict(again) == doc
    with pytest.raises(TransferLabError, match="not a Transfer Lab sweep"):
        sweep_from_dict({**doc, "format": "other"})
    with pytest.raises(TransferLabError, match="malformed"):
        sweep_from_dict({**doc, "rows": [{"arm": "x"}]})


class StopAfter:
    """A stop flag that is set once ``n`` runs have started."""

    def __init__(self, n):
        self.n, self.event = n, threading.Event()

    def on_run(self, run_id):
        self.n -= 1
        if self.n < 0:
            self.event.set()

    def is_set(self):
        return self.event.is_set()


def test_a_stopped_sweep_returns_what_it_has_and_resumes():
    store, stop = RunStore(), StopAfter(2)
    result = run_sweep(budget_spec(), store, stop=stop, on_run=stop.on_run)
    assert not result.complete
    statuses = sorted(r.status for r in store.list_runs())
    assert statuses == ["done", "done", "stopped"]
    resumed = run_sweep(budget_spec(), store)
    assert resumed.complete and len(store.list_runs(status="done")) == 12


def test_sweep_as_a_worker_job():
    store, results = RunStore(), []
    job = Worker().start_job("sweep", sweep_work(budget_spec(seeds=(0,)), store, on_result=results.append),
                             job_id="sweep-test")
    job.thread.join(120)
    assert job.error is None and job.progress == 1.0 and job.message == "done"
    assert sorted(job.run_ids) == sorted(r.id for r in store.list_runs()) and len(job.run_ids) == 6
    assert len(results) == 1 and results[0].complete


def test_stopping_a_sweep_job():
    store = RunStore()
    job = Worker().start_job("sweep", sweep_work(budget_spec(base=BASE.replace(epochs=50)), store), job_id="s2")
    while not job.run_ids:
        job.thread.join(0.01)
    job.stop_event.set()
    job.thread.join(30)
    assert not job.alive and job.message == "stopped"
    assert len(job.run_ids) == 1 and store.get_run(job.run_ids[0]).status == "stopped"


def test_shift_sides_and_value_zero():
    rotate = ShiftSweep("moons", "moons", shift="rotate", values=(0, 30), base=BASE)
    assert rotate.specs_at(0) == ("moons", "moons") and rotate.specs_at(30) == ("moons", "moons:rotate=30")
    noise = ShiftSweep("digits", "digits:invert", shift="label_noise", values=(0.5,), base=BASE)
    assert noise.specs_at(0.5) == ("digits:label_noise=0.5", "digits:invert")
    permute = ShiftSweep("digits:invert", "digits", shift="permute", values=(1,), base=BASE)
    assert permute.specs_at(1.0) == ("digits:invert,permute", "digits")  # canonical: permute = permute=1
    assert ShiftSweep("moons", "moons", shift="permute").values == (0.0, 0.25, 0.5, 0.75, 1.0)


def test_shift_sweep_on_a_permuted_source_crosses_over_and_its_input_gap_stays_zero():
    store = RunStore()
    spec = ShiftSweep("moons", "moons", shift="permute", values=(0, 1), target_labels=2, seeds=(0,),
                      base=BASE.replace(epochs=2))
    result = run_sweep(spec, store)
    assert result.complete and len(result.gaps) == 2
    # source and target only trade labels: the inputs are the same distribution.
    for gap in result.gaps:
        assert abs(gap.mmd2) < 0.01 and gap.pad < 0.2
    # target_only does not depend on the source's labels: the same target, the same result.
    target_only = [r for r in result.rows if r.arm == "target_only"]
    assert len(target_only) == 2 and target_only[0].target_accuracy == target_only[1].target_accuracy
    assert result.point("source_only", 1.0).mean_accuracy < 0.5 < result.point("source_only", 0.0).mean_accuracy
    assert result.crossover == 1.0
    rows = result.to_rows()
    assert {"shift_value", "mmd2", "pad"} <= rows[0].keys() and all(r["mmd2"] is not None for r in rows)


def test_rotation_gap_grows_with_the_angle():
    spec = ShiftSweep("moons", "moons", shift="rotate", values=(0, 90), target_labels=1, seeds=(0,), base=BASE)
    from tlcore.sweeps import shift_gaps
    small, large = shift_gaps(spec)
    assert abs(small.mmd2) < 0.01 < large.mmd2


def _shift_result(means, values=(0.0, 10.0, 20.0)):
    spec = ShiftSweep("moons", "moons", values=values, base=BASE)
    points = []
    for value, (adapt, target_only) in zip(values, means):
        points.append(ArmPoint("target_only", "target_only", value, 1, target_only, None, None))
        points.append(ArmPoint("dann", "dann", value, 1, adapt, None, summarise_ntg([target_only - adapt])))
    return ShiftResult(spec=spec, plan=(), rows=(), points=tuple(points), gaps=())


def test_crossover_is_the_first_value_below_target_only():
    assert _shift_result([(0.9, 0.8), (0.7, 0.8), (0.9, 0.8)]).crossover == 10.0
    assert _shift_result([(0.9, 0.8), (0.85, 0.8), (0.81, 0.8)]).crossover is None
    assert _shift_result([(0.7, 0.8), (0.9, 0.8), (0.6, 0.8)]).crossover == 0.0


def test_source_sweep_before_is_cheap_and_after_adds_ntg_and_rank_correlation():
    store = RunStore()
    spec = SourceSweep("moons", ("moons", "moons:rotate=60", "moons:rotate=120"), target_labels=2, seeds=(0,),
                       base=BASE.replace(epochs=3))
    before = score_sources(spec, store)
    assert {r.strategy for r in store.list_runs()} == {"source_only"} and len(store.list_runs()) == 3
    assert [s.source for s in before.scores] == list(spec.sources) and before.rows == ()
    assert all(s.ntg is None and s.logme is not None for s in before.summaries)
    assert all(c.rho is None for c in before.correlations)
    # The gap grows with the rotation; the features of a model trained on the unrotated
    # moons explain the unrotated target's labels best.
    mmd = [s.mmd2 for s in before.summaries]
    assert mmd[0] < mmd[1] < mmd[2]
    assert before.summaries[0].logme > before.summaries[2].logme

    after = run_sweep(spec, store)
    assert after.complete and len(store.list_runs()) == 3 + 3 + 3  # + finetune + target_only per source
    assert after.scores == before.scores  # the source_only runs were reused
    for summary in after.summaries:
        assert summary.ntg is not None and summary.target_accuracy is not None
    by_name = {c.score: c for c in after.correlations}
    expected = spearmanr([s.logme for s in after.summaries], [s.ntg.mean for s in after.summaries])
    assert by_name["logme"].rho == pytest.approx(expected.statistic)
    assert by_name["logme"].n == 3
    assert after.to_rows()[0].keys() >= {"source", "mmd2", "pad", "logme", "ntg_mean", "ntg_label"}


def test_comparison_sweep_and_its_baselines():
    store = RunStore()
    config = RunConfig(source="moons", target="moons:rotate=30", strategy="finetune", target_labels=2, epochs=1,
                       device="cpu")
    spec = ComparisonSweep(arms=(("probe", config.replace(params={"freeze_depth": -1})), ("full", config)),
                           seeds=(3,))
    result = run_sweep(spec, store)
    assert [p.arm for p in result.points] == ["probe", "full"]
    assert all(r.seed == 3 and r.ntg is not None for r in result.rows)
    assert {r.strategy for r in store.list_runs()} == {"finetune", "target_only"} and len(store.list_runs()) == 3


def test_export_and_load_round_trip(tmp_path):
    store = RunStore()
    result = run_sweep(ShiftSweep("moons", "moons", values=(0, 45), target_labels=1, seeds=(0,), base=BASE), store)
    path = export_sweep(result, tmp_path / "out" / "sweep.json")
    doc = json.loads(path.read_text())
    assert doc["format"] == "transfer-lab-sweep" and doc["version"] == SWEEP_FORMAT_VERSION
    assert len(doc["plan"]) == len(result.plan) and doc["plan"][0]["config"]["epochs"] == 1
    loaded = load_sweep(path)
    assert loaded == result
    assert loaded.config_for("dann", 45.0, 0) == result.plan[4].config


def test_load_refuses_other_files(tmp_path):
    newer = tmp_path / "newer.json"
    newer.write_text(json.dumps({"format": "transfer-lab-sweep", "version": SWEEP_FORMAT_VERSION + 1}))
    with pytest.raises(TransferLabError, match="version"):
        load_sweep(newer)
    other = tmp_path / "other.json"
    other.write_text("[1, 2]")
    with pytest.raises(TransferLabError, match="not a Transfer Lab sweep"):
        load_sweep(other)
    with pytest.raises(TransferLabError, match="cannot read"):
        load_sweep(tmp_path / "missing.json")


@pytest.mark.parametrize("spec", [
    budget_spec(),
    ShiftSweep("moons", "moons", shift="label_noise", values=(0.1,), adaptation="mmd",
               adaptation_params={"weight": 3.0}, base=BASE),
    SourceSweep("digits", ("digits:invert", "digits:permute"), strategy="finetune", params={"freeze_depth": -1}),
    ComparisonSweep(arms=(("a", BASE),), seeds=(1, 2)),
])
def test_specs_round_trip_through_dicts(spec):
    assert spec_from_dict(json.loads(json.dumps(spec.to_dict()))) == spec


@pytest.mark.parametrize("make,error", [
    (lambda: budget_spec(budgets=(0,)), ConfigError),
    (lambda: budget_spec(budgets=("most",)), ConfigError),
    (lambda: budget_spec(seeds=()), ConfigError),
    (lambda: budget_spec(seeds=(1, 1)), ConfigError),
    (lambda: budget_spec(adaptation="magic"), UnknownNameError),
    (lambda: budget_spec(adaptation="target_only"), ConfigError),
    (lambda: ShiftSweep("moons", "moons", shift="blur"), ConfigError),
    (lambda: ShiftSweep("moons", "moons", target_labels=0), ConfigError),
    (lambda: SourceSweep("moons", tuple(f"moons:rotate={a}" for a in range(6))), ConfigError),
    (lambda: SourceSweep("moons", ()), ConfigError),
    (lambda: ComparisonSweep(arms=(("a", BASE), ("a", BASE))), ConfigError),
])
def test_bad_specs_are_refused(make, error):
    with pytest.raises(error):
        make()


def test_bad_hyperparameters_are_refused_before_anything_is_stored():
    store = RunStore()
    with pytest.raises(ConfigError):
        run_sweep(budget_spec(adaptation_params={"weight": -5.0}), store)
    assert store.list_runs() == []


def test_arm_labels():
    assert Arm.of("finetune").label == "finetune"
    assert Arm.of("finetune", {"freeze_depth": -1}).label == "finetune (freeze_depth=-1)"
    assert [a.label for a in budget_spec(adaptation="finetune").arms] == ["target_only", "finetune"]
    assert [a.label for a in budget_spec(adaptation=None).arms] == ["target_only", "finetune"]


def test_plan_order_is_by_x_then_seed_then_arm():
    plan = plan_sweep(budget_spec())
    assert [(p.x, p.seed, p.arm) for p in plan[:4]] == [(1, 0, "target_only"), (1, 0, "finetune"), (1, 0, "dann"),
                                                      (1, 1, "target_only")]
    assert all(p.config.seed == p.seed and p.config.target_labels == p.x for p in plan)


# ------------------------------------------------------------------------------ command line
FAST = ["--epochs", "1", "--device", "cpu"]


def test_cli_budget_json_and_csv(capsys, tmp_path):
    args = ["sweep", "budget", "--source", "moons", "--target", "moons:rotate=30", "--budgets", "1", "all",
            "--adaptation", "none", "--seeds", "0", *FAST]
    assert main([*args, "--json"]) == 0
    out = capsys.readouterr()
    doc = json.loads(out.out)
    assert doc["kind"] == "budget" and doc["budgets"] == [1, 500] and len(doc["table"]) == 4
    assert "%" in out.err  # the progress bar goes to stderr
    assert main([*args, "--csv", str(tmp_path / "b.csv"), "--quiet"]) == 0
    rows = list(csv.DictReader(open(tmp_path / "b.csv")))
    assert [r["strategy"] for r in rows] == ["target_only", "finetune"] * 2
    assert capsys.readouterr().err == ""  # --quiet
    assert len(RunStore().list_runs()) == 4  # the second command reused every run


def test_cli_source_before_only_and_table(capsys):
    code = main(["sweep", "source", "--target", "moons", "--sources", "moons", "moons:rotate=90",
                 "--target-labels", "2", "--before-only", "--quiet", *FAST])
    out = capsys.readouterr().out
    assert code == 0 and "LogME" in out and "moons:rotate=90" in out and "not run yet" in out
    assert {r.strategy for r in RunStore().list_runs()} == {"source_only"}


def test_cli_lesson_exports_a_loadable_file(capsys, tmp_path):
    path = tmp_path / "lesson.json"
    code = main(["sweep", "importance_weighting_covariate_shift", "--seeds", "0", "--export", str(path), "--quiet"])
    out = capsys.readouterr().out
    assert code == 0 and "claim" in out and "importance_weighting" in out
    loaded = load_sweep(path)
    assert loaded.spec.seeds == (0,) and {r.arm for r in loaded.rows} == {"source_only", "importance_weighting",
                                                                         "oracle"}


@pytest.mark.parametrize("args,message", [
    (["budget", "--source", "moons", "--target", "moons", "--budgets", "some"], "--budgets"),
    (["budget", "--source", "moons", "--target", "digits"], ""),
    (["shift", "--source", "moons", "--target", "moons", "--target-labels", "0"], "target_labels"),
    (["source", "--target", "moons", "--sources", "moons", "--strategy", "oracle"], "oracle"),
])
def test_cli_bad_input_is_one_line_and_exit_2(capsys, args, message):
    assert main(["sweep", *args, "--quiet", *FAST]) == 2
    err = capsys.readouterr().err
    assert err.startswith("error: ") and message in err and err.count("\n") == 1


def test_a_shipped_result_made_for_other_defaults_is_refused(tmp_path, monkeypatch):
    """tlcore.sweeps.shipped: the Negative-transfer page never shows a shipped figure for
    settings other than the ones it was made with."""
    import json as json_module

    from tlcore.sweeps import shipped

    doc = json_module.loads((shipped.SHIPPED_DIR / "budget.json").read_text())
    assert shipped.load_shipped("budget").spec == shipped.DEFAULT_SWEEPS["budget"]
    assert shipped.shipped_spec(shipped.DEFAULT_SWEEPS["budget"]) == "budget"
    assert shipped.shipped_spec(shipped.DEFAULT_SWEEPS["budget"].__class__(
        source="moons", target="moons:rotate=45")) is None
    doc["spec"]["seeds"] = [0]
    monkeypatch.setattr(shipped, "SHIPPED_DIR", tmp_path)
    (tmp_path / "budget.json").write_text(json_module.dumps(doc))
    with pytest.raises(TransferLabError, match="python -m tlcore.sweeps.shipped budget"):
        shipped.load_shipped("budget")
    with pytest.raises(UnknownNameError, match="valid experiments: budget, shift, source"):
        shipped.shipped_path("nope")
