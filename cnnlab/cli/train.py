"""``cnnlab train``: train a CNN on MNIST in the foreground (progress bar) or queue it."""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import TYPE_CHECKING, Any

from cnnlab.errors import UserError
from cnnlab.training.config import DEVICES, INPUT_SIZES, OPTIMIZERS, SCHEDULES, TrainConfig
from cnnlab.training.names import FINISHED, QUEUED, STOPPED
from cnnlab.training.watcher import STOPPED_MID_STEP_TEXT

if TYPE_CHECKING:
    from cnnlab.training.store import RunStore

MEASURE_ABOVE_S = 120  # a foreground run guessed longer than this is timed before it starts


def register(sub: argparse._SubParsersAction) -> None:
    defaults = TrainConfig()
    p = sub.add_parser(
        "train",
        help="train a CNN on MNIST (foreground with a progress bar, or --background)",
        description="Train a CNN from scratch on MNIST and record the run in the run store "
        "(the dashboard's Runs page shows it).",
    )
    p.add_argument("--model", default=defaults.model, help="zoo model (default %(default)s)")
    p.add_argument("--spec", metavar="FILE", help="Conv Lab spec JSON (with --model stack)")
    p.add_argument(
        "--separable",
        action="store_true",
        help="make every conv with kernel > 1 and groups = 1 depthwise-separable (zoo models;"
        " a --spec sets it per layer)",
    )
    p.add_argument("--epochs", type=int, default=defaults.epochs)
    p.add_argument("--batch-size", type=int, default=defaults.batch_size)
    p.add_argument("--lr", type=float, default=defaults.lr, help="(peak) learning rate")
    p.add_argument("--optimizer", default=defaults.optimizer, help="|".join(OPTIMIZERS))
    p.add_argument("--momentum", type=float, default=defaults.momentum, help="SGD momentum")
    p.add_argument("--weight-decay", type=float, default=defaults.weight_decay)
    p.add_argument("--schedule", default=defaults.schedule, help="|".join(SCHEDULES))
    p.add_argument(
        "--input-size",
        type=int,
        default=defaults.input_size,
        help="resize digits to S×S: " + ", ".join(map(str, INPUT_SIZES)),
    )
    p.add_argument("--train-limit", type=int, metavar="N", help="train on the first N images")
    p.add_argument("--device", default=defaults.device, help="|".join(DEVICES))
    p.add_argument("--data-dir", metavar="DIR", help="folder with the MNIST IDX files")
    p.add_argument("--seed", type=int, default=defaults.seed)
    p.add_argument("--name", help="a name for the run")
    p.add_argument("--json", action="store_true", help="print one JSON object at the end")
    p.add_argument(
        "--background", action="store_true", help="queue the run for a worker; print its id"
    )
    p.add_argument(
        "--estimate",
        action="store_true",
        help="only print the cost estimate (params, MACs, FLOPs, memory, time) and exit",
    )
    p.set_defaults(handler=run)


def config_from_args(args: argparse.Namespace) -> TrainConfig:
    spec = None
    if args.spec:
        if args.model != "stack":
            raise UserError("--spec goes with --model stack")
        from cnnlab.counting.spec import load  # lazy: only for --spec (keeps --help light)

        spec = load(args.spec).to_dict()
    config = TrainConfig(
        model=args.model,
        input_size=args.input_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        weight_decay=args.weight_decay,
        momentum=args.momentum,
        schedule=args.schedule,
        train_limit=args.train_limit,
        seed=args.seed,
        device=args.device,
        name=args.name,
        spec=spec,
        data_dir=args.data_dir,
        separable=args.separable,
    )
    return config.check_model()


def run(args: argparse.Namespace) -> int:
    config = config_from_args(args)
    from cnnlab.training.store import RunStore  # SQLAlchemy: not imported for `cnnlab --help`

    store = RunStore()
    store.require_writable()  # a read-only store: say so before estimating anything
    if args.background:
        return _background(config, store, args.json)

    # lazy: torch only here, not for --help or --background
    from cnnlab.training.estimate import estimate_cost

    # A foreground run's bar shows its own ETA at once: time a warm-up only for --estimate
    # or when a FLOP-rate guess says the run is long (its warning must be right before launch).
    cost = estimate_cost(config, measure=args.estimate)
    if not args.estimate and cost.eta_seconds > MEASURE_ABOVE_S:
        cost = estimate_cost(config)
    if args.estimate:
        if args.json:
            print(json.dumps(cost.to_dict()))
        else:
            _print_estimate(cost, sys.stdout)
        return 0 if cost.fits else 2
    cost.raise_if_unfit()
    # lazy: the loop brings scikit-learn (evaluation) and tqdm: not needed for --estimate
    from tqdm import tqdm

    from cnnlab.training import loop  # lazy: torch + scikit-learn, for a real run only

    _print_estimate(cost, sys.stderr)
    store.reap_orphans()
    run_id = cost.record(store, config)
    sys.stderr.write(f"run {run_id} ({config.model}) recorded in {store.location}\n")

    bar: Any = None

    def progress(p: loop.Progress) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=p.total_steps, file=sys.stderr, unit="step", dynamic_ncols=True)
        bar.update(p.step - bar.n)
        postfix = {"loss": f"{p.loss:.3f}", "acc": f"{p.accuracy:.3f}"}
        postfix["img/s"] = f"{p.images_per_second:,.0f}"
        if p.test_accuracy is not None:
            postfix["test"] = f"{p.test_accuracy:.4f}"
        bar.set_postfix(postfix, refresh=False)

    def abandon() -> None:
        """A stop landed mid-step (the watcher recorded it): report it and exit at once."""
        if bar is not None:
            bar.close()
        _report(loop.TrainResult(run_id, STOPPED, error=STOPPED_MID_STEP_TEXT), args.json)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(1)  # the step under way may take many seconds more; nothing is left to save

    try:
        result = loop.train(config, store, run_id, on_progress=progress, on_abandon=abandon)
    finally:
        if bar is not None:
            bar.close()
    return _report(result, args.json)


def _report(result: Any, as_json: bool) -> int:
    """Print how a foreground run ended; 0 when it finished, else 1."""
    run_id = result.run_id
    if as_json:
        print(json.dumps(result.to_json()))
    elif result.status == FINISHED:
        m = result.metrics
        print(
            f"run {run_id}: accuracy {m['accuracy']:.4f}  precision {m['precision']:.4f}"
            f"  recall {m['recall']:.4f}  F1 {m['f1']:.4f}"
        )
        print(f"trained in {result.train_seconds:.1f} s ({result.images_per_second:,.0f} images/s)")
    if result.status != FINISHED:
        sys.stderr.write(f"run {run_id}: {result.status}: {result.error or ''}\n")
        return 1
    return 0


def _background(config: TrainConfig, store: RunStore, as_json: bool) -> int:
    from cnnlab.training.queue import enqueue  # huey: only for --background

    run_id = enqueue(config, store)
    if as_json:
        print(json.dumps({"run_id": run_id, "status": QUEUED}))
    else:
        print(run_id)
    if store.workers_alive() == 0:
        sys.stderr.write(
            "note: no worker is running; start one with `python -m cnnlab worker` (or `make run`)\n"
        )
    return 0


def _print_estimate(estimate: Any, out: Any) -> None:
    lines = [
        f"params {estimate.params:,}; {estimate.macs_per_image:,} MACs per image;"
        f" {estimate.train_flops:,} training FLOPs over {estimate.images:,} images",
        f"memory about {estimate.memory_bytes / 1e9:.2f} GB of"
        f" {estimate.available_bytes / 1e9:.1f} GB available on {estimate.device}",
        f"estimated time: {estimate.eta_text} on {estimate.device}"
        + ("" if estimate.measured_images_per_second else " (a guess from FLOPs)"),
    ]
    if estimate.warning:
        lines.append(f"warning: {estimate.warning}")
    if estimate.refusal:
        lines.append(f"refused: {estimate.refusal}")
    out.write("".join(line + "\n" for line in lines))
