"""Issue 16, "more machines": two worker "hosts" (their own ``CNNLAB_HOME`` and host name) take
runs from one Redis queue and record them in one PostgreSQL store; the app side (a third home)
lists their runs, streams their metrics, reads their checkpoints, stops a run on another host;
a host whose worker is SIGKILLed leaves its run ``interrupted`` while the other's run finishes.
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
from reliability_helpers import wait_for

from cnnlab.cli import main
from cnnlab.training.config import TrainConfig
from cnnlab.training.names import CHECKPOINT, FINISHED, INTERRUPTED, RUNNING, STOPPED
from cnnlab.training.store import RunStore

pytestmark = pytest.mark.slow

ROOT = Path(__file__).resolve().parents[1]
HEARTBEAT_TIMEOUT_S = "8"
SHORT = TrainConfig(train_limit=3000, epochs=2, batch_size=50, lr=3e-3)
LONG = TrainConfig(train_limit=20_000, epochs=3, batch_size=32, lr=3e-3, name="long")


class Hosts:
    """Worker processes, one per pretend machine, each in its own process group."""

    def __init__(self, tmp: Path, urls: dict[str, str]) -> None:
        self.tmp, self.urls = tmp, urls
        self.procs: dict[str, subprocess.Popen[bytes]] = {}

    def start(self, host: str) -> None:
        env = {
            **os.environ,
            **self.urls,
            "CNNLAB_HOME": str(self.tmp / host),
            "CNNLAB_HOST_NAME": host,
            "CNNLAB_HEARTBEAT_TIMEOUT_S": HEARTBEAT_TIMEOUT_S,
        }
        log = (self.tmp / f"{host}.log").open("wb")
        self.procs[host] = subprocess.Popen(
            [sys.executable, "-m", "cnnlab", "worker", "--workers", "1"],
            cwd=ROOT, env=env, stdout=log, stderr=subprocess.STDOUT, start_new_session=True,
        )  # fmt: skip

    def kill(self, host: str) -> None:
        """The machine vanishes: its consumer and worker processes die at once."""
        proc = self.procs[host]
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()

    def log(self, host: str) -> str:
        return (self.tmp / f"{host}.log").read_text(errors="replace")[-3000:]

    def close(self) -> None:
        for proc in self.procs.values():
            with contextlib.suppress(ProcessLookupError, PermissionError):
                os.killpg(proc.pid, signal.SIGKILL)
            proc.wait()


@pytest.fixture
def hosts(
    postgres_url: str, redis_url: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> Iterator[Hosts]:
    urls = {"CNNLAB_STORE_URL": postgres_url, "CNNLAB_QUEUE_URL": redis_url}
    for key, value in urls.items():  # this test process is the app side: a third machine
        monkeypatch.setenv(key, value)
    monkeypatch.setenv("CNNLAB_HOME", str(tmp_path / "app"))
    monkeypatch.setenv("CNNLAB_HOST_NAME", "app")
    h = Hosts(tmp_path, urls)
    yield h
    h.close()


def test_two_hosts_one_queue_one_store(hosts: Hosts, tmp_path: Path, capsys) -> None:
    from cnnlab.training.checkpoints import load_checkpoint, predict
    from cnnlab.training.data import load_mnist
    from cnnlab.training.queue import enqueue

    store = RunStore()
    hosts.start("alpha")
    hosts.start("beta")
    wait_for(
        "both hosts' workers to beat",
        lambda: set(store.workers_by_host()) >= {"alpha", "beta"},
        90,
    )
    assert main(["doctor", "--json"]) == 0
    report = {c["name"]: c for c in json.loads(capsys.readouterr().out)}
    assert report["store"]["detail"]["kind"] == "postgresql"
    assert report["queue"]["detail"]["kind"] == "redis"
    assert set(report["workers"]["detail"]["hosts"]) >= {"alpha", "beta"}

    # Two runs queued from the app: each host takes one.
    first = enqueue(SHORT.with_(name="first"), store)
    second = enqueue(SHORT.with_(name="second"), store)
    both = (first, second)
    wait_for(
        "both runs to train, one per host",
        lambda: (
            all(store.metric_count(r) >= 3 for r in both)
            and {store.require_run(r).host for r in both} == {"alpha", "beta"}
        ),
        180,
    )
    on = {store.require_run(r).host: r for r in both}
    # The app streams the metrics of a run on another machine, incrementally.
    seen = store.metrics(on["alpha"])
    wait_for(
        "new metric rows",
        lambda: store.metrics(on["alpha"], after_id=max(m.id for m in seen)) != [],
        60,
    )

    # Host beta vanishes mid-run: nothing on beta can mark its run; alpha's reaper does.
    victim_rows = store.metric_count(on["beta"])
    hosts.kill("beta")
    wait_for(
        "beta's run to be interrupted",
        lambda: store.require_run(on["beta"]).status != RUNNING,
        60,
    )
    victim = store.require_run(on["beta"])
    assert victim.status == INTERRUPTED and "on host beta" in (victim.error or ""), victim.error
    assert store.metric_count(on["beta"]) >= victim_rows  # nothing recorded is lost
    wait_for(
        "alpha's run to finish",
        lambda: store.require_run(on["alpha"]).status == FINISHED,
        240,
    )
    assert store.final_metrics(on["alpha"])["accuracy"] > 0.8, hosts.log("alpha")

    # Its checkpoint travelled through the database to the app's own home.
    checkpoint = store.get_artifact(on["alpha"], CHECKPOINT)
    assert checkpoint is not None and checkpoint.path is not None
    assert checkpoint.path == tmp_path / "app" / "runs" / on["alpha"] / "checkpoint.pt"
    model, config = load_checkpoint(checkpoint.path)
    digits = load_mnist("test", limit=200)
    probs = predict(model, config, digits.images)
    accuracy = (probs.argmax(1) == digits.labels).float().mean().item()
    assert accuracy > 0.8

    # A run on another machine stopped from the app.
    long_run = enqueue(LONG, store)
    wait_for("the long run to train on alpha", lambda: store.metric_count(long_run) >= 3, 120)
    assert store.require_run(long_run).host == "alpha"
    assert store.request_stop(long_run)
    started = time.monotonic()
    wait_for("the stop to land", lambda: store.require_run(long_run).status == STOPPED, 30)
    assert time.monotonic() - started < 15

    assert main(["runs", "list", "--json"]) == 0
    listed = {r["id"]: r for r in json.loads(capsys.readouterr().out)}
    assert set(listed) >= {first, second, long_run}


def test_doctor_on_one_machine(capsys) -> None:
    """No URLs: SQLite store and queue in CNNLAB_HOME, one line each, exit 0."""
    assert main(["doctor"]) == 0
    lines = capsys.readouterr().out.splitlines()
    assert [line.split(":")[0] for line in lines] == ["store", "queue", "workers", "queue length"]
    assert "SQLite" in lines[0] and "0 runs" in lines[0] and "none alive" in lines[2]


def test_wrong_passwords_are_one_line_and_write_nothing(
    postgres_server, redis_server, monkeypatch: pytest.MonkeyPatch, capsys
) -> None:
    monkeypatch.setenv("CNNLAB_STORE_URL", postgres_server.url(password="nope"))
    monkeypatch.setenv("CNNLAB_QUEUE_URL", redis_server.url.replace(":cnnlab-test-pw@", ":nope@"))
    for argv in (["doctor"], ["runs", "list"], ["worker"], ["train", "--train-limit", "100"]):
        assert main(argv) == 2, argv
        err = capsys.readouterr().err.strip()
        assert err.count("\n") == 0 and err.startswith("cnnlab: error: "), err
        assert "password" in err and "nope" not in err, err
    monkeypatch.setenv("CNNLAB_STORE_URL", postgres_server.create_database())
    assert main(["train", "--train-limit", "100", "--background"]) == 2
    err = capsys.readouterr().err
    assert "cannot reach the training queue" in err and "check the password" in err, err
    assert RunStore().list_runs() == []  # nothing half-written: the run was never recorded
