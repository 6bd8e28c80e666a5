"""``cnnlab features``: what every conv and pooling layer of a finished run makes of one digit."""

from __future__ import annotations

import argparse
import json
import tempfile
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError
from cnnlab.training.names import CHECKPOINT, FINISHED


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("features", help="feature maps of one digit, layer by layer, as PNG grids")
    p.add_argument("run_id", metavar="RUN_ID")
    source = p.add_mutually_exclusive_group(required=True)
    source.add_argument("--test-index", type=int, metavar="N", help="digit N of the MNIST test set")
    source.add_argument("--image", metavar="FILE", help="a picture of a digit (any size ≤ 4096²)")
    p.add_argument("--out", metavar="DIR", required=True, help="folder for the PNGs")
    p.add_argument("--channels", type=int, default=64, help="channels drawn per layer (default 64)")
    p.add_argument("--gray", action="store_true", help="grayscale instead of viridis")
    p.add_argument("--json", action="store_true", help="print one JSON object")
    p.set_defaults(handler=run)


def _writable(folder: Path) -> Path:
    try:
        folder.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError as err:
        raise UserError(f"--out {folder}: not a writable folder ({err.strerror or err})") from None
    return folder


def run(args: argparse.Namespace) -> int:
    # lazy: torch and the store only once a subcommand runs (keeps `cnnlab --help` fast)
    import torch

    # lazy, as torch above
    from cnnlab.inside.features import digit_input, feature_maps, png_name, save_grid
    from cnnlab.inside.pictures import digit_from_file
    from cnnlab.training.checkpoints import load_checkpoint
    from cnnlab.training.data import load_mnist
    from cnnlab.training.store import RunStore

    if args.channels < 1:
        raise UserError(f"--channels must be at least 1, got {args.channels}")
    store = RunStore()
    store.reap_orphans()
    run_ = store.require_run(args.run_id)
    checkpoint = store.get_artifact(run_.id, CHECKPOINT)
    if checkpoint is None or checkpoint.path is None or not Path(checkpoint.path).is_file():
        why = "" if run_.status == FINISHED else f" (it is {run_.status})"
        raise UserError(f"run {run_.id} has no checkpoint{why}: only a finished run can be opened")
    out = _writable(Path(args.out))

    if args.image is not None:
        digit = torch.from_numpy(digit_from_file(args.image))  # the Train page's pipeline
        source: dict[str, Any] = {"image": str(args.image)}
    else:
        test = load_mnist("test")
        n = args.test_index
        if not 0 <= n < len(test):
            raise UserError(f"--test-index {n} is outside the test set (0 to {len(test) - 1})")
        digit = test.images[n]
        source = {"test_index": n, "label": int(test.labels[n])}

    model, config = load_checkpoint(checkpoint.path)
    features = feature_maps(model, digit_input(digit, config.input_size), args.channels)
    layers: list[dict[str, Any]] = []
    for i, row in enumerate(features.rows):
        png = save_grid(row, out / png_name(i, row), colormap=not args.gray)
        layers.append(
            {
                "name": row.name,
                "type": row.type,
                "stage": row.stage,
                "shape": list(row.shape),
                "channels_drawn": row.kept,
                "png": str(png),
                "min": row.min,
                "max": row.max,
            }
        )
    probs = features.probabilities
    if args.json:
        result = {"run_id": run_.id, "input": source, "probabilities": probs, "layers": layers}
        print(json.dumps(result))
        return 0
    guess = max(range(len(probs)), key=probs.__getitem__)
    label = f", label {source['label']}" if "label" in source else ""
    print(f"run {run_.id} ({run_.model}): predicts {guess} ({probs[guess]:.1%}){label}")
    header = ("LAYER", "TYPE", "STAGE", "SHAPE", "MIN", "MAX", "PNG")
    table: list[tuple[str, ...]] = [header] + [
        (
            r["name"],
            r["type"],
            r["stage"] or "",
            "×".join(map(str, r["shape"])),
            f"{r['min']:.3g}",
            f"{r['max']:.3g}",
            Path(r["png"]).name,
        )
        for r in layers
    ]
    widths = [max(len(line[i]) for line in table) for i in range(len(header))]
    for line in table:
        print("  ".join(c.ljust(w) for c, w in zip(line, widths, strict=True)).rstrip())
    print(f"{len(layers)} PNGs in {out}")
    return 0
