"""The run store: runs, their metrics and artifacts in one database (the only SQL in cnnlab).

By default ``CNNLAB_HOME/runs.db``, one SQLite file in WAL mode, so the dashboard, the CLI and
several worker processes read and write it at once; with ``CNNLAB_STORE_URL`` set to
``postgresql+psycopg://user@host:port/db``, a PostgreSQL server that workers on several machines
share (see :mod:`cnnlab.training.storedb`: the URL, the engine, the tables — the queries here are
SQLAlchemy Core, written once for both). Every call takes its own connection; the writes of one
call are one transaction. Files of a run (its checkpoints) live in ``CNNLAB_HOME/runs/<id>/``;
on a server store their bytes also go into the database (up to :func:`file_limit_bytes`), and
a machine that lacks the file fetches it into its own ``CNNLAB_HOME/runs/<id>/`` when it reads
the artifact.

Statuses: ``queued → running → finished | failed | stopped | interrupted``.

Deleting from the dashboard moves a run to the trash (``deleted_at`` set): it leaves every list
and lookup but keeps its metrics and files, :meth:`RunStore.restore_run` brings it back, and
opening the store purges what has been in the trash longer than :data:`TRASH_KEEP_S`.
:meth:`RunStore.delete_run` deletes at once, for good.

Liveness across machines: every run records the ``host`` (:func:`this_host`) and pid of its
worker. Orphan reaping checks the pid only for runs of this host; a run of another host is
judged by its heartbeat alone (:func:`heartbeat_timeout_s`), so a machine that vanishes leaves
its runs ``interrupted`` with the reason, never ``running``.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import json
import logging
import os
import shutil
import socket
import sqlite3
import time
import uuid
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from sqlalchemy import (
    Connection,
    Select,
    Table,
    bindparam,
    delete,
    func,
    insert,
    inspect,
    select,
    text,
    update,
)
from sqlalchemy.dialects import postgresql, sqlite

from cnnlab.errors import UserError
from cnnlab.paths import home
from cnnlab.training import storedb
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
    TRASH_KEEP_S,
)
from cnnlab.training.storedb import (  # noqa: F401  (part of the store's interface)
    BUSY_TIMEOUT_MS,
    StoreError,
    artifacts,
    experiments,
    files,
    metrics,
    runs,
    settings,
    workers,
)

log = logging.getLogger("cnnlab.training.store")

HEARTBEAT_TIMEOUT_S = 60.0
"""A running run whose heartbeat is older than this is taken for dead (the engine beats ~1 s);
``CNNLAB_HEARTBEAT_TIMEOUT_S`` overrides it."""

LOST_TASK_TEXT = "its task was lost (worker died before starting it)"
"""Why a queued run whose queue task vanished was interrupted."""

FILE_LIMIT_MB = 256
"""The largest run file (checkpoint) a server store keeps in the database, in MiB;
``CNNLAB_STORE_FILE_MAX_MB`` overrides it. A bigger file stays on its worker's disk only."""

RUN_COLUMNS = tuple(c for c in runs.c if not c.info.get("server_only"))
EXPERIMENT_COLUMNS = tuple(c for c in experiments.c if not c.info.get("server_only"))
METRIC_ID = storedb.RowOrder(metrics)

# What a running training sends every second or so, built once (no statement building per call);
# on SQLite they also run compiled on a bare connection (storedb.Compiled: as fast as before).
_HEARTBEAT = update(runs).where(runs.c.id == bindparam("rid")).values(heartbeat=bindparam("now"))
_STOP_FLAG = select(runs.c.stop_requested, runs.c.deleted_at).where(runs.c.id == bindparam("rid"))
_METRIC_UPSERT = sqlite.insert(metrics)
_METRIC_UPSERT = _METRIC_UPSERT.on_conflict_do_update(
    index_elements=["run_id", "step", "key"],
    set_={name: _METRIC_UPSERT.excluded[name] for name in ("epoch", "value", "time")},
)
_FAST = {
    "heartbeat": storedb.Compiled(_HEARTBEAT),
    "stop_flag": storedb.Compiled(_STOP_FLAG),
    "metrics": storedb.Compiled(_METRIC_UPSERT.values({c: bindparam(c) for c in (
        "run_id", "step", "epoch", "key", "value", "time")})),
}  # fmt: skip


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
    """This machine's name in the store: ``CNNLAB_HOST_NAME``, else the host name."""
    return os.environ.get("CNNLAB_HOST_NAME") or socket.gethostname()


def heartbeat_timeout_s() -> float:
    """:data:`HEARTBEAT_TIMEOUT_S`, or ``CNNLAB_HEARTBEAT_TIMEOUT_S`` when set."""
    raw = os.environ.get("CNNLAB_HEARTBEAT_TIMEOUT_S")
    if not raw:
        return HEARTBEAT_TIMEOUT_S
    try:
        value = float(raw)
    except ValueError:
        raise UserError(f"CNNLAB_HEARTBEAT_TIMEOUT_S must be seconds, got {raw!r}") from None
    if not value > 0:
        raise UserError(f"CNNLAB_HEARTBEAT_TIMEOUT_S must be above 0, got {raw!r}")
    return value


def file_limit_bytes() -> int:
    """The largest file a server store keeps in the database (:data:`FILE_LIMIT_MB`)."""
    raw = os.environ.get("CNNLAB_STORE_FILE_MAX_MB") or str(FILE_LIMIT_MB)
    try:
        return int(float(raw) * 2**20)
    except ValueError:
        raise UserError(f"CNNLAB_STORE_FILE_MAX_MB must be a number, got {raw!r}") from None


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


_ensured: set[tuple[str, int]] = set()
"""Server stores whose schema this process has already checked."""


class RunStore:
    """Runs, metrics and artifacts in SQLite or PostgreSQL; see the module docstring."""

    def __init__(self, path: Path | str | None = None, *, read_only: bool = False) -> None:
        """Open (creating if needed) the store at ``path``: a file, a ``sqlite:///`` or
        ``postgresql+psycopg://`` URL, or None: ``CNNLAB_STORE_URL``, else
        ``CNNLAB_HOME/runs.db``.

        ``read_only``, or a SQLite store that exists but cannot be written (read-only folder
        or file): opened with SQLite's ``mode=ro`` (``immutable=1`` where even the WAL's
        ``-shm`` file cannot be made), so runs and metrics can be read; every write raises
        :class:`StoreError` saying the store is read-only.
        """
        self._uri: str | None = None
        self._read_only_reason = ""
        self._read_only = False
        default = None
        if path is None and not os.environ.get(storedb.STORE_URL_ENV):
            try:
                default = home() / "runs.db"
            except OSError as err:
                raise StoreError(
                    f"cannot create the run store folder: {storedb.describe(err)}"
                ) from None
        self.target = storedb.parse_target(path, default)
        self.shared = self.target.shared
        if self.target.url is not None:
            self._open_server(self.target.url, read_only)
            return
        assert self.target.path is not None
        self.path = self.target.path
        try:
            if not read_only:
                self.path.parent.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            if path is None or not self.path.exists():
                raise StoreError(
                    f"cannot create the run store folder: {storedb.describe(err)}"
                ) from None
            read_only = True
        self._engine = storedb.sqlite_engine(self.path, None)
        if read_only:
            self._open_read_only("opened read-only")
            return
        try:
            with self._write() as db:
                for statement in storedb.SQLITE_SCHEMA.split(";"):
                    if statement.strip():
                        db.exec_driver_sql(statement)
                self._migrate(db)
        except StoreError as err:
            if not self.path.exists() or not storedb.cannot_write(str(err)):
                raise
            self._open_read_only(f"it cannot be written: {err}")
            return
        self.purge_trash()

    def _open_server(self, url: str, read_only: bool) -> None:
        self.path = Path(storedb.mask_url(url).split("://", 1)[1])  # for messages only
        self._engine = storedb.server_engine(url)
        self._read_only = read_only
        if read_only:
            self._read_only_reason = "opened read-only"
        key = (url, os.getpid())
        if key not in _ensured and not read_only:
            with self._write() as db:
                # one schema change at a time when several machines start together
                db.execute(text("SELECT pg_advisory_xact_lock(4242001)"))
                for statement in storedb.SERVER_SCHEMA.split(";"):
                    if statement.strip():
                        db.exec_driver_sql(statement)
                db.exec_driver_sql(storedb.FILES_SCHEMA["postgresql"])
                self._migrate(db)
            _ensured.add(key)
        else:
            with self._connect() as db:
                db.execute(select(func.count()).select_from(runs)).scalar()
        if not read_only:
            self.purge_trash()

    @property
    def location(self) -> str:
        """Where the store is, for messages: the file, or the server URL (no password)."""
        return self.target.location

    @property
    def files_root(self) -> Path:
        """The folder that holds ``runs/<id>/`` on this machine."""
        return home() if self.shared else self.path.parent

    @property
    def read_only(self) -> bool:
        """Whether this store was opened read-only (reads work, writes raise StoreError)."""
        return self._uri is not None or self._read_only

    def require_writable(self) -> None:
        """Raise :class:`StoreError` (saying the store is read-only) if it cannot be written."""
        if self.read_only:
            raise StoreError(self._read_only_text())

    def _read_only_text(self) -> str:
        return (
            f"run store {self.location} is read-only ({self._read_only_reason}): runs can be "
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
            self._engine = storedb.sqlite_engine(self.path, self._uri)
            try:
                with self._connect() as db:
                    db.execute(select(func.count()).select_from(runs)).scalar()
                return
            except StoreError as err:
                last = err
        self._uri = None
        raise StoreError(f"run store {self.path} cannot be opened even read-only: {last}")

    # --- connections --------------------------------------------------------------------------

    @contextlib.contextmanager
    def _connect(self, write: bool = False) -> Iterator[Connection]:
        """One connection, one transaction: committed on success, rolled back on error.

        ``write`` on SQLite: ``BEGIN IMMEDIATE`` (waits for other writers up front, no upgrade
        deadlock).
        """
        if write and self.read_only:
            raise StoreError(self._read_only_text())
        try:
            with self._engine.connect() as conn:
                if write:
                    conn = conn.execution_options(cnnlab_write=True)
                with conn.begin():
                    yield conn
        except storedb.DatabaseError as err:
            folder = None if self.shared else self.path.parent
            raise StoreError(
                f"run store {self.location}: {storedb.describe(err, folder)}"
            ) from None

    def _write(self) -> contextlib.AbstractContextManager[Connection]:
        return self._connect(write=True)

    @contextlib.contextmanager
    def _bare(self, write: bool) -> Iterator[sqlite3.Connection]:
        """SQLite only: a bare connection in one transaction, for the :data:`_FAST` calls."""
        if write and self.read_only:
            raise StoreError(self._read_only_text())
        db: sqlite3.Connection | None = None
        try:
            db = storedb.sqlite_connect(self.path, self._uri)
            db.execute("BEGIN IMMEDIATE" if write else "BEGIN")
            yield db
            db.execute("COMMIT")
        except sqlite3.Error as err:
            if db is not None and db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise StoreError(
                f"run store {self.path}: {storedb.describe(err, self.path.parent)}"
            ) from None
        except BaseException:
            if db is not None and db.in_transaction:
                with contextlib.suppress(sqlite3.Error):
                    db.execute("ROLLBACK")
            raise
        finally:
            if db is not None:
                db.close()

    @functools.cached_property
    def _metric_upsert(self) -> Any:
        return self._upsert(metrics, ("run_id", "step", "key"), ["epoch", "value", "time"])

    @property
    def _dialect(self) -> str:
        return self._engine.dialect.name

    def _upsert(self, table: Table, keys: tuple[str, ...], values: list[str]) -> Any:
        """``INSERT … ON CONFLICT (keys) DO UPDATE SET values = excluded.values``."""
        dialect_insert = postgresql.insert if self._dialect == "postgresql" else sqlite.insert
        stmt = dialect_insert(table)
        return stmt.on_conflict_do_update(
            index_elements=list(keys), set_={name: stmt.excluded[name] for name in values}
        )

    def _migrate(self, db: Connection) -> None:
        """Add columns that older stores lack (keeps old run files readable)."""
        have = {column["name"] for column in inspect(db).get_columns("runs")}
        server = self._dialect == "postgresql"
        for column, lite_kind, server_kind in storedb.MIGRATIONS:
            if column not in have:
                kind = server_kind if server else lite_kind
                db.exec_driver_sql(f"ALTER TABLE runs ADD COLUMN {column} {kind}")
        if server:  # the identity columns that stand in for SQLite's rowid
            for table, column in (("runs", "seq"), ("experiments", "seq"), ("metrics", "id")):
                names = {c["name"] for c in inspect(db).get_columns(table)}
                if column not in names:
                    db.exec_driver_sql(
                        f"ALTER TABLE {table} ADD COLUMN {column} BIGINT GENERATED BY DEFAULT"
                        " AS IDENTITY"
                    )
        for statement in storedb.INDEXES:
            db.exec_driver_sql(statement)

    def integrity_ok(self) -> bool:
        """SQLite's own integrity check (``PRAGMA integrity_check`` says ``ok``); a server
        store: it answers a query."""
        try:
            with self._connect() as db:
                if self.shared:
                    return db.execute(select(func.count()).select_from(runs)).scalar() is not None
                rows = db.exec_driver_sql("PRAGMA integrity_check").fetchall()
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
        label = (name or "").strip() or f"{model}-{run_id[:6]}"
        with self._write() as db:
            db.execute(
                insert(runs).values(
                    id=run_id,
                    name=label,
                    model=model,
                    config=json.dumps(config),
                    status=status,
                    created=time.time(),
                    params=params,
                    macs=macs,
                    owner_id=owner_id,
                    owner_name=owner_name,
                    experiment_id=experiment_id,
                )
            )
        return run_id

    def active_counts_by_owner(self) -> dict[str | None, int]:
        """Active (queued + running) runs per owner id (None: the CLI), trash left out."""
        query = (
            select(runs.c.owner_id, func.count())
            .where(runs.c.deleted_at.is_(None), runs.c.status.in_(sorted(ACTIVE)))
            .group_by(runs.c.owner_id)
        )
        with self._connect() as db:
            rows = db.execute(query).all()
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
                insert(experiments).values(
                    id=experiment_id,
                    kind=kind,
                    name=name.strip() or f"{kind}-{experiment_id[1:7]}",
                    spec=json.dumps(spec),
                    created=time.time(),
                    owner_id=owner_id,
                    owner_name=owner_name,
                    stop_requested=0,
                    deleted_at=None,
                )
            )
        return experiment_id

    def get_experiment(self, experiment_id: str) -> Experiment | None:
        """The experiment with this id (None when there is none or it was deleted)."""
        query = select(*EXPERIMENT_COLUMNS).where(
            experiments.c.id == experiment_id, experiments.c.deleted_at.is_(None)
        )
        with self._connect() as db:
            row = db.execute(query).first()
        return _experiment(tuple(row)) if row else None

    def list_experiments(self) -> list[Experiment]:
        """All experiments not deleted, newest first."""
        query = (
            select(*EXPERIMENT_COLUMNS)
            .where(experiments.c.deleted_at.is_(None))
            .order_by(experiments.c.created.desc(), storedb.RowOrder(experiments).desc())
        )
        with self._connect() as db:
            rows = db.execute(query).all()
        return [_experiment(tuple(r)) for r in rows]

    def experiment_runs(self, experiment_id: str) -> list[Run]:
        """The runs (arms) of an experiment not in the trash, in the order they were created."""
        query = (
            select(*RUN_COLUMNS)
            .where(runs.c.experiment_id == experiment_id, runs.c.deleted_at.is_(None))
            .order_by(runs.c.created, storedb.RowOrder(runs))
        )
        return self._runs(query)

    def request_experiment_stop(self, experiment_id: str) -> bool:
        """Flag an experiment stopped (its queued and running runs are stopped by the caller
        through :meth:`request_stop` / :meth:`cancel`); False when there is no such experiment."""
        with self._write() as db:
            cur = db.execute(
                update(experiments)
                .where(experiments.c.id == experiment_id, experiments.c.deleted_at.is_(None))
                .values(stop_requested=1)
            )
        return cur.rowcount > 0

    def delete_experiment(self, experiment_id: str) -> None:
        """Mark an experiment deleted (its runs are trashed or deleted by the caller)."""
        with self._write() as db:
            db.execute(
                update(experiments)
                .where(experiments.c.id == experiment_id)
                .values(deleted_at=time.time())
            )

    # --- settings (class limits, …) -----------------------------------------------------------

    def get_setting(self, key: str) -> Any:
        """The JSON value stored under ``key`` (None when unset)."""
        with self._connect() as db:
            value = db.execute(select(settings.c.value).where(settings.c.key == key)).scalar()
        return None if value is None else json.loads(value)

    def put_setting(self, key: str, value: Any) -> None:
        """Store a JSON-serialisable value under ``key`` (replacing the old one)."""
        with self._write() as db:
            db.execute(
                self._upsert(settings, ("key",), ["value", "updated"]),
                {"key": key, "value": json.dumps(value), "updated": time.time()},
            )

    def _runs(self, query: Select[Any]) -> list[Run]:
        with self._connect() as db:
            rows = db.execute(query).all()
        return [_run(tuple(r)) for r in rows]

    def get_run(self, run_id: str, *, trashed: bool = False) -> Run | None:
        """The run with this id; None when there is none or it is in the trash (unless
        ``trashed``: then a run in the trash is returned too)."""
        query = select(*RUN_COLUMNS).where(runs.c.id == run_id)
        if not trashed:
            query = query.where(runs.c.deleted_at.is_(None))
        found = self._runs(query)
        return found[0] if found else None

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
        query = select(*RUN_COLUMNS).where(runs.c.deleted_at.is_(None))
        if status is not None:
            query = query.where(runs.c.status == status)
        return self._runs(query.order_by(runs.c.created.desc(), storedb.RowOrder(runs).desc()))

    def list_trash(self) -> list[Run]:
        """The runs in the trash, the most recently deleted first."""
        query = (
            select(*RUN_COLUMNS)
            .where(runs.c.deleted_at.is_not(None))
            .order_by(runs.c.deleted_at.desc(), storedb.RowOrder(runs).desc())
        )
        return self._runs(query)

    def change_token(self) -> str:
        """A short digest that changes whenever a run is added, renamed, changes status, goes
        to or leaves the trash, or any run records a metric: one cheap read for a page that
        polls the store and redraws only when something changed."""
        c, e = runs.c, experiments.c
        with self._connect() as db:
            rows = db.execute(
                select(c.id, c.name, c.status, c.ended, c.stop_requested, c.deleted_at).order_by(
                    storedb.RowOrder(runs)
                )
            ).all()
            last_metric = db.execute(select(func.max(METRIC_ID))).scalar()
            found = db.execute(
                select(e.id, e.name, e.stop_requested, e.deleted_at).order_by(
                    storedb.RowOrder(experiments)
                )
            ).all()
        token = repr(([tuple(r) for r in rows], last_metric, [tuple(r) for r in found]))
        return hashlib.blake2b(token.encode(), digest_size=8).hexdigest()

    def mark_running(self, run_id: str, pid: int, device: str) -> bool:
        """Claim a queued run for process ``pid`` on this host; False if it is no longer
        queued (exactly one of several workers racing for it wins)."""
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status == QUEUED, runs.c.stop_requested == 0)
                .values(
                    status=RUNNING,
                    started=now,
                    pid=pid,
                    host=this_host(),
                    device=device,
                    heartbeat=now,
                )
            )
            return cur.rowcount == 1

    def heartbeat(self, run_id: str) -> None:
        values = {"rid": run_id, "now": time.time()}
        if not self.shared:
            with self._bare(write=True) as bare:
                fast = _FAST["heartbeat"]
                bare.execute(fast.sql, fast.args(values))
            return
        with self._write() as db:
            db.execute(_HEARTBEAT, values)

    def finish_run(self, run_id: str, status: str, error: str | None = None) -> None:
        """End a run with ``status`` (finished, failed, stopped or interrupted)."""
        if status not in DONE:
            raise UserError(f"a run ends as one of {', '.join(DONE)}, not {status!r}")
        with self._write() as db:
            db.execute(
                update(runs)
                .where(runs.c.id == run_id)
                .values(status=status, error=error, ended=time.time())
            )

    def request_stop(self, run_id: str) -> bool:
        """Ask a run to stop: a running one stops at its next check (≤ 2 s), a queued one is
        cancelled at once. False if the run is missing or already over."""
        now = time.time()
        with self._write() as db:
            cur = db.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status.in_((QUEUED, RUNNING)))
                .values(stop_requested=1)
            )
            db.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status == QUEUED)
                .values(status=STOPPED, ended=now, error="cancelled before it started")
            )
            return cur.rowcount == 1

    def stop_requested(self, run_id: str) -> bool:
        row: Any
        if not self.shared:
            with self._bare(write=False) as bare:
                fast = _FAST["stop_flag"]
                row = bare.execute(fast.sql, fast.args({"rid": run_id})).fetchone()
        else:
            with self._connect() as db:
                row = db.execute(_STOP_FLAG, {"rid": run_id}).first()
        return row is None or bool(row[0]) or row[1] is not None  # a deleted run stops too

    def cancel(self, run_id: str) -> bool:
        """Cancel a queued run (status ``stopped``); False if it is not queued."""
        with self._write() as db:
            cur = db.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status == QUEUED)
                .values(
                    status=STOPPED,
                    ended=time.time(),
                    error="cancelled before it started",
                    stop_requested=1,
                )
            )
            return cur.rowcount == 1

    def rename(self, run_id: str, name: str) -> None:
        label = (name or "").strip()
        if not label or len(label) > 200:
            raise UserError("a run name must be 1–200 characters")
        with self._write() as db:
            cur = db.execute(update(runs).where(runs.c.id == run_id).values(name=label))
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
                update(runs)
                .where(runs.c.id == run_id, runs.c.deleted_at.is_(None))
                .values(deleted_at=time.time())
            )
        return run

    def restore_run(self, run_id: str) -> Run:
        """Take a run out of the trash, as it was (a queued one stays cancelled)."""
        with self._write() as db:
            cur = db.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.deleted_at.is_not(None))
                .values(deleted_at=None)
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
        query = select(runs.c.id).where(
            runs.c.deleted_at.is_not(None), runs.c.deleted_at <= time.time() - older_than_s
        )
        with self._connect() as db:
            ids = [str(row[0]) for row in db.execute(query)]
        if ids:
            self._erase(ids)
        return ids

    def _erase(self, run_ids: list[str]) -> None:
        with self._write() as db:
            for table in (metrics, artifacts, files) if self.shared else (metrics, artifacts):
                db.execute(delete(table).where(table.c.run_id.in_(run_ids)))
            db.execute(delete(runs).where(runs.c.id.in_(run_ids)))
        for run_id in run_ids:
            shutil.rmtree(self._run_path(run_id), ignore_errors=True)

    # --- metrics ------------------------------------------------------------------------------

    def add_metrics(self, run_id: str, rows: Iterable[tuple[int, float, str, float]]) -> int:
        """Record ``(step, epoch, key, value)`` rows in one transaction; returns how many.

        A (step, key) pair recorded twice keeps the last value (never two rows).
        """
        now = time.time()
        batch = [
            {"run_id": run_id, "step": int(step), "epoch": float(epoch), "key": str(key),
             "value": float(value), "time": now}
            for step, epoch, key, value in rows
        ]  # fmt: skip
        if not batch:
            return 0
        if not self.shared:
            fast = _FAST["metrics"]
            with self._bare(write=True) as bare:
                bare.executemany(fast.sql, [fast.args(row) for row in batch])
            return len(batch)
        stmt = self._metric_upsert
        with self._write() as db:
            db.execute(stmt, batch)
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
        m = metrics.c
        query = select(METRIC_ID, m.run_id, m.step, m.epoch, m.key, m.value, m.time).where(
            m.run_id == run_id
        )
        if keys is not None:
            wanted = list(keys)
            if not wanted:
                return []
            query = query.where(m.key.in_(wanted))
        if after_step is not None:
            query = query.where(m.step > int(after_step))
        if after_id is not None:
            query = query.where(METRIC_ID > bindparam("after_id", int(after_id)))  # noqa: SIM300
        with self._connect() as db:
            rows = db.execute(query.order_by(m.step, m.key)).all()
        return [Metric(*row) for row in rows]

    def metric_count(self, run_id: str | None = None) -> int:
        query = select(func.count()).select_from(metrics)
        if run_id is not None:
            query = query.where(metrics.c.run_id == run_id)
        with self._connect() as db:
            return int(db.execute(query).scalar() or 0)

    def final_metrics(self, run_id: str) -> dict[str, float]:
        """The last recorded value of every key (after a finished run: accuracy, precision,
        recall, f1, test_loss, train_seconds, mean_images_per_second, …)."""
        inner = metrics.alias("latest")
        last_step = (
            select(func.max(inner.c.step))
            .where(inner.c.run_id == metrics.c.run_id, inner.c.key == metrics.c.key)
            .scalar_subquery()
        )
        query = select(metrics.c.key, metrics.c.value).where(
            metrics.c.run_id == run_id, metrics.c.step == last_step
        )
        with self._connect() as db:
            rows = db.execute(query).all()
        return {key: value for key, value in rows}

    # --- artifacts ----------------------------------------------------------------------------

    def put_artifact(
        self,
        run_id: str,
        kind: str,
        data: dict[str, Any] | list[Any] | None = None,
        path: Path | str | None = None,
    ) -> None:
        """Store a JSON-able ``data`` blob and/or a file ``path`` under ``kind`` (replaces).

        On a server store the file's bytes go into the database too (up to
        :func:`file_limit_bytes`), for machines that do not share this one's disk.
        """
        blob = None if data is None else json.dumps(data)
        content = self._file_bytes(run_id, kind, path) if self.shared and path else None
        now = time.time()
        with self._write() as db:
            db.execute(
                self._upsert(artifacts, ("run_id", "kind"), ["path", "data", "created"]),
                {"run_id": run_id, "kind": kind, "path": None if path is None else str(path),
                 "data": blob, "created": now},
            )  # fmt: skip
            if self.shared:
                db.execute(delete(files).where(files.c.run_id == run_id, files.c.kind == kind))
            if content is not None:
                db.execute(
                    insert(files).values(
                        run_id=run_id, kind=kind, name=Path(str(path)).name, size=len(content),
                        data=content, created=now,
                    )
                )  # fmt: skip

    def _file_bytes(self, run_id: str, kind: str, path: Path | str) -> bytes | None:
        """The file's bytes for the database, None when it is missing or over the limit."""
        try:
            size = os.path.getsize(path)
            if size > file_limit_bytes():
                log.warning(
                    "run %s: %s is %.0f MiB, over the store's file limit: it stays on this "
                    "machine only (raise CNNLAB_STORE_FILE_MAX_MB to share it)",
                    run_id, kind, size / 2**20,
                )  # fmt: skip
                return None
            return Path(path).read_bytes()
        except OSError as err:
            log.warning("run %s: cannot read %s for the store: %s", run_id, path, err)
            return None

    def get_artifact(self, run_id: str, kind: str) -> Artifact | None:
        a = artifacts.c
        query = select(a.run_id, a.kind, a.path, a.data, a.created).where(
            a.run_id == run_id, a.kind == kind
        )
        with self._connect() as db:
            row = db.execute(query).first()
        return self._local(_artifact(tuple(row))) if row else None

    def artifacts(self, run_id: str) -> list[Artifact]:
        a = artifacts.c
        query = (
            select(a.run_id, a.kind, a.path, a.data, a.created)
            .where(a.run_id == run_id)
            .order_by(a.kind)
        )
        with self._connect() as db:
            rows = db.execute(query).all()
        return [self._local(_artifact(tuple(r))) for r in rows]

    def _local(self, artifact: Artifact) -> Artifact:
        """A file artifact of a server store written outside this machine's ``CNNLAB_HOME``
        (another host's disk): fetched from the database into ``CNNLAB_HOME/runs/<id>/``
        (once), with ``path`` pointing there."""
        if not self.shared or artifact.path is None:
            return artifact
        if artifact.path.is_relative_to(self.files_root) and artifact.path.is_file():
            return artifact  # written here
        f = files.c
        cached = self._run_path(artifact.run_id) / artifact.path.name
        with self._connect() as db:
            size = db.execute(
                select(f.size).where(f.run_id == artifact.run_id, f.kind == artifact.kind)
            ).scalar()
            if size is None:
                return artifact  # too big to share, or written before files travelled
            if cached.is_file() and cached.stat().st_size == size:
                return replace(artifact, path=cached)
            content = db.execute(
                select(f.data).where(f.run_id == artifact.run_id, f.kind == artifact.kind)
            ).scalar()
        if content is None:  # replaced or deleted between the two reads
            return artifact
        folder = self.run_dir(artifact.run_id)
        tmp = folder / f".{cached.name}.{os.getpid()}.tmp"
        try:
            tmp.write_bytes(bytes(content))
            os.replace(tmp, cached)
        except OSError as err:
            tmp.unlink(missing_ok=True)
            raise StoreError(f"cannot write {cached}: {storedb.describe(err)}") from None
        return replace(artifact, path=cached)

    def _run_path(self, run_id: str) -> Path:
        if not run_id or not all(c.isalnum() or c in "-_" for c in run_id):
            raise UserError(f"not a run id: {run_id!r}")
        return self.files_root / "runs" / run_id

    def run_dir(self, run_id: str) -> Path:
        """The run's own folder (created on first use) for its checkpoint and files."""
        folder = self._run_path(run_id)
        try:
            folder.mkdir(parents=True, exist_ok=True)
        except OSError as err:
            raise StoreError(f"cannot create {folder}: {storedb.describe(err)}") from None
        return folder

    # --- liveness -----------------------------------------------------------------------------

    def reap_orphans(self, max_heartbeat_age_s: float | None = None) -> list[str]:
        """Mark ``interrupted`` every running run whose process is gone (on this host) or whose
        heartbeat stopped (any host: :func:`heartbeat_timeout_s`); returns their ids. Queued
        runs are left alone."""
        max_age = heartbeat_timeout_s() if max_heartbeat_age_s is None else max_heartbeat_age_s
        now = time.time()
        host = this_host()
        reaped: list[tuple[str, str]] = []
        for run in self.list_runs(RUNNING):
            reason = None
            if run.host == host and run.pid is not None and not pid_alive(run.pid):
                reason = f"the worker process (pid {run.pid}) ended without finishing the run"
            elif run.heartbeat is None or now - run.heartbeat > max_age:
                last = "never" if run.heartbeat is None else f"{now - run.heartbeat:.0f} s ago"
                where = "" if run.host in (None, host) else f" on host {run.host}"
                reason = f"no heartbeat from the worker{where} (last {last})"
            if reason:
                reaped.append((run.id, reason))
        return [r for r, reason in reaped if self._interrupt_if(r, RUNNING, reason, now)]

    def _interrupt_if(self, run_id: str, status: str, reason: str, now: float) -> bool:
        """Mark the run ``interrupted`` with ``reason`` if still ``status``; True if it was."""
        with self._write() as db:
            cur = db.execute(
                update(runs)
                .where(runs.c.id == run_id, runs.c.status == status)
                .values(status=INTERRUPTED, error=reason, ended=now)
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
        stmt = self._upsert(workers, ("host", "pid"), ["heartbeat"])
        with self._write() as db:
            db.execute(stmt, {"host": this_host(), "pid": pid, "started": now, "heartbeat": now})
            db.execute(delete(workers).where(workers.c.heartbeat < now - 3600))

    def worker_gone(self, pid: int) -> None:
        """A consumer shutting down cleanly removes its heartbeat row."""
        with self._write() as db:
            db.execute(delete(workers).where(workers.c.host == this_host(), workers.c.pid == pid))

    def workers_alive(self, max_age_s: float = 10) -> int:
        """How many consumers beat within ``max_age_s`` (0: nobody will pick up queued runs)."""
        return sum(self.workers_by_host(max_age_s).values())

    def workers_by_host(self, max_age_s: float = 10) -> dict[str, int]:
        """Consumers that beat within ``max_age_s``, counted per host."""
        query = (
            select(workers.c.host, func.count())
            .where(workers.c.heartbeat >= time.time() - max_age_s)
            .group_by(workers.c.host)
            .order_by(workers.c.host)
        )
        with self._connect() as db:
            return {str(host): int(n) for host, n in db.execute(query).all()}


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
