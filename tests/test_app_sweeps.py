"""The Negative-transfer and Lessons pages under Streamlit's AppTest.

Sweeps here are tiny (moons, 2 epochs, one or two points) so that each test takes seconds;
the phenomena themselves are checked in tests/test_lessons.py and tests/test_phenomena.py.
"""
from __future__ import annotations

import json
import time

import pytest

from pages import _keys as K
from tests.test_app_pages import assert_clean, open_page, wait_for_jobs, _quiet_app  # noqa: F401
from tlcore.config import RunConfig
from tlcore.lessons import LESSONS
from tlcore.runs import RunStore
from tlcore.sweeps import BudgetSweep, ShiftSweep, run_sweep

NT_PAGE = "pages/negative.py"
LESSONS_PAGE = "pages/lessons.py"

TINY_BUDGET = {K.nt("budget", "source"): "moons", K.nt("budget", "target"): "moons:rotate=60",
               K.nt("budget", "adaptation"): "none", K.nt("budget", "budgets"): "1, 3",
               K.nt("budget", "seeds"): 1, K.nt("budget", "epochs"): 2}


def chart_keys(at) -> list[str]:
    """The keys of the charts drawn (Streamlit puts a widget's user key in its element id)."""
    return [c.proto.id for c in at.get("plotly_chart")]


def figure(at, name: str) -> dict:
    for chart in at.get("plotly_chart"):
        if name in chart.proto.id:
            return json.loads(chart.proto.spec)
    raise AssertionError(f"no chart {name!r} among {chart_keys(at)}")


def texts(at) -> str:
    return "\n".join([m.value for m in at.markdown] + [c.value for c in at.caption] + [e.value for e in at.error]
                     + [i.value for i in at.info])


def test_budget_experiment_runs_as_one_sweep_job_and_fills_the_figure():
    at = open_page(NT_PAGE, TINY_BUDGET)
    assert "No runs of this sweep are stored yet" in texts(at)
    at.button(key=K.nt_button("budget", "start")).click().run()
    assert_clean(at)
    job_id = at.session_state[K.nt_state("budget", "job")]
    assert job_id.startswith("sweep-")
    wait_for_jobs()
    at.run()
    assert_clean(at)
    fig = figure(at, "chart.nt.budget.budget")
    names = {t.get("name") for t in fig["data"]}
    assert {"target_only (no source)", "finetune"} <= names
    assert "2 of 2 planned runs stored" in texts(at) or "4 of 4 planned runs stored" in texts(at)
    # the runs are ordinary runs of the store, tagged with their sweep
    runs = RunStore().list_runs(status="done")
    assert {r.strategy for r in runs} == {"target_only", "finetune"}
    assert all(r.tags.get("sweep") == "budget" for r in runs)
    assert at.get("download_button")  # CSV and the sweep file


def test_a_sweep_in_the_store_shows_at_once_without_training():
    spec = BudgetSweep(source="moons", target="moons:rotate=60", adaptation=None, budgets=(1, 3), seeds=(0,),
                       base=RunConfig(epochs=2))
    run_sweep(spec, RunStore())
    before = RunStore().count_runs()
    at = open_page(NT_PAGE, TINY_BUDGET)
    assert not at.session_state[K.nt_state("budget", "job")] if K.nt_state("budget", "job") in at.session_state \
        else True
    assert "chart.nt.budget.budget" in " ".join(chart_keys(at))
    verdicts = texts(at)
    assert "finetune" in verdicts and ("negative transfer there" in verdicts or "at or above target_only" in verdicts)
    assert RunStore().count_runs() == before  # nothing trained


def test_an_ended_sweep_bar_shows_the_share_of_planned_runs_stored():
    """A stopped sweep drew a full bar over "41 of 54 planned runs stored" (issue 12, item 13)."""
    from pages import _sweep_ui as sw
    from tlcore.worker import FINISHED, Job

    run_sweep(BudgetSweep(source="moons", target="moons:rotate=60", adaptation=None, budgets=(1, 3), seeds=(0,),
                          base=RunConfig(epochs=2)), RunStore())
    planned = BudgetSweep(source="moons", target="moons:rotate=60", adaptation=None, budgets=(1, 2, 3),
                          seeds=(0,), base=RunConfig(epochs=2))
    result = sw.stored_result(planned)
    stopped = Job(job_id="sweep-stopped", kind="sweep", state=FINISHED, payload={}, progress=1.0,
                  message="stopped")
    fraction, text = sw.job_progress(stopped, result)
    assert fraction == pytest.approx(4 / 6) and text == "stopped · 4 of 6 planned runs stored"
    failed = Job(job_id="sweep-failed", kind="sweep", state=FINISHED, payload={}, progress=1.0, error="boom\nmore")
    assert sw.job_progress(failed, result) == (pytest.approx(4 / 6), "failed: boom · 4 of 6 planned runs stored")


def test_shift_experiment_draws_the_gap_on_a_second_axis():
    settings = {K.NT_EXPERIMENT: "shift", K.nt("shift", "values"): "0, 60", K.nt("shift", "seeds"): 1,
                K.nt("shift", "epochs"): 2, K.nt("shift", "labels"): 2}
    spec = ShiftSweep(source="moons", target="moons", shift="rotate", values=(0, 60), adaptation="dann",
                      target_labels=2, seeds=(0,), base=RunConfig(epochs=2))
    run_sweep(spec, RunStore(), with_measurements=False)
    at = open_page(NT_PAGE, settings)
    fig = figure(at, "chart.nt.shift.shift")
    assert [t["name"] for t in fig["data"] if t.get("yaxis") == "y2"] == ["MMD² (inputs)", "proxy A-distance (inputs)"]
    assert fig["layout"]["xaxis"]["title"]["text"] == "rotation of the target (degrees)"


def test_source_experiment_scores_before_and_correlates_after():
    settings = {K.NT_EXPERIMENT: "source", K.nt("source", "target"): "moons",
                K.nt("source", "sources"): "moons:rotate=20\nmoons:rotate=70\nmoons:permute",
                K.nt("source", "seeds"): 1, K.nt("source", "epochs"): 2, K.nt("source", "labels"): 2}
    at = open_page(NT_PAGE, settings)
    at.button(key=K.nt_button("source", "score")).click().run()
    wait_for_jobs()
    at.run()
    assert_clean(at)
    assert "chart.nt.source.scores" in " ".join(chart_keys(at))
    assert "Only the *before* part is measured so far" in texts(at)
    at.button(key=K.nt_button("source", "start")).click().run()
    wait_for_jobs()
    at.run()
    assert_clean(at)
    keys = " ".join(chart_keys(at))
    assert "chart.nt.source.outcome" in keys and "chart.nt.source.logme_vs_ntg" in keys
    assert "Spearman ρ" in texts(at) or "ρ undefined" in json.dumps(figure(at, "logme_vs_ntg"))


@pytest.mark.parametrize("setting, value, words", [
    (K.nt("budget", "budgets"), "1, two", "neither"),
    (K.nt("budget", "source"), "nosuchdata", "unknown dataset"),
    (K.nt("budget", "target"), "moons:rotate=999", "rotate"),
])
def test_bad_sweep_settings_get_a_clear_error_and_no_start(setting, value, words):
    at = open_page(NT_PAGE, {**TINY_BUDGET, setting: value})
    assert words in "\n".join(e.value for e in at.error)
    assert at.button(key=K.nt_button("budget", "start")).disabled


def test_stop_ends_the_sweep_and_keeps_what_finished():
    settings = {**TINY_BUDGET, K.nt("budget", "epochs"): 400, K.nt("budget", "budgets"): "1, 2, 3"}
    at = open_page(NT_PAGE, settings)
    at.button(key=K.nt_button("budget", "start")).click().run()
    # the sweep trains in a worker process: stop it once its first run has started
    deadline = time.time() + 300
    while not RunStore().list_runs(status="running") and time.time() < deadline:
        time.sleep(0.1)
    at.button(key=K.nt_button("budget", "stop")).click().run()
    assert_clean(at)
    wait_for_jobs(30)
    at.run()
    assert_clean(at)
    statuses = {r.status for r in RunStore().list_runs()}
    assert "stopped" in statuses and "running" not in statuses


def test_rerun_a_point_opens_it_live_on_the_train_page():
    spec = BudgetSweep(source="moons", target="moons:rotate=60", adaptation=None, budgets=(1,), seeds=(0,),
                       base=RunConfig(epochs=2))
    run_sweep(spec, RunStore())
    at = open_page(NT_PAGE, {**TINY_BUDGET, K.nt("budget", "budgets"): "1"})
    at.button(key="btn.nt.budget.rerun").click().run()
    assert_clean(at)
    run_id = at.session_state[K.RUN_ID]
    assert run_id and RunStore().get_run(run_id).target == "moons:rotate=60"
    assert at.session_state[K.dataset("target")] == "moons"  # the pages now hold that config


@pytest.mark.parametrize("name", list(LESSONS))
def test_every_lesson_shows_its_precomputed_result_with_claims_that_hold(name):
    at = open_page(LESSONS_PAGE, {K.LESSON: name})
    assert LESSONS[name].title in [h.value for h in at.header]
    at.button(key=K.lesson_button("precomputed")).click().run()
    assert_clean(at)
    assert not at.error, [e.value for e in at.error]
    assert at.get("plotly_chart")
    marks = [m.value for m in at.markdown if "✔ holds" in m.value or "✘ does not hold" in m.value]
    assert len(marks) == len(LESSONS[name].claims) and all("✔ holds" in m for m in marks), marks


def test_a_lesson_runs_live_and_checks_its_claim():
    name = "importance_weighting_covariate_shift"  # the quickest lesson (about 3 s on one core)
    at = open_page(LESSONS_PAGE, {K.LESSON: name})
    at.button(key=K.lesson_button("start")).click().run()
    assert_clean(at)
    wait_for_jobs(180)
    at.run()
    assert_clean(at)
    assert "From the run store" in texts(at)
    assert any("✔ holds" in m.value or "✘ does not hold" in m.value for m in at.markdown)
    assert len(RunStore().list_runs(status="done")) == 9  # 3 arms x 3 seeds


def test_a_link_opens_the_negative_transfer_page_on_its_setup():
    query = {"experiment": "shift", "shift.shift": "permute", "shift.values": "0, 0.5", "shift.epochs": "3"}
    at = open_page(NT_PAGE, query=query)
    assert at.session_state[K.NT_EXPERIMENT] == "shift"
    assert at.session_state[K.nt("shift", "shift")] == "permute"
    assert at.session_state[K.nt("shift", "epochs")] == 3
    assert at.radio(key=K.NT_EXPERIMENT).value == "shift"


def test_a_bad_link_value_is_refused_with_a_warning_not_a_traceback():
    at = open_page(NT_PAGE, query={"experiment": "budget", "budget.adaptation": "nosuch", "budget.seeds": "99"})
    warning = "\n".join(w.value for w in at.warning)
    assert "budget.adaptation" in warning and "budget.seeds" in warning
    assert at.session_state[K.nt("budget", "adaptation")] == "dann"  # the default kept


def test_a_link_opens_one_lesson():
    name = "too_much_alignment"
    at = open_page(LESSONS_PAGE, query={"lesson": name})
    assert at.session_state[K.LESSON] == name
    assert LESSONS[name].title in [h.value for h in at.header]


def test_settings_changed_on_the_page_go_into_the_url():
    at = open_page(NT_PAGE, TINY_BUDGET)
    at.text_input(key=K.nt("budget", "target")).set_value("moons:rotate=45").run()
    assert_clean(at)
    assert at.query_params.get("budget.target") in (["moons:rotate=45"], "moons:rotate=45")


def test_a_refresh_reattaches_to_the_running_sweep_from_the_url():
    settings = {**TINY_BUDGET, K.nt("budget", "epochs"): 400, K.nt("budget", "budgets"): "1, 2, 3"}
    at = open_page(NT_PAGE, settings)
    at.button(key=K.nt_button("budget", "start")).click().run()
    job_id = at.session_state[K.nt_state("budget", "job")]
    assert at.query_params.get("sweep") in ([job_id], job_id)
    # a new session (a refresh: the URL keeps ?owner=) opened on that link shows the same sweep, live
    again = open_page(NT_PAGE, settings, query={"sweep": job_id, "owner": at.session_state[K.OWNER]})
    assert again.session_state[K.nt_state("budget", "job")] == job_id
    assert any("Sweep:" in p.proto.text for p in again.get("progress")), "no live progress bar"
    again.button(key=K.nt_button("budget", "stop")).click().run()  # and can stop it
    wait_for_jobs(30)
    assert {r.status for r in RunStore().list_runs()} <= {"done", "stopped"}


def test_an_exported_sweep_file_loads_into_the_page_and_a_wrong_one_is_refused(tmp_path):
    from tlcore.sweeps import export_sweep
    spec = ShiftSweep(source="moons", target="moons", shift="rotate", values=(0, 60), adaptation="dann",
                      target_labels=2, seeds=(0,), base=RunConfig(epochs=2))
    path = export_sweep(run_sweep(spec, RunStore()), tmp_path / "shift.json")  # what `tlcore sweep --export` writes
    RunStore().path.unlink()  # the file alone must be enough: no run store behind it
    at = open_page(NT_PAGE, {K.NT_EXPERIMENT: "shift"})
    at.file_uploader(key=K.nt_button("shift", "upload")).set_value(
        ("shift.json", path.read_bytes(), "application/json")).run()
    assert_clean(at)
    assert "Showing the loaded sweep file" in texts(at)
    fig = figure(at, "chart.nt.shift.shift")
    assert [t["name"] for t in fig["data"] if t.get("yaxis") == "y2"] == ["MMD² (inputs)", "proxy A-distance (inputs)"]
    # a budget sweep file on the shift experiment, and a file that is not a sweep at all
    at.file_uploader(key=K.nt_button("shift", "upload")).set_value(
        ("notes.json", b'{"hello": 1}', "application/json")).run()
    assert_clean(at)
    assert "not a Transfer Lab sweep file" in "\n".join(e.value for e in at.error)


def test_a_sweep_over_a_dataset_not_downloaded_points_to_the_data_page(tmp_path):
    data = tmp_path / "datasets"
    data.mkdir()
    settings = {**TINY_BUDGET, K.nt("budget", "source"): "mnist", K.nt("budget", "target"): "usps",
                K.DATA_DIR: str(data)}
    at = open_page(NT_PAGE, settings)
    message = "\n".join(e.value for e in at.error)
    assert "mnist and usps are not downloaded" in message and "Data page" in message, message
    assert at.button(key=K.nt_button("budget", "start")).disabled
    assert not any(data.iterdir())


@pytest.mark.parametrize("experiment", K.EXPERIMENTS)
def test_the_page_defaults_are_the_shipped_sweeps_and_show_at_once(experiment):
    """Issue 12: the Negative-transfer page's default experiments ship precomputed
    (tlcore/sweep_results, remade by ``python -m tlcore.sweeps.shipped``) and show at once,
    labelled as shipped, with "Run it live" beside; nothing trains."""
    from tlcore.sweeps.shipped import DEFAULT_SWEEPS, load_shipped

    at = open_page(NT_PAGE, {K.NT_EXPERIMENT: experiment})
    assert at.session_state[K.nt_state(experiment, "pending")] == DEFAULT_SWEEPS[experiment].to_dict()
    shipped = load_shipped(experiment)
    assert shipped is not None and shipped.rows, f"tlcore/sweep_results/{experiment}.json is missing"
    assert "Shipped result" in texts(at)
    assert at.button(key=K.nt_button(experiment, "live")).label == "Run it live"
    assert any(f"chart.nt.{experiment}." in key for key in chart_keys(at))
    assert RunStore().count_runs() == 0
