"""Real test servers: ``redis-server`` and PostgreSQL from Debian's packages, each on a free
loopback port in a temporary folder, started once per test session and stopped afterwards.

- ``redis_server`` / ``redis_url``: a password-protected Redis; ``redis_url`` empties it first.
- ``postgres_server`` / ``postgres_url``: a PostgreSQL cluster (``initdb`` and ``pg_ctl`` as
  the ``postgres`` user: PostgreSQL refuses root), scram passwords over TCP;
  ``postgres_url`` is a fresh, empty schema for one test.
- ``backend``: parametrizes a test over ``sqlite`` and ``postgres`` (``CNNLAB_STORE_URL`` set
  to a fresh database, ``CNNLAB_QUEUE_URL`` to the emptied Redis), so ``RunStore()`` and
  ``enqueue`` use that backend.

Missing binaries: the test is skipped locally (``make servers`` installs them) and fails in CI.
:func:`run_redis` and :func:`run_postgres` are the same servers as context managers (for
``benchmarks/machines.py``).
"""

from __future__ import annotations

import contextlib
import glob
import os
import shutil
import socket
import subprocess
import tempfile
import time
import uuid
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest

PASSWORD = "cnnlab-test-pw"


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def _missing(what: str) -> None:
    if os.environ.get("CI"):
        pytest.fail(f"{what} is missing: `make servers` installs it")
    pytest.skip(f"{what} is missing (run `make servers`)")


def _wait_port(port: int, timeout_s: float, proc: subprocess.Popen[bytes] | None = None) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc is not None and proc.poll() is not None:
            raise RuntimeError(f"server exited early ({proc.returncode})")
        with socket.socket() as sock:
            sock.settimeout(0.5)
            if sock.connect_ex(("127.0.0.1", port)) == 0:
                return
        time.sleep(0.1)
    raise RuntimeError(f"nothing answered on port {port} in {timeout_s} s")


# --- Redis --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class RedisServer:
    port: int

    @property
    def url(self) -> str:
        return f"redis://:{PASSWORD}@127.0.0.1:{self.port}/0"

    def flush(self) -> None:
        import redis

        redis.Redis.from_url(self.url).flushall()


@contextlib.contextmanager
def run_redis() -> Iterator[RedisServer]:
    """A password-protected ``redis-server`` on a free loopback port (no persistence)."""
    binary = shutil.which("redis-server")
    if binary is None:
        raise FileNotFoundError("redis-server")
    folder = Path(tempfile.mkdtemp(prefix="cnnlab-redis-"))
    port = free_port()
    log = (folder / "redis.log").open("wb")
    proc = subprocess.Popen(
        [binary, "--port", str(port), "--bind", "127.0.0.1", "--save", "", "--appendonly", "no",
         "--dir", str(folder), "--requirepass", PASSWORD],
        stdout=log, stderr=subprocess.STDOUT,
    )  # fmt: skip
    try:
        _wait_port(port, 20, proc)
        yield RedisServer(port)
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
        log.close()
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def redis_server() -> Iterator[RedisServer]:
    if shutil.which("redis-server") is None:
        _missing("redis-server")
    with run_redis() as server:
        yield server


@pytest.fixture
def redis_url(redis_server: RedisServer) -> str:
    """The session's Redis, emptied for this test."""
    redis_server.flush()
    return redis_server.url


# --- PostgreSQL ---------------------------------------------------------------------------------


def _pg_bin(name: str) -> str | None:
    found = sorted(glob.glob(f"/usr/lib/postgresql/*/bin/{name}"))
    return found[-1] if found else shutil.which(name)


def _as_postgres(argv: list[str]) -> list[str]:
    return ["runuser", "-u", "postgres", "--", *argv] if os.geteuid() == 0 else argv


@dataclass(frozen=True)
class PostgresServer:
    port: int

    def url(self, database: str = "postgres", password: str = PASSWORD) -> str:
        return f"postgresql+psycopg://postgres:{password}@127.0.0.1:{self.port}/{database}"

    def create_database(self) -> str:
        """A fresh, empty place for one store: a new schema of the ``postgres`` database,
        made the connection's ``search_path`` by the URL (much faster than CREATE DATABASE)."""
        import psycopg

        name = "t" + uuid.uuid4().hex[:12]
        dsn = f"postgresql://postgres:{PASSWORD}@127.0.0.1:{self.port}/postgres"
        with psycopg.connect(dsn, autocommit=True) as conn:
            conn.execute(f"CREATE SCHEMA {name}")
        return f"{self.url()}?options=-csearch_path%3D{name}"


@contextlib.contextmanager
def run_postgres() -> Iterator[PostgresServer]:
    """A throw-away PostgreSQL cluster on a free loopback port (as ``postgres``, not root)."""
    initdb, pg_ctl = _pg_bin("initdb"), _pg_bin("pg_ctl")
    if initdb is None or pg_ctl is None:
        raise FileNotFoundError("initdb / pg_ctl")
    folder = Path(tempfile.mkdtemp(prefix="cnnlab-pg-"))
    data = folder / "data"
    (folder / "pw").write_text(PASSWORD + "\n")
    if os.geteuid() == 0:
        shutil.chown(folder, "postgres", "postgres")
        shutil.chown(folder / "pw", "postgres", "postgres")
    port = free_port()
    try:
        subprocess.run(
            _as_postgres([initdb, "-D", str(data), "-U", "postgres", "--auth-local=trust",
                          "--auth-host=scram-sha-256", f"--pwfile={folder / 'pw'}", "-E", "UTF8",
                          "--no-sync"]),
            check=True, capture_output=True,
        )  # fmt: skip
        options = (
            f"-p {port} -k {folder} -c listen_addresses=127.0.0.1 -c max_connections=300"
            " -c fsync=off -c synchronous_commit=off -c full_page_writes=off"
        )
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-o", options, "-l", str(folder / "pg.log"),
                          "-w", "-t", "60", "start"]),
            check=True, capture_output=True,
        )  # fmt: skip
        _wait_port(port, 30)
        yield PostgresServer(port)
    finally:
        subprocess.run(
            _as_postgres([pg_ctl, "-D", str(data), "-m", "immediate", "-w", "stop"]),
            capture_output=True,
        )  # fmt: skip
        shutil.rmtree(folder, ignore_errors=True)


@pytest.fixture(scope="session")
def postgres_server() -> Iterator[PostgresServer]:
    if _pg_bin("initdb") is None or _pg_bin("pg_ctl") is None:
        _missing("PostgreSQL (initdb, pg_ctl)")
    with run_postgres() as server:
        yield server


@pytest.fixture
def postgres_url(postgres_server: PostgresServer) -> str:
    """A fresh, empty schema on the session's PostgreSQL (its URL)."""
    return postgres_server.create_database()


# --- both backends ------------------------------------------------------------------------------


@pytest.fixture(params=["sqlite", "postgres"])
def backend(request: pytest.FixtureRequest, monkeypatch: pytest.MonkeyPatch) -> str:
    """``sqlite`` (the defaults: files in CNNLAB_HOME) or ``postgres`` (``CNNLAB_STORE_URL``
    a fresh database, ``CNNLAB_QUEUE_URL`` the emptied Redis); its name."""
    monkeypatch.delenv("CNNLAB_STORE_URL", raising=False)
    monkeypatch.delenv("CNNLAB_QUEUE_URL", raising=False)
    if request.param == "postgres":
        monkeypatch.setenv("CNNLAB_STORE_URL", request.getfixturevalue("postgres_url"))
        monkeypatch.setenv("CNNLAB_QUEUE_URL", request.getfixturevalue("redis_url"))
    return str(request.param)
