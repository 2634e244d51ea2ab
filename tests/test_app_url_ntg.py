"""Shareable links (pages/_url.py), the NTG over seeds on Train, Inspect and Compare, and export
(figure config, CSV downloads), under Streamlit's AppTest."""
from __future__ import annotations

import json
import re
from types import SimpleNamespace
from urllib.parse import parse_qsl

import pytest

from pages import _keys as K
from pages._state import SHIFT_CONTROLS
from tests.test_app_pages import (_quiet_app, assert_clean, fake_run, finished_run,  # noqa: F401
                                  open_page, wait_for_jobs)
from tlcore.config import form_fields
from tlcore.ntg import NEGATIVE_TRANSFER, POSITIVE_TRANSFER
from tlcore.runs import RunStore
from tlcore.strategies import STRATEGIES


def query(at) -> dict[str, str]:
    """The URL's settings (without ``owner``: the session's anonymous id, never a setting)."""
    return {k: (v[-1] if isinstance(v, list) else v) for k, v in at.query_params.items() if k != "owner"}


def warnings(at) -> list[str]:
    return [w.value for w in at.warning]


def link(at) -> str:
    """The sidebar's "Link to this setup" (a code block inside markdown)."""
    texts = [m.value for m in at.sidebar.markdown if m.value.startswith("```")]
    assert len(texts) == 1, texts
    return texts[0].strip("`").removeprefix("text").strip()


def train_settings(at) -> dict:
    """Every session-state value a Train link must reproduce."""
    state = at.session_state
    strategy = state[K.STRATEGY]
    keys = [K.SEED, K.BUDGET, K.STRATEGY, K.EPOCHS, K.BATCH_SIZE, K.LR,
            *(K.dataset(r) for r in K.ROLES), *(K.shift(r, c.name) for r in K.ROLES for c in SHIFT_CONTROLS),
            *(K.param(strategy, f.name) for f in form_fields(STRATEGIES[strategy].Config))]
    return {k: state[k] for k in keys if k in state}


# --- links: the URL wins on a fresh session, then the session writes the URL -----------------------------
def test_a_data_link_sets_the_pair_and_the_sidebar_seed():
    at = open_page("pages/data.py", query={"source": "digits", "target": "digits", "target.rotate": "0",
                                           "target.invert": "1", "seed": "3", "budget": "2"})
    assert [c.value for c in at.code] == ["digits", "digits:invert"]
    assert at.session_state[K.SEED] == 3 and at.number_input(key=K.SEED).value == 3  # drawn before the page
    assert at.number_input(key=K.BUDGET).value == 2
    assert not warnings(at)
    assert link(at) == "?seed=3&source=digits&target=digits&target.invert=1&budget=2"


def test_a_link_naming_a_dataset_starts_from_it_unshifted():
    """The README's hand-written link: no target.rotate, yet the target must not inherit the default
    moons target's rotate=30 (it did: digits:rotate=30,invert)."""
    at = open_page("pages/data.py", query={"source": "digits", "target": "digits", "target.invert": "1",
                                           "seed": "3"})
    assert [c.value for c in at.code] == ["digits", "digits:invert"]
    assert not warnings(at)
    assert link(at) == "?seed=3&source=digits&target=digits&target.invert=1"
    # The default target without a dataset in the link keeps its rotation.
    at = open_page("pages/data.py", query={"seed": "3"})
    assert [c.value for c in at.code] == ["moons", "moons:rotate=30"]


def test_a_spec_string_in_a_link_sets_the_dataset_and_its_shifts():
    """``target=digits:noise=0.4`` (the CLI's spec) is accepted, on Data and on Train."""
    at = open_page("pages/train.py", query={"source": "digits", "target": "digits:noise=0.4"})
    assert not warnings(at)
    data_line = next(m.value for m in at.markdown if m.value.startswith("**Data:**"))
    assert "`digits` → `digits:noise=0.4`" in data_line, data_line
    assert at.session_state[K.shift("target", "noise")] == 0.4
    assert query(at) == {"source": "digits", "target": "digits", "target.noise": "0.4"}
    # A named shift beside the spec wins over the spec's value; a bad shift is named in the warning.
    at = open_page("pages/data.py", query={"target": "moons:rotate=45", "target.rotate": "10"})
    assert [c.value for c in at.code] == ["moons", "moons:rotate=10"]
    at = open_page("pages/data.py", query={"target": "digits:wobble=3"})
    assert any("target=digits:wobble=3" in w and "wobble" in w for w in warnings(at)), warnings(at)
    assert [c.value for c in at.code] == ["moons", "moons:rotate=30"]


def test_the_session_writes_only_non_default_settings_to_the_url():
    at = open_page("pages/data.py")
    assert query(at) == {} and link(at) == "?"
    at.slider(key=K.shift("source", "noise")).set_value(0.2).run()
    assert_clean(at)
    assert query(at) == {"source.noise": "0.2"}
    at.slider(key=K.shift("target", "rotate")).set_value(45.0).run()
    assert query(at) == {"source.noise": "0.2", "target.rotate": "45"}
    at.slider(key=K.shift("source", "noise")).set_value(0.0).run()  # back to the default: out of the link
    assert query(at) == {"target.rotate": "45"}
    assert link(at) == "?target.rotate=45"


def test_a_changed_url_wins_over_the_session_like_the_back_button():
    at = open_page("pages/data.py")
    at.slider(key=K.shift("source", "noise")).set_value(0.2).run()
    at.query_params.clear()
    at.query_params.update({"target.rotate": "60"})  # the URL of an earlier setup
    at.run()
    assert_clean(at)
    # the link defines the page: source noise goes back to its default
    assert [c.value for c in at.code] == ["moons", "moons:rotate=60"]
    assert query(at) == {"target.rotate": "60"}


def test_invalid_link_values_are_ignored_with_one_warning_naming_each():
    at = open_page("pages/data.py", query={"source": "nosuch", "seed": "abc", "budget": "500",
                                           "target.rotate": "999", "target.noise": "0.1", "source.blur": "1",
                                           "frobnicate": "2"})
    assert len(at.warning) == 1
    text = at.warning[0].value
    for expected in ("`source=nosuch`: unknown dataset", "`seed=abc`: not a whole number",
                     "`budget=500`: 500 is above the maximum 100", "`target.rotate=999`: 999 is above the maximum 180",
                     "`source.blur`: not a setting of this page", "`frobnicate`: not a setting of this page"):
        assert expected in text, (expected, text)
    assert "target.noise" not in text  # a valid value is applied
    assert [c.value for c in at.code] == ["moons", "moons:rotate=30,noise=0.1"]  # rotation: its default
    assert at.session_state[K.SEED] == 0 and at.session_state[K.BUDGET] == 0
    assert query(at) == {"target.noise": "0.1"}  # the ignored values leave the URL
    at.run()
    assert len(at.warning) == 1  # a rerun of the page keeps it
    at.slider(key=K.shift("target", "noise")).set_value(0.2).run()
    assert not at.warning  # until the user changes a setting


def test_a_train_link_applies_the_strategy_before_its_hyperparameters_and_keeps_run():
    run_id = finished_run()
    link_query = {"run": run_id, "strategy": "finetune", "finetune.reset_head": "1", "finetune.freeze_depth": "1",
                  "epochs": "5", "lr": "0.01", "batch": "32", "budget": "2", "source": "moons",
                  "source.rotate": "15", "seed": "4"}
    at = open_page("pages/train.py", query=link_query)
    assert not warnings(at)
    state = at.session_state
    assert state[K.RUN_ID] == run_id  # ?run= still attaches the run
    assert any(run_id in m.value for m in at.markdown)
    assert at.selectbox(key=K.STRATEGY).value == "finetune"
    assert at.checkbox(key=K.param("finetune", "reset_head")).value is True
    assert at.number_input(key=K.param("finetune", "freeze_depth")).value == 1
    assert (state[K.EPOCHS], state[K.LR], state[K.BATCH_SIZE], state[K.BUDGET], state[K.SEED]) == (5, 0.01, 32, 2, 4)
    assert any("`moons:rotate=15` → `moons:rotate=30` · seed 4" in m.value for m in at.markdown)
    assert query(at) == {k: v for k, v in link_query.items() if k != "source"}  # moons is the default
    assert "run=" not in link(at)  # a setup link, not this server's run

    # a hyperparameter of another strategy does not apply
    other = open_page("pages/train.py", query={"strategy": "dann", "finetune.reset_head": "1"})
    assert "`finetune.reset_head`: not a setting of this page" in other.warning[0].value


def test_a_train_link_reproduces_the_setup_exactly():
    at = open_page("pages/train.py")
    at.selectbox(key=K.STRATEGY).set_value("mmd").run()
    params = [f.name for f in form_fields(STRATEGIES["mmd"].Config) if f.type is float]
    at.number_input(key=K.param("mmd", params[0])).set_value(0.25).run()
    at.number_input(key=K.EPOCHS).set_value(12).run()
    at.number_input(key=K.LR).set_value(0.02).run()
    at.number_input(key=K.BUDGET).set_value(3).run()
    at.number_input(key=K.SEED).set_value(9).run()
    assert_clean(at)
    written = query(at)
    assert written == {"seed": "9", "budget": "3", "strategy": "mmd", f"mmd.{params[0]}": "0.25", "epochs": "12",
                       "lr": "0.02"}
    assert dict(parse_qsl(link(at).removeprefix("?"))) == written

    student = open_page("pages/train.py", query=written)  # a fresh session opens the link
    assert not warnings(student)
    assert train_settings(student) == train_settings(at)


def test_inspect_and_compare_links():
    store = RunStore()
    fake_run(store, "target_only", 0, 0.60)
    fake_run(store, "finetune", 0, 0.40, ntg=0.20, target_only_accuracy=0.60)
    at = open_page("pages/compare.py", query={"strategies": "finetune", "status": "done"})
    assert not warnings(at)
    assert len(at.dataframe[0].value) == 1
    assert query(at) == {"status": "done", "strategies": "finetune"}
    bad = open_page("pages/compare.py", query={"strategies": "finetune,dann", "pair": "nowhere"})
    text = bad.warning[0].value
    assert "no stored run uses 'dann'" in text and "`pair=nowhere`: no stored run has this pair" in text
    assert len(bad.dataframe[0].value) == 2

    run_id = finished_run()
    at = open_page("pages/inspect_run.py", query={"run": run_id, "projection": "PCA", "by_class": "1"})
    assert not warnings(at)
    assert at.session_state[K.INSPECT_RUN] == run_id and at.toggle(key=K.BY_CLASS).value is True
    assert query(at)["run"] == run_id
    missing = open_page("pages/inspect_run.py", query={"run": "feedbeef0000"})
    assert "`run=feedbeef0000`: no finished run with this id" in missing.warning[0].value
    assert missing.session_state[K.INSPECT_RUN] in {r.id for r in RunStore().list_runs(status="done")}


# --- the NTG over seeds ------------------------------------------------------------------------------------
def ntg_lines(at) -> list[tuple[str, str]]:
    """The NTG lines a page drew, as (colour, text): ``:red[NTG +0.250 …]`` → ``("red", "NTG +0.250 …")``."""
    found = []
    for m in at.markdown:
        match = re.search(r":(red|green|gray)\[(NTG [^\]]*|1 seed[^\]]*)\](.*)", m.value)
        if match:
            found.append((match.group(1), match.group(2) + match.group(3)))
    return found


def badge(at) -> tuple[str, str]:
    """The run's own NTG badge (a heading), as (colour, text)."""
    heads = [m for m in at.markdown if m.value.startswith("####") and "NTG" in m.value]
    assert len(heads) == 1, [m.value for m in at.markdown]
    return ntg_lines(SimpleNamespace(markdown=heads))[0]


def test_a_source_that_hurt_on_every_seed_reads_red_negative_transfer():
    store = RunStore()
    ids = [fake_run(store, "finetune", s, 0.5 - g, ntg=g, target_only_accuracy=0.5) for s, g in
           enumerate([0.2, 0.25, 0.3])]
    at = open_page("pages/train.py", query={"run": ids[1]})
    colour, text = badge(at)
    assert colour == "red" and "negative transfer" in text and "positive" not in text
    over_seeds = [(c, t) for c, t in ntg_lines(at) if "3 seeds" in t]
    assert len(over_seeds) == 1
    colour, text = over_seeds[0]
    assert colour == "red" and "negative transfer" in text
    assert at.get("download_button")  # the run's curves as CSV


def test_an_ntg_of_exactly_zero_reads_no_effect_not_positive_transfer():
    store = RunStore()
    run_id = fake_run(store, "finetune", 0, 0.5, ntg=0.0, target_only_accuracy=0.5)
    colour, text = badge(open_page("pages/train.py", query={"run": run_id}))
    assert colour == "gray" and "no effect" in text
    assert "positive" not in text and "helped" not in text and "negative" not in text


def test_a_source_that_helped_reads_green_positive_transfer():
    store = RunStore()
    run_id = fake_run(store, "dann", 0, 0.7, ntg=-0.2, target_only_accuracy=0.5)
    colour, text = badge(open_page("pages/train.py", query={"run": run_id}))
    assert colour == "green" and "positive transfer" in text and "negative" not in text


def test_ntg_within_noise_is_grey_and_one_seed_asks_for_more():
    store = RunStore()
    a = fake_run(store, "finetune", 0, 0.4, ntg=0.1, target_only_accuracy=0.5)
    fake_run(store, "finetune", 1, 0.55, ntg=-0.05, target_only_accuracy=0.5)
    at = open_page("pages/train.py", query={"run": a})
    over_seeds = [(c, t) for c, t in ntg_lines(at) if "2 seeds" in t]
    assert len(over_seeds) == 1 and over_seeds[0][0] == "gray" and "within noise" in over_seeds[0][1]

    lone = fake_run(store, "dann", 0, 0.4, ntg=0.1, target_only_accuracy=0.5)
    at = open_page("pages/train.py", query={"run": lone})
    lines = ntg_lines(at)
    assert badge(at)[0] == "red"  # this seed did hurt ...
    assert [c for c, t in lines if t.startswith("1 seed")] == ["gray"]  # ... but one seed has no verdict yet


def test_compare_shows_the_ntg_per_configuration_with_its_label_and_exports_it():
    store = RunStore()
    for seed, gap in enumerate([0.2, 0.25, 0.3]):
        fake_run(store, "finetune", seed, 0.5 - gap, ntg=gap, target_only_accuracy=0.5)
    fake_run(store, "dann", 0, 0.45, ntg=0.05, target_only_accuracy=0.5)
    fake_run(store, "target_only", 0, 0.5)
    at = open_page("pages/compare.py")
    assert len(at.dataframe) == 2  # every run, then the NTG over seeds per configuration
    table = at.dataframe[1].value
    rows = {r["strategy"]: r for r in table.to_dict("records")}
    assert set(rows) == {"finetune", "dann"}
    assert rows["finetune"]["n"] == 3 and rows["finetune"]["seeds"] == "0, 1, 2"
    assert rows["finetune"]["NTG mean"] == pytest.approx(0.25) and rows["finetune"]["NTG sd"] == pytest.approx(0.05)
    assert rows["finetune"]["CI low"] == pytest.approx(0.125793, abs=1e-6)
    assert rows["finetune"]["verdict"] == NEGATIVE_TRANSFER
    # one seed has no verdict over seeds, whatever its sign
    assert rows["dann"]["n"] == 1 and rows["dann"]["verdict"] not in (NEGATIVE_TRANSFER, POSITIVE_TRANSFER)
    assert "1 seed" in rows["dann"]["verdict"]
    downloads = [b.proto for b in at.get("download_button")]
    assert len(downloads) == 2  # all runs, and this table


def test_inspect_shows_the_ntg_over_seeds_and_offers_csv():
    first = finished_run(strategy="finetune", target_labels=2, source="moons:permute", target="moons", seed=0)
    finished_run(strategy="finetune", target_labels=2, source="moons:permute", target="moons", seed=1)
    at = open_page("pages/inspect_run.py", query={"run": first, "projection": "PCA"})
    # Label-shuffled source: finetuning from it is worse than target_only alone on every seed.
    colour, text = badge(at)
    assert colour == "red" and "negative transfer" in text
    assert any("2 seeds" in t for _, t in ntg_lines(at))
    labels = [b.proto.label for b in at.get("download_button")]
    assert labels == ["Download per-class accuracy as CSV", "Download the confusion matrices as CSV"]
    wait_for_jobs()


# --- figure export -------------------------------------------------------------------------------------------
def chart_configs(at) -> dict[str, dict]:
    return {c.proto.id: json.loads(c.proto.config) for c in at.get("plotly_chart")}


def test_every_chart_exports_in_the_format_chosen_in_the_sidebar():
    at = open_page("pages/data.py")
    configs = list(chart_configs(at).values())
    assert len(configs) == 4
    for config in configs:
        assert config["displayModeBar"] is True
        assert config["toImageButtonOptions"]["format"] == "png"
        assert config["toImageButtonOptions"]["filename"].startswith("transfer-lab-data-")
    at.radio(key=K.FIGURE_FORMAT).set_value("SVG").run()
    assert_clean(at)
    assert {c["toImageButtonOptions"]["format"] for c in chart_configs(at).values()} == {"svg"}
    at.switch_page("pages/train.py").run()  # the setting holds on every page
    assert {c["toImageButtonOptions"]["format"] for c in chart_configs(at).values()} == {"svg"}


def test_the_embedding_chart_keeps_its_selection_with_the_export_config():
    run_id = finished_run()
    finished_run(strategy="source_only")
    at = open_page("pages/inspect_run.py", {K.INSPECT_RUN: run_id})
    embeddings = [c for c in at.get("plotly_chart") if c.proto.id and "selection" in c.proto.id]
    assert len(embeddings) == 2
    for chart in embeddings:
        assert list(chart.proto.selection_mode)  # points and box selection still on
        assert json.loads(chart.proto.config)["toImageButtonOptions"]["format"] == "png"


def test_a_train_link_sets_the_model_and_refuses_an_unknown_one():
    at = open_page("pages/train.py", query={"source": "digits", "target": "digits", "model": "lenet_wide"})
    assert not warnings(at)
    assert at.selectbox(key=K.MODEL).value == "lenet_wide"
    assert query(at)["model"] == "lenet_wide"
    bad = open_page("pages/train.py", query={"model": "resnet9000"})
    assert "`model=resnet9000`" in bad.warning[0].value
    assert bad.session_state[K.MODEL] == "auto"
