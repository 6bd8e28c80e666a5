"""Benchmark: feature maps of one digit (issue 13's target: small-cnn in ≤ 300 ms of server time).

"Server time" is what a page or ``cnnlab features`` does for one input: the forward pass with the
hooks (:func:`cnnlab.inside.features.feature_maps`) plus one PNG grid per layer and stage
(:func:`map_grid`, encoded as PNG in memory). Measured for small-cnn, its depthwise-separable
form, and VGG-16 at 3×224×224 with the default cap of 64 channels drawn per layer (random
weights: the cost does not depend on them), and VGG-16 again with the Inside page's cap (one page
of 32 channels per layer).

    python benchmarks/bench_features.py [--json] [--quick]

Prints medians after one warm-up; ``--json`` prints one object
``{"<model>": {"forward_ms", "grids_ms", "total_ms", "layers"}, "threads"}``.
"""

from __future__ import annotations

import argparse
import io
import json
import statistics
import sys
import time
from pathlib import Path

import torch
from PIL import Image

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

from cnnlab.counting import zoo
from cnnlab.counting.transform import separable_model
from cnnlab.inside.features import feature_maps, map_grid
from cnnlab.views.inside import PAGE_CHANNELS


def _measure(
    model: torch.nn.Module, x: torch.Tensor, repeats: int, channels: int = 64
) -> dict[str, float]:
    forward, grids, layers = [], [], 0
    for i in range(repeats + 1):
        t0 = time.perf_counter()
        features = feature_maps(model, x, channels)
        t1 = time.perf_counter()
        for row in features.rows:
            Image.fromarray(map_grid(row)).save(io.BytesIO(), format="PNG")
        t2 = time.perf_counter()
        if i:  # the first pass is the warm-up
            forward.append(t1 - t0)
            grids.append(t2 - t1)
        layers = len(features.rows)
    f, g = 1000 * statistics.median(forward), 1000 * statistics.median(grids)
    return {
        "forward_ms": round(f, 2),
        "grids_ms": round(g, 2),
        "total_ms": round(f + g, 2),
        "layers": layers,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true")
    parser.add_argument("--quick", action="store_true", help="smoke run: small-cnn only, 2 repeats")
    args = parser.parse_args()
    repeats = 2 if args.quick else 10
    torch.manual_seed(0)
    digit = torch.rand(1, 1, 28, 28)
    small = zoo.build_model("small-cnn", mnist=True).eval()
    result: dict[str, object] = {"small-cnn": _measure(small, digit, repeats)}
    if not args.quick:
        result["small-cnn separable"] = _measure(separable_model(small).eval(), digit, repeats)
        vgg = zoo.build_model("vgg16").eval()
        result["vgg16 224"] = _measure(vgg, torch.rand(1, 3, 224, 224), 3)
        # the Inside page draws one page of PAGE_CHANNELS channels per layer
        page = _measure(vgg, torch.rand(1, 3, 224, 224), 3, PAGE_CHANNELS)
        result[f"vgg16 224, page of {PAGE_CHANNELS}"] = page
    result["threads"] = torch.get_num_threads()
    if args.json:
        print(json.dumps(result))
    else:
        for name, row in result.items():
            print(f"{name:>20}: {row}")


if __name__ == "__main__":
    main()
