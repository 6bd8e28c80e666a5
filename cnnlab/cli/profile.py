"""``python -m cnnlab profile TARGET``: per-layer params, MACs and FLOPs of a model or a spec.

TARGET is a Conv Lab spec JSON file (a path ending in ``.json`` or an existing file) or a model
name (``alexnet``, ``vgg16``, any torchvision classifier). Prints a table, or ``--json``.
"""

from __future__ import annotations

import argparse
import json
import sys
from dataclasses import replace
from pathlib import Path

from cnnlab.counting.spec import load
from cnnlab.errors import UserError


def register(sub: argparse._SubParsersAction) -> None:
    parser = sub.add_parser(
        "profile",
        help="per-layer params, MACs and FLOPs of a model or a Conv Lab spec",
        description=__doc__.splitlines()[0] if __doc__ else None,
    )
    parser.add_argument("target", metavar="TARGET", help="spec JSON path or model name")
    parser.add_argument(
        "--input", metavar="CxHxW", help="input shape, e.g. 3x224x224 (default: the model's)"
    )
    parser.add_argument(
        "--mnist",
        action="store_true",
        help="MNIST adaptation: first conv to 1 input channel, last classifier to 10 outputs",
    )
    parser.add_argument(
        "--input-size", type=int, metavar="N", help="square input side (e.g. 28, 32, 64, 224)"
    )
    parser.add_argument(
        "--separable",
        action="store_true",
        help="make every conv with kernel > 1 and groups = 1 depthwise-separable",
    )
    parser.add_argument(
        "--crosscheck",
        action="store_true",
        help="also run torchinfo, fvcore and FlopCounterMode on a real forward pass",
    )
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument(
        "--formulas", action="store_true", help="add the params and MACs formulas to the table"
    )
    parser.add_argument(
        "--markdown", action="store_true", help="print a Markdown report instead of the table"
    )
    parser.set_defaults(handler=run)


def _is_spec_path(target: str) -> bool:
    return target.lower().endswith(".json") or Path(target).is_file()


def run(args: argparse.Namespace) -> int:
    # torch, torchvision and pandas load only when a profile runs: ``--help`` stays fast.
    from cnnlab.counting import zoo
    from cnnlab.counting.analyse import analyse_spec, analyse_zoo, to_json_dict
    from cnnlab.counting.crosscheck import crosscheck, crosscheck_json
    from cnnlab.views import tables

    if args.input and args.input_size:
        raise UserError("give --input or --input-size, not both")
    input_shape = zoo.parse_shape(args.input) if args.input else None
    spec = None
    if _is_spec_path(args.target):
        spec = load(args.target)
        name = zoo.STACK
        if args.mnist:
            analysis = analyse_zoo(
                name,
                input_shape=input_shape,
                mnist=True,
                input_size=args.input_size,
                separable=args.separable,
                spec=spec,
            )
        else:
            if input_shape is not None or args.input_size:
                c, h, w = spec.input
                if input_shape is not None:
                    c, h, w = input_shape
                else:
                    h = w = args.input_size
                spec = replace(spec, input=(c, h, w))
                spec.validate()
            analysis = analyse_spec(spec, separable=True if args.separable else None)
            if analysis.error:
                raise UserError(analysis.error)
    else:
        name = args.target
        analysis = analyse_zoo(
            name,
            input_shape=input_shape,
            mnist=args.mnist,
            input_size=args.input_size,
            separable=args.separable,
        )

    reports = None
    if args.crosscheck:
        c, h, w = analysis.input_shape[1:]
        reports = crosscheck(
            name,
            input_shape=(c, h, w),
            mnist=args.mnist,
            spec=spec,
            separable=args.separable,
        )

    if args.json:
        payload = to_json_dict(analysis)
        if reports is not None:
            payload["crosscheck"] = crosscheck_json(reports)
        sys.stdout.write(json.dumps(payload, indent=2) + "\n")
        return 0
    if args.markdown:
        sys.stdout.write(tables.to_markdown(analysis, reports))
        return 0
    sys.stdout.write(tables.table_text(analysis, formulas=args.formulas))
    if reports:
        sys.stdout.write("\nCross-check (real forward pass):\n" + tables.crosscheck_text(reports))
    return 0
