"""``cnnlab doctor``: which run store and training queue this machine uses, and whether they
answer — one line each (store, queue, workers per host, queue length) on stdout; when one does
not, the first failure is also the usual ``cnnlab: error: …`` line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, dataclass, field

from cnnlab.errors import UserError

WORKER_MAX_AGE_S = 10.0


@dataclass(frozen=True)
class Check:
    """One line of the report: what was checked, whether it answered, and what it said."""

    name: str
    ok: bool
    text: str
    detail: dict[str, object] = field(default_factory=dict)


def checks() -> list[Check]:
    """Store, queue, workers per host and queue length, in that order (nothing is written
    except the store's schema on first use)."""
    from cnnlab.training import queue  # lazy: the store and Huey, not for `cnnlab --help`
    from cnnlab.training.store import RunStore, this_host  # lazy: SQLAlchemy, as above

    found: list[Check] = []
    store = None
    try:
        store = RunStore()
        kind = "PostgreSQL" if store.shared else "SQLite"
        runs = len(store.list_runs())
        found.append(
            Check("store", True, f"{kind} {store.location}: reachable, {runs} runs",
                  {"kind": kind.lower(), "location": store.location, "runs": runs})
        )  # fmt: skip
    except UserError as err:
        found.append(Check("store", False, str(err)))
    huey = None
    try:
        location = queue.queue_location()
        huey = queue.get_huey()
        kind = "Redis" if queue.queue_url() else "SQLite"
        found.append(
            Check("queue", True, f"{kind} {location}: reachable",
                  {"kind": kind.lower(), "location": location})
        )  # fmt: skip
    except UserError as err:
        found.append(Check("queue", False, str(err)))
    if store is not None:
        try:
            hosts = store.workers_by_host(WORKER_MAX_AGE_S)
            listed = ", ".join(f"{host} {n}" for host, n in hosts.items())
            text = (
                f"alive per host (this is {this_host()}): {listed}"
                if hosts
                else "none alive: queued runs wait (start `python -m cnnlab worker`)"
            )
            found.append(Check("workers", True, text, {"hosts": hosts, "this_host": this_host()}))
        except UserError as err:
            found.append(Check("workers", False, str(err)))
    if huey is not None:
        try:
            waiting = int(huey.pending_count())
            found.append(Check("queue length", True, f"{waiting} waiting", {"waiting": waiting}))
        except Exception as err:  # Redis or SQLite trouble after the first answer
            found.append(Check("queue length", False, f"cannot count the queue: {err}"))
    try:
        queue.check_shared_setup()
    except UserError as err:
        found.append(Check("setup", False, str(err)))
    return found


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "doctor",
        help="which store and queue are in use, and whether they answer",
        description="One line each: the run store, the training queue, workers alive per "
        "host, the queue's length. Exit 2 when something does not answer.",
    )
    p.add_argument("--json", action="store_true", help="print the checks as JSON")
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    found = checks()
    if args.json:
        print(json.dumps([asdict(c) for c in found], indent=2))
    else:
        width = max(len(c.name) for c in found)
        for c in found:
            print(f"{c.name + ':':<{width + 1}} {'ok  ' if c.ok else 'FAIL'} {c.text}")
    failed = [c for c in found if not c.ok]
    if failed:  # the report on stdout; the first failure as the usual one error line
        raise UserError(f"{failed[0].name}: {failed[0].text}")
    return 0
