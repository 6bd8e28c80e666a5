"""The run store: runs, their metrics and artifacts in one SQLite file (the only SQL in cnnlab).

``CNNLAB_HOME/runs.db`` in WAL mode, so the dashboard, the CLI and several worker processes read
and write it at once. Every call opens its own short-lived connection (safe across threads and
``fork``); writes of one call are one transaction. Files of a run (its checkpoint) live in
``CNNLAB_HOME/runs/<id>/``. To move to a server database, replace this module only.

Statuses: ``queued → running → finished | failed | stopped | interrupted``.

Deleting from the dashboard moves a run to the trash (``deleted_at`` set): it leaves every list
and lookup but keeps its metrics and files, :meth:`RunStore.restore_run` brings it back, and
opening the store purges what has been in the trash longer than :data:`TRASH_KEEP_S`.
:meth:`RunStore.delete_run` deletes at once, for good.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import shutil
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError
from cnnlab.paths import home
from cnnlab.training.names import (  # noqa: F401  (statuses are part of the store's interface)
    ACTIVE,
    DONE,
    FAILED,
    FINISHED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    STATUSES,
    STOPPED,
)

HEARTBEAT_TIMEOUT_S = 60.0
"""A running run whose heartbeat is older than this is taken for dead (the engine beats ~1 s)."""

BUSY_TIMEOUT_MS = 15_000

LOST_TASK_TEXT = "its task was lost (worker died before starting it)"
"""Why a queued run whose queue task vanished was interrupted."""

TRASH_KEEP_S = 7 * 86_400.0
"""How long a run stays in the trash (restorable) before opening the store deletes it for good."""

SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY,
    name TEXT NOT NULL,
    model TEXT NOT NULL,
    config TEXT NOT NULL,
    status TEXT NOT NULL,
    created REAL NOT NULL,
    started REAL,
    ended REAL,
    error TEXT,
    device TEXT,
    params INTEGER,
    macs INTEGER,
    pid INTEGER,
    host TEXT,
    heartbeat REAL,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    deleted_at REAL,
    owner_id TEXT,
    owner_name TEXT,
    experiment_id TEXT
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY,
    kind TEXT NOT NULL,
    name TEXT NOT NULL,
    spec TEXT NOT NULL,
    created REAL NOT NULL,
    owner_id TEXT,
    owner_name TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0,
    deleted_at REAL
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY,
    value TEXT NOT NULL,
    updated REAL NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step INTEGER NOT NULL,
    epoch REAL NOT NULL,
    key TEXT NOT NULL,
    value REAL NOT NULL,
    time REAL NOT NULL,
    UNIQUE (run_id, step, key)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    kind TEXT NOT NULL,
    path TEXT,
    data TEXT,
    created REAL NOT NULL,
    PRIMARY KEY (run_id, kind)
);
CREATE TABLE IF NOT EXISTS workers (
    host TEXT NOT NULL,
    pid INTEGER NOT NULL,
    started REAL NOT NULL,
    heartbeat REAL NOT NULL,
    PRIMARY KEY (host, pid)
);
"""

RUN_COLUMNS = (
    "id, name, model, config, status, created, started, ended, error, device, params, macs,"
    " pid, host, heartbeat, stop_requested, deleted_at, owner_id, owner_name, experiment_id"
)
EXPERIMENT_COLUMNS = (
    "id, kind, name, spec, created, owner_id, owner_name, stop_requested, deleted_at"
)


class StoreError(UserError):
    """The run store cannot be read or written (read-only folder, disk full, corrupt file)."""


@dataclass(frozen=True)
class Run:
    """One row of ``runs`` with its config parsed (times are Unix seconds)."""

    id: str
    name: str
    model: str
    config: dict[str, Any]
    status: str
    created: float
    started: float | None
    ended: float | None
    error: str | None
    device: str | None
    params: int | None
    macs: int | None
    pid: int | None
    host: str | None
    heartbeat: float | None
    stop_requested: bool
    deleted_at: float | None = None
    """When the run went to the trash (None: it did not)."""
    owner_id: str | None = None
    """The anonymous browser identity that launched it (None: the CLI, i.e. the machine's owner)."""
    owner_name: str | None = None
    """The display name that identity typed (plain text, never Markdown)."""
    experiment_id: str | None = None
    """The experiment this run is an arm of (None: a single run)."""

    @property
    def duration(self) -> float | None:
        """Seconds from start to end (to now while running); None before it starts."""
        if self.started is None:
            return None
        end = self.ended if self.ended is not None else time.time()
        return max(0.0, end - self.started)

    @property
    def active(self) -> bool:
        return self.status in ACTIVE

    @property
    def done(self) -> bool:
        return self.status in DONE


@dataclass(frozen=True)
class Experiment:
    """One row of ``experiments``: a named family of runs queued together (``spec`` parsed)."""

    id: str
    kind: str
    name: str
    spec: dict[str, Any]
    created: float
    owner_id: str | None
    owner_name: str | None
    stop_requested: bool
    deleted_at: float | None = None


@dataclass(frozen=True)
class Metric:
    """One recorded value; ``id`` grows with every new row (for incremental reads)."""

    id: int
    run_id: str
    step: int
    epoch: float
    key: str
    value: float
    time: float


@dataclass(frozen=True)
class Artifact:
    """A run's non-scalar result: JSON ``data`` (confusion matrix, …) or a file ``path``."""

    run_id: str
    kind: str
    data: Any = None
    path: Path | None = None
    created: float = field(default=0.0, compare=False)


def this_host() -> str:
    return socket.gethostname()


def pid_alive(pid: int) -> bool:
    """Whether process ``pid`` exists on this host and is not a zombie."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # exists, owned by someone else
        return True
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return True  # no /proc (macOS): trust kill(0)
    state = stat.rsplit(")", 1)[-1].split()[0] if ")" in stat else ""
    return state not in ("Z", "X")


def _cannot_write(text: str) -> bool:
    """Whether an SQLite error text says the file or its folder cannot be written."""
    return any(
        part in text
        for part in ("readonly", "read-only", "unable to open", "permission", "disk I/O error")
    )


def _describe(err: BaseException, folder: Path | None = None) -> str:
    text = str(err) or type(err).__name__
    if "readonly" in text or "read-only" in text:
        return f"{text} (is the folder read-only?)"
    if "disk" in text and "full" in text:
        return f"{text} (free some space)"
    if folder is not None and ("I/O error" in text or "unable to open" in text):
        # SQLite says no more than this when its WAL files cannot grow or be created
        with contextlib.suppress(OSError):
            if shutil.disk_usage(folder).free < 1024 * 1024:
                return f"{text} (the disk is full: free some space)"
            if not os.access(folder, os.W_OK):
                return f"{text} (the folder {folder} is read-only)"
    return text


class RunStore:
    """Runs, metrics and artifacts in SQLite; see the module docstring."""

    def __init__(self, path: Path | str | None = None, *, read_only: bool = False) -> None:
        """Open (creating if needed) the store at ``path`` (default ``CNNLAB_HOME/runs.db``).

        ``read_only``, or a store that exists but cannot be written (read-only folder or file):
        opened with SQLite's ``mode=ro`` (``immutable=1`` where even the WAL's ``-shm`` file
        cannot be made), so runs and metrics can be read; every write raises
        :class:`StoreError` saying the store is read-only.
        """
        self._uri: str | None = None
        self._read_only_reason = ""
        try:
            self.path = Path(path) if path is not None else home() / "runs.db"
            if not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            if path is None or not self.path.exists():
                raise StoreError(f"cannot create the run store folder: {_describe(err)}") from None
            read_only = True
        if read_only:
            self._open_read_only("opened read-only")
            return
        try:
            with self._write() as db:
                for statement in SCHEMA.split(";"):
                    if statement.strip():
                        db.execute(statement)
                self._migrate(db)
        except StoreError as err:
            if not self.path.exists() or not _cannot_write(str(err)):
                raise
            self._open_read_only(f"it cannot be written: {err}")
            return
        self.purge_trash()

    @property
    def read_only(self) -> bool:
        """Whether this store was opened read-only (reads work, writes raise StoreError)."""
        return self._uri is not None

    def require_writable(self) -> None:
        """Raise :class:`StoreError` (saying the store is read-only) if it cannot be written."""
        if self._uri is not None:
            raise StoreError(self._read_only_text())

    def _read_only_text(self) -> str:
        return (
            f"run store {self.path} is read-only ({self._read_only_reason}): runs can be "
            "listed and viewed but not changed"
        )

    def _open_read_only(self, reason: str) -> None:
        """Switch to a read-only connection: ``mode=ro``, else ``immutable=1``."""
        if not self.path.exists():
            raise StoreError(f"run store {self.path}: no such file to open read-only")
        base = self.path.resolve().as_uri()
        last: Exception | None = None
        self._read_only_reason = reason
        for query in ("mode=ro", "mode=ro&immutable=1"):
            self._uri = f"{base}?{query}"
            try:
                with self._connect() as db:
                    db.execute("SELECT COUNT(*) FROM runs").fetchone()
                return
            except StoreError as err:
                last = err
        self._uri = None
        raise StoreError(f"run store {self.path} cannot be opened even read-only: {last}")

    # --- connections --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[sqlite3.Connection]:
        """One connection, one transaction: committed on success, rolled back on error.

        ``write``: ``BEGIN IMMEDIATE`` (waits for other writers up front, no upgrade deadlock).
        """
        if write and self._uri is not None:
            raise StoreError(self._read_only_text())
        db: sqlite3.Connection | None = None
        try:
            target = self.path if self._uri is None else self._uri
            db = sqlite3.connect(
                target, uri=self._uri is not None, timeout=BUSY_TIMEOUT_MS / 1000,
                isolation_level=None,
            )  # fmt: skip
            db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
            if self._uri is None:  # read-only connections cannot change the journal
                if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                    db.execute("PRAGMA journal_mode = WAL")
                db.execute("PRAGMA synchronous = NORMAL")
                db.execute("PRAGMA foreign_keys = ON")
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as err:
            if db is not None and db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise StoreError(f"run store {self.path}: {_describe(err, self.path.parent)}") from None
        except BaseException:
            if db is not None and db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        finally:
            if db is not None:
                db.close()

    def _write(self) -> contextlib.AbstractContextManager[sqlite3.Connection]:
        return self._connect(write=True)

    def _migrate(self, db: sqlite3.Connection) -> None:
        """Add columns that older stores lack (keeps old run files readable)."""
        have = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
        for column, kind in (
            ("host", "TEXT"),
            ("heartbeat", "REAL"),
            ("deleted_at", "REAL"),
            ("owner_id", "TEXT"),
            ("owner_name", "TEXT"),
            ("experiment_id", "TEXT"),
        ):
            if column not in have:
                db.execute(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
        db.execute("CREATE INDEX IF NOT EXISTS runs_deleted_at ON runs(deleted_at)")
        db.execute("CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment_id)")
        db.execute("CREATE INDEX IF NOT EXISTS runs_owner ON runs(owner_id, status)")

    def integrity_ok(self) -> bool:
        """SQLite's own integrity check (``PRAGMA integrity_check`` says ``ok``)."""
        try:
            with self._connect() as db:
                rows = db.execute("PRAGMA integrity_check").fetchall()
        except StoreError:
            return False
        return [tuple(r) for r in rows] == [("ok",)]

    # --- runs ---------------------------------------------------------------------------------

    def create_run(
        self,
        config: dict[str, Any],
        *,
        name: str | None,
        model: str,
        params: int | None,
        macs: int | None,
        status: str = QUEUED,
        owner_id: str | None = None,
        owner_name: str | None = None,
        experiment_id: str | None = None,
    ) -> str:
        """Insert a new run and return its id (12 hex digits). ``owner_id`` None: launched from
        the CLI (the machine's owner); ``experiment_id``: the experiment it is an arm of."""
        if status not in STATUSES:
            raise UserError(f"unknown run status {status!r}")
        run_id = uuid.uuid4().hex[:12]
        now = time.time()
        label = (name or "").strip() or f"{model}-{run_id[:6]}"
        with self._write() as db:
            db.execute(
                "INSERT INTO runs (id, name, model, config, status, created, params, macs,"
                " owner_id, owner_name, experiment_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (
                    run_id,
                    label,
                    model,
                    json.dumps(config),
                    status,
                    now,
                    params,
                    macs,
                    owner_id,
                    owner_name,
                    experiment_id,
                ),
            )
        return run_id

    def active_counts_by_owner(self) -> dict[str | None, int]:
        """Active (queued + running) runs per owner id (None: the CLI), trash left out."""
        placeholders = ", ".join("?" for _ in sorted(ACTIVE))
        with self._connect() as db:
            rows = db.execute(
                f"SELECT owner_id, COUNT(*) FROM runs WHERE deleted_at IS NULL"
                f" AND status IN ({placeholders}) GROUP BY owner_id",
                tuple(sorted(ACTIVE)),
            ).fetchall()
        return {owner: int(count) for owner, count in rows}

    # --- experiments --------------------------------------------------------------------------

    def create_experiment(
        self,
        kind: str,
        name: str,
        spec: dict[str, Any],
        *,
        owner_id: str | None = None,
        owner_name: str | None = None,
    ) -> str:
        """Insert an experiment (its runs are created with ``experiment_id`` set); return its id."""
        experiment_id = "x" + uuid.uuid4().hex[:11]
        with self._write() as db:
            db.execute(
                f"INSERT INTO experiments ({EXPERIMENT_COLUMNS})"
                " VALUES (?, ?, ?, ?, ?, ?, ?, 0, NULL)",
                (
                    experiment_id,
                    kind,
                    name.strip() or f"{kind}-{experiment_id[1:7]}",
                    json.dumps(spec),
                    time.time(),
                    owner_id,
                    owner_name,
                ),
            )
        return experiment_id

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        """The experiment with this id (None when there is none or it was deleted)."""
        with self._connect() as db:
            row = db.execute(
                f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE id = ? AND deleted_at IS NULL",
                (experiment_id,),
            ).fetchone()
        return _experiment(row) if row else None

    def list_experiments(self) -> list[Experiment]:
        """All experiments not deleted, newest first."""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {EXPERIMENT_COLUMNS} FROM experiments WHERE deleted_at IS NULL"
                " ORDER BY created DESC, rowid DESC"
            ).fetchall()
        return [_experiment(r) for r in rows]

    def experiment_runs(self, experiment_id: str) -> list[Run]:
        """The runs (arms) of an experiment not in the trash, in the order they were created."""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE experiment_id = ? AND deleted_at IS NULL"
                " ORDER BY created, rowid",
                (experiment_id,),
            ).fetchall()
        return [_run(r) for r in rows]

    def request_experiment_stop(self, experiment_id: str) -> bool:
        """Flag an experiment stopped (its queued and running runs are stopped by the caller
        through :meth:`request_stop` / :meth:`cancel`); False when there is no such experiment."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE experiments SET stop_requested = 1 WHERE id = ? AND deleted_at IS NULL",
                (experiment_id,),
            )
        return cur.rowcount > 0

    def delete_experiment(self, experiment_id: str) -> None:
        """Mark an experiment deleted (its runs are trashed or deleted by the caller)."""
        with self._write() as db:
            db.execute(
                "UPDATE experiments SET deleted_at = ? WHERE id = ?", (time.time(), experiment_id)
            )

    # --- settings (class limits, …) -----------------------------------------------------------

    def get_setting(self, key: str) -> Any:
        """The JSON value stored under ``key`` (None when unset)."""
        with self._connect() as db:
            row = db.execute("SELECT value FROM settings WHERE key = ?", (key,)).fetchone()
        return None if row is None else json.loads(row[0])

    def put_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under ``key`` (replacing the old one)."""
        with self._write() as db:
            db.execute(
                "INSERT INTO settings (key, value, updated) VALUES (?, ?, ?)"
                " ON CONFLICT(key) DO UPDATE"
                " SET value = excluded.value, updated = excluded.updated",
                (key, json.dumps(value), time.time()),
            )

    def get_run(self, run_id: str, *, trashed: bool = False) -> Run | None:
        """The run with this id; None when there is none or it is in the trash (unless
        ``trashed``: then a run in the trash is returned too)."""
        sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE id = ?"
        if not trashed:
            sql += " AND deleted_at IS NULL"
        with self._connect() as db:
            row = db.execute(sql, (run_id,)).fetchone()
        return _run(row) if row else None

    def require_run(self, run_id: str, *, trashed: bool = False) -> Run:
        """:meth:`get_run`, but a missing id is a :class:`UserError` (which says so when the run
        is in the trash)."""
        run = self.get_run(run_id, trashed=True)
        if run is None:
            raise UserError(f"no run with id {run_id!r} (see `python -m cnnlab runs list`)")
        if run.deleted_at is not None and not trashed:
            raise UserError(
                f"run {run_id} is in the trash (`python -m cnnlab runs restore {run_id}` brings "
                "it back)"
            )
        return run

    def list_runs(self, status: str | None = None) -> list[Run]:
        """All runs not in the trash, newest first (optionally only those with ``status``)."""
        sql = f"SELECT {RUN_COLUMNS} FROM runs WHERE deleted_at IS NULL"
        args: tuple[Any, ...] = ()
        if status is not None:
            sql += " AND status = ?"
            args = (status,)
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY created DESC, rowid DESC", args).fetchall()
        return [_run(r) for r in rows]

    def list_trash(self) -> list[Run]:
        """The runs in the trash, the most recently deleted first."""
        with self._connect() as db:
            rows = db.execute(
                f"SELECT {RUN_COLUMNS} FROM runs WHERE deleted_at IS NOT NULL"
                " ORDER BY deleted_at DESC, rowid DESC"
            ).fetchall()
        return [_run(r) for r in rows]

    def change_token(self) -> str:
        """A short digest that changes whenever a run is added, renamed, changes status, goes
        to or leaves the trash, or any run records a metric: one cheap read for a page that
        polls the store and redraws only when something changed."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id, name, status, ended, stop_requested, deleted_at FROM runs"
                " ORDER BY rowid"
            ).fetchall()
            last_metric = db.execute("SELECT MAX(rowid) FROM metrics").fetchone()[0]
            experiments = db.execute(
                "SELECT id, name, stop_requested, deleted_at FROM experiments ORDER BY rowid"
            ).fetchall()
        token = repr((rows, last_metric, experiments))
        return hashlib.blake2b(token.encode(), digest_size=8).hexdigest()

    def mark_running(self, run_id: str, pid: int, device: str) -> bool:
        """Claim a queued run for process ``pid``; False if it is no longer queued."""
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "UPDATE runs SET status = ?, started = ?, pid = ?, host = ?, device = ?,"
                " heartbeat = ? WHERE id = ? AND status = ? AND stop_requested = 0",
                (RUNNING, now, pid, this_host(), device, now, run_id, QUEUED),
            )
            return cur.rowcount == 1

    def heartbeat(self, run_id: str) -> None:
        with self._write() as db:
            db.execute("UPDATE runs SET heartbeat = ? WHERE id = ?", (time.time(), run_id))

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """End a run with ``status`` (finished, failed, stopped or interrupted)."""
        if status not in DONE:
            raise UserError(f"a run ends as one of {', '.join(DONE)}, not {status!r}")
        with self._write() as db:
            db.execute(
                "UPDATE runs SET status = ?, error = ?, ended = ? WHERE id = ?",
                (status, error, time.time(), run_id),
            )

    def request_stop(self, run_id: str) -> bool:
        """Ask a run to stop: a running one stops at its next check (≤ 2 s), a queued one is
        cancelled at once. False if the run is missing or already over."""
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                "UPDATE runs SET stop_requested = 1 WHERE id = ? AND status IN (?, ?)",
                (run_id, QUEUED, RUNNING),
            )
            db.execute(
                "UPDATE runs SET status = ?, ended = ?, error = ? WHERE id = ? AND status = ?",
                (STOPPED, now, "cancelled before it started", run_id, QUEUED),
            )
            return cur.rowcount == 1

    def stop_requested(self, run_id: str) -> bool:
        with self._connect() as db:
            row = db.execute(
                "SELECT stop_requested, deleted_at FROM runs WHERE id = ?", (run_id,)
            ).fetchone()
        return row is None or bool(row[0]) or row[1] is not None  # a deleted run stops too

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued run (status ``stopped``); False if it is not queued."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE runs SET status = ?, ended = ?, error = ?, stop_requested = 1"
                " WHERE id = ? AND status = ?",
                (STOPPED, time.time(), "cancelled before it started", run_id, QUEUED),
            )
            return cur.rowcount == 1

    def rename(self, run_id: str, name: str) -> None:
        label = (name or "").strip()
        if not label or len(label) > 200:
            raise UserError("a run name must be 1–200 characters")
        with self._write() as db:
            cur = db.execute("UPDATE runs SET name = ? WHERE id = ?", (label, run_id))
        if cur.rowcount != 1:
            raise UserError(f"no run with id {run_id!r}")

    def delete_run(self, run_id: str) -> None:
        """Delete a run (in the trash or not), its metrics, artifacts and files, for good.
        A running run must be stopped first."""
        run = self.require_run(run_id, trashed=True)
        if run.status == RUNNING:
            raise UserError(f"run {run_id} is running; stop it first (`cnnlab runs stop {run_id}`)")
        self._erase([run_id])

    def trash_run(self, run_id: str) -> Run:
        """Move a run to the trash (restorable with :meth:`restore_run` for
        :data:`TRASH_KEEP_S`); a queued run is cancelled first, a running one must be stopped."""
        run = self.require_run(run_id)
        if run.status == RUNNING:
            raise UserError(f"run {run_id} is running; stop it first (`cnnlab runs stop {run_id}`)")
        self.cancel(run_id)  # a queued run must not start from the trash
        with self._write() as db:
            db.execute(
                "UPDATE runs SET deleted_at = ? WHERE id = ? AND deleted_at IS NULL",
                (time.time(), run_id),
            )
        return run

    def restore_run(self, run_id: str) -> Run:
        """Take a run out of the trash, as it was (a queued one stays cancelled)."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE runs SET deleted_at = NULL WHERE id = ? AND deleted_at IS NOT NULL",
                (run_id,),
            )
        if cur.rowcount != 1:
            if self.get_run(run_id) is not None:
                raise UserError(f"run {run_id} is not in the trash")
            raise UserError(
                f"no run with id {run_id!r} in the trash (runs stay there "
                f"{TRASH_KEEP_S / 86_400:.0f} days; see `python -m cnnlab runs list --trash`)"
            )
        return self.require_run(run_id)

    def purge_trash(self, older_than_s: float = TRASH_KEEP_S) -> list[str]:
        """Delete for good the runs in the trash for longer than ``older_than_s``; their ids."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT id FROM runs WHERE deleted_at IS NOT NULL AND deleted_at <= ?",
                (time.time() - older_than_s,),
            ).fetchall()
        ids = [row[0] for row in rows]
        if ids:
            self._erase(ids)
        return ids

    def _erase(self, run_ids: list[str]) -> None:
        with self._write() as db:
            for run_id in run_ids:
                db.execute("DELETE FROM metrics WHERE run_id = ?", (run_id,))
                db.execute("DELETE FROM artifacts WHERE run_id = ?", (run_id,))
                db.execute("DELETE FROM runs WHERE id = ?", (run_id,))
        for run_id in run_ids:
            shutil.rmtree(self._run_path(run_id), ignore_errors=True)

    # --- metrics ------------------------------------------------------------------------------

    def add_metrics(self, run_id: str, rows: Iterable[tuple[int, float, str, float]]) -> int:
        """Record ``(step, epoch, key, value)`` rows in one transaction; returns how many.

        A (step, key) pair recorded twice keeps the last value (never two rows).
        """
        now = time.time()
        batch = [
            (run_id, int(step), float(epoch), str(key), float(value), now)
            for step, epoch, key, value in rows
        ]
        if not batch:
            return 0
        with self._write() as db:
            db.executemany(
                "INSERT INTO metrics (run_id, step, epoch, key, value, time)"
                " VALUES (?, ?, ?, ?, ?, ?) ON CONFLICT (run_id, step, key)"
                " DO UPDATE SET epoch = excluded.epoch, value = excluded.value,"
                " time = excluded.time",
                batch,
            )
        return len(batch)

    def metrics(
        self,
        run_id: str,
        keys: Iterable[str] | None = None,
        after_step: int | None = None,
        after_id: int | None = None,
    ) -> list[Metric]:
        """A run's metric rows ordered by step (then key).

        For live charts read incrementally: ``after_step`` returns rows with a larger step;
        ``after_id`` rows added after the row with that id. All rows of one step are written
        in one transaction, so neither misses a row.
        """
        sql = "SELECT rowid, run_id, step, epoch, key, value, time FROM metrics WHERE run_id = ?"
        args: list[Any] = [run_id]
        if keys is not None:
            wanted = list(keys)
            if not wanted:
                return []
            sql += f" AND key IN ({', '.join('?' * len(wanted))})"
            args += wanted
        if after_step is not None:
            sql += " AND step > ?"
            args.append(int(after_step))
        if after_id is not None:
            sql += " AND rowid > ?"
            args.append(int(after_id))
        with self._connect() as db:
            rows = db.execute(sql + " ORDER BY step, key", args).fetchall()
        return [Metric(*row) for row in rows]

    def metric_count(self, run_id: str | None = None) -> int:
        with self._connect() as db:
            if run_id is None:
                return int(db.execute("SELECT COUNT(*) FROM metrics").fetchone()[0])
            sql = "SELECT COUNT(*) FROM metrics WHERE run_id = ?"
            return int(db.execute(sql, (run_id,)).fetchone()[0])

    def final_metrics(self, run_id: str) -> dict[str, float]:
        """The last recorded value of every key (after a finished run: accuracy, precision,
        recall, f1, test_loss, train_seconds, mean_images_per_second, …)."""
        with self._connect() as db:
            rows = db.execute(
                "SELECT key, value FROM metrics m WHERE run_id = ? AND step ="
                " (SELECT MAX(step) FROM metrics WHERE run_id = m.run_id AND key = m.key)",
                (run_id,),
            ).fetchall()
        return {key: value for key, value in rows}

    # --- artifacts ----------------------------------------------------------------------------

    def put_artifact(
        self,
        run_id: str,
        kind: str,
        data: dict[str, Any] | list[Any] | None = None,
        path: Path | str | None = None,
    ) -> None:
        """Store a JSON-able ``data`` blob and/or a file ``path`` under ``kind`` (replaces)."""
        blob = None if data is None else json.dumps(data)
        with self._write() as db:
            db.execute(
                "INSERT INTO artifacts (run_id, kind, path, data, created) VALUES (?, ?, ?, ?, ?)"
                " ON CONFLICT (run_id, kind) DO UPDATE SET path = excluded.path,"
                " data = excluded.data, created = excluded.created",
                (run_id, kind, None if path is None else str(path), blob, time.time()),
            )

    def get_artifact(self, run_id: str, kind: str) -> Artifact | None:
        with self._connect() as db:
            row = db.execute(
                "SELECT run_id, kind, path, data, created FROM artifacts"
                " WHERE run_id = ? AND kind = ?",
                (run_id, kind),
            ).fetchone()
        return _artifact(row) if row else None

    def artifacts(self, run_id: str) -> list[Artifact]:
        with self._connect() as db:
            rows = db.execute(
                "SELECT run_id, kind, path, data, created FROM artifacts WHERE run_id = ?"
                " ORDER BY kind",
                (run_id,),
            ).fetchall()
        return [_artifact(r) for r in rows]

    def _run_path(self, run_id: str) -> Path:
        if not run_id or not all(c.isalnum() or c in "-_" for c in run_id):
            raise UserError(f"not a run id: {run_id!r}")
        return self.path.parent / "runs" / run_id

    def run_dir(self, run_id: str) -> Path:
        """The run's own folder (created on first use) for its checkpoint and files."""
        folder = self._run_path(run_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create {folder}: {_describe(err)}") from None
        return folder

    # --- liveness -----------------------------------------------------------------------------

    def reap_orphans(self, max_heartbeat_age_s: float = HEARTBEAT_TIMEOUT_S) -> list[str]:
        """Mark ``interrupted`` every running run whose process is gone (on this host) or whose
        heartbeat stopped; returns their ids. Queued runs are left alone."""
        now = time.time()
        host = this_host()
        reaped: list[tuple[str, str]] = []
        for run in self.list_runs(RUNNING):
            reason = None
            if run.host == host and run.pid is not None and not pid_alive(run.pid):
                reason = f"the worker process (pid {run.pid}) ended without finishing the run"
            elif run.heartbeat is None or now - run.heartbeat > max_heartbeat_age_s:
                last = "never" if run.heartbeat is None else f"{now - run.heartbeat:.0f} s ago"
                reason = f"no heartbeat from the worker (last {last})"
            if reason:
                reaped.append((run.id, reason))
        return [r for r, reason in reaped if self._interrupt_if(r, RUNNING, reason, now)]

    def _interrupt_if(self, run_id: str, status: str, reason: str, now: float) -> bool:
        """Mark the run ``interrupted`` with ``reason`` if still ``status``; True if it was."""
        with self._write() as db:
            cur = db.execute(
                "UPDATE runs SET status = ?, error = ?, ended = ? WHERE id = ? AND status = ?",
                (INTERRUPTED, reason, now, run_id, status),
            )
            return cur.rowcount == 1

    def interrupt_lost_queued(
        self, run_ids: Iterable[str], reason: str = LOST_TASK_TEXT
    ) -> list[str]:
        """Mark ``interrupted`` (with ``reason``) those of ``run_ids`` that are still queued:
        runs whose queue task is gone (see :class:`cnnlab.training.queue.LostTaskReaper`)."""
        now = time.time()
        return [r for r in run_ids if self._interrupt_if(r, QUEUED, reason, now)]

    def worker_heartbeat(self, pid: int) -> None:
        """A queue consumer says it is alive (every ~2 s)."""
        now = time.time()
        with self._write() as db:
            db.execute(
                "INSERT INTO workers (host, pid, started, heartbeat) VALUES (?, ?, ?, ?)"
                " ON CONFLICT (host, pid) DO UPDATE SET heartbeat = excluded.heartbeat",
                (this_host(), pid, now, now),
            )
            db.execute("DELETE FROM workers WHERE heartbeat < ?", (now - 3600,))

    def worker_gone(self, pid: int) -> None:
        """A consumer shutting down cleanly removes its heartbeat row."""
        with self._write() as db:
            db.execute("DELETE FROM workers WHERE host = ? AND pid = ?", (this_host(), pid))

    def workers_alive(self, max_age_s: float = 10) -> int:
        """How many consumers beat within ``max_age_s`` (0: nobody will pick up queued runs)."""
        with self._connect() as db:
            row = db.execute(
                "SELECT COUNT(*) FROM workers WHERE heartbeat >= ?", (time.time() - max_age_s,)
            ).fetchone()
        return int(row[0])


def _run(row: tuple[Any, ...]) -> Run:
    values = list(row)
    try:
        values[3] = json.loads(values[3])
    except (TypeError, ValueError):
        values[3] = {}
    values[15] = bool(values[15])
    return Run(*values)


def _experiment(row: tuple[Any, ...]) -> Experiment:
    values = list(row)
    try:
        values[3] = json.loads(values[3])
    except (TypeError, ValueError):
        values[3] = {}
    values[7] = bool(values[7])
    return Experiment(*values)


def _artifact(row: tuple[Any, ...]) -> Artifact:
    run_id, kind, path, data, created = row
    return Artifact(
        run_id=run_id,
        kind=kind,
        data=None if data is None else json.loads(data),
        path=None if path is None else Path(path),
        created=created,
    )
