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
  migrated to :data:`SCHEMA_VERSION` on first open, an older one upgraded.
* **Heartbeats.** The process that runs a run stamps ``heartbeat_at`` with every
  event batch. A queued or running run whose process is gone (killed with
  ``kill -9``, a crash, a full disk that stopped even the failure handler) is
  read back as ``interrupted`` by whoever lists it (see :meth:`RunStore.list_runs`):
  a dead pid on this host, or no heartbeat for :data:`REMOTE_STALE_S` from another.
* **Read-only stores.** A store whose file or folder cannot be written (or with
  ``$TRANSFER_LAB_STORE_READONLY=1``) is opened read-only: runs can be listed,
  and every write raises :class:`~tlcore.errors.StoreReadOnlyError`.
* **Damaged rows and files.** A row whose JSON cannot be parsed is listed with
  status ``"unreadable"`` (:data:`UNREADABLE`) instead of breaking the listing;
  a file that is not a database raises :class:`~tlcore.errors.StoreCorruptError`,
  and :func:`quarantine_store` moves it aside so that a fresh store can start.

Any SQLite failure (a corrupt file, a path that cannot be opened, a lock held
past the timeout) surfaces as :class:`RunStoreError` naming the database path.

Tables::

    runs(id, created_at, updated_at, status, source, target, strategy, seed,
         target_labels, config_json, config_key, metrics_json, checkpoint_path,
         error, pid, hostname, tags_json, heartbeat_at, owner)
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
import dataclasses
import hashlib
import json
import os
import socket
import sqlite3
import sys
import threading
import time
import uuid
from urllib.parse import quote
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any, Iterable, Iterator, Mapping

from tlcore import paths
from tlcore.errors import (  # noqa: F401 (re-exported)
    RunNotFoundError,
    RunStoreError,
    StatusError,
    StoreCorruptError,
    StoreReadOnlyError,
    TransferLabError,
)

__all__ = [
    "STATUSES",
    "ACTIVE_STATUSES",
    "FINAL_STATUSES",
    "UNREADABLE",
    "LISTED_STATUSES",
    "SCHEMA_VERSION",
    "READONLY_ENV",
    "StoreCorruptError",
    "StoreReadOnlyError",
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
    "quarantine_store",
]

#: Every status a run can have.
STATUSES = ("queued", "running", "done", "failed", "stopped", "interrupted")
#: Statuses of a run that some process is expected to finish.
ACTIVE_STATUSES = ("queued", "running")
#: Statuses that :meth:`RunStore.finish` accepts.
FINAL_STATUSES = ("done", "failed", "stopped", "interrupted")
#: The status a listed run has when its stored row cannot be parsed (never stored).
UNREADABLE = "unreadable"
#: Every status a listed run can show: :data:`STATUSES` and :data:`UNREADABLE`.
LISTED_STATUSES = STATUSES + (UNREADABLE,)

#: Version of the schema this module writes (``PRAGMA user_version``).
#: 2 added ``runs.heartbeat_at``; 3 added ``runs.owner``.
SCHEMA_VERSION = 3

#: Set to 1 to open the run store read-only even where it could be written.
READONLY_ENV = "TRANSFER_LAB_STORE_READONLY"

#: A queued or running run of *this* process that no worker of it runs any more is read back
#: as interrupted once its heartbeat is this old (seconds). The grace covers the moment between
#: a run's record and its worker's registration (:func:`register_live`).
LOCAL_STALE_S = 30.0
#: A queued or running run of *another host* is read back as interrupted once its heartbeat is
#: this old (seconds): its process cannot be checked from here. Long enough for an evaluation
#: or a data load without events.
REMOTE_STALE_S = 15 * 60.0

#: Seconds a connection waits for another writer's lock before giving up.
BUSY_TIMEOUT_S = 30.0

#: The fixed leading columns of :func:`runs_table` and :meth:`RunStore.export_csv`.
TABLE_COLUMNS = ("id", "created_at", "status", "source", "target", "strategy", "seed", "target_labels")

# Config keys copied into their own columns, for filtering without parsing JSON.
_CONFIG_COLUMNS = ("source", "target", "strategy", "seed", "target_labels")

_RUN_COLUMNS = (
    "id", "created_at", "updated_at", "status", "source", "target", "strategy", "seed",
    "target_labels", "config_json", "config_key", "metrics_json", "checkpoint_path",
    "error", "pid", "hostname", "tags_json", "heartbeat_at", "owner",
)
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


def _process_started_at(pid: int) -> float | None:
    """When the process ``pid`` started (unix seconds, to about a second), where the OS tells
    (Linux ``/proc``); None elsewhere or when it is gone."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
        # Field 22 is the start time in clock ticks after boot; the name (field 2) may hold spaces.
        ticks = int(stat[stat.rindex(")") + 2:].split()[19])
        boot = next(int(line.split()[1]) for line in Path("/proc/stat").read_text().splitlines()
                    if line.startswith("btime "))
        return boot + ticks / os.sysconf("SC_CLK_TCK")
    except (OSError, ValueError, IndexError, StopIteration):
        return None


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
    once it is running, the process that runs it; ``heartbeat_at`` is when that
    process last wrote events (None in rows stored before heartbeats existed).
    ``owner`` is the anonymous id of whoever started it (the app's browser session; None
    for runs of the CLI and rows stored before owners existed): only its owner, or a
    teacher, may stop or delete it (:mod:`tlcore.owners`).

    A row whose JSON cannot be parsed is read with status :data:`UNREADABLE`, empty
    ``config``/``metrics``/``tags`` and the reason in ``error``; its columns
    (source, target, strategy, ...) are kept, and it can be deleted.
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
    heartbeat_at: float | None = None
    owner: str | None = None

    @property
    def finished(self) -> bool:
        """Whether the run reached a final status (done, failed, stopped, interrupted)."""
        return self.status in FINAL_STATUSES

    @classmethod
    def _from_row(cls, row: sqlite3.Row) -> RunRecord:
        status, error = row["status"], row["error"]
        parsed: dict[str, dict[str, Any]] = {}
        for field_name, column, required in (("config", "config_json", True),
                                             ("metrics", "metrics_json", False),
                                             ("tags", "tags_json", False)):
            text = row[column]
            try:
                value = json.loads(text) if (text or required) else {}
                if not isinstance(value, dict):
                    raise ValueError(f"a JSON {type(value).__name__}, not an object")
            except (TypeError, ValueError) as exc:  # JSONDecodeError is a ValueError
                parsed = {"config": {}, "metrics": {}, "tags": {}}
                status = UNREADABLE
                error = (f"unreadable record: its {column} is not valid ({exc}); stored status "
                         f"{row['status']!r}. Delete the run, or repair the row with sqlite3")
                break
            parsed[field_name] = value
        return cls(
            id=row["id"],
            created_at=row["created_at"],
            updated_at=row["updated_at"],
            status=status,
            source=row["source"],
            target=row["target"],
            strategy=row["strategy"],
            seed=row["seed"],
            target_labels=row["target_labels"],
            config=parsed["config"],
            config_key=row["config_key"],
            metrics=parsed["metrics"],
            checkpoint_path=row["checkpoint_path"],
            error=error,
            pid=row["pid"],
            hostname=row["hostname"],
            tags=parsed["tags"],
            heartbeat_at=row["heartbeat_at"],
            owner=row["owner"],
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


def _migrate_to_v2(conn: sqlite3.Connection) -> None:
    # When the process that runs a run last showed signs of life (None: rows from before).
    conn.execute("ALTER TABLE runs ADD COLUMN heartbeat_at REAL")


def _migrate_to_v3(conn: sqlite3.Connection) -> None:
    # Who started the run (an anonymous owner id; NULL: the CLI, or rows from before owners).
    conn.execute("ALTER TABLE runs ADD COLUMN owner TEXT")
    conn.execute("CREATE INDEX IF NOT EXISTS runs_owner ON runs (owner, status)")


# _MIGRATIONS[v] upgrades a database from user_version v to v + 1.
_MIGRATIONS = (_migrate_to_v1, _migrate_to_v2, _migrate_to_v3)
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
    owner
        The owner id recorded on the runs that :meth:`create_run` creates through this handle
        unless it names one (a worker process opens the store under the owner of its job, so
        the baselines and sweep runs it creates are that user's too).

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
        readonly: bool | None = None,
        owner: str | None = None,
    ):
        self.owner = owner
        self.path = Path(path).expanduser() if path is not None else paths.default_store_path()
        self._checkpoint_dir = Path(checkpoint_dir).expanduser() if checkpoint_dir is not None else None
        self.timeout = float(timeout)
        #: Why the store is read-only (a sentence for the user), or None when it can be written.
        self.readonly_reason: str | None = self._readonly_reason(readonly)
        self._uri: str | None = None  # the read-only URI; None: open the path read-write
        self._version = SCHEMA_VERSION
        if self.readonly_reason is None:
            try:
                self.path.parent.mkdir(parents=True, exist_ok=True)
            except OSError as exc:
                raise RunStoreError(f"run store {self.path}: cannot create its directory ({exc})") from exc
            try:
                self._init_schema()
                return
            except RunStoreError as exc:
                # A read-only file system, or a file another user owns: access() may not tell.
                if "readonly" not in str(exc) or not self.path.is_file():
                    raise
                self.readonly_reason = f"it cannot be written ({exc.__cause__})"
        self._open_readonly()

    def __repr__(self) -> str:
        return f"RunStore({str(self.path)!r}{', readonly=True' if self.readonly else ''})"

    @property
    def readonly(self) -> bool:
        """Whether the store was opened read-only (see :attr:`readonly_note`)."""
        return self.readonly_reason is not None

    @property
    def readonly_note(self) -> str | None:
        """What a read-only store means for the user, in one sentence; None when it is writable."""
        if self.readonly_reason is None:
            return None
        return (f"The run store {self.path} is open read-only because {self.readonly_reason}: stored "
                "runs can be viewed, but nothing can be trained, deleted or changed in it.")

    @property
    def checkpoint_dir(self) -> Path:
        """The directory whose checkpoint files :meth:`delete_run` may remove."""
        return self._checkpoint_dir if self._checkpoint_dir is not None else paths.checkpoint_dir()

    # ------------------------------------------------------------------ read-only stores
    def _readonly_reason(self, readonly: bool | None) -> str | None:
        if readonly is None:
            readonly = os.environ.get(READONLY_ENV, "").strip() not in ("", "0")
            if readonly:
                return f"${READONLY_ENV} is set"
        elif readonly:
            return "it was asked to be"
        else:
            return None
        # SQLite writes the file, and in WAL mode creates -wal and -shm files beside it.
        folder = self.path.parent
        if self.path.is_file() and not os.access(self.path, os.W_OK):
            return "its file cannot be written"
        if self.path.is_file() and not os.access(folder, os.W_OK):
            return f"its folder {folder} cannot be written"
        return None

    def _open_readonly(self) -> None:
        """Open the existing file read-only: ``mode=ro`` where SQLite can still share its WAL
        index, else ``immutable=1`` (a read-only folder: no ``-shm`` file can be made; the
        file is then read as it is, which is all anyone can do with it)."""
        if not self.path.is_file():
            raise RunStoreError(f"run store {self.path} does not exist, and {self.readonly_reason}")
        base = "file:" + quote(str(self.path.resolve()))
        error: RunStoreError | None = None
        for uri in (base + "?mode=ro", base + "?immutable=1"):
            self._uri = uri
            try:
                with self._connection() as conn:
                    version = conn.execute("PRAGMA user_version").fetchone()[0]
                    conn.execute("SELECT COUNT(*) FROM sqlite_master").fetchone()
            except StoreCorruptError:
                raise
            except RunStoreError as exc:
                error = exc
                continue
            self._check_version(version)
            if version < 1:
                raise RunStoreError(f"run store {self.path} is empty, and {self.readonly_reason}")
            self._version = version  # an older schema is read as it is (it cannot be upgraded)
            return
        assert error is not None
        raise error

    def _check_writable(self) -> None:
        if self.readonly_reason is not None:
            raise StoreReadOnlyError(
                f"run store {self.path} is read-only ({self.readonly_reason}); nothing can be "
                "written to it. Make the file and its folder writable, or use another store "
                f"(--store PATH, or $TRANSFER_LAB_HOME)"
            )

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
        return StoreCorruptError(
            f"run store {self.path} is not a valid Transfer Lab run database ({text}); "
            "move the file away or delete it, and a new, empty store will be created "
            "(`tlcore runs --quarantine` moves it aside)",
            path=self.path,
        )

    @contextmanager
    def _connection(self) -> Iterator[sqlite3.Connection]:
        """A fresh autocommit connection, closed afterwards; SQLite errors become RunStoreError."""
        conn: sqlite3.Connection | None = None
        try:
            # isolation_level=None: no implicit transactions; _transaction() opens them explicitly.
            if self._uri is not None:
                conn = sqlite3.connect(self._uri, uri=True, timeout=self.timeout, isolation_level=None)
            else:
                conn = sqlite3.connect(self.path, timeout=self.timeout, isolation_level=None)
                conn.execute("PRAGMA synchronous=NORMAL")  # per connection; durable enough under WAL
            conn.row_factory = sqlite3.Row
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
        a busy lock is waited for up to ``timeout`` seconds. A read-only store
        raises :class:`~tlcore.errors.StoreReadOnlyError` before connecting.
        """
        self._check_writable()
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

    @property
    def _select_runs(self) -> str:
        columns = list(_RUN_COLUMNS)
        # a read-only store of an older schema, which cannot be upgraded
        for version, column in ((2, "heartbeat_at"), (3, "owner")):
            if self._version < version:
                columns[columns.index(column)] = f"NULL AS {column}"
        return f"SELECT {', '.join(columns)} FROM runs"

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
        owner: str | None = None,
    ) -> str:
        """Record a new run and return its id (12 hex digits).

        ``config`` is the resolved run config (JSON-serialisable). Its keys
        ``source``, ``target``, ``strategy``, ``seed`` and ``target_labels`` are
        copied into columns (NULL when missing) and :func:`config_key` is stored
        for :meth:`find_run` (``key`` overrides it: the engine stores a key over
        the settings that change results only). The calling process is recorded
        as ``pid``/``hostname``, and ``owner`` (default: this handle's :attr:`owner`) as its owner.
        """
        _check_status(status)
        owner = owner if owner is not None else self.owner
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
                " seed, target_labels, config_json, config_key, pid, hostname, tags_json, heartbeat_at, owner)"
                " VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (run_id, now, now, status, *columns, config_json, key,
                 os.getpid(), socket.gethostname(), tags_json, now, owner),
            )
        return run_id

    def set_status(self, run_id: str, status: str, error: str | None = None) -> None:
        """Change a run's status (and set its error text when ``error`` is given).

        Setting ``"running"`` also records the calling process as the run's
        ``pid``/``hostname`` and stamps its heartbeat, which :meth:`mark_interrupted`
        and the listings check.
        """
        _check_status(status)
        now = time.time()
        with self._transaction() as conn:
            if status == "running":
                cursor = conn.execute(
                    "UPDATE runs SET status = ?, updated_at = ?, error = COALESCE(?, error),"
                    " pid = ?, hostname = ?, heartbeat_at = ? WHERE id = ?",
                    (status, now, error, os.getpid(), socket.gethostname(), now, run_id),
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
        A non-empty batch also stamps the run's heartbeat (the writer is alive).
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
                now = time.time()
                conn.execute("UPDATE runs SET updated_at = ?, heartbeat_at = ? WHERE id = ?", (now, now, run_id))
        return last + len(rows)

    def heartbeat(self, *run_ids: str) -> None:
        """Stamp the heartbeat of these runs: their process is alive (e.g. while a run waits for
        its baseline, which writes the events). Unknown ids are ignored."""
        if not run_ids:
            return
        with self._transaction() as conn:
            conn.executemany("UPDATE runs SET heartbeat_at = ? WHERE id = ?",
                             [(time.time(), run_id) for run_id in run_ids])

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

        A queued or running run is orphaned when the process recorded as running it is gone:
        on this host, its ``pid`` is no longer alive (or is alive but started after the run's
        last heartbeat: the pid was reused); for a run of this very process, its id is not in
        :data:`live_ids` (the worker that ran it is gone); on another host, its heartbeat is
        older than :data:`REMOTE_STALE_S`. Call it when the app starts; the listings
        (:meth:`list_runs`, :meth:`get_run`) apply the same rules on every read, with
        :data:`LOCAL_STALE_S` of grace for runs of this process.
        """
        if self.readonly:
            return 0
        changed, _ = self._interrupt_orphans(local_grace_s=0.0)
        return len(changed)

    def _orphan_reason(self, run: RunRecord, now: float, local_grace_s: float) -> str | None:
        """Why ``run`` (queued or running) has no process left to finish it; None if it may have."""
        if run.status not in ACTIVE_STATUSES:
            return None
        host, beat = socket.gethostname(), run.heartbeat_at if run.heartbeat_at is not None else run.updated_at
        silent = now - beat
        where = f"pid {run.pid} on {run.hostname or host}"
        if run.hostname is not None and run.hostname != host:
            if silent <= REMOTE_STALE_S:
                return None  # its process cannot be checked from here; it spoke recently
            return f"its process ({where}) has given no sign of life for {silent / 60:.0f} minutes"
        if run.pid == os.getpid():
            if run.id in _live_snapshot() or silent <= local_grace_s:
                return None
            return f"no worker of its process ({where}) runs it any more"
        if run.pid is not None and _pid_alive(run.pid):
            started = _process_started_at(run.pid) if run.heartbeat_at is not None else None
            # The process with this pid started after the run's last heartbeat: a reused pid.
            if started is None or silent <= LOCAL_STALE_S or started <= run.heartbeat_at + 2.0:
                return None
        if run.status == "queued":
            return f"the server that queued it ({where}) stopped before it started; start it again"
        return f"its process ({where}) ended before the run finished"

    def _interrupt_orphans(self, local_grace_s: float,
                           ids: Iterable[str] | None = None) -> tuple[set[str], dict[str, RunRecord]]:
        """Store orphaned active runs (all, or those of ``ids``) as interrupted.

        Returns the ids it changed and every run it read (all active runs, or those of ``ids``
        in whatever status), as they are now stored. The rows are read again under the write
        lock, so a run that its process finished or beat meanwhile, or that another reader
        has just marked, is left as it is.
        """
        if ids is None:
            sql, params = self._select_runs + " WHERE status IN (?, ?)", list(ACTIVE_STATUSES)
        else:
            ids = list(ids)
            sql, params = self._select_runs + f" WHERE id IN ({', '.join('?' * len(ids))})", ids
        changed: set[str] = set()
        runs: dict[str, RunRecord] = {}
        with self._transaction() as conn:
            now = time.time()
            for row in conn.execute(sql, params).fetchall():
                run = RunRecord._from_row(row)
                reason = self._orphan_reason(run, now, local_grace_s)
                if reason is not None:
                    conn.execute(
                        "UPDATE runs SET status = 'interrupted', updated_at = ?, error = COALESCE(error, ?)"
                        " WHERE id = ?",
                        (now, f"interrupted: {reason}", run.id),
                    )
                    run = dataclasses.replace(run, status="interrupted", updated_at=now,
                                              error=run.error or f"interrupted: {reason}")
                    changed.add(run.id)
                runs[run.id] = run
        return changed, runs

    def _settle(self, runs: list[RunRecord]) -> list[RunRecord]:
        """``runs`` with every orphaned queued/running run shown as interrupted, whoever lists
        them; stored so where the store can be written (one write, only when there are some)."""
        now = time.time()
        orphans = {r.id: reason for r in runs
                   if (reason := self._orphan_reason(r, now, LOCAL_STALE_S)) is not None}
        if not orphans:
            return runs
        stored: dict[str, RunRecord] | None = None
        if not self.readonly:
            try:
                stored = self._interrupt_orphans(LOCAL_STALE_S, ids=orphans)[1]
            except RunStoreError:
                pass  # a locked or full store: shown as interrupted now, stored by a later reader
        settled = []
        for run in runs:
            if stored is not None:
                run = stored.get(run.id, run)  # as stored now (a deleted run: as it was read)
            elif run.id in orphans:
                run = dataclasses.replace(run, status="interrupted",
                                          error=run.error or f"interrupted: {orphans[run.id]}")
            settled.append(run)
        return settled

    # ------------------------------------------------------------------ reading
    def get_run(self, run_id: str) -> RunRecord:
        """The run with this id; :class:`~tlcore.errors.RunNotFoundError` when there is none.

        An orphaned queued/running run reads as interrupted (see :meth:`mark_interrupted`),
        a row that cannot be parsed as :data:`UNREADABLE`.
        """
        with self._connection() as conn:
            row = conn.execute(self._select_runs + " WHERE id = ?", (run_id,)).fetchone()
        if row is None:
            raise _not_found(run_id)
        return self._settle([RunRecord._from_row(row)])[0]

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

        An event whose stored payload cannot be parsed is returned as
        ``{"seq", "kind": "unreadable", "stored_kind", "error"}`` (which no reader of a
        kind mistakes for its own), or left out when ``kinds`` is given.
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
        events = []
        for seq, kind, payload in rows:
            try:
                data = json.loads(payload)
                if not isinstance(data, dict):
                    raise ValueError(f"a JSON {type(data).__name__}, not an object")
            except (TypeError, ValueError) as exc:
                if kinds is None:
                    events.append({"seq": seq, "kind": UNREADABLE, "stored_kind": kind,
                                   "error": f"unreadable event: its payload is not valid ({exc})"})
                continue
            events.append({"seq": seq, "kind": kind, **data})
        return events

    def list_runs(
        self,
        *,
        status: str | Iterable[str] | None = None,
        strategy: str | None = None,
        source: str | None = None,
        target: str | None = None,
        owner: str | None = None,
        limit: int | None = None,
    ) -> list[RunRecord]:
        """Stored runs, newest first, optionally filtered (exact matches) and capped.

        ``status`` is one status or several (e.g. ``ACTIVE_STATUSES``) of
        :data:`LISTED_STATUSES`, and filters on the status as listed: an orphaned
        queued/running run is listed as ``interrupted`` (see :meth:`mark_interrupted`),
        a row whose JSON cannot be parsed as :data:`UNREADABLE` (the others are listed
        all the same).
        """
        clauses: list[str] = []
        params: list[Any] = []
        statuses: list[str] | None = None
        if status is not None:
            statuses = [status] if isinstance(status, str) else list(status)
            for s in statuses:
                _check_status(s, LISTED_STATUSES)
            stored = set(statuses) | (set(ACTIVE_STATUSES) if "interrupted" in statuses else set())
            if UNREADABLE not in statuses:  # an unreadable row can have any stored status
                clauses.append(f"status IN ({', '.join('?' * len(stored))})")
                params += sorted(stored)
        for column, value in (("strategy", strategy), ("source", source), ("target", target), ("owner", owner)):
            if value is not None:
                clauses.append(f"{column} = ?")
                params.append(value)
        sql = self._select_runs + (" WHERE " + " AND ".join(clauses) if clauses else "") + _NEWEST_FIRST
        if limit is not None and statuses is None:  # else the status as listed decides: capped below
            sql += " LIMIT ?"
            params.append(int(limit))
        with self._connection() as conn:
            rows = conn.execute(sql, params).fetchall()
        runs = self._settle([RunRecord._from_row(row) for row in rows])
        if statuses is not None:
            runs = [r for r in runs if r.status in statuses]
            if limit is not None:
                runs = runs[: max(int(limit), 0)]
        return runs

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
        """The newest readable run with this :func:`config_key` (and status; None = any), or None."""
        sql = self._select_runs + " WHERE config_key = ?"
        params: list[Any] = [config_key]
        if status is not None:
            _check_status(status)
            sql += " AND status = ?"
            params.append(status)
        with self._connection() as conn:
            rows = conn.execute(sql + _NEWEST_FIRST, params).fetchall()
        for row in rows:
            run = self._settle([RunRecord._from_row(row)])[0]
            if run.status != UNREADABLE and (status is None or run.status == status):
                return run
        return None

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


# --------------------------------------------------------------------------- damaged files
def quarantine_store(path: str | os.PathLike[str] | None = None) -> Path:
    """Move a corrupt run store aside so that a fresh, empty one starts in its place.

    The file (with its ``-wal`` and ``-shm`` files, which hold its last commits) is renamed
    to ``<name>.corrupt-<YYYYmmdd-HHMMSS>`` in the same folder and kept: nothing is deleted,
    and ``sqlite3 <that file> .recover | sqlite3 <new file>`` may get runs back out of it.
    Returns the new name of the moved file. The next :class:`RunStore` on ``path`` creates
    the fresh store.

    Raises :class:`~tlcore.errors.RunStoreError` when the file is missing, or is usable (a
    store that is only locked, read-only or too new is never moved).
    """
    path = Path(path).expanduser() if path is not None else paths.default_store_path()
    if not path.is_file():
        raise RunStoreError(f"run store {path} does not exist: nothing to move aside")
    try:
        store = RunStore(path)
        with store._connection() as conn:
            check = conn.execute("PRAGMA quick_check").fetchone()[0]
            conn.execute("SELECT COUNT(*) FROM runs").fetchone()
        if check != "ok":
            raise StoreCorruptError(f"run store {path} fails SQLite's check: {check}", path=path)
    except StoreCorruptError:
        pass
    else:
        raise RunStoreError(f"run store {path} is a readable run database: nothing was moved")
    stamp = time.strftime("%Y%m%d-%H%M%S")
    target = path.with_name(f"{path.name}.corrupt-{stamp}")
    n = 1
    while any(Path(f"{target}{s}").exists() for s in ("", "-wal", "-shm")):
        n += 1
        target = path.with_name(f"{path.name}.corrupt-{stamp}-{n}")
    try:
        for suffix in ("-wal", "-shm", ""):  # the main file last: a fresh store must not see old -wal
            if Path(f"{path}{suffix}").exists():
                os.replace(f"{path}{suffix}", f"{target}{suffix}")
    except OSError as exc:
        raise RunStoreError(f"run store {path} could not be moved aside to {target}: {exc}") from exc
    return target
