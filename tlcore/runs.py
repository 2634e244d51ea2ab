"""Run records in SQLite: one row per run, an append-only event log per run.

A :class:`RunStore` is the single place where runs are recorded. The training
worker writes (status, events, final metrics) while the Streamlit app, the CLI
or another process reads, so the store is built for one writer at a time and
any number of concurrent readers:

* **WAL journal.** Readers never block the writer and the writer never blocks
  readers; each read sees a consistent snapshot. ``synchronous=NORMAL`` is safe
  in WAL mode (a power cut can lose the last commits, never corrupt the file).
* **One connection per operation.** Every public method opens a connection,
  does one short transaction and closes it. That costs well under a millisecond
  and buys robustness: no connection is shared between threads (Streamlit runs
  each session in its own, short-lived threads), none survives a ``fork``, and
  no long-lived connection can pin an old snapshot. There is nothing to close.
* **Short write transactions.** Writes take the write lock up front
  (``BEGIN IMMEDIATE``), so two writers queue on the busy timeout instead of
  failing halfway, and a failing write rolls back as a whole: no half-written
  run or event batch is ever visible. Values are serialised to JSON *before*
  the transaction starts.
* **Schema versioning** through ``PRAGMA user_version``; a fresh file is
  migrated to :data:`SCHEMA_VERSION` on first open.

Any SQLite failure (a corrupt file, a path that cannot be opened, a lock held
past the timeout) surfaces as :class:`RunStoreError` naming the database path.

Tables::

    runs(id, created_at, updated_at, status, source, target, strategy, seed,
         target_labels, config_json, config_key, metrics_json, checkpoint_path,
         error, pid, hostname, tags_json)
    events(run_id, seq, kind, payload_json)      -- unique index (run_id, seq)

Example::

    store = RunStore()                      # <home>/runs.sqlite
    run_id = store.create_run({"source": "digits", "target": "digits:rotate=30",
                               "strategy": "dann", "seed": 0, "target_labels": 0})
    store.set_status(run_id, "running")
    store.append_events(run_id, [{"kind": "step", "step": 10, "loss": 0.7}])
    store.finish(run_id, "done", {"target_accuracy": 0.81})
    new = store.events(run_id, after_seq=last_seen)   # incremental polling
"""
from __future__ import annotations

import csv
import hashlib
import json
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

from tlcore import paths
from tlcore.errors import RunNotFoundError, RunStoreError, StatusError, TransferLabError  # noqa: F401 (re-exported)

__all__ = [
    "STATUSES",
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "SCHEMA_VERSION",
    "TABLE_COLUMNS",
    "RunStoreError",
    "StatusError",
    "RunRecord",
    "RunStore",
    "canonical_json",
    "config_key",
    "runs_table",
    "live_ids",
    "register_live",
    "unregister_live",
]

#: Every status a run can have.
STATUSES = ("queued", "running", "done", "failed", "stopped", "interrupted")
#: Statuses of a run that some process is expected to finish.
ACTIVE_STATUSES = ("queued", "running")
#: Statuses that :meth:`RunStore.finish` accepts.
FINAL_STATUSES = ("done", "failed", "stopped", "interrupted")

#: Version of the schema this module writes (``PRAGMA user_version``).
SCHEMA_VERSION = 1

#: Seconds a connection waits for another writer's lock before giving up.
BUSY_TIMEOUT_S = 30.0

#: The fixed leading columns of :func:`runs_table` and :meth:`RunStore.export_csv`.
TABLE_COLUMNS = ("id", "created_at", "status", "source", "target", "strategy", "seed", "target_labels")

# Config keys copied into their own columns, for filtering without parsing JSON.
_CONFIG_COLUMNS = ("source", "target", "strategy", "seed", "target_labels")

_RUN_COLUMNS = (
    "id", "created_at", "updated_at", "status", "source", "target", "strategy", "seed",
    "target_labels", "config_json", "config_key", "metrics_json", "checkpoint_path",
    "error", "pid", "hostname", "tags_json",
)
_SELECT_RUNS = f"SELECT {', '.join(_RUN_COLUMNS)} FROM runs"
# created_at can tie (coarse clocks); rowid keeps the insertion order then.
_NEWEST_FIRST = " ORDER BY created_at DESC, rowid DESC"




def _check_status(status: str, allowed: tuple[str, ...] = STATUSES, what: str = "status") -> None:
    if status not in allowed:
        raise StatusError(f"invalid run {what} {status!r}; valid: {', '.join(allowed)}")


# --------------------------------------------------------------------------- live runs
#: Ids of the runs that a worker in *this* process is executing (or has queued).
#: The worker adds a run when it accepts it and discards it when the run ends;
#: :meth:`RunStore.mark_interrupted` treats an active run of this process that is
#: missing here as orphaned (e.g. its thread died with the previous app session).
live_ids: set[str] = set()
_live_lock = threading.Lock()


def register_live(run_id: str) -> None:
    """Record that a worker in this process is executing (or has queued) ``run_id``."""
    with _live_lock:
        live_ids.add(run_id)


def unregister_live(run_id: str) -> None:
    """Record that no worker in this process executes ``run_id`` any more (no-op if absent)."""
    with _live_lock:
        live_ids.discard(run_id)


def _live_snapshot() -> frozenset[str]:
    with _live_lock:
        return frozenset(live_ids)


def _pid_alive(pid: int) -> bool:
    """Whether a process with this id exists on this machine."""
    if pid <= 0:
        return False
    if sys.platform.startswith("win"):
        return _pid_alive_windows(pid)
    try:
        os.kill(pid, 0)  # signal 0: existence and permission check only
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # exists, owned by another user
    return True


def _pid_alive_windows(pid: int) -> bool:  # pragma: no cover - exercised on Windows only
    # os.kill(pid, 0) would *terminate* the process on Windows; ask the kernel instead.
    import ctypes

    kernel32 = ctypes.windll.kernel32
    process_query_limited_information, still_active, error_access_denied = 0x1000, 259, 5
    handle = kernel32.OpenProcess(process_query_limited_information, False, pid)
    if not handle:
        return kernel32.GetLastError() == error_access_denied
    try:
        code = ctypes.c_ulong()
        if not kernel32.GetExitCodeProcess(handle, ctypes.byref(code)):
            return True
        return code.value == still_active
    finally:
        kernel32.CloseHandle(handle)


# --------------------------------------------------------------------------- config keys
def canonical_json(config: Mapping[str, Any]) -> str:
    """The canonical JSON text of a config: sorted keys, no whitespace."""
    return json.dumps(config, sort_keys=True, separators=(",", ":"))


def config_key(config: Mapping[str, Any]) -> str:
    """A stable 16-hex-digit key of a config dict, independent of key order.

    ``sha256(canonical_json(config))[:16]``. Two runs with equal resolved configs
    share a key, which is how a matching baseline run is found
    (:meth:`RunStore.find_run`).
    """
    return hashlib.sha256(canonical_json(config).encode("utf-8")).hexdigest()[:16]


def _column_value(value: Any) -> Any:
    """A config value as an SQLite column value: scalars as they are, others as JSON."""
    if value is None or isinstance(value, (str, int, float)):
        return value
    return canonical_json(value)


# --------------------------------------------------------------------------- records
@dataclass(frozen=True)
class RunRecord:
    """One stored run, with its JSON columns parsed.

    ``config`` is the resolved config the run was created with, ``metrics`` the
    final metrics (empty until :meth:`RunStore.finish`), ``tags`` a free dict
    such as ``{"sweep": "lr-grid", "baseline_of": "3f2a..."}``. Times are unix
    seconds. ``pid`` and ``hostname`` name the process that created the run or,
    once it is running, the process that runs it.
    """

    id: str
    created_at: float
    updated_at: float
    status: str
    source: str | None
    target: str | None
    strategy: str | None
    seed: int | None
    target_labels: int | None
    config: dict[str, Any]
    config_key: str
    metrics: dict[str, Any]
    checkpoint_path: str | None
    error: str | None
    pid: int | None
    hostname: str | None
    tags: dict[str, Any]

    @property
    def finished(self) -> bool:
        """Whether the run reached a final status (done, failed, stopped, interrupted)."""
        return self.status in FINAL_STATUSES

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> RunRecord:
        return cls(
            id=row["id"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            status=row["status"],
            source=row["source"],
            target=row["target"],
            strategy=row["strategy"],
            seed=row["seed"],
            target_labels=row["target_labels"],
            config=json.loads(row["config_json"]),
            config_key=row["config_key"],
            metrics=json.loads(row["metrics_json"]) if row["metrics_json"] else {},
            checkpoint_path=row["checkpoint_path"],
            error=row["error"],
            pid=row["pid"],
            hostname=row["hostname"],
            tags=json.loads(row["tags_json"]) if row["tags_json"] else {},
        )


def _not_found(run_id: str) -> RunNotFoundError:
    return RunNotFoundError(f"no run with id {run_id!r} in the run store")


# --------------------------------------------------------------------------- schema
def _migrate_to_v1(conn: sqlite3.Connection) -> None:
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS runs (
            id              TEXT PRIMARY KEY,
            created_at      REAL NOT NULL,
            updated_at      REAL NOT NULL,
            status          TEXT NOT NULL,
            source          TEXT,
            target          TEXT,
            strategy        TEXT,
            seed            INTEGER,
            target_labels   INTEGER,
            config_json     TEXT NOT NULL,
            config_key      TEXT NOT NULL,
            metrics_json    TEXT,
            checkpoint_path TEXT,
            error           TEXT,
            pid             INTEGER,
            hostname        TEXT,
            tags_json       TEXT NOT NULL DEFAULT '{}'
        )
        """
    )
    conn.execute("CREATE INDEX IF NOT EXISTS runs_created ON runs (created_at)")
    conn.execute("CREATE INDEX IF NOT EXISTS runs_status ON runs (status)")
    conn.execute("CREATE INDEX IF NOT EXISTS runs_config_key ON runs (config_key, status, created_at)")
    conn.execute(
        """
        CREATE TABLE IF NOT EXISTS events (
            run_id       TEXT NOT NULL,
            seq          INTEGER NOT NULL,
            kind         TEXT NOT NULL,
            payload_json TEXT NOT NULL
        )
        """
    )
    conn.execute("CREATE UNIQUE INDEX IF NOT EXISTS events_run_seq ON events (run_id, seq)")


# _MIGRATIONS[v] upgrades a database from user_version v to v + 1.
_MIGRATIONS = (_migrate_to_v1,)
assert len(_MIGRATIONS) == SCHEMA_VERSION


# --------------------------------------------------------------------------- the store
class RunStore:
    """SQLite-backed run records, safe to use from many threads and processes at once.

    Parameters
    ----------
    path
        Database file; default :func:`tlcore.paths.default_store_path`
        (``<home>/runs.sqlite``). Its directory is created if missing, and the
        file and schema on first open.
    checkpoint_dir
        The only directory from which :meth:`delete_run` removes checkpoint
        files; default :func:`tlcore.paths.checkpoint_dir`.
    timeout
        Seconds to wait for another writer's lock before raising :class:`RunStoreError`.

    Raises
    ------
    RunStoreError
        The file is not a usable run database (corrupt, written by a newer
        version, or cannot be opened).
    """

    #: The process-wide registry of runs a worker of this process executes
    #: (the module-level :data:`live_ids`; use :func:`register_live` / :func:`unregister_live`).
    live_ids = live_ids
    register_live = staticmethod(register_live)
    unregister_live = staticmethod(unregister_live)

    def __init__(
        self,
        path: str | os.PathLike[str] | None = None,
        *,
        checkpoint_dir: str | os.PathLike[str] | None = None,
        timeout: float = BUSY_TIMEOUT_S,
    ):
        self.path = Path(path).expanduser() if path is not None else paths.default_store_path()
        self._checkpoint_dir = Path(checkpoint_dir).expanduser() if checkpoint_dir is not None else None
        self.timeout = float(timeout)
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise RunStoreError(f"run store {self.path}: cannot create its directory ({exc})") from exc
        self._init_schema()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r})"

    @property
    def checkpoint_dir(self) -> Path:
        """The directory whose checkpoint files :meth:`delete_run` may remove."""
        return self._checkpoint_dir if self._checkpoint_dir is not None else paths.checkpoint_dir()

    # ------------------------------------------------------------------ connections
    def _error(self, exc: sqlite3.DatabaseError) -> RunStoreError:
        """A user-facing error for an SQLite failure, naming the database file."""
        text = str(exc)
        if isinstance(exc, sqlite3.OperationalError) and ("locked" in text or "busy" in text):
            return RunStoreError(
                f"run store {self.path} stayed locked by another writer for over "
                f"{self.timeout:g}s ({text}); try again when the other run has saved"
            )
        if isinstance(exc, sqlite3.OperationalError):
            return RunStoreError(f"run store {self.path} cannot be used: {text}")
        return RunStoreError(
            f"run store {self.path} is not a valid Transfer Lab run database ({text}); "
            "move the file away or delete it, and a new, empty store will be created"
        )

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A fresh autocommit connection, closed afterwards; SQLite errors become RunStoreError."""
        conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: no implicit transactions; _transaction() opens them explicitly.
            conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
            conn.row_factory = sqlite3.Row
            conn.execute("PRAGMA synchronous=NORMAL")  # per connection; durable enough under WAL
            yield conn
        except sqlite3.DatabaseError as exc:  # includes OperationalError, IntegrityError
            raise self._error(exc) from exc
        finally:
            if conn is not None:
                conn.close()

    @contextmanager
    def _transaction(self) -> Iterator[sqlite3.Connection]:
        """One write transaction: all of it commits, or (on any exception) none of it.

        ``BEGIN IMMEDIATE`` takes the write lock before the first read, so a
        read-then-write (e.g. the next event seq) cannot race another writer;
        a busy lock is waited for up to ``timeout`` seconds.
        """
        with self._connection() as conn:
            conn.execute("BEGIN IMMEDIATE")
            try:
                yield conn
            except BaseException:
                if conn.in_transaction:
                    conn.execute("ROLLBACK")
                raise
            conn.execute("COMMIT")

    def _init_schema(self) -> None:
        with self._connection() as conn:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            # WAL is a property of the file: set once, it stays on for every connection.
            if conn.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
                conn.execute("PRAGMA journal_mode=WAL")
            if version == SCHEMA_VERSION:
                return
        with self._transaction() as conn:
            # Re-read under the write lock: another process may have migrated meanwhile.
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._check_version(version)
            for migrate in _MIGRATIONS[version:]:
                migrate(conn)
            conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION}")

    def _check_version(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise RunStoreError(
                f"run store {self.path} has schema version {version}, newer than the "
                f"{SCHEMA_VERSION} this Transfer Lab understands; upgrade Transfer Lab"
            )

    # ------------------------------------------------------------------ writing
    def create_run(
        self,
        config: Mapping[str, Any],
        *,
        status: str = "queued",
        tags: Mapping[str, Any] | None = None,
        key: str | None = None,
    ) -> str:
        """Record a new run and return its id (12 hex digits).

        ``config`` is the resolved run config (JSON-serialisable). Its keys
        ``source``, ``target``, ``strategy``, ``seed`` and ``target_labels`` are
        copied into columns (NULL when missing) and :func:`config_key` is stored
        for :meth:`find_run` (``key`` overrides it: the engine stores a key over
        the settings that change results only). The calling process is recorded
        as ``pid``/``hostname``.
        """
        _check_status(status)
        config = dict(config)
        config_json = json.dumps(config)  # before the transaction: a TypeError writes nothing
        key = key or config_key(config)
        tags_json = json.dumps(dict(tags or {}))
        run_id = uuid.uuid4().hex[:12]
        now = time.time()
        columns = [_column_value(config.get(name)) for name in _CONFIG_COLUMNS]
        with self._transaction() as conn:
            conn.execute(
                "INSERT INTO runs (id, created_at, updated_at, status, source, target, strategy,"
                " seed, target_labels, config_json, config_key, pid, hostname, tags_json)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, now, now, status, *columns, config_json, key,
                 os.getpid(), socket.gethostname(), tags_json),
            )
        return run_id

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Change a run's status (and set its error text when ``error`` is given).

        Setting ``"running"`` also records the calling process as the run's
        ``pid``/``hostname``, which :meth:`mark_interrupted` checks.
        """
        _check_status(status)
        now = time.time()
        with self._transaction() as conn:
            if status == "running":
                cursor = conn.execute(
                    "UPDATE runs SET status = ?, updated_at = ?, error = COALESCE(?, error),"
                    " pid = ?, hostname = ? WHERE id = ?",
                    (status, now, error, os.getpid(), socket.gethostname(), run_id),
                )
            else:
                cursor = conn.execute(
                    "UPDATE runs SET status = ?, updated_at = ?, error = COALESCE(?, error) WHERE id = ?",
                    (status, now, error, run_id),
                )
            if cursor.rowcount == 0:
                raise _not_found(run_id)

    def finish(
        self,
        run_id: str,
        status: str,
        metrics: Mapping[str, Any] | None,
        checkpoint_path: str | os.PathLike[str] | None = None,
        error: str | None = None,
    ) -> None:
        """End a run: set a final status and, where given, its metrics, checkpoint and error.

        ``status`` must be one of :data:`FINAL_STATUSES`. Arguments left as None
        keep what is stored (so the metrics of a stopped run can be omitted).
        """
        _check_status(status, FINAL_STATUSES, what="final status")
        metrics_json = json.dumps(dict(metrics)) if metrics is not None else None
        ckpt = os.fspath(checkpoint_path) if checkpoint_path is not None else None
        with self._transaction() as conn:
            cursor = conn.execute(
                "UPDATE runs SET status = ?, updated_at = ?, metrics_json = COALESCE(?, metrics_json),"
                " checkpoint_path = COALESCE(?, checkpoint_path), error = COALESCE(?, error)"
                " WHERE id = ?",
                (status, time.time(), metrics_json, ckpt, error, run_id),
            )
            if cursor.rowcount == 0:
                raise _not_found(run_id)

    def update_run(
        self,
        run_id: str,
        *,
        config: Mapping[str, Any] | None = None,
        key: str | None = None,
        metrics: Mapping[str, Any] | None = None,
        checkpoint_path: str | os.PathLike[str] | None = None,
    ) -> None:
        """Replace a run's config (and its columns and key), metrics or checkpoint without
        changing its status; arguments left as None keep what is stored."""
        sets: list[str] = []
        params: list[Any] = []
        if config is not None:
            config = dict(config)
            sets += ["config_json = ?", "config_key = ?"] + [f"{c} = ?" for c in _CONFIG_COLUMNS]
            params += [json.dumps(config), key or config_key(config)]
            params += [_column_value(config.get(c)) for c in _CONFIG_COLUMNS]
        elif key is not None:
            sets.append("config_key = ?")
            params.append(key)
        if metrics is not None:
            sets.append("metrics_json = ?")
            params.append(json.dumps(dict(metrics)))
        if checkpoint_path is not None:
            sets.append("checkpoint_path = ?")
            params.append(os.fspath(checkpoint_path))
        sets.append("updated_at = ?")
        params += [time.time(), run_id]
        with self._transaction() as conn:
            cursor = conn.execute(f"UPDATE runs SET {', '.join(sets)} WHERE id = ?", params)
            if cursor.rowcount == 0:
                raise _not_found(run_id)

    def update_tags(self, run_id: str, tags: Mapping[str, Any]) -> dict[str, Any]:
        """Merge ``tags`` into a run's tags (e.g. ``{"baseline": other_id}``); return the result."""
        update = json.loads(json.dumps(dict(tags)))  # validate JSON before the transaction
        with self._transaction() as conn:
            row = conn.execute("SELECT tags_json FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise _not_found(run_id)
            merged = {**json.loads(row["tags_json"] or "{}"), **update}
            conn.execute(
                "UPDATE runs SET tags_json = ?, updated_at = ? WHERE id = ?",
                (json.dumps(merged), time.time(), run_id),
            )
        return merged

    def append_events(self, run_id: str, events: Iterable[Mapping[str, Any]]) -> int:
        """Append events to a run's log in one transaction; return the last seq (-1 if none yet).

        Each event is a dict with a ``"kind"`` string (e.g. ``events.to_dict(ev)``);
        the other keys are its JSON payload (a ``"seq"`` key is ignored). Seqs
        continue from the run's last one: 0, 1, 2, ... without gaps, also with
        several writers. Either every event of the batch is stored or none.
        """
        rows: list[tuple[str, str]] = []
        for index, event in enumerate(events):
            kind = event.get("kind") if isinstance(event, Mapping) else None
            if not isinstance(kind, str) or not kind:
                raise ValueError(f"event {index} of the batch needs a non-empty 'kind' string: {event!r}")
            payload = {k: v for k, v in event.items() if k not in ("kind", "seq")}
            rows.append((kind, json.dumps(payload)))
        with self._transaction() as conn:
            if conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise _not_found(run_id)
            last = conn.execute(
                "SELECT COALESCE(MAX(seq), -1) FROM events WHERE run_id = ?", (run_id,)
            ).fetchone()[0]
            if rows:
                conn.executemany(
                    "INSERT INTO events (run_id, seq, kind, payload_json) VALUES (?, ?, ?, ?)",
                    [(run_id, last + 1 + i, kind, payload) for i, (kind, payload) in enumerate(rows)],
                )
                conn.execute("UPDATE runs SET updated_at = ? WHERE id = ?", (time.time(), run_id))
        return last + len(rows)

    def delete_run(self, run_id: str) -> None:
        """Delete a run, its events and its checkpoint file.

        The checkpoint file is removed only if it lies inside
        :attr:`checkpoint_dir` (never a file elsewhere that a run merely
        pointed to), after the records are gone.
        """
        with self._transaction() as conn:
            row = conn.execute("SELECT checkpoint_path FROM runs WHERE id = ?", (run_id,)).fetchone()
            if row is None:
                raise _not_found(run_id)
            conn.execute("DELETE FROM events WHERE run_id = ?", (run_id,))
            conn.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        if row["checkpoint_path"]:
            self._remove_checkpoint(run_id, Path(row["checkpoint_path"]))

    def _remove_checkpoint(self, run_id: str, checkpoint: Path) -> None:
        root = self.checkpoint_dir.expanduser().resolve()
        target = checkpoint.expanduser().resolve()
        if target == root or not target.is_relative_to(root) or not target.is_file():
            return
        try:
            target.unlink()
        except FileNotFoundError:
            pass
        except OSError as exc:
            raise RunStoreError(
                f"run {run_id} was deleted, but its checkpoint {target} could not be removed: {exc}"
            ) from exc

    def mark_interrupted(self) -> int:
        """Mark orphaned queued/running runs as ``"interrupted"``; return how many.

        A queued or running run of this host is orphaned when its ``pid`` is no
        longer alive or, for a run of this very process, when its id is not in
        :data:`live_ids` (the worker that ran it is gone). Runs recorded on
        another host are left alone: their process cannot be checked from here.
        Call it when the app or CLI starts.
        """
        host, me, live = socket.gethostname(), os.getpid(), _live_snapshot()
        marked = 0
        with self._transaction() as conn:
            rows = conn.execute(
                "SELECT id, pid, hostname FROM runs WHERE status IN (?, ?)", ACTIVE_STATUSES
            ).fetchall()
            for row in rows:
                run_id, pid, run_host = row["id"], row["pid"], row["hostname"]
                if run_host is not None and run_host != host:
                    continue
                if pid == me:
                    if run_id in live:
                        continue
                    reason = f"no worker of its process (pid {pid} on {host}) runs it any more"
                elif pid is not None and _pid_alive(pid):
                    continue
                else:
                    reason = f"its process (pid {pid} on {run_host or host}) ended before the run finished"
                conn.execute(
                    "UPDATE runs SET status = 'interrupted', updated_at = ?, error = COALESCE(error, ?)"
                    " WHERE id = ?",
                    (time.time(), f"interrupted: {reason}", run_id),
                )
                marked += 1
        return marked

    # ------------------------------------------------------------------ reading
    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; :class:`~tlcore.errors.RunNotFoundError` when there is none."""
        with self._connection() as conn:
            row = conn.execute(_SELECT_RUNS + " WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise _not_found(run_id)
        return RunRecord._from_row(row)

    def events(
        self,
        run_id: str,
        after_seq: int = -1,
        kinds: Iterable[str] | None = None,
        limit: int | None = None,
    ) -> list[dict[str, Any]]:
        """A run's events with ``seq > after_seq``, oldest first.

        Each is the appended dict plus its ``"seq"``. Poll incrementally with
        ``after_seq`` = the last seq seen. ``kinds`` keeps only those kinds;
        ``limit`` caps the count. Raises RunNotFoundError for an unknown run.
        """
        sql = "SELECT seq, kind, payload_json FROM events WHERE run_id = ? AND seq > ?"
        params: list[Any] = [run_id, int(after_seq)]
        if kinds is not None:
            kinds = list(kinds)
            sql += f" AND kind IN ({', '.join('?' * len(kinds))})"
            params += kinds
        sql += " ORDER BY seq"
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._connection() as conn:
            rows = conn.execute(sql, params).fetchall()
            # Only an empty answer needs the (rarer) check that the run exists.
            if not rows and conn.execute("SELECT 1 FROM runs WHERE id = ?", (run_id,)).fetchone() is None:
                raise _not_found(run_id)
        return [{"seq": seq, "kind": kind, **json.loads(payload)} for seq, kind, payload in rows]

    def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        strategy: str | None = None,
        source: str | None = None,
        target: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Stored runs, newest first, optionally filtered (exact matches) and capped.

        ``status`` is one status or several (e.g. ``ACTIVE_STATUSES``).
        """
        clauses: list[str] = []
        params: list[Any] = []
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for s in statuses:
                _check_status(s)
            clauses.append(f"status IN ({', '.join('?' * len(statuses))})")
            params += statuses
        for column, value in (("strategy", strategy), ("source", source), ("target", target)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        sql = _SELECT_RUNS + (" WHERE " + " AND ".join(clauses) if clauses else "") + _NEWEST_FIRST
        if limit is not None:
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        return [RunRecord._from_row(row) for row in rows]

    def count_runs(self, status: str | None = None) -> int:
        """How many runs are stored (with this status): one cheap query, e.g. a cache version."""
        sql, params = "SELECT COUNT(*) FROM runs", []
        if status is not None:
            _check_status(status)
            sql += " WHERE status = ?"
            params.append(status)
        with self._connection() as conn:
            return int(conn.execute(sql, params).fetchone()[0])

    def find_run(self, config_key: str, status: str | None = "done") -> RunRecord | None:
        """The newest run with this :func:`config_key` (and status; None = any), or None."""
        sql = _SELECT_RUNS + " WHERE config_key = ?"
        params: list[Any] = [config_key]
        if status is not None:
            _check_status(status)
            sql += " AND status = ?"
            params.append(status)
        with self._connection() as conn:
            row = conn.execute(sql + _NEWEST_FIRST + " LIMIT 1", params).fetchone()
        return RunRecord._from_row(row) if row is not None else None

    def export_csv(self, path_or_file: str | os.PathLike[str] | IO[str], runs: Iterable[RunRecord] | None = None) -> int:
        """Write runs (default: all, newest first) as CSV, one row each; return the row count.

        Columns are :data:`TABLE_COLUMNS` followed by every metric key (see
        :func:`runs_table`). A path is written as UTF-8 (its directory is
        created); an open text file is written to and left open.
        """
        rows = runs_table(self.list_runs() if runs is None else runs)
        fieldnames = list(rows[0]) if rows else list(TABLE_COLUMNS)
        if isinstance(path_or_file, (str, os.PathLike)):
            target = Path(path_or_file).expanduser()
            target.parent.mkdir(parents=True, exist_ok=True)
            with open(target, "w", newline="", encoding="utf-8") as handle:
                _write_csv(handle, fieldnames, rows)
        else:
            _write_csv(path_or_file, fieldnames, rows)
        return len(rows)


# --------------------------------------------------------------------------- tables
def _flatten(metrics: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """Nested metric dicts as dotted keys; lists as JSON text (one CSV cell each)."""
    flat: dict[str, Any] = {}
    for key, value in metrics.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping):
            flat.update(_flatten(value, prefix=f"{name}."))
        elif isinstance(value, (list, tuple)):
            flat[name] = json.dumps(value)
        else:
            flat[name] = value
    return flat


def runs_table(runs: Iterable[RunRecord]) -> list[dict[str, Any]]:
    """Runs as flat rows for a table or CSV: :data:`TABLE_COLUMNS`, then one column per metric.

    Every row has the same keys, in the same order: the fixed columns, then each
    metric key in the order first seen across ``runs`` (nested dicts as dotted
    keys, e.g. ``extras.domain_accuracy``). A run without a metric has None
    there. A metric whose name clashes with a fixed column is called
    ``metrics.<name>``.
    """
    runs = list(runs)
    flat_metrics = []
    metric_columns: dict[str, None] = {}  # an insertion-ordered set
    for run in runs:
        flat = {
            (f"metrics.{k}" if k in TABLE_COLUMNS else k): v for k, v in _flatten(run.metrics).items()
        }
        flat_metrics.append(flat)
        metric_columns.update(dict.fromkeys(flat))
    table = []
    for run, flat in zip(runs, flat_metrics):
        row = {column: getattr(run, column) for column in TABLE_COLUMNS}
        row.update({column: flat.get(column) for column in metric_columns})
        table.append(row)
    return table


def _write_csv(handle: IO[str], fieldnames: list[str], rows: list[dict[str, Any]]) -> None:
    writer = csv.DictWriter(handle, fieldnames=fieldnames)
    writer.writeheader()
    writer.writerows(rows)
