"""``cnnlab teacher``: make the teacher's password hash, or write it into the secrets file.

The password is read from standard input when it is not a terminal (one line), else asked twice
with :func:`getpass.getpass` (never echoed). Only its salted scrypt hash is printed or written.
"""

from __future__ import annotations

import argparse
import getpass
import sys
from pathlib import Path

from cnnlab.classroom.teacher import (
    ENV_VAR,
    SECRETS_KEY,
    SECRETS_TABLE,
    hash_password,
    read_secrets,
    write_hash,
)
from cnnlab.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("teacher", help="set up the teacher's password for a class")
    actions = p.add_subparsers(dest="action", metavar="ACTION", required=True)

    hp = actions.add_parser(
        "hash-password", help=f"print a salted scrypt hash of a password (for {ENV_VAR})"
    )
    hp.set_defaults(handler=hash_command)

    sp = actions.add_parser(
        "set-password",
        help=f"write the hash as [{SECRETS_TABLE}] {SECRETS_KEY} into .streamlit/secrets.toml",
    )
    sp.add_argument(
        "--file",
        type=Path,
        default=Path(".streamlit") / "secrets.toml",
        help="the secrets file to update (default: .streamlit/secrets.toml here)",
    )
    sp.set_defaults(handler=set_command)


def read_password() -> str:
    """One password: a line of standard input when piped, else typed twice without echo."""
    if not sys.stdin.isatty():
        line = sys.stdin.readline()
        if not line:
            raise UserError("no password on standard input")
        return line.rstrip("\r\n")
    first = getpass.getpass("Teacher password: ")
    if getpass.getpass("Once more: ") != first:
        raise UserError("the two passwords differ")
    return first


def hash_command(args: argparse.Namespace) -> int:
    print(hash_password(read_password()))
    return 0


def set_command(args: argparse.Namespace) -> int:
    path: Path = args.file
    read_secrets(path)  # a broken file is refused before a password is asked for
    write_hash(path, hash_password(read_password()))
    print(f"teacher password set in {path} (restart the app to use it)")
    return 0
