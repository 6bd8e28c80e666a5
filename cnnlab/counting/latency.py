"""Wall-clock latency of real forward passes: fewer MACs is not proportionally faster.

Median of several timed runs after warm-up, under ``torch.inference_mode``; on CUDA each run is
synchronised so the time covers the kernels, not just their launch.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.counting.spec import StackSpec, check_stack, with_separable
from cnnlab.errors import UserError

# Timing runs real forward passes several times: refuse, before building anything, stacks that
# would take minutes or gigabytes (a VGG-16 at 224×224 is 15.5 G MACs, 138 M params).
MAX_MACS = 50 * 10**9
MAX_PARAMS = 200_000_000


@dataclass(frozen=True)
class Latency:
    """Forward-pass time of one input batch, in milliseconds."""

    median_ms: float
    p10_ms: float
    p90_ms: float
    runs: int
    device: str


def resolve_device(device: str | torch.device = "cpu") -> torch.device:
    """``"auto"`` → CUDA when present, else CPU; refuses CUDA when there is none."""
    if str(device) == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    dev = torch.device(device)
    if dev.type == "cuda" and not torch.cuda.is_available():
        raise UserError("CUDA was asked for but no GPU is available")
    if dev.type not in ("cpu", "cuda"):
        raise UserError(f"latency is measured on cpu or cuda, not {dev.type}")
    return dev


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    device: str | torch.device = "cpu",
    warmup: int = 3,
    repeats: int = 10,
) -> Latency:
    """Time ``repeats`` forward passes (after ``warmup``) of an input of ``input_shape``.

    ``input_shape`` is C×H×W (batch 1 is added) or N×C×H×W. The model is moved to ``device``
    and put in eval mode.
    """
    if repeats < 1 or warmup < 0:
        raise UserError("repeats must be at least 1 and warmup at least 0")
    dev = resolve_device(device)
    shape = tuple(int(s) for s in input_shape)
    if len(shape) == 3:
        shape = (1, *shape)
    model = model.to(dev).eval()
    x = torch.randn(shape, device=dev)
    sync = torch.cuda.synchronize if dev.type == "cuda" else (lambda: None)
    times: list[float] = []
    with torch.inference_mode():
        for _ in range(warmup):
            model(x)
        sync()
        for _ in range(repeats):
            start = time.perf_counter()
            model(x)
            sync()
            times.append((time.perf_counter() - start) * 1000)
    return Latency(
        median_ms=statistics.median(times),
        p10_ms=_quantile(times, 0.1),
        p90_ms=_quantile(times, 0.9),
        runs=repeats,
        device=str(dev),
    )


def compare_latency(
    spec: StackSpec,
    *,
    device: str | torch.device = "cpu",
    warmup: int = 3,
    repeats: int = 10,
    batch: int = 1,
) -> tuple[Latency, Latency]:
    """(regular, separable) latency of the stack with real (random) weights.

    The two forms are timed alternately, run by run, so drift on a shared machine hits both.
    """
    from cnnlab.counting.build import build_stack

    if not 1 <= batch <= 1024:
        raise UserError(f"batch must be between 1 and 1024, got {batch}")
    spec.validate()
    checks = check_stack(with_separable(spec, False))
    macs = batch * sum(c.macs for c in checks)
    params = sum(c.params for c in checks)
    if macs > MAX_MACS or params > MAX_PARAMS:
        raise UserError(
            f"timing runs real forward passes; {macs:,} MACs and {params:,} params are too much "
            f"(limits {MAX_MACS:,} MACs, {MAX_PARAMS:,} params): use a smaller input or stack"
        )
    dev = resolve_device(device)
    torch.manual_seed(0)
    regular = build_stack(spec, separable=False, device=dev)
    separable = build_stack(spec, separable=True, device=dev)
    shape = (batch, *spec.input)
    # Alternate single-run measurements, then aggregate.
    reg_runs: list[Latency] = []
    sep_runs: list[Latency] = []
    measure_latency(regular, shape, device=dev, warmup=warmup, repeats=1)
    measure_latency(separable, shape, device=dev, warmup=warmup, repeats=1)
    for _ in range(repeats):
        reg_runs.append(measure_latency(regular, shape, device=dev, warmup=0, repeats=1))
        sep_runs.append(measure_latency(separable, shape, device=dev, warmup=0, repeats=1))

    def combine(runs: list[Latency]) -> Latency:
        times = [r.median_ms for r in runs]
        return Latency(
            median_ms=statistics.median(times),
            p10_ms=_quantile(times, 0.1),
            p90_ms=_quantile(times, 0.9),
            runs=len(times),
            device=str(dev),
        )

    return combine(reg_runs), combine(sep_runs)
