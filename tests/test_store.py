"""The run store: statuses, metrics (incremental reads, no duplicates), artifacts, liveness,
errors, and two processes writing at once."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.errors import UserError
from cnnlab.training.store import (
    FINISHED,
    INTERRUPTED,
    QUEUED,
    RUNNING,
    STOPPED,
    RunStore,
    StoreError,
    pid_alive,
)

ROOT = Path(__file__).resolve().parents[1]


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


def new_run(store: RunStore, **kw: object) -> str:
    return store.create_run(
        {"model": "small-cnn"}, name=None, model="small-cnn", params=409_082, macs=1_420_032, **kw
    )


def test_default_path_is_under_cnnlab_home(monkeypatch: pytest.MonkeyPatch, tmp_path: Path):
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "h"))
    assert RunStore().path == tmp_path / "h" / "runs.db"


def test_lifecycle_and_columns(store: RunStore):
    run_id = new_run(store)
    run = store.get_run(run_id)
    assert run is not None and run.status == QUEUED and run.duration is None
    assert run.params == 409_082 and run.macs == 1_420_032  # exact integers
    assert run.config == {"model": "small-cnn"} and run.name.startswith("small-cnn-")
    assert store.mark_running(run_id, os.getpid(), "cpu")
    assert not store.mark_running(run_id, os.getpid(), "cpu")  # only a queued run is claimed
    run = store.get_run(run_id)
    assert run.status == RUNNING and run.pid == os.getpid() and run.device == "cpu"
    assert run.duration is not None and run.duration >= 0
    store.heartbeat(run_id)
    store.finish_run(run_id, FINISHED)
    run = store.get_run(run_id)
    assert run.status == FINISHED and run.ended >= run.started and run.error is None
    with pytest.raises(UserError):
        store.finish_run(run_id, "exploded")
    store.rename(run_id, "  my run ")
    assert store.get_run(run_id).name == "my run"
    assert [r.id for r in store.list_runs()] == [run_id]
    assert store.list_runs(RUNNING) == []
    assert store.get_run("nope") is None
    with pytest.raises(UserError, match="no run"):
        store.require_run("nope")


def test_metrics_incremental_and_unique(store: RunStore):
    run_id = new_run(store)
    assert store.add_metrics(run_id, [(1, 0.1, "loss", 2.0), (1, 0.1, "train_accuracy", 0.2)]) == 2
    first = store.metrics(run_id)
    store.add_metrics(run_id, [(2, 0.2, "loss", 1.5), (2, 0.2, "test_accuracy", 0.5)])
    store.add_metrics(run_id, [(2, 0.2, "loss", 1.0)])  # same (step, key): replaced, not doubled
    rows = store.metrics(run_id)
    assert len(rows) == 4 and store.metric_count(run_id) == 4
    assert [(m.step, m.key, m.value) for m in store.metrics(run_id, after_step=1)] == [
        (2, "loss", 1.0),
        (2, "test_accuracy", 0.5),
    ]
    newer = store.metrics(run_id, after_id=max(m.id for m in first))
    assert {m.key for m in newer} == {"loss", "test_accuracy"}
    assert [m.value for m in store.metrics(run_id, keys=["loss"])] == [2.0, 1.0]
    assert store.metrics(run_id, keys=[]) == []
    assert store.final_metrics(run_id) == {"loss": 1.0, "train_accuracy": 0.2, "test_accuracy": 0.5}


def test_stop_cancel_and_delete(store: RunStore):
    queued = new_run(store)
    assert store.request_stop(queued)  # a queued run is cancelled at once
    run = store.get_run(queued)
    assert run.status == STOPPED and "cancelled" in run.error and store.stop_requested(queued)
    assert not store.request_stop(queued)  # already over

    running = new_run(store)
    assert not store.stop_requested(running)
    store.mark_running(running, os.getpid(), "cpu")
    assert not store.cancel(running)  # cancel is for queued runs only
    assert store.request_stop(running) and store.stop_requested(running)
    assert store.get_run(running).status == RUNNING  # the engine ends it
    with pytest.raises(UserError, match="stop it first"):
        store.delete_run(running)
    store.finish_run(running, STOPPED)

    folder = store.run_dir(running)
    (folder / "checkpoint.pt").write_bytes(b"x")
    store.add_metrics(running, [(1, 0.0, "loss", 1.0)])
    store.put_artifact(running, "confusion_matrix", [[1, 0], [0, 1]])
    store.delete_run(running)
    assert store.get_run(running) is None and not folder.exists()
    assert store.metric_count(running) == 0 and store.artifacts(running) == []
    assert store.stop_requested(running)  # a deleted run stops too
    with pytest.raises(UserError):
        store.run_dir("../etc")


def test_artifacts(store: RunStore, tmp_path: Path):
    run_id = new_run(store)
    store.put_artifact(run_id, "confusion_matrix", [[5, 1], [0, 4]])
    store.put_artifact(run_id, "checkpoint", path=tmp_path / "c.pt")
    store.put_artifact(run_id, "confusion_matrix", [[6, 0], [0, 4]])  # replaces
    assert store.get_artifact(run_id, "confusion_matrix").data == [[6, 0], [0, 4]]
    assert store.get_artifact(run_id, "checkpoint").path == tmp_path / "c.pt"
    assert store.get_artifact(run_id, "mistakes") is None
    assert [a.kind for a in store.artifacts(run_id)] == ["checkpoint", "confusion_matrix"]


def test_reap_orphans(store: RunStore):
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    gone = new_run(store)
    store.mark_running(gone, dead.pid, "cpu")
    alive = new_run(store)
    store.mark_running(alive, os.getpid(), "cpu")
    queued = new_run(store)
    assert store.reap_orphans() == [gone]
    run = store.get_run(gone)
    assert run.status == INTERRUPTED and f"pid {dead.pid}" in run.error
    assert store.get_run(alive).status == RUNNING
    assert store.get_run(queued).status == QUEUED  # queued runs are left alone
    # A live process whose heartbeat stopped long ago counts as gone too.
    assert store.reap_orphans(max_heartbeat_age_s=-1) == [alive]
    assert "heartbeat" in store.get_run(alive).error
    assert not pid_alive(dead.pid) and pid_alive(os.getpid())


def test_worker_heartbeats(store: RunStore):
    assert store.workers_alive() == 0
    store.worker_heartbeat(12345)
    store.worker_heartbeat(12345)
    assert store.workers_alive() == 1
    assert store.workers_alive(max_age_s=-1) == 0
    store.worker_gone(12345)
    assert store.workers_alive() == 0


def test_integrity_and_errors(tmp_path: Path):
    assert RunStore(tmp_path / "ok.db").integrity_ok()
    junk = tmp_path / "junk.db"
    junk.write_bytes(b"this is not a database" * 100)
    with pytest.raises(StoreError, match="not a database"):
        RunStore(junk)
    blocker = tmp_path / "file"
    blocker.write_text("a file where the folder should be")
    with pytest.raises(StoreError, match="cannot create"):
        RunStore(blocker / "runs.db")


WRITER = """
import sys
from cnnlab.training.store import RunStore
store = RunStore(sys.argv[1])
run_id, offset, n = sys.argv[2], int(sys.argv[3]), int(sys.argv[4])
for i in range(n):
    step = offset + i
    store.add_metrics(run_id, [(step, 0.0, "loss", float(step)), (step, 0.0, "lr", 1e-3)])
    if i % 10 == 0:
        store.heartbeat(run_id)
        store.get_run(run_id)
"""


def test_two_processes_writing_at_once(store: RunStore):
    run_id = new_run(store)
    other = new_run(store)
    n = 150
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    procs = [
        subprocess.Popen(
            [sys.executable, "-c", WRITER, str(store.path), rid, str(off), str(n)],
            env=env,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rid, off in ((run_id, 0), (run_id, 10_000), (other, 0))
    ]
    for p in procs:
        _, err = p.communicate(timeout=120)
        assert p.returncode == 0, err
    rows = store.metrics(run_id)
    assert len(rows) == 2 * 2 * n  # two writers × n steps × two keys: none missing
    assert len({(m.step, m.key) for m in rows}) == len(rows)  # none duplicated
    assert store.metric_count(other) == 2 * n
    assert store.integrity_ok()
