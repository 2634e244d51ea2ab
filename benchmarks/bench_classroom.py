"""A classroom on one server: simulated users start runs at once through the engine API that
the Train page calls (``Worker.start_run`` with each session's owner id), on the job queue.

Reports, in one run:

* Start latency per user (the page's Start answers with "running" or "queued"): max and median;
* time to the first live point per user (first ``step`` event in the store), and its ratio to
  the time of a user alone on the server (measured first, in the same run);
* that nothing is lost: every run ends ``done``, with its result event;
* the server's memory (RSS) over many more runs: after the first batch and after all of them.

    python benchmarks/bench_classroom.py [--users 10] [--runs 100] [--epochs 1]
"""
import argparse
import os
import resource
import statistics
import sys
import tempfile
import time

sys.path.insert(0, os.path.join(os.path.dirname(__file__), ".."))
os.environ.setdefault("TRANSFER_LAB_HOME", tempfile.mkdtemp(prefix="tl-classroom-"))

from tlcore.config import RunConfig  # noqa: E402
from tlcore.owners import new_owner_id  # noqa: E402
from tlcore.runs import RunStore  # noqa: E402
from tlcore.worker import Worker  # noqa: E402


def rss_mb() -> float:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def config(seed: int, epochs: int) -> RunConfig:
    return RunConfig(source="moons", target="moons:rotate=30", strategy="dann", epochs=epochs, seed=seed,
                     device="cpu", log_every=5)


def first_point(store: RunStore, run_id: str, t0: float, timeout: float = 3600) -> float:
    while time.perf_counter() - t0 < timeout:
        if store.events(run_id, kinds=["step"], limit=1):
            return time.perf_counter() - t0
        time.sleep(0.05)
    raise TimeoutError(run_id)


def classroom(worker: Worker, store: RunStore, users: int, epochs: int, seed0: int) -> dict:
    owners = [new_owner_id() for _ in range(users)]
    starts, latencies, answers = [], [], []
    for i, owner in enumerate(owners):
        t0 = time.perf_counter()
        run_id = worker.start_run(config(seed0 + i, epochs), store, owner=owner)
        latencies.append(time.perf_counter() - t0)
        answers.append(worker.job(run_id).state)  # what the page shows at once: running or queued
        starts.append((run_id, t0))
    firsts = [first_point(store, run_id, t0) for run_id, t0 in starts]
    for run_id, _ in starts:
        worker.wait(run_id)
    finished = [store.get_run(run_id) for run_id, _ in starts]
    lost = [r.id for r in finished if r.status != "done" or store.events(r.id)[-1]["kind"] != "result"]
    return {"latency": latencies, "answers": answers, "first": firsts, "lost": lost}


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--users", type=int, default=10)
    ap.add_argument("--runs", type=int, default=100, help="runs in all, for the memory figure")
    ap.add_argument("--epochs", type=int, default=1)
    args = ap.parse_args()
    store = RunStore()
    worker = Worker()
    print(f"{args.users} users, {worker.slots} slots ({os.cpu_count()} cores), moons dann {args.epochs} epoch(s)")

    alone = classroom(worker, store, 1, args.epochs, seed0=1000)
    print(f"one user alone: Start {alone['latency'][0] * 1000:.0f} ms, first point {alone['first'][0]:.1f} s")

    rss0 = rss_mb()
    crowd = classroom(worker, store, args.users, args.epochs, seed0=0)
    rss1 = rss_mb()
    lat, first = crowd["latency"], crowd["first"]
    counts = ", ".join(f"{crowd['answers'].count(a)} {a}" for a in sorted(set(crowd["answers"])))
    print(f"Start answered in max {max(lat) * 1000:.0f} ms, median {statistics.median(lat) * 1000:.0f} ms; "
          f"answers: {counts}")
    print("time to first point per user (s): " + ", ".join(f"{t:.1f}" for t in first))
    print(f"  median {statistics.median(first):.1f} s, max {max(first):.1f} s; "
          f"max / alone = {max(first) / alone['first'][0]:.1f}x")
    print(f"lost runs: {len(crowd['lost'])} of {args.users}")

    done = 1 + args.users
    batches = 0
    while done < args.runs:
        n = min(args.users, args.runs - done)
        more = classroom(worker, store, n, args.epochs, seed0=100 + done)
        assert not more["lost"], more["lost"]
        done += n
        batches += 1
    rss2 = rss_mb()
    print(f"server RSS: {rss0:.0f} MB before the class, {rss1:.0f} MB after {1 + args.users} runs, "
          f"{rss2:.0f} MB after {done} runs (ratio {rss2 / rss1:.2f}); worker remembers "
          f"{len(worker._jobs)} jobs (bounded by keep_finished={worker.keep_finished})")


if __name__ == "__main__":
    main()
