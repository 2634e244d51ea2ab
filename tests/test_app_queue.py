"""Ownership through the pages (AppTest): a user cannot stop another's run from the Train page,
a teacher can; a queued run shows its place in the queue; the Queue page lists the jobs."""
from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from pages import _keys as K
from tlcore.config import RunConfig
from tlcore.runs import RunStore
from tlcore.worker import Worker, get_worker

APP = str(Path(__file__).resolve().parents[1] / "app.py")
LONG = dict(source="moons", target="moons:rotate=30", strategy="source_only", epochs=1000, batch_size=64,
            device="cpu", threads=1, log_every=1)


@pytest.fixture(autouse=True)
def _quiet_app(monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_WARMUP", "0")
    yield
    worker = get_worker()
    for job in worker.active_jobs():
        worker.stop(job.job_id)
    for job in worker.active_jobs():
        worker.wait(job.job_id, 60)


def open_page(page: str, state: dict, query: dict | None = None) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=90)
    for key, value in state.items():
        at.session_state[key] = value
    at.query_params.update(query or {})
    at.run()
    at.switch_page(page).run()
    assert not at.exception, [e.value for e in at.exception]
    return at


def texts(elements) -> str:
    return "\n".join(str(e.value) for e in elements)


def test_a_user_cannot_stop_another_users_run_from_the_page_and_a_teacher_can(monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_TEACHER_TOKEN", "s3cret-token")
    store = RunStore()
    run_id = get_worker().start_run(RunConfig(**LONG), store, owner="a11ce0000000")
    bob = open_page("pages/train.py", {}, query={"run": run_id})
    assert bob.session_state[K.OWNER] != "a11ce0000000"
    assert bob.query_params["owner"] == bob.session_state[K.OWNER]  # kept in the URL for a refresh
    bob.button(key=K.STOP).click().run()
    assert "you cannot stop run" in texts(bob.error) and "another user" in texts(bob.error)
    assert store.get_run(run_id).status in ("queued", "running") and get_worker().is_alive(run_id)

    # the owner, back with their ?owner= (a refresh), is themselves again
    alice = open_page("pages/train.py", {}, query={"run": run_id, "owner": "a11ce0000000"})
    assert alice.session_state[K.OWNER] == "a11ce0000000"

    # a wrong token changes nothing; the right one switches teacher mode on, and the teacher may stop it
    bob.sidebar.text_input(key=K.TEACHER_TOKEN).input("guess").run()
    assert not bob.session_state[K.TEACHER] if K.TEACHER in bob.session_state else True
    assert "not this server's teacher token" in texts(bob.sidebar.caption)
    bob.sidebar.text_input(key=K.TEACHER_TOKEN).input("s3cret-token").run()
    assert bob.session_state[K.TEACHER] is True
    bob.button(key=K.STOP).click().run()
    assert not bob.exception
    assert get_worker().wait(run_id, 60)
    assert store.get_run(run_id).status == "stopped"


def test_a_queued_run_shows_its_place_and_the_queue_page_lists_it(monkeypatch):
    import tlcore.worker as worker_module
    worker = Worker(slots=1)
    monkeypatch.setattr(worker_module, "_worker", worker)  # a one-slot queue for this test
    store = RunStore()
    first = worker.start_run(RunConfig(**LONG), store, owner="0000000000aa")
    at = open_page("pages/train.py", {K.EPOCHS: 1, K.OWNER: "0000000000bb"})
    at.button(key=K.START).click().run()
    mine = at.session_state[K.RUN_ID]
    assert store.get_run(mine).status == "queued"
    assert "queued, position 1" in texts(at.info)
    queue = open_page("pages/queue.py", {K.OWNER: "0000000000bb"})
    table = queue.dataframe[0].value
    assert list(table["job"]) == [first, mine] and list(table["owner"]) == ["another user", "you"]
    # only your own job has a Stop button; it removes the queued run
    stops = [b for b in queue.button if b.key.startswith(K.QUEUE_STOP)]
    assert [b.key for b in stops] == [f"{K.QUEUE_STOP}.{mine}"]
    stops[0].click().run()
    assert store.get_run(mine).status == "stopped" and [e.job_id for e in worker.queue()] == [first]
    worker.stop(first, wait=60)
