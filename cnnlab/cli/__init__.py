"""``python -m cnnlab``: argparse subcommands, each a thin call into the package.

Each subcommand lives in its own module with ``register(subparsers)``; the handler it sets
(``parser.set_defaults(handler=...)``) takes the parsed args and returns an exit code.
Bad input raises :class:`cnnlab.errors.UserError` and becomes one line on stderr, exit 2.
"""

from __future__ import annotations

import argparse
import importlib
import sys
from collections.abc import Sequence

from cnnlab.errors import UserError

SUBCOMMAND_MODULES = (
    "data", "profile", "train", "runs", "features", "worker", "teacher", "experiment",
    "doctor",
)  # fmt: skip


class OneLineParser(argparse.ArgumentParser):
    """An ArgumentParser whose errors are one line and exit code 2."""

    def error(self, message: str) -> None:  # type: ignore[override]
        sys.stderr.write(f"{self.prog}: error: {message}\n")
        raise SystemExit(2)


def build_parser() -> argparse.ArgumentParser:
    parser = OneLineParser(
        prog="cnnlab",
        description="cnnlab: count, compare and train convolutional networks on MNIST.",
    )
    sub = parser.add_subparsers(dest="command", metavar="COMMAND", parser_class=OneLineParser)
    for name in SUBCOMMAND_MODULES:
        importlib.import_module(f"cnnlab.cli.{name}").register(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    parser = build_parser()
    args = parser.parse_args(argv)
    handler = getattr(args, "handler", None)
    if handler is None:
        parser.print_help()
        return 0
    try:
        return int(handler(args) or 0)
    except UserError as err:
        sys.stderr.write(f"cnnlab: error: {err}\n")
        return 2
    except KeyboardInterrupt:
        sys.stderr.write("cnnlab: interrupted\n")
        return 130
