"""``cnnlab worker``: run queued trainings in background worker processes."""

from __future__ import annotations

import argparse
import logging


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "worker",
        help="run queued trainings (Huey consumer with process workers)",
        description="Run queued trainings until Ctrl-C or SIGTERM. Runs interrupted by a "
        "shutdown or a crash are marked `interrupted`. On several machines: set the same "
        "CNNLAB_STORE_URL (postgresql+psycopg://…) and CNNLAB_QUEUE_URL (redis://…) on each; "
        "CNNLAB_HOST_NAME names this machine in the store (default: its host name).",
    )
    p.add_argument(
        "--workers",
        type=int,
        default=None,
        help="worker processes (default: CNNLAB_WORKERS or 1)",
    )
    p.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cnnlab.training.queue import run_consumer  # huey and the store: not for --help

    logging.basicConfig(
        level=logging.INFO, format="%(asctime)s %(name)s %(levelname)s: %(message)s"
    )
    run_consumer(args.workers)
    return 0
