"""Background runs through the Huey queue and a real consumer process (``cnnlab worker``):
a run finishes, a cancelled one is skipped, a SIGKILLed worker leaves its run ``interrupted``
and the next run still trains, a SIGKILLed consumer takes its workers along (run
``interrupted``), SIGTERM shuts the consumer down cleanly."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import wait_for
from train_helpers import SLOW, time_to_stop, wait_training

from cnnlab.training.config import TrainConfig
from cnnlab.training.queue import enqueue, get_huey, pending
from cnnlab.training.store import FINISHED, INTERRUPTED, RUNNING, STOPPED, RunStore, pid_alive

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def consumer(tmp_path: Path) -> Iterator[subprocess.Popen[str]]:
    """``python -m cnnlab worker`` on this test's CNNLAB_HOME (started by the test)."""
    log = (tmp_path / "worker.log").open("w")
    procs: list[subprocess.Popen[str]] = []

    def start() -> subprocess.Popen[str]:
        proc = subprocess.Popen(
            [sys.executable, "-m", "cnnlab", "worker", "--workers", "1"],
            cwd=ROOT,
            env=dict(os.environ),
            stdout=log,
            stderr=subprocess.STDOUT,
            text=True,
        )
        procs.append(proc)
        return proc

    yield start  # type: ignore[misc]
    for proc in procs:
        if proc.poll() is None:
            proc.terminate()  # a clean shutdown (its workers go with it)
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
                proc.wait()
    log.close()


def test_background_runs_cancel_and_clean_shutdown(consumer, tmp_path: Path):
    store = RunStore()
    config = TrainConfig(train_limit=1000, batch_size=100, lr=3e-3, name="queued one")
    cancelled = enqueue(config.with_(name="cancelled"), store)
    run_id = enqueue(config, store)
    assert get_huey().storage.filename == str(Path(os.environ["CNNLAB_HOME"]) / "queue.db")
    assert pending() == 2
    assert store.request_stop(cancelled)  # cancelled while queued: the worker must skip it
    run = store.get_run(run_id)
    assert run.status == "queued" and run.params == 409_082 and run.macs == 1_420_032

    proc = consumer()
    wait_for("a worker heartbeat", lambda: store.workers_alive() >= 1, 60)
    wait_for("the run to finish", lambda: store.get_run(run_id).status == FINISHED, 180)
    final = store.final_metrics(run_id)
    assert final["accuracy"] > 0.6 and store.get_artifact(run_id, "confusion_matrix")
    assert store.get_run(run_id).pid != proc.pid  # trained in a worker process, not the consumer
    cancelled_run = store.get_run(cancelled)
    assert cancelled_run.status == STOPPED and store.metric_count(cancelled) == 0
    assert pending() == 0

    proc.send_signal(signal.SIGTERM)
    assert proc.wait(timeout=30) == 0
    assert store.workers_alive() == 0  # a clean shutdown removes its heartbeat


def test_sigkilled_worker_leaves_run_interrupted_and_next_run_trains(consumer):
    store = RunStore()
    proc = consumer()
    long_run = enqueue(TrainConfig(epochs=5, batch_size=32, name="long"), store)
    wait_for("the long run to record metrics", lambda: store.metric_count(long_run) >= 6, 180)
    run = store.get_run(long_run)
    assert run.status == RUNNING and run.pid not in (None, proc.pid)
    os.kill(run.pid, signal.SIGKILL)
    # The consumer notices (orphan reaping every few seconds) — no one calls reap here.
    wait_for("the run to be interrupted", lambda: store.get_run(long_run).status != RUNNING, 30)
    run = store.get_run(long_run)
    assert run.status == INTERRUPTED and f"pid {run.pid}" in run.error
    kept = store.metric_count(long_run)
    assert kept >= 6  # metrics recorded before the kill are kept

    # Huey replaces the dead worker process; the next run trains normally.
    short = enqueue(TrainConfig(train_limit=500, batch_size=100, name="after the kill"), store)
    wait_for("the next run to finish", lambda: store.get_run(short).status == FINISHED, 180)
    assert store.metric_count(long_run) == kept and store.integrity_ok()

    # SIGKILL of the consumer itself: its worker interrupts the run and exits (no orphans).
    second = enqueue(TrainConfig(epochs=5, batch_size=32, name="consumer killed"), store)
    wait_for("the second run to record metrics", lambda: store.metric_count(second) >= 6, 180)
    worker_pid = store.get_run(second).pid
    proc.kill()
    proc.wait()
    wait_for("the second run to end", lambda: store.get_run(second).status != RUNNING, 15)
    run = store.get_run(second)
    assert run.status == INTERRUPTED and "worker was shut down" in run.error
    wait_for("the worker process to exit", lambda: not pid_alive(worker_pid), 15)
    assert store.integrity_ok()


def test_stop_mid_step_lands_in_two_seconds_and_the_worker_takes_the_next_run(consumer):
    """Issue 17: a step of several seconds held a stop for a minute. The watcher records the
    run stopped within about a second, the worker process ends, Huey starts a fresh one."""
    store = RunStore()
    proc = consumer()
    slow = enqueue(SLOW, store)
    wait_training(store, slow)
    worker_pid = store.get_run(slow).pid
    landed = time_to_stop(store, slow)
    run = store.get_run(slow)
    assert run.status == STOPPED and landed <= 2.5, (run.status, landed)
    assert store.metric_count(slow) == 0  # mid-step: it did not wait for the ~7 s step to end
    wait_for("the stopped worker process to exit", lambda: not pid_alive(worker_pid), 10)
    short = enqueue(TrainConfig(train_limit=500, batch_size=100, name="after the stop"), store)
    wait_for("the next run to finish", lambda: store.get_run(short).status == FINISHED, 180)
    assert store.get_run(short).pid not in (worker_pid, proc.pid)  # a fresh worker process
    assert store.get_run(slow).status == STOPPED and store.integrity_ok()
