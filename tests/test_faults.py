"""Faults injected into real processes and real filesystems: nothing recorded is lost, the store
stays readable, no run stays ``running`` and every failure reads as one clear line.

- SIGKILL of the queue consumer mid-run (its worker processes must not live on unseen), then a
  restart: the killed run is ``interrupted`` with a reason, runs queued meanwhile train.
- SIGKILL of a training worker process while another run waits: interrupted, the next one trains.
- SIGKILL of the Streamlit server mid-run (training goes on), then of everything; the app that
  comes back shows the run ``interrupted`` with its reason (browser).
- A read-only ``CNNLAB_HOME`` (a tmpfs remounted read-only) and a full disk (a tiny tmpfs):
  one clear line, exit 2, nothing half-written, the store still passes its integrity check.

Each test prints a ``FAULT …`` line (``pytest -s``) for the figures in the README.
"""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import (
    ROOT,
    assert_cli_error,
    assert_user_message,
    forbid_real_work,
    run_cli,
    run_cli_subprocess,
    wait_for,
)

from cnnlab.training.config import TrainConfig
from cnnlab.training.store import FINISHED, INTERRUPTED, RUNNING, RunStore

pytestmark = pytest.mark.slow

LONG = TrainConfig(train_limit=20_000, epochs=3, batch_size=32, lr=3e-3, name="long")
SHORT = TrainConfig(train_limit=600, batch_size=100, lr=3e-3, name="short")


def alive(pid: int | None) -> bool:
    from cnnlab.training.store import pid_alive

    return pid is not None and pid_alive(pid)


def rows_of(store: RunStore, run_id: str) -> dict[tuple[int, str], float]:
    return {(m.step, m.key): m.value for m in store.metrics(run_id)}


def fault(name: str, survived: bool, detail: str = "") -> None:
    print(f"\nFAULT {name}: {'survived' if survived else 'NOT survived'} {detail}".rstrip())


class Processes:
    """Background processes of one test, each in its own process group; all killed at the end."""

    def __init__(self, tmp: Path) -> None:
        self.tmp = tmp
        self.procs: list[subprocess.Popen[bytes]] = []

    def start(self, name: str, argv: list[str], env: dict[str, str] | None = None):
        log = (self.tmp / f"{name}-{len(self.procs)}.log").open("wb")
        proc = subprocess.Popen(
            argv,
            cwd=ROOT,
            env=env or dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
        self.procs.append(proc)
        return proc

    def consumer(self, workers: int = 1) -> subprocess.Popen[bytes]:
        return self.start("worker", [sys.executable, "-m", "cnnlab", "worker", "--workers",
                                     str(workers)])  # fmt: skip

    def close(self) -> None:
        for proc in self.procs:
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def procs(tmp_path: Path) -> Iterator[Processes]:
    p = Processes(tmp_path)
    yield p
    p.close()


def enqueue(config: TrainConfig, store: RunStore) -> str:
    from cnnlab.training.queue import enqueue as put

    return put(config, store)


# ------------------------------------------------------------------------- consumer and worker


def test_consumer_and_worker_sigkill_then_restart_runs_the_queue(
    backend: str, procs: Processes
) -> None:
    """On SQLite files and on PostgreSQL + Redis (``backend``, tests/servers.py)."""
    store = RunStore()
    first = procs.consumer()
    long_run = enqueue(LONG, store)
    victim = enqueue(LONG.with_(name="victim, queued before the kill"), store)
    wait_for("the long run to record metrics", lambda: store.metric_count(long_run) >= 6)
    worker_pid = store.get_run(long_run).pid
    assert worker_pid not in (None, first.pid)

    # 1. SIGKILL of the consumer only (as the OOM killer would do it).
    os.kill(first.pid, signal.SIGKILL)
    first.wait()
    before = rows_of(store, long_run)
    # Its worker processes must not live on unseen, training and taking runs from the queue.
    wait_for("the orphaned worker to end", lambda: not alive(worker_pid), 15)
    time.sleep(1)
    assert store.get_run(victim).status == "queued"
    assert store.integrity_ok()

    # 2. The restart reaps the dead run and trains what waited.
    procs.consumer()
    after = enqueue(SHORT.with_(name="queued after the restart"), store)
    wait_for("the killed run to be marked", lambda: store.get_run(long_run).status != RUNNING, 30)
    killed = store.get_run(long_run)
    assert killed.status == INTERRUPTED and killed.error  # with its reason
    assert before.items() <= rows_of(store, long_run).items()  # no recorded row lost or changed
    fault("SIGKILL consumer mid-run + restart", True, f"({len(before)} metric rows kept)")

    # 3. SIGKILL of the training worker process of the next run, with a run still waiting.
    wait_for("the victim to record metrics", lambda: store.metric_count(victim) >= 12, 180)
    pid = store.get_run(victim).pid
    victim_rows = rows_of(store, victim)
    os.kill(pid, signal.SIGKILL)
    wait_for("the victim to be marked", lambda: store.get_run(victim).status != RUNNING, 30)
    run = store.get_run(victim)
    assert run.status == INTERRUPTED and f"pid {pid}" in (run.error or "")
    wait_for("the waiting run to train", lambda: store.get_run(after).status == FINISHED, 180)
    assert victim_rows.items() <= rows_of(store, victim).items()
    assert store.integrity_ok()
    fault("SIGKILL training worker", True, f"({len(victim_rows)} metric rows kept)")


# ------------------------------------------------------------------------- the Streamlit server


@pytest.mark.browser
def test_server_sigkill_mid_run_and_restart(procs: Processes, page, tmp_path: Path) -> None:
    from browser_helpers import assert_no_exception, open_app
    from conftest import free_port, streamlit_cmd, wait_http
    from playwright.sync_api import expect

    store = RunStore()
    env = dict(os.environ, PYTHONUNBUFFERED="1")

    def server() -> tuple[subprocess.Popen[bytes], str]:
        port = free_port()
        proc = procs.start("streamlit", streamlit_cmd(port), env)
        log = sorted(tmp_path.glob("streamlit-*.log"))[-1]
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", "ok", 90, proc, log)  # type: ignore[arg-type]
        return proc, f"http://127.0.0.1:{port}"

    app, url = server()
    consumer = procs.consumer()
    run_id = enqueue(LONG.with_(name="server killed"), store)
    open_app(page, f"{url}/Train?run={run_id}")
    wait_for("metrics", lambda: store.metric_count(run_id) >= 6)

    # 1. The server dies: the training lives in the worker and goes on.
    os.killpg(app.pid, signal.SIGKILL)
    app.wait()
    count = store.metric_count(run_id)
    wait_for("training to go on", lambda: store.metric_count(run_id) > count, 60)
    assert store.get_run(run_id).status == RUNNING

    # 2. Everything dies (a closed laptop): the run is left "running" in the store.
    worker_pid = store.get_run(run_id).pid
    os.killpg(consumer.pid, signal.SIGKILL)
    consumer.wait()
    wait_for("the worker to be gone", lambda: not alive(worker_pid), 15)
    before = rows_of(store, run_id)
    queued = enqueue(SHORT.with_(name="queued while down"), store)

    # 3. Only the app comes back: the page marks the run interrupted, with the reason.
    app, url = server()
    open_app(page, f"{url}/Train?run={run_id}")
    assert_no_exception(page)
    expect(page.get_by_text("Interrupted: the worker process")).to_be_visible()
    run = store.get_run(run_id)
    assert run.status == INTERRUPTED and f"pid {worker_pid}" in (run.error or "")
    assert before.items() <= rows_of(store, run_id).items() and store.integrity_ok()

    # 4. The consumer comes back: the run queued while everything was down trains.
    procs.consumer()
    wait_for("the queued run to train", lambda: store.get_run(queued).status == FINISHED, 180)
    open_app(page, f"{url}/Train?run={queued}")
    expect(page.locator(".st-key-final-metrics")).to_contain_text("Accuracy")
    assert_no_exception(page)
    fault("SIGKILL Streamlit server mid-run", True, "(training went on)")
    fault("SIGKILL server + consumer, app restart", True, f"({len(before)} metric rows kept)")


# ------------------------------------------------------------------------- filesystems


@contextlib.contextmanager
def tmpfs(path: Path, size: str) -> Iterator[Path]:
    """A real tmpfs of ``size`` at ``path`` (needs root and CAP_SYS_ADMIN; else skip)."""
    path.mkdir(parents=True, exist_ok=True)
    done = subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={size}", "tmpfs", str(path)], capture_output=True
    )
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.decode().strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", "-l", str(path)], capture_output=True)


def files_under(path: Path) -> dict[str, bytes]:
    return {str(p.relative_to(path)): p.read_bytes() for p in path.rglob("*") if p.is_file()}


def test_read_only_home(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    with tmpfs(tmp_path / "ro", "8m") as mount:
        home = mount / "home"
        monkeypatch.setenv("CNNLAB_HOME", str(home))
        store = RunStore()
        done = store.create_run(SHORT.to_dict(), name="old", model="small-cnn", params=1, macs=1)
        store.finish_run(done, FINISHED)
        subprocess.run(["mount", "-o", "remount,ro", str(mount)], check=True)
        snapshot = files_under(mount)
        forbid_real_work(monkeypatch)
        result = run_cli_subprocess(["train", "--train-limit", "100"])  # as a user runs it
        assert_cli_error(result, {"message": "read-only"})
        for argv in (
            ["train", "--train-limit", "100", "--background"],
            ["runs", "rename", done, "new name"],
            ["runs", "delete", done],
            ["worker"],
        ):
            assert_cli_error(run_cli(argv, capsys), {"message": "read-only"})
        assert files_under(mount) == snapshot  # nothing half-written
        monkeypatch.setenv("CNNLAB_HOME", str(mount / "not-yet"))  # a home it cannot create
        argv = ["train", "--train-limit", "100", "--background"]
        assert_cli_error(run_cli(argv, capsys), {"message": "[Rr]ead-only"})
        _page_says_store_unreadable(monkeypatch, home)
    fault("read-only CNNLAB_HOME", True, "(exit 2, one line, nothing written)")


def _page_says_store_unreadable(monkeypatch: pytest.MonkeyPatch, home: Path) -> None:
    from streamlit.testing.v1 import AppTest

    monkeypatch.setenv("CNNLAB_HOME", str(home))
    for page in ("pages/3_Train.py", "pages/4_Runs.py"):
        at = AppTest.from_file(str(ROOT / "app.py"), default_timeout=120)
        at.switch_page(page)
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        errors = " ".join(str(e.value) for e in at.error)
        # issue 15: a read-only store opens read-only, so its runs can still be listed
        assert "run store cannot be read" not in errors, errors


def test_disk_full_mid_run(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """1 MB holds the run's metrics but not its 1.6 MB checkpoint; 128 KB not even the metrics."""
    for size in ("1m", "128k"):
        with tmpfs(tmp_path / f"full-{size}", size) as mount:
            monkeypatch.setenv("CNNLAB_HOME", str(mount / "home"))
            argv = ["train", "--train-limit", "2000", "--batch-size", "50", "--epochs", "1"]
            result = run_cli_subprocess(argv)
            # exit 2 (the store refused a write) or 1 (the run ended "failed", reason recorded)
            expect = {"exit": result.code if result.code in (1, 2) else 2, "message": "disk|full"}
            if result.code == 1:
                last = result.err.strip().replace("\r", "\n").splitlines()[-1]
                assert_user_message(last, expect, "last stderr line")
                assert "Traceback" not in result.err and "failed: " in last
            else:
                assert_cli_error(result, expect, last_line=True)
            leftovers = [p.name for p in mount.rglob("*.tmp")]
            assert not leftovers, f"half-written files left: {leftovers}"
            store = RunStore()
            assert store.integrity_ok()
            store.reap_orphans()  # what the app or the next worker does
            runs = store.list_runs()
            assert all(r.status not in ("running", "queued") for r in runs), runs
            for run in runs:
                assert run.error, run
                steps = sorted({m.step for m in store.metrics(run.id)})
                assert steps == sorted(steps)  # whatever was recorded is whole and readable
            last = result.err.strip().replace("\r", "\n").splitlines()[-1]
            fault(f"disk full ({size} tmpfs) mid-run", True, f"(exit {result.code}: {last[:140]})")
