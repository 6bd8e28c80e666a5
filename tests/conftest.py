"""Shared fixtures: MNIST location, an isolated CNNLAB_HOME, and the real app in Chromium.

Browser tests start the app as ``make run`` does (``streamlit run serve.py``: app.py plus the
live-feed route) on a free port, with the
worker (``python -m cnnlab worker``) beside it when a test asks for ``worker``, both with a
temporary ``CNNLAB_HOME``; Chromium is Debian's (/usr/bin/chromium) driven by Playwright.
"""

from __future__ import annotations

import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
CHROMIUM = os.environ.get("CNNLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
    "--no-first-run",
    "--disable-quic",
]


def mnist_dir() -> Path:
    """The full MNIST for tests: ``CNNLAB_DATA_DIR`` or ../shared/data/mnist."""
    env = os.environ.get("CNNLAB_DATA_DIR")
    return Path(env) if env else SHARED_MNIST


@pytest.fixture(scope="session")
def mnist_path() -> Path:
    path = mnist_dir()
    if not path.is_dir():
        pytest.fail(f"full MNIST not found at {path}: set CNNLAB_DATA_DIR")
    return path


@pytest.fixture(autouse=True)
def _isolated_home(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch):
    """Every test gets its own CNNLAB_HOME, the full MNIST, and no download attempts."""
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path_factory.mktemp("home")))
    monkeypatch.setenv("CNNLAB_OFFLINE", "1")
    if "CNNLAB_DATA_DIR" not in os.environ and SHARED_MNIST.is_dir():
        monkeypatch.setenv("CNNLAB_DATA_DIR", str(SHARED_MNIST))


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def wait_http(url: str, expect: str, timeout_s: float, proc: subprocess.Popen, log: Path) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"process exited early ({proc.returncode}):\n{log.read_text()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as resp:
                if expect in resp.read().decode():
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout_s}s:\n{log.read_text()}")


def stop(proc: subprocess.Popen) -> None:
    if proc.poll() is None:
        proc.terminate()
        try:
            proc.wait(timeout=15)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


@pytest.fixture(scope="session")
def server_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment shared by the app and worker processes of the browser tests."""
    env = dict(os.environ)
    env["CNNLAB_HOME"] = str(tmp_path_factory.mktemp("server-home"))
    env["CNNLAB_DATA_DIR"] = str(mnist_dir())
    env["CNNLAB_OFFLINE"] = "1"
    env["PYTHONUNBUFFERED"] = "1"
    return env


ENTRY = "serve.py"
"""What ``make run`` serves; ``app.py`` alone is the app without the live-feed route."""


def streamlit_cmd(port: int, entry: str = ENTRY) -> list[str]:
    """``streamlit run <entry>`` on 127.0.0.1:``port``, headless, no file watcher."""
    return [
        sys.executable, "-m", "streamlit", "run", entry,
        "--server.headless", "true", "--server.port", str(port),
        "--server.address", "127.0.0.1", "--browser.gatherUsageStats", "false",
        "--server.fileWatcherType", "none",
    ]  # fmt: skip


@pytest.fixture(scope="session")
def app_url(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """``streamlit run serve.py`` on a free port; yields its base URL."""
    port = free_port()
    log = tmp_path_factory.mktemp("logs") / "streamlit.log"
    cmd = streamlit_cmd(port)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=server_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", "ok", 90, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def worker(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[None]:
    """A real training worker (``python -m cnnlab worker``) on the browser tests' home."""
    log = tmp_path_factory.mktemp("logs") / "worker.log"
    with log.open("w") as out:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnnlab", "worker"],
            cwd=ROOT, env=server_env, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
    time.sleep(1)
    if proc.poll() is not None:
        raise RuntimeError(f"worker exited early:\n{log.read_text()}")
    try:
        yield
    finally:
        stop(proc)


@pytest.fixture(scope="session")
def browser_type_launch_args(browser_type_launch_args: dict) -> dict:
    """pytest-playwright launches Debian's Chromium (``playwright install`` can't download here)."""
    if not Path(CHROMIUM).exists() or shutil.which(CHROMIUM) is None:
        if os.environ.get("CI"):
            pytest.fail(f"{CHROMIUM} is missing: `make test` installs it")
        pytest.skip(f"{CHROMIUM} is missing (run `make chromium`)")
    return {**browser_type_launch_args, "executable_path": CHROMIUM, "args": CHROMIUM_ARGS}


@pytest.fixture(scope="session")
def browser_context_args(browser_context_args: dict) -> dict:
    return {**browser_context_args, "viewport": {"width": 1400, "height": 1000}}


# CI runs the property tests on a fixed set of examples (reproducible gate); local runs explore
# new random examples each time, which is where new bad inputs are found.
from hypothesis import settings as _hypothesis_settings  # noqa: E402

_hypothesis_settings.register_profile("ci", derandomize=True)
if os.environ.get("CI"):
    _hypothesis_settings.load_profile("ci")


# Real Redis and PostgreSQL servers for the store and queue tests (tests/servers.py).
from servers import (  # noqa: E402, F401
    backend,
    postgres_server,
    postgres_url,
    redis_server,
    redis_url,
)
