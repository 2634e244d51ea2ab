"""Background worker: runs outside the caller's thread, stops for real, records status."""
import time

import pytest

from tlcore import runs as runs_module
from tlcore.runs import RunStore
from tlcore.worker import Worker

from helpers import fast_config


def _wait_for(predicate, timeout=300.0):  # a worker process loads torch first
    t0 = time.time()
    while time.time() - t0 < timeout:
        if predicate():
            return True
        time.sleep(0.02)
    return False


def test_run_in_background_completes_and_is_recorded():
    store, worker = RunStore(), Worker()
    run_id = worker.start_run(fast_config(), store)
    assert store.get_run(run_id).status in ("queued", "running", "done")
    assert worker.wait(run_id, 300)
    rec = store.get_run(run_id)
    assert rec.status == "done" and rec.metrics["target_accuracy"] >= 0
    kinds = [e["kind"] for e in store.events(run_id)]
    assert kinds[0] == "started" and kinds[-1] == "result" and "step" in kinds
    assert run_id not in runs_module.live_ids


def test_stop_really_stops_within_a_second():
    store, worker = RunStore(), Worker()
    run_id = worker.start_run(fast_config(epochs=500, log_every=1), store)
    assert _wait_for(lambda: any(e["kind"] == "step" for e in store.events(run_id)))
    t0 = time.perf_counter()
    assert worker.stop(run_id, wait=5.0)
    assert time.perf_counter() - t0 < 1.0
    rec = store.get_run(run_id)
    assert rec.status == "stopped"
    assert rec.metrics["steps"] < 500 * 16
    assert store.events(run_id)[-1]["kind"] == "result"


def test_events_are_readable_while_the_run_writes():
    store, worker = RunStore(), Worker()
    run_id = worker.start_run(fast_config(epochs=40, log_every=2), store)
    seen, last = [], -1
    while worker.is_alive(run_id) or last < 0:
        new = store.events(run_id, after_seq=last)
        if new:
            seen.extend(new)
            last = new[-1]["seq"]
        time.sleep(0.01)
    seen.extend(store.events(run_id, after_seq=last))
    seqs = [e["seq"] for e in seen]
    assert seqs == sorted(set(seqs)) and seen[-1]["kind"] == "result"


@pytest.mark.parametrize("ending", ["stopped", "done"])
def test_a_stopped_or_finished_run_is_not_marked_interrupted(ending):
    store, worker = RunStore(), Worker()
    epochs = 500 if ending == "stopped" else 2  # a stop must land mid-run, not after the end
    run_id = worker.start_run(fast_config(epochs=epochs, log_every=1), store)
    assert _wait_for(lambda: any(e["kind"] == "step" for e in store.events(run_id)))
    assert store.mark_interrupted() == 0  # live in this process, mid-run
    if ending == "stopped":
        assert worker.stop(run_id, wait=5.0)
    else:
        assert worker.wait(run_id, 300)
    rec = store.get_run(run_id)
    assert rec.status == ending
    total = next(e["total_steps"] for e in store.events(run_id) if e["kind"] == "step")
    assert (rec.metrics["steps"] < total) if ending == "stopped" else (rec.metrics["steps"] == total)
    assert run_id not in runs_module.live_ids  # its worker is gone: only its status keeps it from "interrupted"
    assert store.mark_interrupted() == 0
    assert store.get_run(run_id).status == ending


def test_bad_config_raises_before_anything_is_stored():
    import pytest
    from tlcore.errors import TransferLabError
    store, worker = RunStore(), Worker()
    with pytest.raises(TransferLabError):
        worker.start_run(fast_config(strategy="nope"), store)
    assert store.list_runs() == []


def test_finished_jobs_beyond_the_limit_are_forgotten_oldest_first():
    import threading
    worker = Worker(keep_finished=2)
    for i in range(4):
        worker.start_job("sweep", lambda job: None, job_id=f"done{i}")
        assert worker.wait(f"done{i}", timeout=10)
    release = threading.Event()
    running = worker.start_job("sweep", lambda job: release.wait(10), job_id="running")
    try:
        # the newest two finished jobs and the running one are kept; the two oldest are gone
        assert worker.job("done0") is None and worker.job("done1") is None
        assert worker.job("done2") is not None and worker.job("done3") is not None
        assert worker.job("running") is running and worker.is_alive("running")
    finally:
        release.set()
        worker.wait("running", timeout=10)
    worker.start_job("sweep", lambda job: None, job_id="last")
    worker.wait("last", timeout=10)
    assert worker.job("done2") is None and worker.job("running") is not None  # a running job is never pruned
