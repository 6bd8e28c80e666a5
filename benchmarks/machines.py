"""Benchmark: runs per minute through the queue with 1 and 2 workers, on the one-machine path
(SQLite store + SQLite queue in CNNLAB_HOME) and on the several-machines path (PostgreSQL store
+ Redis queue, each worker a pretend host with its own CNNLAB_HOME and host name).

Each measurement starts its workers (``python -m cnnlab worker``), waits until every worker
process is warm (its log says so), queues ``--runs`` identical small trainings at once and times
from queueing to the last one finished. On one machine "2 workers" is one consumer with two
worker processes; on the servers path it is two consumers (two hosts). Real ``redis-server``
and PostgreSQL are started on loopback as in the tests (tests/servers.py).

    python benchmarks/machines.py [--json] [--quick] [--runs 6] [--images 2000]

``--json`` prints ``{"sqlite_1", "sqlite_2", "servers_1", "servers_2"}`` (runs per minute;
``--quick``: one run of 100 digits on ``servers_1`` only, the others null) plus
``servers_vs_sqlite`` (servers_1 / sqlite_1), ``speedup_2_vs_1`` (per path) and the settings.
On a one-machine test bed two workers share the same cores, so "2" shows the overhead of
coordination more than a real second machine's gain.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from servers import run_postgres, run_redis  # noqa: E402  (the tests' own server starters)

from cnnlab.training.config import TrainConfig  # noqa: E402

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"


def _warm_lines(log: Path) -> int:
    """Worker processes of this log that finished warming up (or gave up on it)."""
    text = log.read_text(errors="replace")
    return text.count(" warm in ") + text.count("warm-up skipped")


@contextlib.contextmanager
def workers(
    tmp: Path, env: dict[str, str], hosts: list[str], processes: int
) -> Iterator[list[Path]]:
    """Start one consumer per host (``processes`` worker processes each); yield their logs."""
    procs: list[subprocess.Popen[bytes]] = []
    logs: list[Path] = []
    try:
        for host in hosts:
            log = tmp / f"{host}.log"
            logs.append(log)
            host_env = {**env, "CNNLAB_HOST_NAME": host}
            if "CNNLAB_STORE_URL" in env:
                host_env["CNNLAB_HOME"] = str(tmp / host)
            procs.append(
                subprocess.Popen(
                    [sys.executable, "-m", "cnnlab", "worker", "--workers", str(processes)],
                    cwd=ROOT,
                    env=host_env,
                    stdout=log.open("wb"),
                    stderr=subprocess.STDOUT,
                    start_new_session=True,
                )
            )
        deadline = time.monotonic() + 300
        want = len(hosts) * processes
        while sum(_warm_lines(p) for p in logs) < want:
            if time.monotonic() > deadline or any(p.poll() is not None for p in procs):
                raise RuntimeError("workers did not warm up:\n" + logs[0].read_text()[-2000:])
            time.sleep(0.5)
        yield logs
    finally:
        for proc in procs:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(proc.pid, signal.SIGTERM)
        for proc in procs:
            try:
                proc.wait(timeout=30)
            except subprocess.TimeoutExpired:
                os.killpg(proc.pid, signal.SIGKILL)
                proc.wait()


def measure(env: dict[str, str], hosts: list[str], processes: int, runs: int, images: int) -> float:
    """Runs per minute: ``runs`` trainings queued at once, until the last one finished."""
    with tempfile.TemporaryDirectory(prefix="cnnlab-machines-") as folder:
        tmp = Path(folder)
        env = {**env, "CNNLAB_HOME": str(tmp / "app")}
        saved = dict(os.environ)
        os.environ.update(env)
        try:
            from cnnlab.training import queue
            from cnnlab.training.store import RunStore

            queue._instances.clear()  # this measurement's queue, not the last one's
            store = RunStore()
            with workers(tmp, env, hosts, processes):
                config = TrainConfig(train_limit=images, epochs=1, batch_size=100, lr=3e-3)
                start = time.perf_counter()
                ids = [queue.enqueue(config.with_(name=f"bench {i}"), store) for i in range(runs)]
                while True:
                    statuses = [store.require_run(r).status for r in ids]
                    if all(s in ("finished", "failed", "stopped", "interrupted") for s in statuses):
                        break
                    if time.perf_counter() - start > 900:
                        raise RuntimeError(f"runs did not finish: {statuses}")
                    time.sleep(0.2)
                elapsed = time.perf_counter() - start
                if any(s != "finished" for s in statuses):
                    raise RuntimeError(f"a run did not finish: {statuses}")
        finally:
            os.environ.clear()
            os.environ.update(saved)
    return runs * 60.0 / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="a smoke run: one run of 100 digits, servers_1 only"
    )
    parser.add_argument("--runs", type=int, default=6)
    parser.add_argument("--images", type=int, default=2000)
    args = parser.parse_args()
    runs, images = (1, 100) if args.quick else (args.runs, args.images)
    base = {
        "CNNLAB_OFFLINE": "1",
        "CNNLAB_DATA_DIR": os.environ.get("CNNLAB_DATA_DIR", str(SHARED_MNIST)),
        "PYTHONUNBUFFERED": "1",
    }
    local = {k: v for k, v in os.environ.items() if not k.startswith("CNNLAB_")}
    result: dict[str, Any] = {"sqlite_1": None, "sqlite_2": None, "servers_1": None,
                              "servers_2": None}  # fmt: skip
    if not args.quick:
        for n in (1, 2):
            result[f"sqlite_{n}"] = measure({**local, **base}, ["one"], n, runs, images)
            print(f"sqlite_{n}: {result[f'sqlite_{n}']:.2f} runs/min", file=sys.stderr)
    with run_redis() as redis, run_postgres() as postgres:
        for n in (1, 2) if not args.quick else (1,):
            servers = {
                **local, **base,
                "CNNLAB_STORE_URL": postgres.create_database(),
                "CNNLAB_QUEUE_URL": redis.url,
            }  # fmt: skip
            redis.flush()
            hosts = [f"host{i + 1}" for i in range(n)]
            result[f"servers_{n}"] = measure(servers, hosts, 1, runs, images)
            print(f"servers_{n}: {result[f'servers_{n}']:.2f} runs/min", file=sys.stderr)

    def ratio(a: float | None, b: float | None) -> float | None:
        return None if a is None or b is None else round(a / b, 3)

    result.update(
        {
            "servers_vs_sqlite": ratio(result["servers_1"], result["sqlite_1"]),
            "speedup_2_vs_1": {
                "sqlite": ratio(result["sqlite_2"], result["sqlite_1"]),
                "servers": ratio(result["servers_2"], result["servers_1"]),
            },
            "runs": runs,
            "train_limit": images,
            "cpu_count": os.cpu_count(),
        }
    )
    for key in ("sqlite_1", "sqlite_2", "servers_1", "servers_2"):
        if result[key] is not None:
            result[key] = round(result[key], 2)
    if args.json:
        print(json.dumps(result))
    else:
        for key, value in result.items():
            print(f"{key}: {value}")


if __name__ == "__main__":
    main()
