"""``cnnlab experiment``: families of runs that test the report's claims, and their verdicts.

``experiment separable --model small-cnn --sizes 1000,10000 --seeds 2``, ``experiment models
--models vgg11,mobilenet_v2 --input-size 32``, ``experiment sweep --option lr --values
1e-3,3e-3``, ``experiment part1`` (the one-click preset); ``experiment list | show ID | stop ID``.
Foreground (default) trains the arms here one by one with a progress bar; ``--background``
queues them for the workers. Bad input exits 2 with one line and queues nothing.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from typing import Any

from cnnlab.errors import UserError
from cnnlab.training.config import DEVICES, INPUT_SIZES, OPTIMIZERS, SCHEDULES, TrainConfig

KIND_HELP = {
    "separable": "regular vs depthwise-separable: the same network in both forms",
    "models": "model selection: two or more zoo models on the same budget",
    "sweep": "one training option over a list of values",
    "part1": "the Part I preset: small-cnn regular vs separable, 1,000/10,000 digits, 2 seeds",
}


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "experiment",
        help="experiments: regular vs separable, model selection, sweeps — with verdicts",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    kinds = p.add_subparsers(dest="action", metavar="ACTION", parser_class=type(p))
    kinds.required = True
    for kind in ("separable", "models", "sweep", "part1"):
        k = kinds.add_parser(kind, help=KIND_HELP[kind], description=KIND_HELP[kind])
        if kind == "separable":
            k.add_argument(
                "--model",
                default="small-cnn",
                help="zoo model (small-cnn, vgg11 at --input-size 32, mobilenet_v2, …; the"
                " separable arm trains it with --separable), or stack with --spec",
            )
            k.add_argument("--spec", metavar="FILE", help="Conv Lab spec JSON (a stack)")
            k.add_argument("--sizes", help="training-set sizes, e.g. 1000,10000")
        elif kind == "models":
            k.add_argument("--models", required=True, help="zoo models, e.g. vgg11,mobilenet_v2")
        elif kind == "sweep":
            k.add_argument("--model", default="small-cnn", help="zoo model (default small-cnn)")
            k.add_argument("--option", required=True, help="lr, batch_size, optimizer, epochs, …")
            k.add_argument("--values", required=True, help="comma-separated, e.g. 1e-3,3e-3")
        if kind != "part1":
            _training_flags(k, seeds=2 if kind == "separable" else 1)
        else:
            k.add_argument("--device", default="auto", help="|".join(DEVICES))
            k.add_argument("--data-dir", metavar="DIR", help="folder with the MNIST IDX files")
        k.add_argument("--background", action="store_true", help="queue the arms for workers")
        k.add_argument("--estimate", action="store_true", help="only print the cost, then exit")
        k.add_argument("--json", action="store_true", help="print one JSON object at the end")
        k.set_defaults(handler=run_kind, kind=kind)
    ls = kinds.add_parser("list", help="experiments, newest first")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=run_list)
    show = kinds.add_parser("show", help="one experiment: arms, verdicts (--markdown, --csv)")
    show.add_argument("experiment_id", metavar="ID")
    out = show.add_mutually_exclusive_group()
    out.add_argument("--json", action="store_true")
    out.add_argument("--markdown", action="store_true")
    out.add_argument("--csv", action="store_true")
    show.set_defaults(handler=run_show)
    stop = kinds.add_parser("stop", help="stop every queued and running arm of an experiment")
    stop.add_argument("experiment_id", metavar="ID")
    stop.set_defaults(handler=run_stop)


def _training_flags(k: argparse.ArgumentParser, *, seeds: int) -> None:
    d = TrainConfig()
    k.add_argument("--seeds", type=int, default=seeds, help="seeds per arm (default %(default)s)")
    k.add_argument("--epochs", type=int, default=d.epochs)
    k.add_argument("--batch-size", type=int, default=d.batch_size)
    k.add_argument("--lr", type=float, default=d.lr, help="(peak) learning rate")
    k.add_argument("--optimizer", default=d.optimizer, help="|".join(OPTIMIZERS))
    k.add_argument("--schedule", default=d.schedule, help="|".join(SCHEDULES))
    k.add_argument(
        "--input-size", type=int, default=d.input_size, help=", ".join(map(str, INPUT_SIZES))
    )
    k.add_argument("--train-limit", type=int, metavar="N", help="train on the first N digits")
    k.add_argument("--device", default=d.device, help="|".join(DEVICES))
    k.add_argument("--data-dir", metavar="DIR", help="folder with the MNIST IDX files")
    k.add_argument("--target", type=float, default=0.97, help="accuracy for 'epochs to target'")
    k.add_argument("--name", default="", help="a name for the experiment")


def _base(args: argparse.Namespace, model: str) -> TrainConfig:
    return TrainConfig(
        model=model,
        input_size=args.input_size,
        epochs=args.epochs,
        batch_size=args.batch_size,
        lr=args.lr,
        optimizer=args.optimizer,
        schedule=args.schedule,
        train_limit=args.train_limit,
        device=args.device,
        data_dir=args.data_dir,
    ).validate()


def make_plan(args: argparse.Namespace) -> Any:
    """The checked plan the flags ask for (UserError: one line, nothing recorded)."""
    # lazy: planning imports the zoo (torch); `cnnlab --help` must not
    from cnnlab.experiments import plan as plans

    if args.kind == "part1":
        return plans.part_one(data_dir=args.data_dir, device=args.device)
    if args.kind == "separable":
        spec = None
        if args.spec:
            if args.model not in ("small-cnn", "stack"):
                raise UserError("--spec gives the network itself: leave out --model")
            # lazy: the spec reader only for --spec
            from cnnlab.counting.spec import load

            spec = load(args.spec).to_dict()
        model = "stack" if spec is not None else args.model
        if model == "stack" and spec is None:
            raise UserError("--model stack needs --spec FILE")
        base = _base(args, "small-cnn" if model == "stack" else model)
        return plans.plan_separable(
            base.with_(model=model, spec=spec), spec=spec, sizes=plans.parse_sizes(args.sizes),
            seeds=args.seeds, name=args.name, target=args.target,
        )  # fmt: skip
    if args.kind == "models":
        models = plans.parse_list(args.models, "models")
        base = _base(args, models[0])
        return plans.plan_models(base, models, seeds=args.seeds, name=args.name, target=args.target)
    base = _base(args, args.model)
    return plans.plan_sweep(
        base, args.option, args.values, seeds=args.seeds, name=args.name, target=args.target
    )


def run_kind(args: argparse.Namespace) -> int:
    # lazy: the experiment engine (torch) only when an experiment is planned
    from cnnlab.experiments.cost import estimate_plan
    from cnnlab.training.store import RunStore

    plan = make_plan(args)
    store = RunStore()
    store.require_writable()
    cost = estimate_plan(plan, measure=True)
    if args.estimate:
        if args.json:
            print(json.dumps({"runs": len(plan.arms), "total_seconds": round(cost.total_seconds,
                              1), "device": cost.device, "refusal": cost.refusal}))  # fmt: skip
        else:
            print(f"{plan.name}: {cost.text}")
            if cost.refusal:
                print(f"refused: {cost.refusal}")
        return 2 if cost.refusal else 0
    cost.raise_if_refused()
    if args.background:
        # lazy: the queue (huey) only for --background
        from cnnlab.experiments.launch import queue_plan

        experiment_id, run_ids = queue_plan(store, plan, None, cost.run_seconds)
        if args.json:
            print(json.dumps({"experiment_id": experiment_id, "kind": plan.kind,
                              "run_ids": run_ids, "status": "queued"}))  # fmt: skip
        else:
            print(experiment_id)
            sys.stderr.write(f"{len(run_ids)} runs queued: {cost.text}\n")
        if store.workers_alive() == 0:
            sys.stderr.write(
                "note: no worker is running; start one with `python -m cnnlab worker`\n"
            )
        return 0
    return _foreground(store, plan, cost, args.json)


def _foreground(store: Any, plan: Any, cost: Any, as_json: bool) -> int:
    # lazy: tqdm and the training engine only for a foreground experiment
    from tqdm import tqdm

    # lazy, as above: loaded only when this function runs
    from cnnlab.experiments.foreground import run_arms
    from cnnlab.experiments.launch import record

    experiment_id = record(store, plan, None, cost.run_seconds)
    sys.stderr.write(f"experiment {experiment_id}: {cost.text}\n")
    bar: Any = None
    total = len(plan.arms)

    def on_arm(index: int, arm: Any, run_id: str) -> None:
        nonlocal bar
        if bar is not None:
            bar.close()
            bar = None
        sys.stderr.write(f"[{index + 1}/{total}] {arm.label} · seed {arm.seed} (run {run_id})\n")

    def progress(p: Any) -> None:
        nonlocal bar
        if bar is None:
            bar = tqdm(total=p.total_steps, file=sys.stderr, unit="step", dynamic_ncols=True)
        bar.update(p.step - bar.n)
        postfix = {"loss": f"{p.loss:.3f}", "img/s": f"{p.images_per_second:,.0f}"}
        if p.test_accuracy is not None:
            postfix["test"] = f"{p.test_accuracy:.4f}"
        bar.set_postfix(postfix, refresh=False)

    def abandon() -> None:
        """A stop landed mid-step: the experiment was stopped; end here."""
        sys.stderr.write(f"experiment {experiment_id}: stopped\n")
        sys.stderr.flush()
        os._exit(1)

    try:
        run_arms(store, plan, experiment_id, on_arm=on_arm, on_progress=progress,
                 on_abandon=abandon)  # fmt: skip
    finally:
        if bar is not None:
            bar.close()
    return _print_experiment(store, experiment_id, "json" if as_json else "text")


def _print_experiment(store: Any, experiment_id: str, form: str) -> int:
    # lazy: results and verdicts read the store and the measuring code (torch)
    from cnnlab.experiments import export
    from cnnlab.experiments.launch import require_experiment
    from cnnlab.experiments.measure import measure_runs
    from cnnlab.experiments.results import gather
    from cnnlab.experiments.verdicts import claims_for

    require_experiment(store, experiment_id)
    experiment = store.get_experiment(experiment_id)
    results = gather(store, experiment)
    if results.needs_measuring and not store.read_only:
        measure_runs(store, list(results.needs_measuring))
        results = gather(store, experiment)
    claims = claims_for(results)
    if form == "json":
        print(json.dumps(export.experiment_json(results, claims)))
    elif form == "csv":
        sys.stdout.write(export.to_csv(results))
    else:
        sys.stdout.write(export.to_markdown(results, claims))
    return 1 if results.failed and results.complete and form == "text" else 0


def run_show(args: argparse.Namespace) -> int:
    # lazy: the store only when asked
    from cnnlab.training.store import RunStore

    form = "json" if args.json else "csv" if args.csv else "text"
    _print_experiment(RunStore(), _experiment_id(args.experiment_id), form)
    return 0


def _experiment_id(text: str) -> str:
    if not text or len(text) > 40 or not all(c.isalnum() for c in text):
        raise UserError(f"not an experiment id: {text[:40]!r} (see `cnnlab experiment list`)")
    return text


def run_stop(args: argparse.Namespace) -> int:
    # lazy: the store only when asked
    from cnnlab.experiments.launch import stop_experiment
    from cnnlab.training.store import RunStore

    store = RunStore()
    store.require_writable()
    stopped = stop_experiment(store, _experiment_id(args.experiment_id))
    print(f"experiment {args.experiment_id}: stop requested ({stopped} active run(s) stopped)")
    return 0


def run_list(args: argparse.Namespace) -> int:
    # lazy: the store and results only when asked
    from cnnlab.experiments.results import gather
    from cnnlab.training.store import RunStore

    store = RunStore()
    rows = []
    for experiment in store.list_experiments():
        results = gather(store, experiment)
        rows.append(
            {
                "experiment_id": experiment.id,
                "kind": experiment.kind,
                "name": experiment.name,
                "done": results.done,
                "total": results.total,
                "failed": results.failed,
                "created": experiment.created,
            }
        )
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("no experiments yet (start one with `python -m cnnlab experiment part1`)")
    for row in rows:
        print(
            f"{row['experiment_id']}  {row['kind']:<9}  {row['done']}/{row['total']} done"
            f"{'  ' + str(row['failed']) + ' failed' if row['failed'] else ''}  {row['name']}"
        )
    return 0
