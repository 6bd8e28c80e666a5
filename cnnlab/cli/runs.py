"""``cnnlab runs``: list, show, stop, rename, trash, restore and delete training runs."""

from __future__ import annotations

import argparse
import json
from typing import TYPE_CHECKING, Any

from cnnlab.format import duration_text, eta_text, fmt_int, percent, timestamp_text
from cnnlab.training.names import (
    ACCURACY,
    CHECKPOINT,
    CONFUSION_MATRIX,
    ETA_SECONDS,
    F1,
    IMAGES_PER_SECOND,
    PER_CLASS,
    PRECISION,
    PROGRESS,
    QUEUED,
    RECALL,
    RUNNING,
    TEST_LOSS,
    TRAIN_SECONDS,
    TRASH_KEEP_S,
)

if TYPE_CHECKING:
    from cnnlab.training.store import Run, RunStore

SUMMARY_KEYS = (ACCURACY, PRECISION, RECALL, F1, TEST_LOSS, TRAIN_SECONDS)
TRASH_DAYS = f"{TRASH_KEEP_S / 86_400:.0f} days"


def _store() -> RunStore:
    from cnnlab.training.store import RunStore  # SQLAlchemy: not imported for `cnnlab --help`

    return RunStore()


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("runs", help="list, show, stop, rename, trash, restore or delete runs")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    ls = actions.add_parser("list", help="all runs, newest first")
    ls.add_argument("--json", action="store_true")
    ls.add_argument("--trash", action="store_true", help="list the runs in the trash instead")
    ls.set_defaults(handler=list_runs)

    show = actions.add_parser("show", help="one run: config, status, final metrics")
    show.add_argument("run_id", metavar="ID")
    show.add_argument("--json", action="store_true")
    show.set_defaults(handler=show_run)

    stop = actions.add_parser("stop", help="stop a running run (≤ 2 s) or cancel a queued one")
    stop.add_argument("run_id", metavar="ID")
    stop.set_defaults(handler=stop_run)

    trash = actions.add_parser(
        "trash", help=f"move a run to the trash (restorable for {TRASH_DAYS}, as on the Runs page)"
    )
    trash.add_argument("run_id", metavar="ID")
    trash.set_defaults(handler=trash_run)

    restore = actions.add_parser("restore", help="take a run out of the trash")
    restore.add_argument("run_id", metavar="ID")
    restore.set_defaults(handler=restore_run)

    delete = actions.add_parser(
        "delete", help="delete a run with its metrics and files, for good (no trash)"
    )
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
        "deleted_at": run.deleted_at,
        "metrics": {k: final[k] for k in SUMMARY_KEYS if k in final},
        "progress": final.get(PROGRESS),
        "config": run.config,
    }


def list_runs(args: argparse.Namespace) -> int:
    store = _store()
    store.reap_orphans()
    runs = store.list_trash() if args.trash else store.list_runs()
    rows = [run_dict(run, store.final_metrics(run.id)) for run in runs]
    if args.json:
        print(json.dumps(rows))
        return 0
    if not rows:
        if args.trash:
            print(f"the trash is empty (deleted runs stay there {TRASH_DAYS})")
        else:
            print("no runs yet: try `python -m cnnlab train --model small-cnn`")
        return 0
    when = ("DELETED", "deleted_at") if args.trash else ("CREATED", "created")
    header = ("ID", "NAME", "MODEL", "STATUS", "PARAMS", "MACs", "ACC", "F1", "TIME", when[0])
    table = [header]
    for r in rows:
        m = r["metrics"]
        table.append(
            (
                r["id"],
                _clip(r["name"], 24),
                r["model"],
                r["status"],
                fmt_int(r["params"]),
                fmt_int(r["macs"]),
                percent(m.get(ACCURACY)),
                percent(m.get(F1)),
                duration_text(r["duration"]),
                timestamp_text(r[when[1]]),
            )
        )
    widths = [max(len(str(row[i])) for row in table) for i in range(len(header))]
    for row in table:
        print("  ".join(str(cell).ljust(w) for cell, w in zip(row, widths, strict=True)).rstrip())
    return 0


def show_run(args: argparse.Namespace) -> int:
    store = _store()
    store.reap_orphans()
    run = store.require_run(args.run_id)
    data = run_dict(run, store.final_metrics(run.id))
    matrix = store.get_artifact(run.id, CONFUSION_MATRIX)
    per_class = store.get_artifact(run.id, PER_CLASS)
    checkpoint = store.get_artifact(run.id, CHECKPOINT)
    data["confusion_matrix"] = matrix.data if matrix else None
    data["per_class"] = per_class.data if per_class else None
    data["checkpoint"] = str(checkpoint.path) if checkpoint and checkpoint.path else None
    if args.json:
        print(json.dumps(data))
        return 0
    print(f"run {run.id}  {run.name}")
    print(f"  model     {run.model} (params {fmt_int(run.params)}, MACs/image {fmt_int(run.macs)})")
    status = run.status + (f": {run.error}" if run.error else "")
    print(f"  status    {status}")
    print(f"  device    {run.device or '—'}   created {timestamp_text(run.created)}")
    print(f"  duration  {duration_text(run.duration)}")
    latest = store.final_metrics(run.id)
    if run.status == RUNNING and PROGRESS in latest:
        speed = fmt_int(round(latest.get(IMAGES_PER_SECOND, 0)))
        print(
            f"  progress  {percent(latest[PROGRESS], 0)}, {eta_text(latest.get(ETA_SECONDS, 0))}"
            f" left, {speed} images/s"
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
    store = _store()
    run = store.require_run(args.run_id)
    if store.request_stop(run.id):
        what = "cancelled" if run.status == QUEUED else "stop requested (lands within 2 s)"
        print(f"run {run.id}: {what}")
    else:
        print(f"run {run.id} is already {run.status}")
    return 0


def trash_run(args: argparse.Namespace) -> int:
    store = _store()
    store.reap_orphans()
    run = store.trash_run(args.run_id)
    print(
        f"run {run.id} ({run.name}) moved to the trash for {TRASH_DAYS}:"
        f" `python -m cnnlab runs restore {run.id}` brings it back"
    )
    return 0


def restore_run(args: argparse.Namespace) -> int:
    run = _store().restore_run(args.run_id)
    print(f"run {run.id} ({run.name}) restored")
    return 0


def delete_run(args: argparse.Namespace) -> int:
    store = _store()
    store.reap_orphans()
    store.delete_run(args.run_id)
    print(f"run {args.run_id} deleted")
    return 0


def rename_run(args: argparse.Namespace) -> int:
    store = _store()
    store.rename(args.run_id, args.name)
    print(f"run {args.run_id} renamed to {args.name.strip()!r}")
    return 0


def _clip(text: str, n: int) -> str:
    return text if len(text) <= n else text[: n - 1] + "…"
