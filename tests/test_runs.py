"""Tests for tlcore.runs (the SQLite run store) and tlcore.paths."""
from __future__ import annotations

import csv
import hashlib
import io
import json
import os
import socket
import sqlite3
import subprocess
import sys
import textwrap
import threading
import time
from pathlib import Path

import pytest

from tlcore import paths
from tlcore.errors import RunNotFoundError, TransferLabError
from tlcore.runs import (
    SCHEMA_VERSION,
    STATUSES,
    TABLE_COLUMNS,
    RunRecord,
    RunStore,
    RunStoreError,
    StatusError,
    config_key,
    live_ids,
    register_live,
    runs_table,
    unregister_live,
)

REPO_ROOT = Path(__file__).resolve().parents[1]


def make_config(**overrides):
    config = {
        "source": "digits",
        "target": "digits:rotate=30",
        "strategy": "dann",
        "seed": 0,
        "target_labels": 0,
        "lr": 1e-3,
        "steps": 100,
    }
    config.update(overrides)
    return config


@pytest.fixture
def store(tmp_path):
    return RunStore(tmp_path / "runs.sqlite", checkpoint_dir=tmp_path / "checkpoints")


def run_python(code: str, *args: str, **kwargs) -> subprocess.Popen:
    """Start a Python child that can import tlcore from this checkout."""
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    return subprocess.Popen(
        [sys.executable, "-c", textwrap.dedent(code), *args],
        cwd=REPO_ROOT, env=env, text=True,
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE, **kwargs,
    )


# ----------------------------------------------------------------------------- paths
def test_home_honours_transfer_lab_home(tmp_path):
    home = Path(os.environ["TRANSFER_LAB_HOME"])  # set per test by conftest.py
    assert home.parent == tmp_path
    assert paths.home_dir() == home
    assert paths.default_store_path() == home / "runs.sqlite"
    assert paths.checkpoint_dir() == home / "checkpoints"
    assert paths.default_data_dir() == home / "data"
    assert not home.exists(), "computing paths must not create directories"

    store = RunStore()
    assert store.path == home / "runs.sqlite"
    assert store.path.is_file()
    assert store.checkpoint_dir == home / "checkpoints"


def test_data_dir_env_overrides_home(tmp_path, monkeypatch):
    monkeypatch.setenv("TRANSFER_LAB_DATA", str(tmp_path / "datasets"))
    assert paths.default_data_dir() == tmp_path / "datasets"


@pytest.mark.parametrize(
    "platform, env, expected",
    [
        ("linux", {"XDG_DATA_HOME": "/xdg/data"}, Path("/xdg/data/transfer-lab")),
        ("linux", {"XDG_DATA_HOME": "relative/ignored"}, Path("~/.local/share/transfer-lab")),
        ("linux", {}, Path("~/.local/share/transfer-lab")),
        ("darwin", {"XDG_DATA_HOME": "/xdg/data"}, Path("~/Library/Application Support/transfer-lab")),
        ("win32", {"LOCALAPPDATA": "/appdata/local"}, Path("/appdata/local/transfer-lab")),
    ],
)
def test_home_falls_back_to_user_data_dir(monkeypatch, platform, env, expected):
    for name in ("TRANSFER_LAB_HOME", "XDG_DATA_HOME", "LOCALAPPDATA"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    monkeypatch.setattr(sys, "platform", platform)
    assert paths.home_dir() == expected.expanduser()


# ----------------------------------------------------------------------------- config keys
def test_config_key_is_canonical_sha256_prefix():
    config = make_config()
    canonical = json.dumps(config, sort_keys=True, separators=(",", ":"))
    assert config_key(config) == hashlib.sha256(canonical.encode()).hexdigest()[:16]
    reordered = dict(reversed(list(config.items())))
    assert config_key(reordered) == config_key(config)
    assert config_key(make_config(seed=1)) != config_key(config)


# ----------------------------------------------------------------------------- round trips
def test_create_and_get_round_trip(store):
    config = make_config()
    before = time.time()
    run_id = store.create_run(config, tags={"sweep": "s1"})
    run = store.get_run(run_id)

    assert isinstance(run, RunRecord)
    assert len(run_id) == 12 and int(run_id, 16) >= 0
    assert run.id == run_id
    assert run.status == "queued"
    assert (run.source, run.target, run.strategy, run.seed, run.target_labels) == (
        "digits", "digits:rotate=30", "dann", 0, 0)
    assert run.config == config
    assert run.config_key == config_key(config)
    assert run.metrics == {} and run.tags == {"sweep": "s1"}
    assert run.checkpoint_path is None and run.error is None
    assert run.pid == os.getpid() and run.hostname == socket.gethostname()
    assert before <= run.created_at <= run.updated_at <= time.time()
    assert not run.finished
    with pytest.raises(AttributeError):
        run.status = "done"  # frozen


def test_missing_config_keys_become_null(store):
    run = store.get_run(store.create_run({"lr": 0.1}))
    assert (run.source, run.target, run.strategy, run.seed, run.target_labels) == (None,) * 5


def test_status_and_finish(store, tmp_path):
    run_id = store.create_run(make_config())
    store.set_status(run_id, "running")
    assert store.get_run(run_id).status == "running"

    ckpt = tmp_path / "checkpoints" / "model.pt"
    store.finish(run_id, "done", {"target_accuracy": 0.8, "ntg": -0.1}, checkpoint_path=ckpt)
    run = store.get_run(run_id)
    assert run.status == "done" and run.finished
    assert run.metrics == {"target_accuracy": 0.8, "ntg": -0.1}
    assert run.checkpoint_path == str(ckpt)

    failed = store.create_run(make_config())
    store.finish(failed, "failed", None, error="loss became NaN")
    assert (store.get_run(failed).status, store.get_run(failed).error) == ("failed", "loss became NaN")


@pytest.mark.parametrize("bad", ["finished", "", "DONE"])
def test_unknown_status_is_rejected(store, bad):
    run_id = store.create_run(make_config())
    with pytest.raises(StatusError, match="valid: queued, running"):
        store.set_status(run_id, bad)
    with pytest.raises(StatusError):
        store.create_run(make_config(), status=bad)
    with pytest.raises(StatusError):
        store.list_runs(status=bad)
    assert store.get_run(run_id).status == "queued"


def test_finish_needs_a_final_status(store):
    run_id = store.create_run(make_config())
    with pytest.raises(StatusError, match="final status"):
        store.finish(run_id, "running", {})
    assert store.get_run(run_id).status == "queued"
    assert issubclass(StatusError, TransferLabError) and issubclass(StatusError, ValueError)
    assert STATUSES == ("queued", "running", "done", "failed", "stopped", "interrupted")


def test_list_filters_and_newest_first(store):
    a = store.create_run(make_config(strategy="source_only"))
    b = store.create_run(make_config(strategy="dann", source="moons", target="moons:rotate=45"))
    c = store.create_run(make_config(strategy="dann"))
    store.finish(a, "done", {})
    store.finish(c, "failed", None)

    assert [r.id for r in store.list_runs()] == [c, b, a]
    assert [r.id for r in store.list_runs(limit=2)] == [c, b]
    assert [r.id for r in store.list_runs(strategy="dann")] == [c, b]
    assert [r.id for r in store.list_runs(status="done")] == [a]
    assert [r.id for r in store.list_runs(status=("queued", "failed"))] == [c, b]
    assert [r.id for r in store.list_runs(source="moons")] == [b]
    assert [r.id for r in store.list_runs(target="digits:rotate=30", strategy="dann")] == [c]
    assert store.list_runs(strategy="coral") == []


def test_find_run_returns_newest_done_match(store):
    config = make_config(strategy="source_only")
    key = config_key(config)
    assert store.find_run(key) is None
    old = store.create_run(config)
    store.finish(old, "done", {"target_accuracy": 0.5})
    new = store.create_run(dict(reversed(list(config.items()))))  # same config, other key order
    store.finish(new, "done", {"target_accuracy": 0.6})
    running = store.create_run(config, status="running")
    store.create_run(make_config(strategy="dann"))  # another key

    assert store.find_run(key).id == new
    assert store.find_run(key, status="running").id == running
    assert store.find_run(key, status=None).id == running
    assert store.find_run("0" * 16) is None


def test_update_tags_merges(store):
    run_id = store.create_run(make_config(), tags={"sweep": "s1"})
    assert store.update_tags(run_id, {"baseline": "abc"}) == {"sweep": "s1", "baseline": "abc"}
    assert store.get_run(run_id).tags == {"sweep": "s1", "baseline": "abc"}


def test_delete_removes_run_events_and_own_checkpoint(store, tmp_path):
    ckpt_dir = tmp_path / "checkpoints"
    ckpt_dir.mkdir()
    inside = ckpt_dir / "a.pt"
    inside.write_bytes(b"weights")
    outside = tmp_path / "user_model.pt"
    outside.write_bytes(b"precious")

    a = store.create_run(make_config())
    store.append_events(a, [{"kind": "step"}] * 3)
    store.finish(a, "done", {}, checkpoint_path=inside)
    b = store.create_run(make_config())
    store.finish(b, "done", {}, checkpoint_path=outside)
    keep = store.create_run(make_config())
    store.append_events(keep, [{"kind": "step"}])

    store.delete_run(a)
    with pytest.raises(RunNotFoundError):
        store.get_run(a)
    assert not inside.exists()
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("SELECT COUNT(*) FROM events WHERE run_id = ?", (a,)).fetchone()[0] == 0

    store.delete_run(b)
    assert outside.read_bytes() == b"precious", "a file outside the checkpoint dir must survive"
    assert [r.id for r in store.list_runs()] == [keep]
    assert len(store.events(keep)) == 1


@pytest.mark.parametrize(
    "call",
    [
        lambda s: s.get_run("nope"),
        lambda s: s.set_status("nope", "running"),
        lambda s: s.finish("nope", "done", {}),
        lambda s: s.append_events("nope", [{"kind": "step"}]),
        lambda s: s.append_events("nope", []),
        lambda s: s.events("nope"),
        lambda s: s.delete_run("nope"),
        lambda s: s.update_tags("nope", {"a": 1}),
    ],
    ids=["get_run", "set_status", "finish", "append_events", "append_nothing", "events", "delete_run", "update_tags"],
)
def test_missing_run_raises_run_not_found(store, call):
    store.create_run(make_config())
    with pytest.raises(RunNotFoundError, match="no run with id 'nope'"):
        call(store)
    assert len(store.list_runs()) == 1


# ----------------------------------------------------------------------------- events
def test_events_order_and_incremental_polling(store):
    run_id = store.create_run(make_config())
    other = store.create_run(make_config())
    assert store.events(run_id) == []
    assert store.append_events(run_id, [{"kind": "started", "steps": 3.0}]) == 0
    assert store.append_events(other, [{"kind": "step", "step": 99.0}]) == 0
    last = store.append_events(run_id, [
        {"kind": "step", "step": 1.0, "loss": 0.9},
        {"kind": "step", "step": 2.0, "loss": 0.7, "seq": 1234},  # a caller's seq is ignored
        {"kind": "eval", "step": 2.0, "target_accuracy": 0.5},
    ])
    assert last == 3

    everything = store.events(run_id)
    assert [e["seq"] for e in everything] == [0, 1, 2, 3]
    assert [e["kind"] for e in everything] == ["started", "step", "step", "eval"]
    assert everything[2] == {"seq": 2, "kind": "step", "step": 2.0, "loss": 0.7}

    assert [e["seq"] for e in store.events(run_id, after_seq=1)] == [2, 3]
    assert store.events(run_id, after_seq=3) == []
    assert [e["seq"] for e in store.events(run_id, kinds=["step"])] == [1, 2]
    assert [e["seq"] for e in store.events(run_id, after_seq=1, kinds=("eval", "started"))] == [3]
    assert store.events(run_id, kinds=[]) == []
    assert [e["seq"] for e in store.events(run_id, limit=2)] == [0, 1]
    assert store.append_events(run_id, [{"kind": "result"}]) == 4
    assert [e["seq"] for e in store.events(other)] == [0]


def test_bad_event_batch_writes_nothing(store):
    run_id = store.create_run(make_config())
    store.append_events(run_id, [{"kind": "step", "step": 1.0}])
    with pytest.raises(ValueError, match="'kind'"):
        store.append_events(run_id, [{"kind": "step"}, {"step": 2.0}])
    with pytest.raises(TypeError):
        store.append_events(run_id, [{"kind": "step"}, {"kind": "eval", "model": object()}])
    assert [e["seq"] for e in store.events(run_id)] == [0]
    assert store.append_events(run_id, [{"kind": "step"}]) == 1


def test_unserialisable_config_creates_no_run(store):
    with pytest.raises(TypeError):
        store.create_run(make_config(model=object()))
    assert store.list_runs() == []


# ----------------------------------------------------------------------------- concurrency
def test_reader_thread_while_writer_thread_appends(store):
    run_id = store.create_run(make_config())
    batches, per_batch = 150, 4
    errors: list[BaseException] = []
    observed: list[int] = []  # number of events seen after each poll
    done = threading.Event()

    def writer():
        try:
            for i in range(batches):
                store.append_events(run_id, [{"kind": "step", "i": float(i)}] * per_batch)
                if i % 10 == 0:
                    store.set_status(run_id, "running")
                if i % 50 == 49:  # let the reader catch up now and then, so it sees the log grow
                    deadline = time.time() + 10
                    while (not observed or observed[-1] < (i + 1) * per_batch) and time.time() < deadline:
                        time.sleep(0.001)
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)
        finally:
            done.set()

    def reader():
        last = -1
        try:
            while True:
                finished = done.is_set()
                new = store.events(run_id, after_seq=last)
                seqs = [e["seq"] for e in new]
                assert seqs == list(range(last + 1, last + 1 + len(new))), "seq must grow without gaps"
                last = seqs[-1] if seqs else last
                observed.append(last + 1)
                store.get_run(run_id)
                store.list_runs(limit=5)
                if finished:
                    return
        except BaseException as exc:  # noqa: BLE001 - reported below
            errors.append(exc)

    threads = [threading.Thread(target=writer), threading.Thread(target=reader)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    assert observed[-1] == batches * per_batch
    assert observed == sorted(observed)
    assert len(set(observed)) > 2, "the reader should have seen the log grow while it was written"


def test_concurrent_writers_get_unique_contiguous_seqs(store):
    run_id = store.create_run(make_config())
    errors: list[BaseException] = []

    def writer(name):
        try:
            for i in range(60):
                store.append_events(run_id, [{"kind": name, "i": float(i)}, {"kind": name, "i": float(i)}])
        except BaseException as exc:  # noqa: BLE001
            errors.append(exc)

    threads = [threading.Thread(target=writer, args=(f"w{k}",)) for k in range(3)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=60)
    assert not errors, errors
    events = store.events(run_id)
    assert [e["seq"] for e in events] == list(range(3 * 60 * 2))
    for k in range(3):  # each writer's events keep their own order
        mine = [e["i"] for e in events if e["kind"] == f"w{k}"]
        assert mine == sorted(mine) and len(mine) == 120


def test_other_process_reads_while_this_one_writes(store):
    run_id = store.create_run(make_config())
    child = run_python(
        """
        import sys, time
        from tlcore.runs import RunStore
        store = RunStore(sys.argv[1])
        run_id = sys.argv[2]
        print("ready", flush=True)
        last, seen, deadline = -1, set(), time.time() + 60
        while time.time() < deadline:
            new = store.events(run_id, after_seq=last)
            seqs = [e["seq"] for e in new]
            assert seqs == list(range(last + 1, last + 1 + len(new))), seqs
            if new:
                last = seqs[-1]
            seen.add(last)
            if new and new[-1]["kind"] == "end":
                assert store.get_run(run_id).status == "running"
                print("seen", len(seen), last, flush=True)
                sys.exit(0)
            time.sleep(0.002)
        sys.exit("timed out")
        """,
        str(store.path), run_id,
    )
    try:
        assert child.stdout.readline().strip() == "ready"
        store.set_status(run_id, "running")
        for i in range(100):
            store.append_events(run_id, [{"kind": "step", "i": float(i)}] * 3)
            time.sleep(0.002)
        store.append_events(run_id, [{"kind": "end"}])
        out, err = child.communicate(timeout=60)
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()
    assert child.returncode == 0, err
    _, distinct, last = out.split()
    assert int(last) == 300
    assert int(distinct) > 2, "the child should have seen the log grow while it was written"


# ----------------------------------------------------------------------------- interrupted runs
def test_mark_interrupted(store):
    # A child process creates a running run and stays alive until told to exit.
    child = run_python(
        """
        import sys
        from tlcore.runs import RunStore
        print(RunStore(sys.argv[1]).create_run({"strategy": "dann"}, status="running"), flush=True)
        sys.stdin.read()
        """,
        str(store.path),
    )
    try:
        child_run = child.stdout.readline().strip()
        assert store.get_run(child_run).pid == child.pid

        live_here = store.create_run(make_config(), status="running")
        orphan_here = store.create_run(make_config())  # queued by this process, no live worker
        finished = store.create_run(make_config())
        store.finish(finished, "done", {})
        elsewhere = store.create_run(make_config(), status="running")
        with sqlite3.connect(store.path) as conn:
            conn.execute("UPDATE runs SET hostname = 'another-host', pid = 1 WHERE id = ?", (elsewhere,))

        register_live(live_here)
        try:
            assert store.mark_interrupted() == 1
            assert store.get_run(orphan_here).status == "interrupted"
            assert "no worker" in store.get_run(orphan_here).error
            assert store.get_run(child_run).status == "running", "its process is still alive"

            child.stdin.close()
            assert child.wait(timeout=30) == 0
            assert store.mark_interrupted() == 1
            dead = store.get_run(child_run)
            assert dead.status == "interrupted"
            assert f"pid {child.pid}" in dead.error

            assert store.get_run(live_here).status == "running"
            assert store.get_run(finished).status == "done"
            assert store.get_run(elsewhere).status == "running", "another host's runs are left alone"
            assert store.mark_interrupted() == 0
        finally:
            unregister_live(live_here)
        assert live_here not in live_ids
        assert RunStore.live_ids is live_ids
        assert store.mark_interrupted() == 1
        assert store.get_run(live_here).status == "interrupted"
    finally:
        if child.poll() is None:
            child.kill()
            child.wait()


def test_mark_interrupted_uses_recorded_dead_pid(store):
    # A process that has exited (and been reaped) leaves a pid that is no longer alive.
    gone = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True)
    dead_pid = int(gone.stdout)
    run_id = store.create_run(make_config(), status="running")
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (dead_pid, run_id))
    assert store.mark_interrupted() == 1
    assert store.get_run(run_id).status == "interrupted"


# ----------------------------------------------------------------------------- CSV / table
def test_runs_table_and_csv_export(store, tmp_path):
    a = store.create_run(make_config(strategy="source_only"))
    store.finish(a, "done", {"target_accuracy": 0.5, "source_accuracy": 0.9, "ntg": 0.0})
    b = store.create_run(make_config(strategy="dann", seed=3))
    store.finish(b, "done", {"target_accuracy": 0.75, "ntg": -0.25, "extras": {"domain_accuracy": 0.6},
                             "status": "clash"})
    c = store.create_run(make_config(strategy="coral"))  # queued: no metrics

    rows = runs_table(store.list_runs())
    assert [r["id"] for r in rows] == [c, b, a]
    expected_columns = [*TABLE_COLUMNS, "target_accuracy", "ntg", "extras.domain_accuracy",
                        "metrics.status", "source_accuracy"]
    assert all(list(r) == expected_columns for r in rows)
    assert rows[1]["strategy"] == "dann" and rows[1]["seed"] == 3
    assert rows[1]["extras.domain_accuracy"] == 0.6 and rows[1]["metrics.status"] == "clash"
    assert rows[1]["status"] == "done"
    assert rows[0]["target_accuracy"] is None and rows[2]["source_accuracy"] == 0.9

    out = tmp_path / "export" / "runs.csv"
    assert store.export_csv(out) == 3
    with open(out, newline="", encoding="utf-8") as handle:
        reader = csv.DictReader(handle)
        assert reader.fieldnames == expected_columns
        parsed = list(reader)
    assert [r["id"] for r in parsed] == [c, b, a]
    assert float(parsed[2]["target_accuracy"]) == 0.5 and float(parsed[1]["ntg"]) == -0.25
    assert parsed[0]["target_accuracy"] == "" and parsed[0]["status"] == "queued"
    assert float(parsed[2]["created_at"]) == pytest.approx(store.get_run(a).created_at)

    buffer = io.StringIO()
    assert store.export_csv(buffer, runs=[store.get_run(a)]) == 1
    lines = buffer.getvalue().splitlines()
    assert lines[0] == ",".join([*TABLE_COLUMNS, "target_accuracy", "source_accuracy", "ntg"])
    assert len(lines) == 2


def test_csv_export_of_no_runs_has_header_only(store):
    buffer = io.StringIO()
    assert store.export_csv(buffer) == 0
    assert buffer.getvalue().splitlines() == [",".join(TABLE_COLUMNS)]


# ----------------------------------------------------------------------------- the database file
def test_reopen_keeps_runs_and_uses_wal(store):
    run_id = store.create_run(make_config())
    store.append_events(run_id, [{"kind": "step"}])
    again = RunStore(store.path)
    assert again.get_run(run_id).config == make_config()
    assert len(again.events(run_id)) == 1
    with sqlite3.connect(store.path) as conn:
        assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        indexes = {row[1] for row in conn.execute("PRAGMA index_list(events)")}
        assert "events_run_seq" in indexes


@pytest.mark.parametrize(
    "garbage", [b"this is not a database\n" * 200, bytes(range(256)) * 16], ids=["text", "binary"]
)
def test_corrupt_database_gives_clear_error(tmp_path, garbage):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(garbage)
    with pytest.raises(RunStoreError) as info:
        RunStore(path)
    assert str(path) in str(info.value)
    assert "not a valid Transfer Lab run database" in str(info.value)
    assert isinstance(info.value, TransferLabError)
    assert isinstance(info.value.__cause__, sqlite3.DatabaseError)


def test_database_corrupted_after_opening_gives_clear_error(store):
    store.create_run(make_config())
    for suffix in ("", "-wal", "-shm"):
        Path(f"{store.path}{suffix}").unlink(missing_ok=True)
    store.path.write_bytes(b"\x00garbage" * 1000)
    with pytest.raises(RunStoreError, match="not a valid Transfer Lab run database") as info:
        store.list_runs()
    assert str(store.path) in str(info.value)


def test_newer_schema_is_refused(tmp_path):
    path = tmp_path / "runs.sqlite"
    with sqlite3.connect(path) as conn:
        conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 1}")
    with pytest.raises(RunStoreError, match="newer"):
        RunStore(path)


def test_unopenable_path_gives_clear_error(tmp_path):
    directory = tmp_path / "a_directory"
    directory.mkdir()
    with pytest.raises(RunStoreError, match="a_directory"):
        RunStore(directory)


def test_importing_tlcore_runs_does_not_import_streamlit():
    child = run_python("import sys, tlcore.runs, tlcore.paths; sys.exit('streamlit' in sys.modules)")
    child.communicate(timeout=60)
    assert child.returncode == 0


def test_count_runs_matches_list_runs(store):
    assert store.count_runs() == 0
    a = store.create_run(make_config(strategy="source_only"))
    store.finish(a, "done", {"target_accuracy": 0.5})
    store.create_run(make_config(strategy="dann"), status="running")
    store.create_run(make_config(strategy="mmd"))
    for status in (None, "done", "running", "queued", "failed"):
        assert store.count_runs(status) == len(store.list_runs(status=status)), status
    assert (store.count_runs(), store.count_runs("done")) == (3, 1)
    with pytest.raises(Exception, match="status"):
        store.count_runs("finished-ish")
