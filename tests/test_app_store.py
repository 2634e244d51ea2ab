"""The app over a damaged, read-only or half-orphaned run store (issue 14, items 2, 8, 9, 10),
under Streamlit's AppTest with a real store file in the test's Transfer Lab home."""
from __future__ import annotations

import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages import _keys as K
from tlcore.paths import default_store_path
from tlcore.runs import READONLY_ENV, UNREADABLE, RunStore

APP = str(Path(__file__).resolve().parents[1] / "app.py")
CONFIG = {"source": "moons", "target": "moons:rotate=30", "strategy": "dann", "seed": 0, "target_labels": 0}


@pytest.fixture(autouse=True)
def _no_warmup(monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_WARMUP", "0")


def open_app(page: str | None = None, state: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    for key, value in (state or {}).items():
        at.session_state[key] = value
    at.run()
    if page is not None:
        at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


@pytest.mark.parametrize("page", [None, "pages/compare.py", "pages/train.py"])
def test_corrupt_store_says_what_where_and_what_to_do(page):
    path = default_store_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    garbage = b"this is not a database\n" * 200
    path.write_bytes(garbage)

    at = open_app(page)
    errors = texts(at.error)
    assert str(path) in errors and "not a valid Transfer Lab run database" in errors
    assert ".recover" in texts(at.markdown) and "corrupt-" in texts(at.markdown)
    assert path.read_bytes() == garbage, "nothing is changed until the user asks"

    at.button(key=K.STORE_QUARANTINE).click().run()
    assert not at.exception, [e.value for e in at.exception]
    (moved,) = path.parent.glob("runs.sqlite.corrupt-*")
    assert moved.read_bytes() == garbage
    assert not at.error and RunStore(path).list_runs() == []


def make_runs(store: RunStore) -> dict[str, str]:
    good = store.create_run(CONFIG)
    store.finish(good, "done", {"target_accuracy": 0.75, "source_accuracy": 0.9})
    bad = store.create_run(CONFIG)
    store.finish(bad, "done", {"target_accuracy": 0.5})
    dead = store.create_run(CONFIG, status="running")
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET config_json = '{bad' WHERE id = ?", (bad,))
        conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (int(gone.stdout), dead))  # killed: a dead pid
    return {"good": good, "bad": bad, "dead": dead}


def test_pages_list_unreadable_and_killed_runs_and_compare_deletes_them():
    ids = make_runs(RunStore())
    at = open_app()  # Lab: the recent runs
    assert not at.exception
    at = open_app("pages/compare.py")
    assert "unreadable" in texts(at.caption) and "interrupted" in texts(at.caption)

    at.session_state[K.STATUS_FILTER] = ["done", "interrupted", UNREADABLE]
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    table = at.dataframe[0].value
    assert dict(zip(table["id"], table["status"])) == {ids["good"]: "done", ids["bad"]: UNREADABLE,
                                                       ids["dead"]: "interrupted"}
    assert ids["bad"] in texts(at.warning) and "config_json" in texts(at.warning)

    for victim in (ids["dead"], ids["bad"]):
        at.selectbox(key=K.DELETE_ID).set_value(victim).run()
        at.checkbox(key=K.DELETE_CONFIRM).check().run()
        at.button(key=K.DELETE).click().run()
        assert not at.exception, [e.value for e in at.exception]
        assert f"Deleted run {victim}" in texts(at.success)
    assert [r.id for r in RunStore().list_runs()] == [ids["good"]]


def test_read_only_store_is_noted_on_every_page(monkeypatch):
    store = RunStore()
    run_id = store.create_run(CONFIG)
    store.finish(run_id, "done", {"target_accuracy": 0.75})
    monkeypatch.setenv(READONLY_ENV, "1")
    from pages import _runs
    _runs.forget_store(str(store.path))  # the app opens its store again, read-only now
    try:
        at = open_app("pages/compare.py", state={K.STATUS_FILTER: ["done"]})
        assert "read-only" in texts(at.sidebar.warning) and str(store.path) in texts(at.sidebar.warning)
        assert list(at.dataframe[0].value["id"]) == [run_id]
        at.checkbox(key=K.DELETE_CONFIRM).check().run()
        at.button(key=K.DELETE).click().run()
        assert not at.exception and "is read-only" in texts(at.error)
    finally:
        _runs.forget_store(str(store.path))
    assert [r.id for r in RunStore().list_runs()] == [run_id]
