"""The run store: statuses, metrics (incremental reads, no duplicates), artifacts, liveness,
errors, and two processes writing at once — on SQLite and on PostgreSQL (tests/servers.py)."""

from __future__ import annotations

import os
import re
import shutil
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import pytest
from sqlalchemy import text

from cnnlab.cli import main
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


@pytest.fixture(params=["sqlite", "postgres"])
def store(request: pytest.FixtureRequest, tmp_path: Path) -> RunStore:
    if request.param == "postgres":
        return RunStore(request.getfixturevalue("postgres_url"))
    return RunStore(tmp_path / "runs.db")


def where(store: RunStore) -> str:
    """What opens the same store in another process: its URL or its file."""
    return store.target.url or str(store.path)


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
import time
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
            [sys.executable, "-c", WRITER, where(store), rid, str(off), str(n)],
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


# The schema of stores written before the trash existed (cnnlab/training/store.py as of commit
# 35225bf): no ``deleted_at`` column.
PREVIOUS_SCHEMA = """
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
    stop_requested INTEGER NOT NULL DEFAULT 0
);
CREATE INDEX IF NOT EXISTS runs_status ON runs(status);
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


def test_a_store_from_before_the_trash_is_migrated(tmp_path: Path):
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as db:
        db.executescript(PREVIOUS_SCHEMA)
        db.execute(
            "INSERT INTO runs (id, name, model, config, status, created, params, macs)"
            " VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
            ("0123456789ab", "old run", "small-cnn", '{"epochs": 2}', "finished", 1.7e9, 1, 2),
        )
        db.execute(
            "INSERT INTO metrics VALUES ('0123456789ab', 5, 1.0, 'accuracy', 0.98, 1700000100.0)"
        )
    store = RunStore(path)
    with sqlite3.connect(path) as db:
        columns = {row[1] for row in db.execute("PRAGMA table_info(runs)")}
    assert "deleted_at" in columns
    (run,) = store.list_runs()
    assert run.name == "old run" and run.deleted_at is None and run.config == {"epochs": 2}
    assert store.final_metrics(run.id) == {"accuracy": 0.98}
    store.trash_run(run.id)
    assert store.list_runs() == [] and [r.id for r in RunStore(path).list_trash()] == [run.id]
    store.restore_run(run.id)
    assert [r.name for r in store.list_runs()] == ["old run"] and store.integrity_ok()


def test_trash_restore_and_purge(store: RunStore):
    kept, other = new_run(store), new_run(store)
    store.mark_running(kept, os.getpid(), "cpu")
    store.finish_run(kept, FINISHED)
    store.add_metrics(kept, [(1, 0.0, "loss", 1.0)])
    store.put_artifact(kept, "confusion_matrix", [[1, 0], [0, 1]])
    folder = store.run_dir(kept)
    (folder / "checkpoint.pt").write_bytes(b"x")
    before = store.change_token()
    store.trash_run(kept)
    assert store.change_token() != before  # a polling page notices
    assert [r.id for r in store.list_runs()] == [other]  # the list leaves it out
    assert store.get_run(kept) is None and store.get_run(kept, trashed=True) is not None
    with pytest.raises(UserError, match="in the trash"):
        store.require_run(kept)
    assert store.stop_requested(kept)
    # Everything is still there while it is in the trash.
    assert store.metric_count(kept) == 1 and folder.exists() and store.artifacts(kept)
    assert store.purge_trash() == []  # not old enough
    restored = store.restore_run(kept)
    assert restored.deleted_at is None and restored.status == FINISHED
    assert {r.id for r in store.list_runs()} == {kept, other}
    with pytest.raises(UserError, match="not in the trash"):
        store.restore_run(kept)
    with pytest.raises(UserError, match="no run"):
        store.restore_run("feedfacecafe")

    queued = new_run(store)  # a queued run is cancelled on its way to the trash
    store.trash_run(queued)
    assert store.restore_run(queued).status == STOPPED
    assert not store.mark_running(queued, os.getpid(), "cpu")

    running = new_run(store)
    store.mark_running(running, os.getpid(), "cpu")
    with pytest.raises(UserError, match="stop it first"):
        store.trash_run(running)

    store.trash_run(kept)
    assert store.purge_trash(older_than_s=-1) == [kept]  # what opening the store does after 7 days
    assert store.get_run(kept, trashed=True) is None and not folder.exists()
    assert store.metric_count(kept) == 0 and store.artifacts(kept) == []
    store.trash_run(other)
    with store._engine.begin() as db:  # deleted 8 days ago
        db.execute(
            text("UPDATE runs SET deleted_at = deleted_at - 8 * 86400 WHERE id = :id"),
            {"id": other},
        )
    RunStore(where(store))  # opening the store purges it
    assert store.get_run(other, trashed=True) is None and store.list_trash() == []


def test_cli_trash_list_restore_and_delete(capsys: pytest.CaptureFixture[str]):
    store = RunStore()
    run_id = new_run(store)
    store.cancel(run_id)
    assert main(["runs", "trash", run_id]) == 0
    assert f"runs restore {run_id}" in capsys.readouterr().out
    assert main(["runs", "list"]) == 0
    assert run_id not in capsys.readouterr().out
    assert main(["runs", "list", "--trash"]) == 0
    listed = capsys.readouterr().out
    assert run_id in listed and "DELETED" in listed and "409,082" in listed
    assert main(["runs", "show", run_id]) == 2
    assert "is in the trash" in capsys.readouterr().err
    assert main(["runs", "restore", run_id]) == 0
    assert "restored" in capsys.readouterr().out
    assert main(["runs", "restore", run_id]) == 2
    assert "not in the trash" in capsys.readouterr().err
    assert main(["runs", "delete", run_id]) == 0  # final: no trash
    assert store.get_run(run_id, trashed=True) is None


def test_owners_experiments_and_settings(store: RunStore):
    cli_run = store.create_run({}, name=None, model="small-cnn", params=1, macs=2)
    mine = store.create_run(
        {}, name="a", model="lenet5", params=1, macs=2, owner_id="u1", owner_name="Ada"
    )
    run = store.require_run(mine)
    assert (run.owner_id, run.owner_name, run.experiment_id) == ("u1", "Ada", None)
    assert store.require_run(cli_run).owner_id is None
    assert store.active_counts_by_owner() == {None: 1, "u1": 1}
    store.cancel(mine)
    assert store.active_counts_by_owner() == {None: 1}

    before = store.change_token()
    eid = store.create_experiment("separable", " ", {"model": "small-cnn"}, owner_id="u1")
    assert store.change_token() != before
    arms = [
        store.create_run({}, name=f"arm{i}", model="small-cnn", params=1, macs=1, experiment_id=eid)
        for i in range(2)
    ]
    experiment = store.get_experiment(eid)
    assert experiment is not None and experiment.name.startswith("separable-")
    assert experiment.spec == {"model": "small-cnn"} and not experiment.stop_requested
    assert [r.id for r in store.experiment_runs(eid)] == arms
    assert [e.id for e in store.list_experiments()] == [eid]
    assert store.request_experiment_stop(eid) and store.get_experiment(eid).stop_requested
    assert not store.request_experiment_stop("nope")
    store.delete_experiment(eid)
    assert store.get_experiment(eid) is None and store.list_experiments() == []

    assert store.get_setting("limits") is None
    store.put_setting("limits", {"max_epochs": 2})
    store.put_setting("limits", {"max_epochs": 3})
    assert store.get_setting("limits") == {"max_epochs": 3}


def test_a_server_store_from_before_the_trash_is_migrated(postgres_url: str):
    import psycopg

    with psycopg.connect(postgres_url.replace("+psycopg", ""), autocommit=True) as db:
        for statement in PREVIOUS_SCHEMA.split(";"):
            if statement.strip():
                db.execute(statement)
        db.execute(
            "INSERT INTO runs (id, name, model, config, status, created, params, macs)"
            " VALUES ('0123456789ab', 'old run', 'small-cnn', '{}', 'finished', 1.7e9, 1, 2)"
        )
    store = RunStore(postgres_url)
    (run,) = store.list_runs()
    assert run.name == "old run" and run.deleted_at is None and run.owner_id is None
    store.trash_run(run.id)
    assert store.list_runs() == [] and [r.id for r in store.list_trash()] == [run.id]


def test_server_files_travel_to_another_home(
    postgres_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
):
    """A checkpoint written on the worker's disk is read back on a machine without it."""
    worker_home, app_home = tmp_path / "worker", tmp_path / "app"
    monkeypatch.setenv("CNNLAB_HOME", str(worker_home))
    store = RunStore(postgres_url)
    run_id = new_run(store)
    checkpoint = store.run_dir(run_id) / "checkpoint.pt"
    checkpoint.write_bytes(os.urandom(300_000))
    store.put_artifact(run_id, "checkpoint", path=checkpoint)
    big = store.run_dir(run_id) / "big.pt"
    big.write_bytes(b"x" * 2_000_000)
    monkeypatch.setenv("CNNLAB_STORE_FILE_MAX_MB", "1")
    store.put_artifact(run_id, "big", path=big)  # over the limit: stays on the worker's disk

    content = checkpoint.read_bytes()
    shutil.rmtree(worker_home)  # the app's machine does not have the worker's disk

    monkeypatch.setenv("CNNLAB_HOME", str(app_home))
    app = RunStore(postgres_url)
    artifact = app.get_artifact(run_id, "checkpoint")
    assert artifact.path == app_home / "runs" / run_id / "checkpoint.pt"
    assert artifact.path.read_bytes() == content
    assert app.get_artifact(run_id, "big").path == big  # not shared: the worker's path
    assert not (app_home / "runs" / run_id / "big.pt").exists()
    assert {a.kind: a.path for a in app.artifacts(run_id)}["checkpoint"] == artifact.path
    app.finish_run(run_id, FINISHED)
    app.delete_run(run_id)
    assert not (app_home / "runs" / run_id).exists() and app.artifacts(run_id) == []


def test_liveness_across_hosts(store: RunStore, monkeypatch: pytest.MonkeyPatch):
    """The pid check only for this host's runs; another host's run is judged by its heartbeat."""
    dead = subprocess.Popen([sys.executable, "-c", "pass"])
    dead.wait()
    monkeypatch.setenv("CNNLAB_HOST_NAME", "far-away")
    remote = new_run(store)
    store.mark_running(remote, dead.pid, "cpu")  # a pid that means nothing here
    store.worker_heartbeat(4242)
    monkeypatch.setenv("CNNLAB_HOST_NAME", "right-here")
    store.worker_heartbeat(4242)
    store.worker_heartbeat(4343)
    assert store.workers_by_host() == {"far-away": 1, "right-here": 2}
    assert store.workers_alive() == 3
    assert store.get_run(remote).host == "far-away"
    assert store.reap_orphans() == []  # its heartbeat is fresh: alive, whatever the pid
    monkeypatch.setenv("CNNLAB_HEARTBEAT_TIMEOUT_S", "0.2")
    time.sleep(0.3)
    assert store.reap_orphans() == [remote]
    run = store.get_run(remote)
    assert run.status == INTERRUPTED and "on host far-away" in run.error
    monkeypatch.setenv("CNNLAB_HEARTBEAT_TIMEOUT_S", "soon")
    with pytest.raises(UserError, match="CNNLAB_HEARTBEAT_TIMEOUT_S"):
        store.reap_orphans()


@pytest.mark.parametrize(
    "url, message",
    [
        ("mysql://u@h/db", "unsupported scheme 'mysql'"),
        ("postgresql+psycopg://u@127.0.0.1:1/db", "is the PostgreSQL server running"),
        ("postgresql://nohost", "needs a host and a database"),
        ("sqlite://relative.db", "needs a file"),
    ],
)
def test_bad_store_urls_are_one_clear_error(url: str, message: str):
    with pytest.raises(StoreError, match=re.escape(message)) as caught:
        RunStore(url)
    assert "\n" not in str(caught.value)


def test_wrong_password_is_one_clear_error(postgres_server):
    with pytest.raises(StoreError, match="password authentication failed") as caught:
        RunStore(postgres_server.url(password="wrong"))
    assert "wrong" not in str(caught.value)  # the password is not echoed
