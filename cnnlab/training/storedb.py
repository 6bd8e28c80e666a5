"""The run store's database: its URL, engine, tables and error texts (SQLAlchemy Core).

``CNNLAB_STORE_URL`` unset: one SQLite file, ``CNNLAB_HOME/runs.db``, in WAL mode — every call
opens its own short-lived connection (no pool: safe across threads and ``fork``), a writing call
starts with ``BEGIN IMMEDIATE``. ``postgresql+psycopg://user[:password]@host:port/db``: a
PostgreSQL server shared by several machines (a small pool per process, re-made after ``fork``).

The tables are declared once (:data:`METADATA`) and every query in :mod:`cnnlab.training.store`
is built from them, so the same SQL runs on both. The only differences are spelled here:
SQLite orders rows by its ``rowid`` and PostgreSQL by an identity column (``seq`` on runs and
experiments, ``id`` on metrics) — :class:`RowOrder` compiles to the right one.
"""

from __future__ import annotations

import contextlib
import os
import re
import shutil
import sqlite3
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

from sqlalchemy import (
    BigInteger,
    Column,
    Engine,
    Float,
    Index,
    Integer,
    LargeBinary,
    MetaData,
    PrimaryKeyConstraint,
    Table,
    Text,
    UniqueConstraint,
    create_engine,
    event,
)
from sqlalchemy.dialects import sqlite
from sqlalchemy.exc import SQLAlchemyError
from sqlalchemy.ext.compiler import compiles
from sqlalchemy.pool import NullPool
from sqlalchemy.sql.expression import ColumnElement

from cnnlab.errors import UserError

BUSY_TIMEOUT_MS = 15_000
CONNECT_TIMEOUT_S = 5
STORE_URL_ENV = "CNNLAB_STORE_URL"

METADATA = MetaData()

runs = Table(
    "runs",
    METADATA,
    Column("id", Text, primary_key=True),
    Column("name", Text, nullable=False),
    Column("model", Text, nullable=False),
    Column("config", Text, nullable=False),
    Column("status", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("started", Float),
    Column("ended", Float),
    Column("error", Text),
    Column("device", Text),
    Column("params", BigInteger),
    Column("macs", BigInteger),
    Column("pid", BigInteger),
    Column("host", Text),
    Column("heartbeat", Float),
    Column("stop_requested", Integer, nullable=False, server_default="0"),
    Column("deleted_at", Float),
    Column("owner_id", Text),
    Column("owner_name", Text),
    Column("experiment_id", Text),
    Column("seq", BigInteger, autoincrement=True, info={"server_only": True}),
)
experiments = Table(
    "experiments",
    METADATA,
    Column("id", Text, primary_key=True),
    Column("kind", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("spec", Text, nullable=False),
    Column("created", Float, nullable=False),
    Column("owner_id", Text),
    Column("owner_name", Text),
    Column("stop_requested", Integer, nullable=False, server_default="0"),
    Column("deleted_at", Float),
    Column("seq", BigInteger, autoincrement=True, info={"server_only": True}),
)
settings = Table(
    "settings",
    METADATA,
    Column("key", Text, primary_key=True),
    Column("value", Text, nullable=False),
    Column("updated", Float, nullable=False),
)
metrics = Table(
    "metrics",
    METADATA,
    Column("id", BigInteger, autoincrement=True, info={"server_only": True}),
    Column("run_id", Text, nullable=False),
    Column("step", BigInteger, nullable=False),
    Column("epoch", Float, nullable=False),
    Column("key", Text, nullable=False),
    Column("value", Float, nullable=False),
    Column("time", Float, nullable=False),
    UniqueConstraint("run_id", "step", "key"),
)
artifacts = Table(
    "artifacts",
    METADATA,
    Column("run_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("path", Text),
    Column("data", Text),
    Column("created", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "kind"),
)
files = Table(
    "files",
    METADATA,
    Column("run_id", Text, nullable=False),
    Column("kind", Text, nullable=False),
    Column("name", Text, nullable=False),
    Column("size", BigInteger, nullable=False),
    Column("data", LargeBinary, nullable=False),
    Column("created", Float, nullable=False),
    PrimaryKeyConstraint("run_id", "kind"),
)
"""The bytes of a run's file artifacts (its checkpoint) on a server store only, so a machine
without the worker's disk can read them; a SQLite store keeps them on disk beside the database
(and has no such table: its schema stays the one every earlier version wrote)."""
workers = Table(
    "workers",
    METADATA,
    Column("host", Text, nullable=False),
    Column("pid", BigInteger, nullable=False),
    Column("started", Float, nullable=False),
    Column("heartbeat", Float, nullable=False),
    PrimaryKeyConstraint("host", "pid"),
)
Index("runs_status", runs.c.status)

SQLITE_SCHEMA = """
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
"""The SQLite file's schema, as every earlier version wrote it (old files keep opening)."""

SERVER_SCHEMA = """
CREATE TABLE IF NOT EXISTS runs (
    id TEXT PRIMARY KEY, name TEXT NOT NULL, model TEXT NOT NULL, config TEXT NOT NULL,
    status TEXT NOT NULL, created DOUBLE PRECISION NOT NULL, started DOUBLE PRECISION,
    ended DOUBLE PRECISION, error TEXT, device TEXT, params BIGINT, macs BIGINT, pid BIGINT,
    host TEXT, heartbeat DOUBLE PRECISION, stop_requested INTEGER NOT NULL DEFAULT 0,
    deleted_at DOUBLE PRECISION, owner_id TEXT, owner_name TEXT, experiment_id TEXT,
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
CREATE TABLE IF NOT EXISTS experiments (
    id TEXT PRIMARY KEY, kind TEXT NOT NULL, name TEXT NOT NULL, spec TEXT NOT NULL,
    created DOUBLE PRECISION NOT NULL, owner_id TEXT, owner_name TEXT,
    stop_requested INTEGER NOT NULL DEFAULT 0, deleted_at DOUBLE PRECISION,
    seq BIGINT GENERATED BY DEFAULT AS IDENTITY
);
CREATE TABLE IF NOT EXISTS settings (
    key TEXT PRIMARY KEY, value TEXT NOT NULL, updated DOUBLE PRECISION NOT NULL
);
CREATE TABLE IF NOT EXISTS metrics (
    id BIGINT GENERATED BY DEFAULT AS IDENTITY PRIMARY KEY,
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE,
    step BIGINT NOT NULL, epoch DOUBLE PRECISION NOT NULL, key TEXT NOT NULL,
    value DOUBLE PRECISION NOT NULL, time DOUBLE PRECISION NOT NULL,
    UNIQUE (run_id, step, key)
);
CREATE TABLE IF NOT EXISTS artifacts (
    run_id TEXT NOT NULL REFERENCES runs(id) ON DELETE CASCADE, kind TEXT NOT NULL,
    path TEXT, data TEXT, created DOUBLE PRECISION NOT NULL, PRIMARY KEY (run_id, kind)
);
CREATE TABLE IF NOT EXISTS workers (
    host TEXT NOT NULL, pid BIGINT NOT NULL, started DOUBLE PRECISION NOT NULL,
    heartbeat DOUBLE PRECISION NOT NULL, PRIMARY KEY (host, pid)
);
"""
"""The same schema on PostgreSQL: 64-bit integers (MACs pass 2³¹) and identity columns that
stand in for SQLite's ``rowid``."""

FILES_SCHEMA = {
    "postgresql": "CREATE TABLE IF NOT EXISTS files (run_id TEXT NOT NULL REFERENCES runs(id)"
    " ON DELETE CASCADE, kind TEXT NOT NULL, name TEXT NOT NULL, size BIGINT NOT NULL,"
    " data BYTEA NOT NULL, created DOUBLE PRECISION NOT NULL, PRIMARY KEY (run_id, kind))",
}

MIGRATIONS = (
    ("host", "TEXT", "TEXT"),
    ("heartbeat", "REAL", "DOUBLE PRECISION"),
    ("deleted_at", "REAL", "DOUBLE PRECISION"),
    ("owner_id", "TEXT", "TEXT"),
    ("owner_name", "TEXT", "TEXT"),
    ("experiment_id", "TEXT", "TEXT"),
)
"""Columns of ``runs`` that older stores lack: (name, SQLite type, PostgreSQL type)."""

INDEXES = (
    "CREATE INDEX IF NOT EXISTS runs_deleted_at ON runs(deleted_at)",
    "CREATE INDEX IF NOT EXISTS runs_experiment ON runs(experiment_id)",
    "CREATE INDEX IF NOT EXISTS runs_owner ON runs(owner_id, status)",
)


class StoreError(UserError):
    """The run store cannot be read or written (read-only folder, disk full, corrupt file,
    unreachable server, wrong password)."""


class RowOrder(ColumnElement[int]):
    """The order rows were inserted in: ``rowid`` on SQLite, the identity column elsewhere."""

    inherit_cache = True

    def __init__(self, table: Table) -> None:
        self.table = table
        self.type = BigInteger()

    @property
    def _from_objects(self) -> list[Any]:  # so ``select(func.max(RowOrder(t)))`` has a FROM
        return [self.table]


@compiles(RowOrder)
def _row_order_sqlite(element: RowOrder, compiler: Any, **kw: Any) -> str:
    return f"{element.table.name}.rowid"


@compiles(RowOrder, "postgresql")
def _row_order_server(element: RowOrder, compiler: Any, **kw: Any) -> str:
    name = "id" if element.table.name == "metrics" else "seq"
    return f"{element.table.name}.{name}"


# --- URLs ---------------------------------------------------------------------------------------


@dataclass(frozen=True)
class StoreTarget:
    """Where the store lives: a SQLite ``path`` (``url`` None) or a server ``url``."""

    path: Path | None
    url: str | None

    @property
    def shared(self) -> bool:
        """A server several machines share (its files travel through the database)."""
        return self.url is not None

    @property
    def location(self) -> str:
        """For messages: the file, or the URL without its password."""
        return str(self.path) if self.url is None else mask_url(self.url)


def mask_url(url: str) -> str:
    """``url`` with its password replaced by ``***``."""
    return re.sub(r"(//[^/:@]*:)[^@/]*@", r"\1***@", url)


def parse_target(path_or_url: Path | str | None, default_path: Path | None) -> StoreTarget:
    """A path, a ``sqlite:///`` or ``postgresql[+psycopg]://`` URL, or (None) the
    ``CNNLAB_STORE_URL`` variable, falling back to ``default_path``. Bad schemes: StoreError."""
    raw = path_or_url
    source = "the store"
    if raw is None:
        raw = os.environ.get(STORE_URL_ENV) or None
        source = STORE_URL_ENV
        if raw is None:
            if default_path is None:
                raise StoreError("no run store given")
            return StoreTarget(default_path, None)
    if isinstance(raw, Path) or "://" not in raw:
        if source == STORE_URL_ENV and not Path(raw).is_absolute():
            raise StoreError(
                f"{STORE_URL_ENV} {mask_url(str(raw))!r} is not a URL (use "
                "postgresql+psycopg://user@host:port/db, sqlite:////absolute/runs.db, or leave "
                "it unset for SQLite in CNNLAB_HOME)"
            )
        return StoreTarget(Path(raw), None)
    scheme = raw.split("://", 1)[0].lower()
    if scheme == "sqlite":
        file = raw.split("://", 1)[1]
        if not file.startswith("/") or file == "/":
            raise StoreError(f"{source}: a SQLite URL needs a file: sqlite:////absolute/runs.db")
        return StoreTarget(Path(file[1:] if file.startswith("//") else file), None)
    if scheme in ("postgresql", "postgres", "postgresql+psycopg"):
        parts = urlsplit(raw)
        if not parts.hostname or not parts.path.strip("/"):
            raise StoreError(
                f"{source} {mask_url(raw)!r} needs a host and a database: "
                "postgresql+psycopg://user@host:5432/cnnlab"
            )
        return StoreTarget(None, "postgresql+psycopg://" + raw.split("://", 1)[1])
    raise StoreError(
        f"{source} {mask_url(raw)!r}: unsupported scheme {scheme!r} (use "
        "postgresql+psycopg://user@host:port/db, or leave it unset for SQLite in CNNLAB_HOME)"
    )


# --- engines ------------------------------------------------------------------------------------

_engines: dict[tuple[str, str | None, int], Engine] = {}


def _forget_parent_connections() -> None:
    """In a forked child: drop the pooled connections inherited from the parent without
    closing them (SQLAlchemy's recipe for ``fork``), so the parent's stay usable."""
    for engine in _engines.values():
        engine.dispose(close=False)


os.register_at_fork(after_in_child=_forget_parent_connections)


def sqlite_connect(path: Path, uri: str | None) -> sqlite3.Connection:
    """One SQLite connection as the store uses them: autocommit (the store says BEGIN), a busy
    timeout, WAL, ``synchronous=NORMAL``, foreign keys (``uri``: read-only, pragmas left)."""
    db = sqlite3.connect(
        uri if uri is not None else path, uri=uri is not None,
        timeout=BUSY_TIMEOUT_MS / 1000, isolation_level=None, check_same_thread=False,
    )  # fmt: skip
    try:
        db.execute(f"PRAGMA busy_timeout = {BUSY_TIMEOUT_MS}")
        if uri is None:  # read-only connections cannot change the journal
            if db.execute("PRAGMA journal_mode").fetchone()[0] != "wal":
                db.execute("PRAGMA journal_mode = WAL")
            db.execute("PRAGMA synchronous = NORMAL")
            db.execute("PRAGMA foreign_keys = ON")
    except BaseException:
        db.close()
        raise
    return db


class Compiled:
    """A Core statement compiled once for SQLite: its SQL text and the order of its
    parameters, for the calls a running training makes every second (no per-call statement
    machinery; the SQL is still the one built from the tables)."""

    def __init__(self, statement: Any) -> None:
        compiled = statement.compile(dialect=sqlite.dialect())
        self.sql = str(compiled)
        self.names = tuple(compiled.positiontup or ())

    def args(self, values: dict[str, Any]) -> tuple[Any, ...]:
        return tuple(values[name] for name in self.names)


def sqlite_engine(path: Path, uri: str | None) -> Engine:
    """An engine over one SQLite file (``uri``: a read-only ``file:`` URI): no pool, WAL,
    ``BEGIN IMMEDIATE`` for connections with the ``cnnlab_write`` execution option."""
    key = (str(path), uri, os.getpid())
    engine = _engines.get(key)
    if engine is not None:
        return engine
    engine = create_engine(
        "sqlite+pysqlite://", creator=lambda: sqlite_connect(path, uri), poolclass=NullPool
    )

    @event.listens_for(engine, "begin")
    def _begin(conn: Any) -> None:
        write = conn.get_execution_options().get("cnnlab_write", False)
        conn.exec_driver_sql("BEGIN IMMEDIATE" if write else "BEGIN")

    _engines[key] = engine
    return engine


def server_engine(url: str) -> Engine:
    """A small pool per process for a PostgreSQL URL (a forked child makes its own)."""
    key = (url, None, os.getpid())
    engine = _engines.get(key)
    if engine is None:
        engine = create_engine(
            url,
            pool_size=2,
            max_overflow=6,
            pool_pre_ping=True,
            pool_recycle=600,
            connect_args={"connect_timeout": CONNECT_TIMEOUT_S, "application_name": "cnnlab"},
        )
        _engines[key] = engine
    return engine


# --- errors -------------------------------------------------------------------------------------


def cannot_write(text: str) -> bool:
    """Whether an SQLite error text says the file or its folder cannot be written."""
    return any(
        part in text
        for part in ("readonly", "read-only", "unable to open", "permission", "disk I/O error")
    )


def error_text(err: BaseException) -> str:
    """The driver's own words for a database error, on one line."""
    orig = getattr(err, "orig", None)
    base = orig if isinstance(orig, BaseException) else err
    text = str(base) or type(base).__name__
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    if lines and lines[0].startswith("("):  # SQLAlchemy's "(driver.Error) text" prefix
        lines[0] = lines[0].split(") ", 1)[-1]
    useful = [line for line in lines if not line.startswith(("[SQL:", "(Background on"))]
    return "; ".join(useful[:2]) or type(base).__name__


def describe(err: BaseException, folder: Path | None = None) -> str:
    """:func:`error_text` plus a hint (read-only folder, full disk, server not running)."""
    text = error_text(err)
    if "readonly" in text or "read-only" in text:
        return f"{text} (is the folder read-only?)"
    if "disk" in text and "full" in text:
        return f"{text} (free some space)"
    if "password authentication failed" in text:
        return f"{text} (check the password in {STORE_URL_ENV})"
    if "Connection refused" in text or "could not translate host name" in text:
        return f"{text} (is the PostgreSQL server running and reachable?)"
    if folder is not None and ("I/O error" in text or "unable to open" in text):
        # SQLite says no more than this when its WAL files cannot grow or be created
        with contextlib.suppress(OSError):
            if shutil.disk_usage(folder).free < 1024 * 1024:
                return f"{text} (the disk is full: free some space)"
            if not os.access(folder, os.W_OK):
                return f"{text} (the folder {folder} is read-only)"
    return text


DatabaseError = SQLAlchemyError
"""What a failed query raises (turned into :class:`StoreError` by the store)."""
