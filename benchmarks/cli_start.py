"""Benchmark: how long the CLI takes to answer, as a user feels it (wall seconds per command).

Each command runs as a fresh ``python -m cnnlab …`` subprocess (in a temporary ``CNNLAB_HOME``
holding a few recorded runs, offline), ``--repeat`` times; the figure is the median. Beside the
commands it times a bare ``python -c pass`` and ``python -c "import torch"`` (and torch +
torchvision), so each command can be compared with importing what it needs:

- ``cnnlab --help`` ≤ 0.5 s and ``cnnlab runs list`` ≤ 1 s (neither imports torch);
- every other command ≈ its own work plus importing torch: ``*_over_torch`` is its time minus
  ``import_torch_s``.

    python benchmarks/cli_start.py [--repeat 5] [--json] [--quick]

``--json`` prints ``{"help_s", "runs_list_s", "profile_alexnet_s", "import_torch_s", …}``.
``train_s`` is ``cnnlab train`` on 10,000 digits (one epoch) beside its own ``train_seconds``.
``--quick`` runs ``--help``, ``runs list`` and ``profile alexnet`` once each (a smoke run).
"""

from __future__ import annotations

import argparse
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

SHARED_MNIST = ROOT.parent / "shared" / "data" / "mnist"
HELP_GOAL_S, RUNS_LIST_GOAL_S = 0.5, 1.0
QUICK = ("python_s", "import_torch_s", "help_s", "runs_list_s", "profile_alexnet_s")
TRAIN_LIMIT = 10_000  # `train` on this many digits (1 epoch): wall time vs its train_seconds


def timed(argv: list[str], env: dict[str, str], repeat: int) -> tuple[float, str]:
    """Median wall seconds of ``argv`` over ``repeat`` runs, and the last run's stdout."""
    times, out = [], ""
    for _ in range(repeat):
        start = time.perf_counter()
        done = subprocess.run(argv, cwd=ROOT, env=env, capture_output=True, text=True)
        times.append(time.perf_counter() - start)
        if done.returncode != 0:
            raise SystemExit(f"{' '.join(argv)} failed ({done.returncode}): {done.stderr[-800:]}")
        out = done.stdout
    return statistics.median(times), out


def seed_runs(home: Path, count: int = 5) -> None:
    """A few finished runs in the store, so ``runs list`` has rows to print."""
    from cnnlab.training.store import RunStore  # lazy: after CNNLAB_HOME is set

    store = RunStore(home / "runs.db")
    for i in range(count):
        store.create_run(
            {"model": "small-cnn", "epochs": 1}, name=f"run {i}", model="small-cnn",
            params=409_082, macs=1_420_000,
        )  # fmt: skip


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeat", type=int, default=5, help="runs per command (median)")
    parser.add_argument("--json", action="store_true")
    parser.add_argument(
        "--quick", action="store_true", help="smoke run: once each, only " + ", ".join(QUICK)
    )
    args = parser.parse_args()
    repeat = 1 if args.quick else max(1, args.repeat)

    home = Path(tempfile.mkdtemp(prefix="cnnlab-cli-start-"))
    env = dict(os.environ, CNNLAB_HOME=str(home), CNNLAB_OFFLINE="1")
    if not env.get("CNNLAB_DATA_DIR") and SHARED_MNIST.is_dir():
        env["CNNLAB_DATA_DIR"] = str(SHARED_MNIST)
    os.environ.update(env)
    seed_runs(home)

    py = [sys.executable]
    cli = [sys.executable, "-m", "cnnlab"]
    commands = {
        "python_s": [*py, "-c", "pass"],
        "import_torch_s": [*py, "-c", "import torch"],
        "import_torchvision_s": [*py, "-c", "import torch, torchvision"],
        "help_s": [*cli, "--help"],
        "runs_list_s": [*cli, "runs", "list"],
        "runs_list_json_s": [*cli, "runs", "list", "--json"],
        "data_s": [*cli, "data", "--json"],
        "profile_alexnet_s": [*cli, "profile", "alexnet", "--json"],
        "train_estimate_s": [*cli, "train", "--estimate", "--json"],
    }
    if args.quick:  # the smoke run: one command of each kind
        commands = {k: v for k, v in commands.items() if k in QUICK}
    seconds = {key: timed(argv, env, repeat)[0] for key, argv in commands.items()}
    if not args.quick:
        train_argv = [*cli, "train", "--train-limit", str(TRAIN_LIMIT), "--json"]
        seconds["train_s"], text = timed(train_argv, env, min(repeat, 3))
        seconds["train_train_seconds"] = float(json.loads(text)["train_seconds"])
    for key in ("data_s", "profile_alexnet_s", "train_estimate_s", "train_s"):
        if key in seconds:
            over = seconds[key] - seconds["import_torch_s"]
            seconds[key.removesuffix("_s") + "_over_torch_s"] = over

    out: dict[str, object] = {k: round(v, 3) for k, v in seconds.items()}
    if "train_s" in seconds:
        out["train_limit"] = TRAIN_LIMIT
    out["help_ok"] = seconds["help_s"] <= HELP_GOAL_S
    out["runs_list_ok"] = seconds["runs_list_s"] <= RUNS_LIST_GOAL_S
    out["repeat"] = repeat
    if args.json:
        print(json.dumps(out))
    else:
        for key, value in out.items():
            print(f"{key:<28}{value}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
