"""The Ray executor: jobs as Ray tasks on a local Ray started by the test, with the one run store
written on the head; the same sweep gives exactly the local executor's results, seed for seed."""
import time

import pytest

from tlcore.runs import RunStore
from tlcore.worker import Worker

from helpers import fast_config

ray = pytest.importorskip("ray", reason="Ray is the optional extra pip install -e '.[ray]'")

from tlcore.ray_executor import RayExecutor, parse_executor  # noqa: E402

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def local_ray():
    try:
        ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, ignore_reinit_error=True)
    except Exception as exc:  # noqa: BLE001 - Ray's own start-up, not the code under test
        # e.g. Ray's raylet gives its agents a fixed 15 s to start (ray-project/ray#65983), which an
        # overloaded machine exceeds. Under CI=true this skip fails the run (tests/conftest.py).
        pytest.skip(f"a local Ray could not start on this machine: {exc}")
    yield
    ray.shutdown()


def test_a_sweep_on_ray_gives_exactly_the_local_results_and_stop_cancels_a_task(tmp_path, local_ray):
    from tlcore.sweeps import ComparisonSweep
    spec = ComparisonSweep(arms=(("plain", fast_config()), ("coral", fast_config(strategy="coral"))), seeds=(0, 1))
    results = {}
    for name, worker in (("local", Worker(slots=2)), ("ray", Worker(slots=2, executor=RayExecutor()))):
        store = RunStore(tmp_path / f"{name}.sqlite")
        job = worker.start_sweep(spec, store, job_id=f"sweep-{name}", owner="abc")
        assert worker.wait(job.job_id, 600) and job.error is None, job.error
        results[name] = job.result
        runs = store.list_runs()
        assert len(runs) == 4 and {r.status for r in runs} == {"done"} and {r.owner for r in runs} == {"abc"}
        for run in runs:  # the head's store has every run's events, and its checkpoint
            kinds = [e["kind"] for e in store.events(run.id)]
            assert kinds[0] == "started" and "step" in kinds and kinds[-1] == "result"
            assert run.checkpoint_path and run.metrics["target_accuracy"] >= 0

    def rows(result):
        return sorted((r.arm, r.seed, r.target_accuracy, r.source_accuracy) for r in result.rows)
    assert len(rows(results["ray"])) == 4 and rows(results["ray"]) == rows(results["local"])

    # Stop reaches a running Ray task: the run ends as stopped, its events in the head's store
    worker, store = Worker(slots=2, executor=RayExecutor()), RunStore(tmp_path / "stop.sqlite")
    run_id = worker.start_run(fast_config(epochs=1000, log_every=1), store, owner="abc")
    t0 = time.time()
    while not any(e["kind"] == "step" for e in store.events(run_id)):
        assert time.time() - t0 < 300, "the Ray task never started"
        time.sleep(0.1)
    assert worker.stop(run_id, wait=120)
    rec = store.get_run(run_id)
    assert rec.status == "stopped" and store.events(run_id)[-1]["kind"] == "result"


def test_executor_option_parsing(monkeypatch):
    from tlcore.errors import TransferLabError
    monkeypatch.delenv("TRANSFER_LAB_RAY_ADDRESS", raising=False)
    assert parse_executor("local") == ("local", None)
    assert parse_executor("ray") == ("ray", None)
    assert parse_executor("ray=ray://head:10001") == ("ray", "ray://head:10001")
    monkeypatch.setenv("TRANSFER_LAB_RAY_ADDRESS", "auto")
    assert parse_executor("ray") == ("ray", "auto")
    with pytest.raises(TransferLabError, match="ray=ADDRESS"):
        parse_executor("dask")
