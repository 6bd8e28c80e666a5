"""Benchmark: wall seconds for cnnlab's engine to first reach a test accuracy on full MNIST.

Runs :func:`cnnlab.training.loop.train` (the engine of ``cnnlab train`` and the pages, recording
into a temporary run store) and watches its progress callback: the clock starts when ``train``
is called (so it includes loading MNIST and building the model) and stops at the first test
evaluation (end of an epoch) at or above ``--target``.

    python benchmarks/time_to_accuracy.py [--target 0.99] [--device cpu|cuda]
        [--model small-cnn] [--epochs 2] [--lr 5e-3] [--batch-size 128] [--json] [--quick]

``--json`` prints ``{"seconds", "accuracy", "epochs"}`` (plus the settings; ``seconds`` is null
when the target was not reached, and the exit code is 1). Goal on a 2-core CPU: small-cnn to
99.0 % in ≤ 45 s. ``--quick`` is a smoke run on 2,000 digits with a target of 0.5.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnlab import devices
from cnnlab.training import loop
from cnnlab.training.config import TrainConfig
from cnnlab.training.store import RunStore

SHARED_MNIST = Path(__file__).resolve().parents[2] / "shared" / "data" / "mnist"

# The recipe small-cnn was designed with: Adam, one-cycle schedule peaking at 5e-3, batch 128.
DEFAULTS = {"model": "small-cnn", "epochs": 2, "lr": 5e-3, "batch_size": 128}


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--target", type=float, default=0.99)
    parser.add_argument("--device", default="auto")
    parser.add_argument("--model", default=DEFAULTS["model"])
    parser.add_argument("--input-size", type=int, default=28)
    parser.add_argument("--epochs", type=int, default=DEFAULTS["epochs"])
    parser.add_argument("--lr", type=float, default=DEFAULTS["lr"])
    parser.add_argument("--batch-size", type=int, default=DEFAULTS["batch_size"])
    parser.add_argument("--optimizer", default="adam")
    parser.add_argument("--schedule", default="onecycle")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--train-limit", type=int)
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: 2,000 digits, target 0.5")
    args = parser.parse_args()
    if args.quick:
        args.train_limit, args.target, args.epochs = 2000, 0.5, 1
    if not os.environ.get("CNNLAB_DATA_DIR") and SHARED_MNIST.is_dir():
        os.environ["CNNLAB_DATA_DIR"] = str(SHARED_MNIST)
    home = Path(tempfile.mkdtemp(prefix="cnnlab-tta-"))
    os.environ["CNNLAB_HOME"] = str(home)

    config = TrainConfig(
        model=args.model,
        input_size=args.input_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        schedule=args.schedule,
        seed=args.seed,
        train_limit=args.train_limit,
        device=args.device,
        name="time to accuracy",
    ).check_model()
    store = RunStore(home / "runs.db")
    run_id = store.create_run(
        config.to_dict(), name=config.name, model=config.model, params=None, macs=None
    )

    evaluations: list[tuple[float, float, float]] = []  # (seconds, epoch, test accuracy)
    start = time.perf_counter()

    def progress(p: loop.Progress) -> None:
        if p.test_accuracy is not None:
            evaluations.append((time.perf_counter() - start, p.epoch, p.test_accuracy))

    result = loop.train(config, store, run_id, on_progress=progress)
    total = time.perf_counter() - start
    if result.status != "finished":
        raise SystemExit(f"run {result.status}: {result.error}")
    reached = next((e for e in evaluations if e[2] >= args.target), None)
    out = {
        "seconds": round(reached[0], 2) if reached else None,
        "accuracy": round(reached[2] if reached else evaluations[-1][2], 4),
        "epochs": reached[1] if reached else None,
        "target": args.target,
        "reached": reached is not None,
        "final_accuracy": round(result.metrics["accuracy"], 4),
        "total_seconds": round(total, 2),
        "train_seconds": round(result.train_seconds, 2),
        "images_per_second": round(result.images_per_second, 1),
        "per_epoch": [
            {"seconds": round(s, 2), "epoch": e, "accuracy": round(a, 4)} for s, e, a in evaluations
        ],
        "config": {k: v for k, v in config.to_dict().items() if v is not None},
        "device": str(devices.resolve_device(config.device)),
    }
    if args.json:
        print(json.dumps(out))
    elif reached:
        print(
            f"{config.model}: {100 * reached[2]:.2f} % test accuracy after {reached[1]:g}"
            f" epoch(s), {reached[0]:.1f} s (target {100 * args.target:.1f} %)"
        )
    else:
        print(
            f"{config.model}: target {100 * args.target:.1f} % not reached in {args.epochs}"
            f" epoch(s) ({100 * evaluations[-1][2]:.2f} % after {total:.1f} s)"
        )
    return 0 if reached else 1


if __name__ == "__main__":
    raise SystemExit(main())
