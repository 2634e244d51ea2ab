"""Faults of the run store met with real processes and files (issue 14, items 2, 8, 9, 10):
runs whose process died, killed or terminated; rows that cannot be parsed; a corrupt file;
a store that cannot be written."""
from __future__ import annotations

import ctypes
import json
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest

from tlcore.errors import StoreCorruptError, StoreReadOnlyError, TransferLabError
from tlcore.runs import (
    LISTED_STATUSES,
    LOCAL_STALE_S,
    READONLY_ENV,
    REMOTE_STALE_S,
    SCHEMA_VERSION,
    UNREADABLE,
    RunStore,
    RunStoreError,
    _migrate_to_v1,
    quarantine_store,
)

REPO_ROOT = Path(__file__).resolve().parents[1]
CONFIG = {"source": "moons", "target": "moons:rotate=30", "strategy": "dann", "seed": 0, "target_labels": 0}


def child_env(**extra: str) -> dict[str, str]:
    env = dict(os.environ, PYTHONPATH=str(REPO_ROOT) + os.pathsep + os.environ.get("PYTHONPATH", ""))
    env.update(extra)
    return env


def tlcore(*args: str, preexec_fn=None, timeout: float = 120) -> subprocess.CompletedProcess:
    """``python -m tlcore ARGS`` in a child process, as a user would run it."""
    return subprocess.run([sys.executable, "-m", "tlcore", *args], cwd=REPO_ROOT, env=child_env(),
                          capture_output=True, text=True, timeout=timeout, preexec_fn=preexec_fn)


def stored_row(path: Path, run_id: str) -> sqlite3.Row:
    """The row as stored, read with plain sqlite3 (no RunStore rules applied)."""
    with sqlite3.connect(path) as conn:
        conn.row_factory = sqlite3.Row
        return conn.execute("SELECT * FROM runs WHERE id = ?", (run_id,)).fetchone()


# ----------------------------------------------------------------------------- item 2: dead processes
def start_long_run(store_path: Path, tmp_path: Path) -> tuple[subprocess.Popen, str]:
    """``tlcore run`` of a long moons run in a child; returns it once it has written events."""
    child = subprocess.Popen(
        [sys.executable, "-m", "tlcore", "run", "--source", "moons", "--target", "moons:rotate=30",
         "--epochs", "1000", "--device", "cpu", "--threads", "1", "--no-baseline", "--quiet",
         "--store", str(store_path)],
        cwd=REPO_ROOT, env=child_env(TRANSFER_LAB_HOME=str(tmp_path / "child-home")),
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
    )
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert child.poll() is None, child.communicate()
        try:
            with sqlite3.connect(f"file:{store_path}?mode=ro", uri=True) as conn:
                row = conn.execute("SELECT runs.id FROM runs JOIN events ON events.run_id = runs.id "
                                   "WHERE events.kind = 'step' LIMIT 1").fetchone()
        except sqlite3.OperationalError:  # no file, or no schema yet
            row = None
        if row is not None:
            return child, row[0]
        time.sleep(0.2)
    child.kill()
    raise AssertionError("the child run wrote no step event in 120 s")


def test_run_killed_with_sigkill_is_listed_interrupted(tmp_path):
    store_path = tmp_path / "runs.sqlite"
    child, run_id = start_long_run(store_path, tmp_path)
    assert RunStore(store_path).get_run(run_id).status == "running", "its process is alive"
    child.kill()  # SIGKILL: no handler runs, the row stays "running"
    child.communicate(timeout=30)
    assert stored_row(store_path, run_id)["status"] == "running"
    assert stored_row(store_path, run_id)["heartbeat_at"] is not None

    listed = tlcore("runs", "--store", str(store_path), "--json")
    assert listed.returncode == 0, listed.stderr
    (row,) = json.loads(listed.stdout)
    assert row["id"] == run_id and row["status"] == "interrupted"
    # The listing stored it, with the reason, for every later reader.
    stored = stored_row(store_path, run_id)
    assert stored["status"] == "interrupted"
    assert f"pid {child.pid}" in stored["error"] and "ended before the run finished" in stored["error"]
    table = tlcore("runs", "--store", str(store_path))
    assert f"{run_id}  interrupted" in table.stdout


@pytest.mark.parametrize("signame", ["SIGTERM", "SIGHUP"])
def test_sigterm_and_sighup_finish_the_run_as_interrupted(tmp_path, signame):
    store_path = tmp_path / "runs.sqlite"
    child, run_id = start_long_run(store_path, tmp_path)
    signum = getattr(signal, signame)
    child.send_signal(signum)
    _, err = child.communicate(timeout=60)
    assert child.returncode == 128 + signum, err
    assert err.strip().splitlines()[-1] == f"interrupted: terminated by {signame}"
    # Finished by the process itself (read as stored, not through a listing's rules).
    stored = stored_row(store_path, run_id)
    assert stored["status"] == "interrupted"
    assert signame in stored["error"]


def age_heartbeat(path: Path, run_id: str, seconds: float, **columns) -> None:
    sets = ", ".join(["heartbeat_at = ?", "updated_at = ?"] + [f"{c} = ?" for c in columns])
    old = time.time() - seconds
    with sqlite3.connect(path) as conn:
        conn.execute(f"UPDATE runs SET {sets} WHERE id = ?", (old, old, *columns.values(), run_id))


def test_another_hosts_run_is_interrupted_only_after_a_long_silence(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    quiet = store.create_run(CONFIG, status="running")
    silent = store.create_run(CONFIG, status="running")
    age_heartbeat(store.path, quiet, REMOTE_STALE_S / 2, hostname="another-host", pid=1)
    age_heartbeat(store.path, silent, REMOTE_STALE_S + 60, hostname="another-host", pid=1)
    runs = {r.id: r for r in store.list_runs()}
    assert runs[quiet].status == "running"
    assert runs[silent].status == "interrupted"
    assert "another-host" in runs[silent].error and "no sign of life" in runs[silent].error
    assert [r.id for r in store.list_runs(status="running")] == [quiet]
    assert [r.id for r in store.list_runs(status="interrupted")] == [silent]


def test_this_processes_run_without_a_worker_is_interrupted_after_the_grace(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    fresh = store.create_run(CONFIG, status="running")
    orphan = store.create_run(CONFIG, status="running")  # e.g. its worker died on a full disk
    age_heartbeat(store.path, orphan, LOCAL_STALE_S + 5)
    runs = {r.id: r for r in store.list_runs()}
    assert runs[fresh].status == "running"
    assert runs[orphan].status == "interrupted" and "no worker" in runs[orphan].error
    assert stored_row(store.path, orphan)["status"] == "interrupted"


def test_a_reused_pid_does_not_keep_a_run_running(tmp_path):
    # The pid recorded for the run is alive (this test process) on this host, but that process
    # started after the run's last heartbeat: it cannot be the one that ran it.
    if not Path(f"/proc/{os.getpid()}/stat").exists():
        pytest.skip("needs /proc to tell when a process started")
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run(CONFIG, status="running")
    parent = os.getppid()
    age_heartbeat(store.path, run_id, 10 * 365 * 86400)
    with sqlite3.connect(store.path) as conn:  # a live pid, not this process's own
        conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (parent, run_id))
    assert store.get_run(run_id).status == "interrupted"
    alive = store.create_run(CONFIG, status="running")
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET pid = ? WHERE id = ?", (parent, alive))
    assert store.get_run(alive).status == "running", "a live pid with a fresh heartbeat"


def make_v1_store(path: Path) -> None:
    """A store as Transfer Lab wrote it before heartbeats (schema version 1), with one run."""
    with sqlite3.connect(path) as conn:
        _migrate_to_v1(conn)
        conn.execute(
            "INSERT INTO runs (id, created_at, updated_at, status, source, target, strategy, seed, "
            "target_labels, config_json, config_key, metrics_json, pid, hostname, tags_json) "
            "VALUES ('oldrun', 1, 2, 'done', 'moons', 'moons', 'dann', 0, 0, ?, 'k', ?, 1, 'h', '{}')",
            (json.dumps(CONFIG), json.dumps({"target_accuracy": 0.5})),
        )
        conn.execute("PRAGMA user_version = 1")
        conn.execute("PRAGMA journal_mode=WAL")


def test_a_version_1_store_is_upgraded_and_keeps_its_runs(tmp_path):
    path = tmp_path / "runs.sqlite"
    make_v1_store(path)
    store = RunStore(path)
    (run,) = store.list_runs()
    assert (run.id, run.status, run.metrics, run.heartbeat_at) == ("oldrun", "done", {"target_accuracy": 0.5}, None)
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    new = store.create_run(CONFIG, status="running")
    store.append_events(new, [{"kind": "step"}])
    assert store.get_run(new).heartbeat_at is not None


# ----------------------------------------------------------------------------- item 8: unreadable rows
def test_a_malformed_row_is_listed_as_unreadable_and_the_rest_still_list(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    good = store.create_run(CONFIG)
    store.finish(good, "done", {"target_accuracy": 0.75})
    bad = store.create_run(CONFIG)
    store.finish(bad, "done", {"target_accuracy": 0.5})
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE runs SET config_json = '{bad' WHERE id = ?", (bad,))

    runs = {r.id: r for r in store.list_runs()}
    assert runs[good].status == "done" and runs[good].metrics == {"target_accuracy": 0.75}
    assert runs[bad].status == UNREADABLE and runs[bad].config == {} and runs[bad].metrics == {}
    assert "config_json" in runs[bad].error and "'done'" in runs[bad].error
    assert runs[bad].strategy == "dann", "the plain columns are still shown"
    assert UNREADABLE in LISTED_STATUSES
    # Code that asks for finished runs never gets one it cannot use.
    assert [r.id for r in store.list_runs(status="done")] == [good]
    assert [r.id for r in store.list_runs(status=UNREADABLE)] == [bad]
    assert store.find_run(runs[good].config_key).id == good
    assert store.get_run(bad).status == UNREADABLE

    listed = tlcore("runs", "--store", str(store.path))
    assert listed.returncode == 0, listed.stderr
    assert f"{bad}  unreadable" in listed.stdout and f"{good}  done" in listed.stdout
    as_json = tlcore("runs", "--store", str(store.path), "--json")
    assert {r["id"]: r["status"] for r in json.loads(as_json.stdout)} == {good: "done", bad: UNREADABLE}

    deleted = tlcore("runs", "--store", str(store.path), "--delete", bad)
    assert deleted.returncode == 0, deleted.stderr
    assert [r.id for r in store.list_runs()] == [good]


@pytest.mark.parametrize("column,text", [("metrics_json", "[1, 2"), ("tags_json", "[]")])
def test_other_malformed_json_columns(tmp_path, column, text):
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run(CONFIG)
    with sqlite3.connect(store.path) as conn:
        conn.execute(f"UPDATE runs SET {column} = ? WHERE id = ?", (text, run_id))
    (run,) = store.list_runs()
    assert run.status == UNREADABLE and column in run.error


# ----------------------------------------------------------------------------- item 9: corrupt file
def test_quarantine_moves_a_corrupt_store_aside_and_a_fresh_one_starts(tmp_path):
    path = tmp_path / "runs.sqlite"
    garbage = b"this is not a database\n" * 200
    path.write_bytes(garbage)
    with pytest.raises(StoreCorruptError) as info:
        RunStore(path)
    assert info.value.path == path

    moved = quarantine_store(path)
    assert moved.parent == tmp_path and moved.name.startswith("runs.sqlite.corrupt-")
    assert moved.read_bytes() == garbage, "the damaged file is kept as it was"
    fresh = RunStore(path)
    assert fresh.list_runs() == []
    with pytest.raises(RunStoreError, match="readable run database: nothing was moved"):
        quarantine_store(path)
    assert fresh.list_runs() == [] and path.exists()


def test_quarantine_from_the_command_line(tmp_path):
    path = tmp_path / "runs.sqlite"
    path.write_bytes(bytes(range(256)) * 16)
    broken = tlcore("runs", "--store", str(path))
    assert broken.returncode == 2 and broken.stderr.count("\n") == 1
    assert "--quarantine" in broken.stderr
    fixed = tlcore("runs", "--store", str(path), "--quarantine")
    assert fixed.returncode == 0, fixed.stderr
    assert "runs.sqlite.corrupt-" in fixed.stdout and ".recover" in fixed.stdout
    assert len(list(tmp_path.glob("runs.sqlite.corrupt-*"))) == 1
    assert tlcore("runs", "--store", str(path), "--json").stdout.strip() == "[]"


# ----------------------------------------------------------------------------- item 10: read-only stores
_DAC_CAPS = (1, 2, 3)  # CAP_DAC_OVERRIDE, CAP_DAC_READ_SEARCH, CAP_FOWNER (linux/capability.h)
_PR_CAPBSET_DROP = 24


def _without_file_privileges() -> None:
    """In a root child before exec: drop the capabilities that let root ignore file modes, so
    that ``chmod`` binds it as it binds any user (they are recomputed from this bounding set)."""
    libc = ctypes.CDLL(None, use_errno=True)
    for cap in _DAC_CAPS:
        if libc.prctl(_PR_CAPBSET_DROP, cap, 0, 0, 0) != 0:
            raise OSError(ctypes.get_errno(), "prctl(PR_CAPBSET_DROP) failed")


def read_only_store(tmp_path: Path) -> tuple[RunStore, str]:
    store = RunStore(tmp_path / "store" / "runs.sqlite")
    run_id = store.create_run(CONFIG)
    store.finish(run_id, "done", {"target_accuracy": 0.5})
    return store, run_id


def test_read_only_folder_lists_runs_and_refuses_writes(tmp_path):
    """The folder and file are made read-only with chmod, and the CLI runs in a child that
    chmod binds: an ordinary user, or root without the capabilities that override file modes."""
    if not sys.platform.startswith("linux"):
        pytest.skip("the child drops root's file capabilities with Linux prctl")
    store, run_id = read_only_store(tmp_path)
    folder = store.path.parent
    assert not list(folder.glob("*-shm")), "the last connection closed: no -shm left to share"
    preexec = _without_file_privileges if os.geteuid() == 0 else None
    os.chmod(store.path, 0o444)
    os.chmod(folder, 0o555)
    try:
        probe = subprocess.run([sys.executable, "-c", "import os, sys; print(os.access(sys.argv[1], os.W_OK))",
                                str(folder)], capture_output=True, text=True, preexec_fn=preexec)
        assert probe.stdout.strip() == "False", "the child must really be unable to write the folder"

        listed = tlcore("runs", "--store", str(store.path), "--json", preexec_fn=preexec)
        assert listed.returncode == 0, listed.stderr
        assert [r["id"] for r in json.loads(listed.stdout)] == [run_id]
        assert "read-only" in listed.stderr and str(folder) in listed.stderr

        deleted = tlcore("runs", "--store", str(store.path), "--delete", run_id, preexec_fn=preexec)
        assert deleted.returncode == 2
        error = deleted.stderr.splitlines()[-1]
        assert error.startswith("error: run store") and "is read-only" in error
    finally:
        os.chmod(folder, 0o755)
        os.chmod(store.path, 0o644)
    assert [r.id for r in store.list_runs()] == [run_id], "nothing was changed"


def test_store_opened_read_only_refuses_every_write(tmp_path, monkeypatch):
    store, run_id = read_only_store(tmp_path)
    for ro in (RunStore(store.path, readonly=True),
               (monkeypatch.setenv(READONLY_ENV, "1"), RunStore(store.path))[1]):
        assert ro.readonly and "read-only" in ro.readonly_note and str(ro.path) in ro.readonly_note
        assert [r.id for r in ro.list_runs()] == [run_id]
        assert ro.get_run(run_id).metrics == {"target_accuracy": 0.5}
        for write in (lambda: ro.create_run(CONFIG), lambda: ro.delete_run(run_id),
                      lambda: ro.finish(run_id, "failed", None), lambda: ro.append_events(run_id, [{"kind": "x"}])):
            with pytest.raises(StoreReadOnlyError, match="is read-only"):
                write()
        assert ro.mark_interrupted() == 0
        # SQLite itself holds the connection read-only, not only the check in front of it.
        with ro._connection() as conn, pytest.raises(sqlite3.OperationalError, match="readonly"):
            conn.execute("DELETE FROM runs")
    monkeypatch.delenv(READONLY_ENV)
    assert [r.id for r in RunStore(store.path).list_runs()] == [run_id]
    assert isinstance(StoreReadOnlyError("x"), TransferLabError)


def test_read_only_store_shows_dead_runs_as_interrupted_without_writing(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run(CONFIG, status="running")
    age_heartbeat(store.path, run_id, REMOTE_STALE_S + 60, hostname="another-host")
    ro = RunStore(store.path, readonly=True)
    assert ro.get_run(run_id).status == "interrupted"
    assert stored_row(store.path, run_id)["status"] == "running"


def test_read_only_version_1_store_is_read_without_upgrading(tmp_path):
    path = tmp_path / "runs.sqlite"
    make_v1_store(path)
    ro = RunStore(path, readonly=True)
    (run,) = ro.list_runs()
    assert run.id == "oldrun" and run.heartbeat_at is None
    with sqlite3.connect(path) as conn:
        assert conn.execute("PRAGMA user_version").fetchone()[0] == 1


def test_a_run_waiting_for_its_baseline_keeps_its_heartbeat(tmp_path, monkeypatch):
    # The matched target_only baseline writes the events while the run waits for it; on another
    # host only the heartbeat tells that the waiting run's process is alive.
    from tlcore import api
    from helpers import fast_config

    monkeypatch.setattr(api, "HEARTBEAT_INTERVAL_S", 0.0)
    store = RunStore(tmp_path / "runs.sqlite")
    out = api.run_experiment(fast_config(strategy="finetune", target_labels=2), store=store)
    run, baseline = store.get_run(out.run_id), store.get_run(out.metrics["baseline_run_id"])
    assert run.status == "done" and baseline.tags == {"baseline_of": run.id}
    assert run.heartbeat_at > baseline.created_at, "stamped while the baseline trained"


def test_a_malformed_event_is_returned_as_unreadable_and_the_rest_still_read(tmp_path):
    store = RunStore(tmp_path / "runs.sqlite")
    run_id = store.create_run(CONFIG)
    store.append_events(run_id, [{"kind": "step", "step": 1}, {"kind": "step", "step": 2}, {"kind": "eval"}])
    with sqlite3.connect(store.path) as conn:
        conn.execute("UPDATE events SET payload_json = '{bad' WHERE run_id = ? AND seq = 1", (run_id,))
    events = store.events(run_id)
    assert [e["kind"] for e in events] == ["step", UNREADABLE, "eval"]
    assert events[1]["stored_kind"] == "step" and "payload" in events[1]["error"]
    assert [e["step"] for e in store.events(run_id, kinds=["step"])] == [1]
