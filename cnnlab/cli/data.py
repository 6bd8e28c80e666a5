"""``cnnlab data``: which MNIST source is in use, where, and how many digits of each class."""

from __future__ import annotations

import argparse
import json

from cnnlab.format import fmt_int


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser("data", help="show the MNIST source in use, sizes and class counts")
    parser.add_argument("--data-dir", help="folder with the four MNIST IDX files (gz or not)")
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.set_defaults(handler=run)


def run(args: argparse.Namespace) -> int:
    from cnnlab.training.data import data_info  # lazy: keeps `cnnlab --help` from importing torch

    info = data_info(args.data_dir)
    if args.json:
        print(json.dumps(info.to_dict()))
        return 0
    print(f"source:   {info.source}")
    print(f"location: {info.location}")
    print(f"train:    {fmt_int(info.train_size)} images")
    print(f"test:     {fmt_int(info.test_size)} images")
    print("class    " + " ".join(f"{d:>6}" for d in range(10)))
    print("train    " + " ".join(fmt_int(n).rjust(6) for n in info.train_counts))
    print("test     " + " ".join(fmt_int(n).rjust(6) for n in info.test_counts))
    if info.is_subset:
        print("note: the full MNIST was not found; this is the bundled 5,000-digit subset.")
    return 0
