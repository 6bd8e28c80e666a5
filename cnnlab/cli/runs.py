"""``cnnlab runs``: list, show, stop, delete and rename training runs."""

from __future__ import annotations

import argparse
import datetime as dt
import json
from typing import Any

from cnnlab.training.store import Run, RunStore

SUMMARY_KEYS = ("accuracy", "precision", "recall", "f1", "test_loss", "train_seconds")


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list, show, stop, delete or rename training runs")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = actions.add_parser("list", help="all runs, newest first")
    ls.add_argument("--json", action="store_true")
    ls.set_defaults(handler=list_runs)

    show = actions.add_parser("show", help="one run: config, status, final metrics")
    show.add_argument("run_id", metavar="ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=show_run)

    stop = actions.add_parser("stop", help="stop a running run (≤ 2 s) or cancel a queued one")
    stop.add_argument("run_id", metavar="ID")
    stop.set_defaults(handler=stop_run)

    delete = actions.add_parser("delete", help="delete a run with its metrics and files")
    delete.add_argument("run_id", metavar="ID")
    delete.set_defaults(handler=delete_run)

    rename = actions.add_parser("rename", help="give a run a new name")
    rename.add_argument("run_id", metavar="ID")
    rename.add_argument("name", metavar="NAME")
    rename.set_defaults(handler=rename_run)


def run_dict(run: Run, final: dict[str, float]) -> dict[str, Any]:
    return {
        "id": run.id,
        "name": run.name,
        "model": run.model,
        "status": run.status,
        "error": run.error,
        "device": run.device,
        "params": run.params,
        "macs": run.macs,
        "created": run.created,
        "started": run.started,
        "ended": run.ended,
        "duration": run.duration,
        "metrics": {k: final[k] for k in SUMMARY_KEYS if k in final},
        "progress": final.get("progress"),
        "config": run.config,
    }


def list_runs(args: argparse.Namespace) -> int:
    store = RunStore()
    store.reap_orphans()
    runs = store.list_runs()
    rows = [run_dict(run, store.final_metrics(run.id)) for run in runs]
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        print("no runs yet: try `python -m cnnlab train --model small-cnn`")
        return 0
    header = ("ID", "NAME", "MODEL", "STATUS", "PARAMS", "MACs", "ACC", "F1", "TIME", "CREATED")
    table = [header]
    for r in rows:
        m = r["metrics"]
        table.append(
            (
                r["id"],
                _clip(r["name"], 24),
                r["model"],
                r["status"],
                _int(r["params"]),
                _int(r["macs"]),
                _pct(m.get("accuracy")),
                _num(m.get("f1")),
                _secs(r["duration"]),
                _when(r["created"]),
            )
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def show_run(args: argparse.Namespace) -> int:
    store = RunStore()
    store.reap_orphans()
    run = store.require_run(args.run_id)
    data = run_dict(run, store.final_metrics(run.id))
    matrix = store.get_artifact(run.id, "confusion_matrix")
    per_class = store.get_artifact(run.id, "per_class")
    checkpoint = store.get_artifact(run.id, "checkpoint")
    data["confusion_matrix"] = matrix.data if matrix else None
    data["per_class"] = per_class.data if per_class else None
    data["checkpoint"] = str(checkpoint.path) if checkpoint and checkpoint.path else None
    if args.json:
        print(json.dumps(data))
        return 0
    print(f"run {run.id}  {run.name}")
    print(f"  model     {run.model} (params {_int(run.params)}, MACs/image {_int(run.macs)})")
    status = run.status + (f": {run.error}" if run.error else "")
    print(f"  status    {status}")
    print(f"  device    {run.device or '-'}   created {_when(run.created)}")
    print(f"  duration  {_secs(run.duration)}")
    latest = store.final_metrics(run.id)
    if run.status == "running" and "progress" in latest:
        print(
            f"  progress  {100 * latest['progress']:.0f} %, about"
            f" {latest.get('eta_seconds', 0):.0f} s left,"
            f" {latest.get('images_per_second', 0):,.0f} images/s"
        )
    cfg = run.config
    print(
        "  config    "
        + ", ".join(
            f"{k}={cfg[k]}" for k in cfg if k not in ("spec", "name") and cfg[k] is not None
        )
    )
    for key, value in data["metrics"].items():
        print(f"  {key:<14}{value:.4f}")
    if data["confusion_matrix"]:
        print("  confusion matrix (rows: true digit, columns: predicted)")
        for digit, row in enumerate(data["confusion_matrix"]):
            print(f"    {digit}: " + " ".join(f"{v:5d}" for v in row))
    if data["checkpoint"]:
        print(f"  checkpoint {data['checkpoint']}")
    return 0


def stop_run(args: argparse.Namespace) -> int:
    store = RunStore()
    run = store.require_run(args.run_id)
    if store.request_stop(run.id):
        what = "cancelled" if run.status == "queued" else "stop requested (lands within 2 s)"
        print(f"run {run.id}: {what}")
    else:
        print(f"run {run.id} is already {run.status}")
    return 0


def delete_run(args: argparse.Namespace) -> int:
    store = RunStore()
    store.reap_orphans()
    store.delete_run(args.run_id)
    print(f"run {args.run_id} deleted")
    return 0


def rename_run(args: argparse.Namespace) -> int:
    store = RunStore()
    store.rename(args.run_id, args.name)
    print(f"run {args.run_id} renamed to {args.name.strip()!r}")
    return 0


def _int(value: int | None) -> str:
    return "-" if value is None else f"{value:,}"


def _pct(value: float | None) -> str:
    return "-" if value is None else f"{100 * value:.2f}%"


def _num(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def _secs(value: float | None) -> str:
    return "-" if value is None else f"{value:.1f} s"


def _when(ts: float | None) -> str:
    return "-" if ts is None else dt.datetime.fromtimestamp(ts).strftime("%Y-%m-%d %H:%M:%S")


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
