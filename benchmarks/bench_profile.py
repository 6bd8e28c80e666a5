"""Benchmark: cnnlab's analysis (meta device) vs torchinfo and fvcore on the same models.

Targets (issues 3, 4 and 14): VGG-16 at 3×224×224 analysed in ≤ 50 ms warm; a 20-layer Conv
Lab stack re-analysed in ≤ 20 ms and ≥ 4× faster than the torchinfo path; VGG-16 ≥ 40× faster.
``stack20`` re-analyses the same spec, ``stack20_edit`` a spec with one conv's width changed each
time (two layers analysed afresh, 18 from the per-layer cache — what a Conv Lab edit costs), and
``stack20_cold`` with that cache emptied first (a stack never seen before). cnnlab's time includes
building the model on the ``meta`` device. The torchinfo and fvcore paths are what a user would
otherwise run: build the torchvision model (real weights), then ``torchinfo.summary`` or
``FlopCountAnalysis``; ``*_summary_only_ms`` give the second step alone on a prebuilt model.

    python benchmarks/bench_profile.py [--json] [--quick]

Prints medians after warm-up; ``--json`` prints one object:
``{"cnnlab_ms": {...}, "torchinfo_ms": {...}, "fvcore_ms": {...}, "speedup_vs_torchinfo": {...}}``.
``--quick`` is a smoke run (fewer repeats; the external tools skip VGG-16).
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))

import torch

from cnnlab.counting.analyse import _layer_analysis, analyse_spec, analyse_zoo
from cnnlab.counting.build import build_stack
from cnnlab.counting.crosscheck import _quiet, fvcore_total, torchinfo_totals
from cnnlab.counting.spec import LayerSpec, StackSpec
from cnnlab.counting.zoo import build_model

TARGETS_MS = {"vgg16": 50.0, "stack20": 20.0}


def stack20() -> StackSpec:
    """20 layers: four blocks of (4 × conv 3×3 + BN + ReLU, maxpool) on 3×64×64."""
    conv = LayerSpec(
        type="conv", out_channels=64, kernel=3, padding=1, batchnorm=True, activation="relu"
    )
    block = (conv, conv, conv, conv, LayerSpec(type="maxpool", kernel=2))
    return StackSpec(input=(3, 64, 64), layers=block * 4, name="stack20")


def edited_specs(spec: StackSpec) -> Iterator[StackSpec]:
    """A Conv Lab edit each time: one conv's width changes (a new value every call), so that
    layer and the next are analysed afresh and the other 18 come from the per-layer cache."""
    for width in itertools.count(65):
        layers = list(spec.layers)
        layers[6] = replace(layers[6], out_channels=width)
        yield replace(spec, layers=tuple(layers))


def cold(spec: StackSpec) -> object:
    """The stack analysed with an empty per-layer cache (a spec never seen in this process)."""
    _layer_analysis.cache_clear()
    return analyse_spec(spec)


def median_ms(fn: Callable[[], object], warmup: int, repeats: int) -> float:
    for _ in range(warmup):
        fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append((time.perf_counter() - start) * 1000)
    return statistics.median(times)


def rounded(values: dict[str, float | None]) -> dict[str, float | None]:
    return {k: (round(v, 2) if v is not None else None) for k, v in values.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="smoke run: fewer repeats")
    args = parser.parse_args(argv)
    warmup, repeats = (1, 3) if args.quick else (3, 15)
    ext_repeats = 1 if args.quick else 5
    torch.set_grad_enabled(True)

    spec = stack20()
    edits = iter(edited_specs(spec))
    cnnlab_ms = {
        "alexnet": median_ms(lambda: analyse_zoo("alexnet"), warmup, repeats),
        "vgg16": median_ms(lambda: analyse_zoo("vgg16"), warmup, repeats),
        "stack20": median_ms(lambda: analyse_spec(spec), warmup, repeats),
        "stack20_edit": median_ms(lambda: analyse_spec(next(edits)), warmup, repeats),
        "stack20_cold": median_ms(lambda: cold(spec), warmup, repeats),
    }

    torchinfo_ms: dict[str, float | None] = {}
    fvcore_ms: dict[str, float | None] = {}
    summary_only: dict[str, dict[str, float | None]] = {"torchinfo": {}, "fvcore": {}}
    for target in ("alexnet", "vgg16", "stack20"):
        if args.quick and target == "vgg16":
            torchinfo_ms[target] = fvcore_ms[target] = None
            summary_only["torchinfo"][target] = summary_only["fvcore"][target] = None
            continue

        def build(target: str = target) -> torch.nn.Module:
            model = build_stack(spec) if target == "stack20" else build_model(target)
            return model.eval()

        shape = (1, *spec.input) if target == "stack20" else (1, 3, 224, 224)
        x = torch.zeros(shape)
        with _quiet():
            torchinfo_ms[target] = median_ms(
                lambda b=build, x=x: torchinfo_totals(b(), x), 1, ext_repeats
            )
            fvcore_ms[target] = median_ms(lambda b=build, x=x: fvcore_total(b(), x), 1, ext_repeats)
            model = build()
            summary_only["torchinfo"][target] = median_ms(
                lambda m=model, x=x: torchinfo_totals(m, x), 1, ext_repeats
            )
            summary_only["fvcore"][target] = median_ms(
                lambda m=model, x=x: fvcore_total(m, x), 1, ext_repeats
            )
        del model

    for variant in ("stack20_edit", "stack20_cold"):  # the same stack, to torchinfo's eyes
        torchinfo_ms[variant] = torchinfo_ms["stack20"]
    speedup = {
        k: (round(v / cnnlab_ms[k], 1) if v is not None and cnnlab_ms[k] > 0 else None)
        for k, v in torchinfo_ms.items()
    }
    result = {
        "cnnlab_ms": {k: round(v, 2) for k, v in cnnlab_ms.items()},
        "torchinfo_ms": {
            k: (round(v, 2) if v is not None else None) for k, v in torchinfo_ms.items()
        },
        "fvcore_ms": {k: (round(v, 2) if v is not None else None) for k, v in fvcore_ms.items()},
        "speedup_vs_torchinfo": speedup,
        "torchinfo_summary_only_ms": rounded(summary_only["torchinfo"]),
        "fvcore_summary_only_ms": rounded(summary_only["fvcore"]),
        "targets_ms": TARGETS_MS,
        "within_target": {k: cnnlab_ms[k] <= limit for k, limit in TARGETS_MS.items()},
        "repeats": repeats,
        "quick": args.quick,
        "threads": torch.get_num_threads(),
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        print(
            f"{'model':10s} {'cnnlab ms':>10s} {'torchinfo ms':>13s} {'fvcore ms':>10s} {'×':>6s}"
        )
        for k in cnnlab_ms:
            ti, fv, sp = torchinfo_ms[k], fvcore_ms.get(k), speedup[k]
            print(
                f"{k:10s} {cnnlab_ms[k]:10.2f} {ti if ti is not None else float('nan'):13.2f} "
                f"{fv if fv is not None else float('nan'):10.2f} "
                f"{sp if sp is not None else float('nan'):6.1f}"
            )
        for k, limit in TARGETS_MS.items():
            ok = "ok" if result["within_target"][k] else "OVER"
            print(f"target {k}: ≤ {limit:g} ms — {cnnlab_ms[k]:.2f} ms {ok}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
