"""Benchmark: how long a queued run waits for its first chart point, and for its results.

Starts a real worker (``python -m cnnlab worker``) in a fresh ``CNNLAB_HOME``, waits until it
beats and its worker process says it is warm (up to 120 s; ``warm_up_wait_s``), and
``--settle`` seconds more (a user opens the page before clicking Train), then queues
the default small run through :func:`cnnlab.training.queue.enqueue` — what the Train button
calls — ``--runs`` times in a row, each after the previous one finished. From the store:

- ``first_point_s``: from the call to ``enqueue`` to the run's first metric row (the first
  point on the chart);
- ``results_s``: from the last training step's row to ``finished`` (test evaluation, summary,
  checkpoint) — what the page shows as "100 %".

Goals (issue 14): ``first_point_s`` ≤ 2 s, ``results_s`` ≤ 3 s. Also ``foreground_s``: the same
two spans for ``python -m cnnlab train`` (first point from the process start).

    python benchmarks/run_latency.py [--json] [--quick]

``--quick``: 2,000 training digits, one queued run, no foreground run.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT))

from cnnlab.training import names  # noqa: E402


def spans(store: object, run_id: str, start: float) -> dict[str, float | None]:
    """first_point_s and results_s of a finished run, from its rows' timestamps."""
    rows = store.metrics(run_id, keys=[names.PROGRESS])  # type: ignore[attr-defined]
    run = store.get_run(run_id)  # type: ignore[attr-defined]
    if not rows or run is None or run.ended is None:
        return {"first_point_s": None, "results_s": None, "status": getattr(run, "status", None)}
    return {
        "first_point_s": round(rows[0].time - start, 3),
        "results_s": round(run.ended - rows[-1].time, 3),
        "status": run.status,
    }


def wait_for(predicate: object, timeout: float, what: str) -> None:
    deadline = time.monotonic() + timeout
    while not predicate():  # type: ignore[operator]
        if time.monotonic() > deadline:
            raise SystemExit(f"timed out waiting for {what}")
        time.sleep(0.02)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="smoke run (small, one run)")
    parser.add_argument("--runs", type=int, default=None, help="queued runs (default 3)")
    parser.add_argument("--train-limit", type=int, default=None, help="training digits")
    parser.add_argument("--settle", type=float, default=None, help="seconds after worker start")
    args = parser.parse_args(argv)
    runs = args.runs or (1 if args.quick else 3)
    limit = args.train_limit or (2000 if args.quick else 10_000)
    settle = args.settle if args.settle is not None else (1.0 if args.quick else 5.0)

    tmp = tempfile.TemporaryDirectory(prefix="cnnlab-latency-")
    os.environ["CNNLAB_HOME"] = tmp.name
    env = dict(os.environ)
    from cnnlab.training.config import TrainConfig
    from cnnlab.training.estimate import estimate_cost
    from cnnlab.training.queue import enqueue
    from cnnlab.training.store import RunStore

    store = RunStore()
    log = open(Path(tmp.name) / "worker.log", "w")  # noqa: SIM115 - closed below
    worker = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", "worker"], cwd=ROOT, env=env, stdout=log, stderr=log
    )
    queued: list[dict[str, float | None]] = []
    warm_s = None
    foreground: dict[str, float | None] | None = None
    try:
        wait_for(lambda: store.workers_alive() > 0, 60, "the worker's heartbeat")
        logged = Path(tmp.name) / "worker.log"
        warm = time.monotonic()
        with contextlib.suppress(SystemExit):  # a tree without the warm-up logs no such line
            wait_for(lambda: " warm in " in logged.read_text(), 120, "the warm-up")
        warm_s = round(time.monotonic() - warm, 3)
        time.sleep(settle)
        config = TrainConfig(train_limit=limit)
        estimate_cost(config, measure=False)  # the page's server has torch imported already
        for _ in range(runs):
            start = time.time()
            run_id = enqueue(config, store)
            wait_for(lambda r=run_id: (store.get_run(r) or object()).done, 300, "the run")  # type: ignore[attr-defined]
            queued.append(spans(store, run_id, start))
        if not args.quick:
            start = time.time()
            out = subprocess.run(
                [sys.executable, "-m", "cnnlab", "train", "--train-limit", str(limit), "--json"],
                cwd=ROOT, env=env, capture_output=True, text=True, timeout=300,
            )  # fmt: skip
            if out.returncode == 0:
                foreground = spans(store, json.loads(out.stdout)["run_id"], start)
    finally:
        worker.terminate()
        try:
            worker.wait(10)
        except subprocess.TimeoutExpired:
            worker.kill()
        log.close()
        tmp.cleanup()

    def median(key: str) -> float | None:
        values = [r[key] for r in queued if isinstance(r[key], float)]
        return round(statistics.median(values), 3) if values else None

    result = {
        "first_point_s": median("first_point_s"),
        "results_s": median("results_s"),
        "first_run_first_point_s": queued[0]["first_point_s"] if queued else None,
        "runs": queued,
        "foreground_s": foreground,
        "train_limit": limit,
        "settle_s": settle,
        "warm_up_wait_s": warm_s,
        "goals_s": {"first_point_s": 2.0, "results_s": 3.0},
        "quick": args.quick,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key in ("first_point_s", "results_s", "first_run_first_point_s"):
            print(f"{key}: {result[key]}")
        print(f"foreground: {foreground}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
