"""Issue 15, "no run left in limbo": lost queue tasks, a read-only store, run names as text."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
import tempfile
import textwrap
from collections.abc import Callable
from pathlib import Path

import pytest
from huey import PriorityRedisHuey, SqliteHuey
from huey.api import Huey

from cnnlab.format import md_escape
from cnnlab.training.names import INTERRUPTED, QUEUED
from cnnlab.training.queue import LostTaskReaper, queued_task_ids
from cnnlab.training.store import LOST_TASK_TEXT, RunStore, StoreError


@pytest.fixture(params=["sqlite", "servers"])
def store_and_queue(
    request: pytest.FixtureRequest, tmp_path: Path
) -> tuple[RunStore, Huey, Callable[..., object]]:
    """A store and a queue: SQLite files, or PostgreSQL + Redis (PriorityRedisHuey)."""
    if request.param == "servers":
        store = RunStore(request.getfixturevalue("postgres_url"))
        huey: Huey = PriorityRedisHuey(
            name="cnnlab", url=request.getfixturevalue("redis_url"), results=False
        )
    else:
        store = RunStore(tmp_path / "runs.db")
        huey = SqliteHuey(name="cnnlab", filename=str(tmp_path / "queue.db"), results=False)
    task = huey.task(name="run_training")(lambda run_id: run_id)
    return store, huey, task


def _run(store: RunStore) -> str:
    return store.create_run({"model": "lenet5"}, name=None, model="lenet5", params=1, macs=1)


# --- 1. a queued run whose task is gone -----------------------------------------------------


def test_queued_run_whose_task_was_taken_is_interrupted_after_grace(store_and_queue) -> None:
    store, huey, task = store_and_queue
    lost, waiting = _run(store), _run(store)
    task(lost, priority=5)  # taken first
    task(waiting)
    assert queued_task_ids(huey) == {lost, waiting}
    assert huey.dequeue() is not None  # a worker takes the first task … and dies right there
    assert queued_task_ids(huey) == {waiting}

    reaper = LostTaskReaper(store, huey, grace_s=20)
    assert reaper.check(now=100.0) == []  # first seen missing: could be a worker starting it
    assert reaper.check(now=110.0) == []
    assert store.require_run(lost).status == QUEUED
    assert reaper.check(now=121.0) == [lost]

    run = store.require_run(lost)
    assert run.status == INTERRUPTED
    assert run.error == LOST_TASK_TEXT
    assert store.require_run(waiting).status == QUEUED  # its task still waits: left alone
    assert reaper.check(now=500.0) == []


def test_run_that_starts_within_grace_is_not_reaped(store_and_queue) -> None:
    store, huey, task = store_and_queue
    run_id = _run(store)
    task(run_id)
    huey.dequeue()
    reaper = LostTaskReaper(store, huey, grace_s=20)
    assert reaper.check(now=0.0) == []
    assert store.mark_running(run_id, os.getpid(), "cpu")  # the worker got there in time
    assert reaper.check(now=60.0) == []
    assert store.require_run(run_id).status == "running"


# --- 2. a read-only store -------------------------------------------------------------------


def _filled_store(folder: Path) -> str:
    store = RunStore(folder / "runs.db")
    run_id = _run(store)
    store.add_metrics(run_id, [(1, 0.1, "loss", 2.0), (2, 0.2, "loss", 1.0)])
    return run_id


def test_read_only_flag_reads_but_refuses_writes(tmp_path: Path) -> None:
    run_id = _filled_store(tmp_path)
    store = RunStore(tmp_path / "runs.db", read_only=True)
    assert store.read_only
    assert [r.id for r in store.list_runs()] == [run_id]
    assert store.get_run(run_id) is not None
    assert [m.value for m in store.metrics(run_id)] == [2.0, 1.0]
    with pytest.raises(StoreError, match="read-only"):
        store.rename(run_id, "other")
    assert not RunStore(tmp_path / "runs.db").read_only


_CHILD = textwrap.dedent(
    """
    import sys
    from cnnlab.training.store import RunStore, StoreError
    store = RunStore(sys.argv[1])
    assert store.read_only, "not read-only"
    runs = store.list_runs()
    assert [r.id for r in runs] == [sys.argv[2]], runs
    assert len(store.metrics(sys.argv[2])) == 2
    try:
        store.rename(sys.argv[2], "x")
    except StoreError as err:
        assert "read-only" in str(err), err
    else:
        raise SystemExit("a write went through")
    print("OK")
    """
)


def test_truly_read_only_folder_can_still_be_listed() -> None:
    """A folder and files chmod read-only. Root ignores permissions, so as root the check runs
    in a child process that drops to user ``nobody``."""
    folder = Path(tempfile.mkdtemp(prefix="cnnlab-ro-"))
    folder.chmod(0o755)
    package_root = Path(__file__).resolve().parents[1]
    try:
        run_id = _filled_store(folder)
        for path in folder.iterdir():
            path.chmod(0o444)
        folder.chmod(0o555)
        kwargs: dict[str, object] = {}
        python, package_root = sys.executable, Path(__file__).resolve().parents[1]
        if os.geteuid() == 0:
            kwargs["user"] = 65534
            kwargs["group"] = 65534
            # the venv's Python may sit under /root (unreadable to nobody): the system Python
            # and a world-readable copy of the package (the store needs only the stdlib)
            system = Path(f"/usr/bin/python{sys.version_info.major}.{sys.version_info.minor}")
            if system.exists():
                python, package_root = str(system), Path(tempfile.mkdtemp(prefix="cnnlab-pkg-"))
                shutil.copytree(
                    Path(__file__).resolve().parents[1] / "cnnlab", package_root / "cnnlab"
                )
                _copy_store_dependencies(package_root)
                for path in [package_root, *package_root.rglob("*")]:
                    path.chmod(0o755 if path.is_dir() else 0o644)
        env = {**os.environ, "PYTHONPATH": str(package_root), "HOME": str(folder)}
        try:
            done = _run_child(python, folder, run_id, env, kwargs)
        except PermissionError as err:  # nobody cannot reach this Python (e.g. under /root)
            pytest.skip(f"user nobody cannot run {python}: {err}")
        assert done.returncode == 0, done.stderr
        assert done.stdout.strip() == "OK"
    finally:
        folder.chmod(0o755)
        for path in folder.iterdir():
            path.chmod(0o644)
        for path in folder.iterdir():
            path.unlink()
        folder.rmdir()
        if package_root.name.startswith("cnnlab-pkg-"):
            shutil.rmtree(package_root, ignore_errors=True)


def _copy_store_dependencies(target: Path) -> None:
    """The store's own imports (SQLAlchemy and what it needs), for a Python without the venv."""
    import sqlalchemy
    import typing_extensions

    shutil.copytree(Path(sqlalchemy.__file__).parent, target / "sqlalchemy")
    shutil.copy(typing_extensions.__file__, target / "typing_extensions.py")


def _run_child(
    python: str, folder: Path, run_id: str, env: dict[str, str], kwargs: dict[str, object]
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(  # type: ignore[call-overload, no-any-return]
        [python, "-c", _CHILD, str(folder / "runs.db"), run_id],
        capture_output=True,
        text=True,
        env=env,
        timeout=60,
        cwd="/",
        **kwargs,
    )


# --- 3. run names as plain text -------------------------------------------------------------


def test_md_escape_defuses_markdown() -> None:
    assert md_escape("[x](http://evil)") == r"\[x\]\(http\:\/\/evil\)".replace(r"\/", "/")
    assert md_escape("**bold** _i_ `code` <b>#h") == r"\*\*bold\*\* \_i\_ \`code\` \<b\>\#h"
    assert md_escape("lenet5-abc123") == r"lenet5\-abc123"
    assert md_escape("a\nb") == "a b"
    assert md_escape("plain name") == "plain name"
