"""Every page of the app under Streamlit's AppTest, with seeded session state.

Each test opens the app, switches to one page and checks that it runs without
an exception and draws the widgets and charts it should. Runs are short
(moons, a few epochs) so that the whole file takes well under a minute on 2 cores.
"""
from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from streamlit.testing.v1 import AppTest

from pages import _keys as K
from tlcore.api import run_experiment
from tlcore.config import RunConfig
from tlcore.runs import RunStore, register_live, unregister_live
from tlcore.worker import get_worker

APP = str(Path(__file__).resolve().parents[1] / "app.py")
FAST = dict(epochs=2, batch_size=64, device="cpu")


@pytest.fixture(autouse=True)
def _quiet_app(monkeypatch):
    """No background warm-ups in page tests; stop whatever runs a test started."""
    monkeypatch.setenv("TRANSFER_LAB_WARMUP", "0")
    yield
    worker = get_worker()
    for job in worker.active_jobs():
        worker.stop(job.job_id)
    for job in worker.active_jobs():
        worker.wait(job.job_id, 60)


def open_page(page: str | None, state: dict | None = None, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    at.session_state[K.PROJECTION] = "PCA"  # no UMAP helper process in page tests
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.query_params.update(query or {})
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert_clean(at)
    return at


def assert_clean(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def charts(at: AppTest) -> int:
    return len(at.get("plotly_chart"))


def wait_for_jobs(timeout: float = 120.0) -> None:
    worker = get_worker()
    deadline = time.time() + timeout
    while worker.active_jobs() and time.time() < deadline:
        time.sleep(0.05)
    assert not worker.active_jobs(), "background runs did not finish in time"


def finished_run(**overrides) -> str:
    config = RunConfig(**{"source": "moons", "target": "moons:rotate=30", "strategy": "dann", **FAST, **overrides})
    return run_experiment(config, store=RunStore()).run_id


def fake_run(store: RunStore, strategy: str, seed: int, target_accuracy: float, **metrics) -> str:
    config = RunConfig(source="digits:permute", target="digits", strategy=strategy, target_labels=2, seed=seed,
                       epochs=1)
    run_id = store.create_run(config.to_dict(), status="running")
    store.finish(run_id, "done", {"target_accuracy": target_accuracy, "source_accuracy": 0.9, **metrics})
    return run_id


# --- Lab ------------------------------------------------------------------------------------------
def test_lab_page_shows_the_presets_and_recent_runs():
    at = open_page(None)
    assert at.title[0].value == "Transfer Lab"
    assert any("domain shift" in m.value for m in at.markdown)
    labels = [b.label for b in at.button]
    assert labels.count("Run this preset") == 3
    assert any("No runs yet" in i.value for i in at.info)
    links = {link.proto.page for link in at.get("page_link")}  # "Data", "Train" in the text are one click away
    assert {"data", "train"} <= links, links

    finished_run()
    at.run()
    assert_clean(at)
    assert len(at.dataframe) == 1 and len(at.dataframe[0].value) == 1


def test_a_preset_fills_the_pages_and_starts_a_run():
    at = open_page(None)
    at.button(key=K.preset("moons_dann")).click().run()
    assert_clean(at)
    state = at.session_state
    assert state[K.STRATEGY] == "dann" and state[K.EPOCHS] == 40
    assert state[K.dataset("source")] == "moons" and state[K.dataset("target")] == "moons"
    assert state[K.shift("target", "rotate")] == 45.0
    run_id = state[K.RUN_ID]
    assert at.query_params["run"] == [run_id] or at.query_params["run"] == run_id
    # the Train page is shown, attached to the preset's run
    assert any(run_id in m.value for m in at.markdown)
    # the Data page now builds the preset's pair
    at.switch_page("pages/data.py").run()
    assert_clean(at)
    assert [c.value for c in at.code] == ["moons", "moons:rotate=45"]
    wait_for_jobs()
    strategies = sorted(r.strategy for r in RunStore().list_runs())
    assert strategies == ["dann", "source_only"]  # the preset's run and the one it is compared with


# --- Data -----------------------------------------------------------------------------------------
def test_data_page_default_pair_shows_both_domains_and_the_gap():
    at = open_page("pages/data.py")
    assert [s.value for s in at.selectbox] == ["moons", "moons"]
    assert at.slider(key=K.shift("target", "rotate")).value == 30.0
    assert [c.value for c in at.code] == ["moons", "moons:rotate=30"]
    assert charts(at) == 4  # source points, target points, class balance, raw inputs by domain
    assert [m.label for m in at.metric] == ["MMD² (raw inputs)", "p-value (permutation test)", "Proxy A-distance"]
    assert any("rotated by 30" in m.value for m in at.markdown)  # the preprocessing in words

    at.slider(key=K.shift("source", "noise")).set_value(0.2).run()
    assert_clean(at)
    assert at.code[0].value == "moons:noise=0.2"


def test_data_page_gap_agrees_with_tlcore_gap(capsys):
    """Issue 12, item 12: the page and the CLI measure the same seeded sample, so they agree."""
    from tlcore.cli import main

    at = open_page("pages/data.py", {K.SEED: 3})
    shown = {m.label: m.value for m in at.metric}
    assert main(["gap", "--source", "moons", "--target", "moons:rotate=30", "--seed", "3", "--json"]) == 0
    cli = json.loads(capsys.readouterr().out)
    assert cli["n_source"] < cli["of_source"]  # a subsample, so a different sample would give other numbers
    assert shown["MMD² (raw inputs)"] == f"{max(cli['mmd2'], 0):.4f}"
    assert shown["p-value (permutation test)"] == f"{cli['p_value']:.3f}"
    assert shown["Proxy A-distance"] == f"{cli['proxy_a_distance']:.2f}"
    assert any("tlcore gap --source moons --target moons:rotate=30 --seed 3" in c.value and
               f"{cli['n_source']:,} of {cli['of_source']:,} source" in c.value for c in at.caption)


def test_data_page_shows_a_negative_mmd2_clipped_and_explained():
    # moons -> moons on seed 0: no gap, and the unbiased estimate comes out at -0.0008
    at = open_page("pages/data.py", {K.shift("target", "rotate"): 0.0})
    mmd = next(m for m in at.metric if m.label == "MMD² (raw inputs)")
    assert mmd.value == "0.0000" and "raw unbiased estimate is -0.0008" in mmd.help
    assert "can fall a little below 0" in mmd.help
    assert any("shown clipped at 0; the raw unbiased estimate is -0.0008" in c.value for c in at.caption)


def test_data_page_images_show_example_grids():
    state = {K.dataset("source"): "digits", K.dataset("target"): "digits", K.shift("target", "rotate"): 0.0,
             K.shift("target", "invert"): True}
    at = open_page("pages/data.py", state)
    assert [c.value for c in at.code] == ["digits", "digits:invert"]
    assert at.checkbox(key=K.shift("target", "invert")).value is True
    assert charts(at) == 4  # two image grids, class balance, PCA of raw inputs
    assert any("PCA" in str(c.proto.spec) for c in at.get("plotly_chart"))


@pytest.mark.parametrize("source,target,words", [("moons", "digits", "class set"),
                                                 ("moons", "blobs", "class set")])
def test_data_page_explains_a_mismatched_pair(source, target, words):
    at = open_page("pages/data.py", {K.dataset("source"): source, K.dataset("target"): target})
    assert len(at.error) == 1
    message = at.error[0].value
    assert "cannot be paired" in message and words in message
    assert charts(at) == 0


def test_data_page_shows_a_heterogeneous_pair_and_who_can_use_it():
    state = {K.dataset("source"): "blobs", K.dataset("target"): "blobs", K.shift("target", "rotate"): 0.0,
             K.shift("target", "embed"): 20.0}
    at = open_page("pages/data.py", state)
    assert [c.value for c in at.code] == ["blobs", "blobs:embed=20"]
    assert not at.error
    warning = at.warning[0].value
    assert "heterogeneous pair" in warning and "gromov" in warning and "dann" in warning
    assert charts(at) == 3  # source points, target points (PCA of 20-D), class balance; no gap across spaces
    assert not at.metric


# --- Train ----------------------------------------------------------------------------------------
def test_train_page_builds_hyperparameter_widgets_from_the_config():
    at = open_page("pages/train.py")
    assert at.selectbox(key=K.STRATEGY).value == "dann"
    for name in ("weight", "gamma", "hidden"):
        at.number_input(key=K.param("dann", name))
    assert at.number_input(key=K.EPOCHS).value == 30
    assert at.selectbox(key=K.OPTIMIZER).options == ["adam", "sgd"]  # the recipe, from RunConfig's fields
    assert at.selectbox(key=K.LR_SCHEDULE).options == ["constant", "anneal"]
    assert at.number_input(key=K.MOMENTUM).value == 0.9
    assert at.button(key=K.START).disabled is False and at.button(key=K.STOP).disabled is True
    assert any("No run yet" in m.value for m in at.markdown)
    assert charts(at) == 2  # empty loss and accuracy charts, drawn before any run

    at.selectbox(key=K.STRATEGY).set_value("finetune").run()
    assert_clean(at)
    assert at.checkbox(key=K.param("finetune", "reset_head")).value is False
    assert at.number_input(key=K.param("finetune", "freeze_depth")).value == 0
    warning = next(w.value for w in at.warning if "labelled target examples" in w.value)
    assert "Target labels per class" in warning and "--target-labels" not in warning  # the app's own widget
    assert at.button(key=K.START).disabled is True  # the page already says why Start would fail
    at.number_input(key=K.BUDGET).set_value(2).run()
    assert at.button(key=K.START).disabled is False and not at.warning


def test_train_start_draws_live_charts_and_a_refresh_reattaches_without_a_new_run():
    at = open_page("pages/train.py", {K.EPOCHS: 3})
    at.button(key=K.START).click().run()
    assert_clean(at)
    run_id = at.session_state[K.RUN_ID]
    assert run_id and len(RunStore().list_runs()) == 1
    assert at.button(key=K.START).disabled is True
    wait_for_jobs()
    at.run()
    assert_clean(at)
    assert charts(at) == 4  # losses, accuracy, domain-discriminator accuracy, feature MMD²
    assert [m.label for m in at.metric][:2] == ["Target accuracy", "Source accuracy"]
    assert "done after" in at.get("progress")[0].proto.text

    # A fresh session with ?run=ID (a browser refresh) shows the same run and starts nothing.
    again = open_page("pages/train.py", query={"run": run_id})
    assert again.session_state[K.RUN_ID] == run_id
    assert any(run_id in m.value for m in again.markdown)
    assert len(RunStore().list_runs()) == 1


def test_presentation_mode_from_a_link_hides_debug_captions_and_toolbar():
    """Issue 12: ?present=1 (or the sidebar toggle) for a projector."""
    at = open_page("pages/train.py", {K.EPOCHS: 1000}, query={"present": "1"})
    assert at.toggle(key=K.PRESENT).value is True
    assert any("stToolbar" in h.proto.body and "stStatusWidget" in h.proto.body for h in at.get("html"))
    at.button(key=K.START).click().run()
    assert_clean(at)
    assert not any("refreshed every" in c.value for c in at.caption)
    assert at.query_params.get("present") in ("1", ["1"])  # the page's own settings leave it in the link

    at.toggle(key=K.PRESENT).set_value(False).run()  # the teacher's view: timings and toolbar again
    assert_clean(at)
    assert any("refreshed every" in c.value for c in at.caption)
    assert not at.get("html") and "present" not in at.query_params
    at.button(key=K.STOP).click().run()


def test_train_stop_keeps_the_run_as_stopped():
    at = open_page("pages/train.py", {K.EPOCHS: 1000})
    at.button(key=K.START).click().run()
    run_id = at.session_state[K.RUN_ID]
    t0 = time.perf_counter()
    at.button(key=K.STOP).click().run()
    assert_clean(at)
    assert time.perf_counter() - t0 < 5
    assert RunStore().get_run(run_id).status == "stopped"
    assert any("**stopped**" in m.value for m in at.markdown)


def test_train_page_shows_the_ntg_of_a_run_with_a_target_budget():
    run_id = finished_run(strategy="finetune", target_labels=2, source="moons:permute", target="moons")
    at = open_page("pages/train.py", query={"run": run_id})
    assert any("NTG" in m.value for m in at.markdown)


def test_train_page_shows_the_data_warnings_a_run_recorded():
    words = "usps.bz2: its MD5 checksum differs from torchvision's, but its content checked out"
    run_id = fake_run(RunStore(), "source_only", 0, 0.7, data_warnings=[f"target: {words}"])
    at = open_page("pages/train.py", query={"run": run_id})
    assert any(words in w.value for w in at.warning), [w.value for w in at.warning]


def test_a_start_error_is_shown_not_raised():
    at = open_page("pages/train.py", {K.dataset("target"): "digits"})
    at.button(key=K.START).click().run()
    assert_clean(at)
    assert at.error and "vector" in at.error[0].value


def test_start_with_a_dataset_not_downloaded_points_to_the_data_page(tmp_path):
    """Start must not download in the page's thread (no progress bar, a frozen page): it says where
    to download instead, and records no run."""
    data = tmp_path / "datasets"
    data.mkdir()
    at = open_page("pages/train.py", {K.dataset("source"): "mnist", K.dataset("target"): "usps",
                                      K.DATA_DIR: str(data)})
    at.button(key=K.START).click().run()
    assert_clean(at)
    message = "\n".join(e.value for e in at.error)
    assert "mnist and usps are not downloaded" in message and "Data page" in message, message
    assert "tlcore download mnist usps" in message
    assert RunStore().list_runs() == []
    assert not any(data.iterdir())  # nothing was fetched or half-written


def test_train_page_offers_the_models_of_the_pair_and_runs_a_backbone():
    at = open_page("pages/train.py")  # moons: points
    assert at.selectbox(key=K.MODEL).options == ["auto", "mlp", "mlp_bn"]
    at = open_page("pages/train.py", {K.dataset("source"): "digits", K.dataset("target"): "digits", K.EPOCHS: 1})
    options = at.selectbox(key=K.MODEL).options
    assert {"lenet", "resnet18", "resnet18_random_init", "efficientnet_b0"} <= set(options) and "mlp" not in options
    at.selectbox(key=K.MODEL).set_value("resnet18_random_init").run()
    assert any("random initialisation, chosen explicitly" in c.value for c in at.caption)
    at.button(key=K.START).click().run()
    assert_clean(at)
    run = RunStore().get_run(at.session_state[K.RUN_ID])
    assert run.config["model"] == "resnet18_random_init"
    at.button(key=K.STOP).click().run()
    wait_for_jobs()


def test_a_run_with_the_papers_recipe_records_and_shows_it():
    at = open_page("pages/train.py", {K.EPOCHS: 1, K.OPTIMIZER: "sgd", K.LR_SCHEDULE: "anneal", K.LR: 0.01})
    at.button(key=K.START).click().run()
    assert_clean(at)
    wait_for_jobs()
    at.run()
    assert_clean(at)
    run = RunStore().get_run(at.session_state[K.RUN_ID])
    assert (run.config["optimizer"], run.config["lr_schedule"], run.config["momentum"]) == ("sgd", "anneal", 0.9)
    assert any("- recipe: SGD, momentum 0.9, lr 0.01 (annealed" in m.value for m in at.markdown), \
        [m.value for m in at.markdown]
    inspect = open_page("pages/inspect_run.py", {K.INSPECT_RUN: run.id})
    assert any(c.value.startswith("Recipe: SGD, momentum 0.9") for c in inspect.caption)


# --- Inspect --------------------------------------------------------------------------------------
def test_the_train_header_follows_the_events_of_a_run_read_as_queued():
    """A run read as queued whose steps are arriving is shown running, header and bar alike (issue 12,
    item 7: two tabs starting at once showed "queued" above a bar counting steps)."""
    store = RunStore()
    config = RunConfig(source="moons", target="moons:rotate=30", strategy="dann", epochs=1)
    run_id = store.create_run(config.to_dict(), status="queued")
    register_live(run_id)  # as a worker of this process does: not an orphan
    try:
        store.append_events(run_id, [{"kind": "step", "step": 5, "total_steps": 20, "phase": "adapt",
                                      "losses": {"task": 0.7}, "elapsed_s": 0.5}])
        at = open_page("pages/train.py", {K.RUN_ID: run_id})
        header = next(m.value for m in at.markdown if m.value.startswith(f"**Run `{run_id}`**"))
        assert header.endswith("**running**"), header
        assert at.get("progress")[0].proto.text.startswith("step 5 / 20")
    finally:
        unregister_live(run_id)


def test_inspect_page_compares_a_run_with_its_source_only_baseline():
    run_id = finished_run()
    finished_run(strategy="source_only")
    at = open_page("pages/inspect_run.py", {K.INSPECT_RUN: run_id})
    labels = [m.label for m in at.metric]
    assert labels.count("MMD² (features)") == 2 and labels.count("Proxy A-distance") == 2
    # two embeddings, two decision boundaries, two confusion matrices, per-class accuracy
    assert charts(at) == 7
    assert at.toggle(key=K.BY_CLASS).value is False
    at.toggle(key=K.BY_CLASS).set_value(True).run()
    assert_clean(at)
    assert charts(at) == 7


def test_inspect_page_trains_a_missing_baseline_in_the_background():
    run_id = finished_run()
    at = open_page("pages/inspect_run.py", {K.INSPECT_RUN: run_id})
    baselines = [r for r in RunStore().list_runs() if r.tags.get("inspect_baseline_of") == run_id]
    assert len(baselines) == 1 and baselines[0].strategy == "source_only"
    wait_for_jobs()
    at.run()
    assert_clean(at)
    assert [m.label for m in at.metric].count("MMD² (features)") == 2
    assert len([r for r in RunStore().list_runs() if r.strategy == "source_only"]) == 1  # not started twice


def test_an_inspect_link_to_a_missing_run_falls_back_without_training():
    """``/inspect?run=doesnotexist`` quietly started a 30-epoch baseline for the newest run (issue 12,
    item 10): it must say the run was not found and train only when asked."""
    newest = finished_run()
    at = open_page("pages/inspect_run.py", query={"run": "doesnotexist"})
    assert at.session_state[K.INSPECT_RUN] == newest
    assert any("`doesnotexist` was not found" in w.value for w in at.warning), [w.value for w in at.warning]
    at.run()  # a rerun (the URL now names the newest run) still trains nothing
    assert_clean(at)
    assert not [r for r in RunStore().list_runs() if r.strategy == "source_only"]
    at.button(key=K.INSPECT_TRAIN_BASE).click().run()
    assert_clean(at)
    baselines = [r for r in RunStore().list_runs() if r.tags.get("inspect_baseline_of") == newest]
    assert len(baselines) == 1 and baselines[0].strategy == "source_only"
    wait_for_jobs()


def test_inspect_page_shows_importance_weights_of_images():
    run_id = finished_run(strategy="importance_weighting", source="digits", target="digits:invert", epochs=1)
    at = open_page("pages/inspect_run.py", {K.INSPECT_RUN: run_id})
    assert any("Highest weights" in m.value for m in at.markdown)
    assert len(at.get("imgs")) >= 2 or len(at.image) >= 2


def test_inspect_page_shows_a_heterogeneous_gromov_coupling_without_a_baseline():
    run_id = finished_run(strategy="gromov", source="blobs:prior=5", target="blobs:prior=5,embed=20", epochs=1,
                          params={"max_points": 80, "restarts": 1})
    at = open_page("pages/inspect_run.py", {K.INSPECT_RUN: run_id})
    assert "Transported labels right" in [m.label for m in at.metric]
    assert charts(at) == 1  # the coupling heatmap; no lines (20-D target), no feature views
    assert any("heterogeneous pair" in i.value for i in at.info)
    assert not [r for r in RunStore().list_runs() if r.strategy == "source_only"]  # no baseline that cannot run


def test_inspect_page_shows_coupling_lines_and_rkd_distance_matrices():
    gromov = finished_run(strategy="gromov", params={"max_points": 60, "restarts": 1})
    finished_run(strategy="source_only")
    at = open_page("pages/inspect_run.py", {K.INSPECT_RUN: gromov})
    assert charts(at) == 2 + 7  # coupling heatmap and matching lines, then the usual views
    rkd = finished_run(strategy="rkd", target_labels=2)
    finished_run(strategy="source_only", target_labels=2)
    at = open_page("pages/inspect_run.py", {K.INSPECT_RUN: rkd})
    assert any("teacher and student distances" in h.value for h in at.subheader)
    assert charts(at) == 1 + 7


# --- Compare --------------------------------------------------------------------------------------
def test_compare_leaves_stopped_runs_out_of_the_means_unless_asked_and_marks_single_runs():
    """A DANN run stopped early must not be drawn as the "dann" bar (issue 12, item 8)."""
    store = RunStore()
    fake_run(store, "dann", 0, 0.80)
    fake_run(store, "dann", 1, 0.90)
    stopped = fake_run(store, "dann", 2, 0.30)
    store.set_status(stopped, "stopped")
    fake_run(store, "source_only", 0, 0.60)
    at = open_page("pages/compare.py")
    assert len(at.dataframe[0].value) == 4  # the table still lists the stopped run

    def bars(at) -> dict:
        chart = next(c for c in at.get("plotly_chart") if "chart.compare.acc." in c.proto.id)
        bar = json.loads(chart.proto.spec)["data"][0]
        return {x: (y, t, p) for x, y, t, p in zip(bar["x"], bar["y"], bar["text"], bar["marker"]["pattern"]["shape"])}

    shown = bars(at)
    assert shown["dann"][0] == pytest.approx(0.85) and "n=2" in shown["dann"][1] and shown["dann"][2] == ""
    assert "1 run" in shown["source_only"][1] and shown["source_only"][2] == "/"  # a single run is marked
    assert any("1 stopped run(s) left out" in c.value for c in at.caption)
    at.toggle(key=K.WITH_STOPPED).set_value(True).run()
    assert bars(at)["dann"][0] == pytest.approx(2.0 / 3) and "n=3" in bars(at)["dann"][1]


def test_compare_page_summarises_strategies_exports_and_deletes():
    store = RunStore()
    fake_run(store, "target_only", 0, 0.60)
    fake_run(store, "finetune", 0, 0.40, ntg=0.20, target_only_accuracy=0.60)
    victim = fake_run(store, "finetune", 1, 0.50, ntg=0.10, target_only_accuracy=0.60)
    at = open_page("pages/compare.py")
    assert len(at.dataframe[0].value) == 3
    assert charts(at) == 2  # target accuracy by strategy, NTG by strategy
    ntg_chart = next(c for c in at.get("plotly_chart") if "NTG (positive = negative transfer)" in str(c.proto.spec))
    assert "#d62728" in str(ntg_chart.proto.spec)  # a positive NTG is drawn red
    assert at.get("download_button")

    at.multiselect(key=K.STRATEGY_FILTER).set_value(["finetune"]).run()
    assert len(at.dataframe[0].value) == 2

    at.selectbox(key=K.DELETE_ID).set_value(victim).run()
    at.checkbox(key=K.DELETE_CONFIRM).check().run()
    at.button(key=K.DELETE).click().run()
    assert_clean(at)
    assert victim not in [r.id for r in store.list_runs()]
    assert any("Deleted run" in s.value for s in at.success)
