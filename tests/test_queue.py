"""The job queue: runs and sweeps in worker processes, at most ``slots`` at once, fair per
owner; Stop; ownership and teacher mode; per-user limits; a restart."""
import json
import sqlite3
import subprocess
import sys
import time

import pytest

from tlcore.errors import PermissionDeniedError, QueueFullError, TransferLabError
from tlcore.owners import Actor, delete_run, is_teacher_token, new_owner_id, valid_owner_id
from tlcore.runs import SCHEMA_VERSION, RunStore
from tlcore.worker import Worker, default_slots

from helpers import fast_config

LONG = dict(epochs=1000, log_every=1)  # runs until stopped


def _wait_for(predicate, timeout=120.0):
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return True
        time.sleep(0.05)
    return False


def test_a_queued_job_starts_when_a_slot_frees_and_the_queue_is_fair_per_owner(tmp_path):
    store, worker = RunStore(tmp_path / "runs.sqlite"), Worker(slots=1)
    first = worker.start_run(fast_config(**LONG), store, owner="alice")
    second = worker.start_run(fast_config(seed=1), store, owner="alice")
    third = worker.start_run(fast_config(seed=2), store, owner="alice")
    bobs = worker.start_run(fast_config(seed=3), store, owner="bob")
    # one slot: the rest wait, recorded as queued; bob, who has nothing running, goes next
    queue = worker.queue()
    assert [(e.job_id, e.state, e.position) for e in queue] == [
        (first, "running", None), (bobs, "queued", 1), (second, "queued", 2), (third, "queued", 3)]
    assert store.get_run(second).status == "queued" and store.get_run(bobs).owner == "bob"
    # Stop removes a queued job: its run is recorded as stopped, never trained
    assert worker.stop(third, actor=Actor("alice"))
    assert store.get_run(third).status == "stopped" and store.events(third) == []
    assert [e.job_id for e in worker.queue()] == [first, bobs, second]
    # the running job stops for real; its slot goes to the next in line, which runs to the end
    assert _wait_for(lambda: any(e["kind"] == "step" for e in store.events(first)))
    assert worker.stop(first, wait=60, actor=Actor("alice"))
    assert store.get_run(first).status == "stopped"
    assert worker.wait(bobs, 120) and worker.wait(second, 120)
    assert store.get_run(bobs).status == "done" and store.get_run(second).status == "done"
    assert worker.job(bobs).started_at <= worker.job(second).started_at
    assert worker.queue() == [] and worker.run_seconds() is not None


def test_only_the_owner_or_a_teacher_may_stop_or_delete(tmp_path, monkeypatch):
    store, worker = RunStore(tmp_path / "runs.sqlite"), Worker(slots=1)
    running = worker.start_run(fast_config(**LONG), store, owner="alice")
    queued = worker.start_run(fast_config(seed=1), store, owner="alice")
    with pytest.raises(PermissionDeniedError, match="another user"):
        worker.stop(queued, actor=Actor("bob"))
    with pytest.raises(PermissionDeniedError):
        worker.stop(running, actor=Actor("alicia"))
    assert store.get_run(queued).status == "queued" and worker.is_alive(running)
    # teacher mode: the configured token, compared in constant time; nothing without one
    assert not is_teacher_token("secret")
    monkeypatch.setenv("TRANSFER_LAB_TEACHER_TOKEN", "secret")
    assert is_teacher_token("secret") and not is_teacher_token("Secret") and not is_teacher_token("")
    teacher = Actor("carol", teacher=True)
    assert worker.stop(queued, actor=teacher)
    assert worker.stop(running, wait=60, actor=teacher)
    assert store.get_run(running).status == "stopped"
    with pytest.raises(PermissionDeniedError):
        delete_run(store, running, Actor("bob"))
    delete_run(store, running, Actor("alice"))
    delete_run(store, queued, teacher)
    assert store.list_runs() == []


def test_a_user_may_queue_at_most_max_queued_jobs(tmp_path):
    store, worker = RunStore(tmp_path / "runs.sqlite"), Worker(slots=1, max_queued=1)
    running = worker.start_run(fast_config(**LONG), store, owner="alice")
    waiting = worker.start_run(fast_config(seed=1), store, owner="alice")
    with pytest.raises(QueueFullError, match="TRANSFER_LAB_MAX_QUEUED=1"):
        worker.start_run(fast_config(seed=2), store, owner="alice")
    assert len(store.list_runs()) == 2  # the refused run was never recorded
    other = worker.start_run(fast_config(seed=3), store, owner="bob")  # another user still may
    for job_id in (waiting, other, running):
        worker.stop(job_id, wait=60)
    assert {r.status for r in store.list_runs()} == {"stopped"}


def test_a_sweep_runs_in_a_worker_process_and_hands_back_its_result(tmp_path):
    from tlcore.sweeps import ComparisonSweep
    store, worker = RunStore(tmp_path / "runs.sqlite", owner=None), Worker(slots=2)
    spec = ComparisonSweep(arms=(("a", fast_config()), ("b", fast_config(strategy="coral"))), seeds=(0,))
    kept = []
    job = worker.start_sweep(spec, store, job_id="sweep-1", owner="alice", on_result=kept.append)
    assert worker.wait(job.job_id, 180)
    assert job.error is None and job.progress == 1.0
    (result,) = kept
    assert result.complete and len(result.rows) == 2
    runs = store.list_runs()
    assert sorted(job.run_ids) == sorted(r.id for r in runs) and {r.owner for r in runs} == {"alice"}


def test_a_restart_marks_queued_and_running_runs_interrupted_and_keeps_finished_ones(tmp_path):
    path = tmp_path / "runs.sqlite"
    config = fast_config().to_dict()
    # a server process that records a finished, a running and a queued run, then dies
    script = (
        "import os, sys\nfrom tlcore.runs import RunStore\n"
        f"s = RunStore({str(path)!r})\nc = {config!r}\n"
        "d = s.create_run(c, status='running', owner='alice'); s.finish(d, 'done', {'target_accuracy': 0.9})\n"
        "r = s.create_run(c, status='running', owner='alice')\n"
        "q = s.create_run(c, status='queued', owner='bob')\n"
        "print(d, r, q)\nsys.stdout.flush()\nos._exit(0)\n")
    out = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, check=True, cwd=".")
    done, running, queued = out.stdout.split()
    store = RunStore(path)
    assert store.mark_interrupted() == 2
    assert store.get_run(done).status == "done" and store.get_run(done).metrics == {"target_accuracy": 0.9}
    assert store.get_run(running).status == "interrupted"
    rec = store.get_run(queued)
    assert rec.status == "interrupted" and "stopped before it started" in rec.error and rec.owner == "bob"


def test_a_version_2_store_gains_owners_and_keeps_its_runs(tmp_path, monkeypatch):
    path = tmp_path / "runs.sqlite"
    store = RunStore(path)
    old = store.create_run(fast_config().to_dict(), status="queued")
    store.finish(old, "done", {"target_accuracy": 0.5})
    with sqlite3.connect(path) as conn:  # back to schema 2: no owner column
        conn.execute("DROP INDEX runs_owner")
        conn.execute("ALTER TABLE runs DROP COLUMN owner")
        conn.execute("PRAGMA user_version = 2")
    store = RunStore(path)
    (run,) = store.list_runs()
    assert (run.id, run.status, run.owner) == (old, "done", None)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 3
    mine = store.create_run(fast_config().to_dict(), owner="abc")
    assert store.get_run(mine).owner == "abc" and [r.id for r in store.list_runs(owner="abc")] == [mine]
    # a run of the command line (no owner): on a classroom server (a teacher token is set) an app
    # user may not delete it; on one's own machine (no token) anyone may
    monkeypatch.setenv("TRANSFER_LAB_TEACHER_TOKEN", "secret")
    with pytest.raises(PermissionDeniedError, match="command line"):
        delete_run(store, old, Actor("abc"))
    monkeypatch.delenv("TRANSFER_LAB_TEACHER_TOKEN")
    delete_run(store, old, Actor("abc"))


def test_owner_ids_and_slots_settings(monkeypatch):
    a, b = new_owner_id(), new_owner_id()
    assert a != b and valid_owner_id(a) and not valid_owner_id("../x") and not valid_owner_id(None)
    monkeypatch.setenv("TRANSFER_LAB_SLOTS", "3")
    assert default_slots() == 3
    monkeypatch.setenv("TRANSFER_LAB_SLOTS", "none")
    with pytest.raises(TransferLabError, match="TRANSFER_LAB_SLOTS"):
        default_slots()
    monkeypatch.delenv("TRANSFER_LAB_SLOTS")
    assert default_slots() >= 1
