"""Wall-clock latency of real forward passes: fewer MACs is not proportionally faster.

One measurement, :func:`compare_latency`, times the regular and the depthwise-separable form
of a stack the same way:

1. **Warm-up** each form until first-call costs are paid (oneDNN/cuDNN picking and caching
   kernels, the allocator growing its pools): at least ``warmup`` passes *and* at least
   ``warmup_s`` seconds per form. A single short warm-up was not enough — a first click once
   reported the separable form 10× slower, later clicks about 1×.
2. **Calibrate**: each sample times enough back-to-back passes to last ``sample_ms``, so a
   1 ms model is not measured against the timer's and the scheduler's jitter.
3. **Alternate**: ``repeats`` rounds, each timing one sample of the regular and one of the
   separable form, so drift on a shared machine (another process waking up) hits both.

Each form's :class:`Latency` keeps every sample (ms per pass); :func:`noise_notes` says when a
result should not be trusted: samples of one form spread widely, or the two forms' ranges
overlap. Everything runs under ``torch.inference_mode``; CUDA and MPS are synchronised so a
sample covers the kernels, not just their launch. Torch's own ``torch.utils.benchmark.Timer``
times one statement at a time, so it cannot alternate the two forms round by round.
"""

from __future__ import annotations

import math
import statistics
import time
from collections.abc import Sequence
from dataclasses import dataclass

import torch
from torch import nn

from cnnlab.counting.analyse import analyse_spec
from cnnlab.counting.build import build_stack
from cnnlab.counting.spec import StackSpec
from cnnlab.devices import resolve_device, synchronize
from cnnlab.errors import UserError

# Timing runs real forward passes several times: refuse, before building anything, stacks that
# would take minutes or gigabytes (a VGG-16 at 224×224 is 15.5 G MACs, 138 M params).
MAX_MACS = 50 * 10**9
MAX_PARAMS = 200_000_000

WARMUP_PASSES = 3
WARMUP_S = 0.2
REPEATS = 15
SAMPLE_MS = 5.0
MAX_PASSES_PER_SAMPLE = 200

NOISY_SPREAD = 1.5
"""A form whose slowest sample is more than this many times its fastest is flagged noisy."""


@dataclass(frozen=True)
class Latency:
    """Forward-pass time of one input batch: every sample, in milliseconds per pass."""

    times_ms: tuple[float, ...]
    device: str
    passes_per_sample: int = 1
    warmup_passes: int = 0

    def __post_init__(self) -> None:
        if not self.times_ms:
            raise ValueError("a latency needs at least one sample")

    @property
    def runs(self) -> int:
        return len(self.times_ms)

    @property
    def min_ms(self) -> float:
        return min(self.times_ms)

    @property
    def median_ms(self) -> float:
        return statistics.median(self.times_ms)

    @property
    def max_ms(self) -> float:
        return max(self.times_ms)

    @property
    def p10_ms(self) -> float:
        return _quantile(self.times_ms, 0.1)

    @property
    def p90_ms(self) -> float:
        return _quantile(self.times_ms, 0.9)

    @property
    def spread(self) -> float:
        """Slowest sample ÷ fastest sample (1.0 = perfectly steady)."""
        return self.max_ms / self.min_ms if self.min_ms > 0 else math.inf


def _quantile(values: Sequence[float], q: float) -> float:
    ordered = sorted(values)
    if len(ordered) == 1:
        return ordered[0]
    pos = q * (len(ordered) - 1)
    lo = int(pos)
    hi = min(lo + 1, len(ordered) - 1)
    return ordered[lo] + (ordered[hi] - ordered[lo]) * (pos - lo)


def noise_notes(regular: Latency, separable: Latency) -> tuple[str, ...]:
    """Why a comparison should not be trusted (empty when it looks steady)."""
    notes = []
    for name, lat in (("regular", regular), ("separable", separable)):
        if lat.spread > NOISY_SPREAD:
            notes.append(
                f"the {name} form's samples vary {lat.spread:.1f}× between rounds "
                f"({lat.min_ms:.2f}–{lat.max_ms:.2f} ms)"
            )
    if regular.min_ms <= separable.max_ms and separable.min_ms <= regular.max_ms:
        notes.append(
            "the two forms' ranges overlap: the difference between them is within the noise"
        )
    return tuple(notes)


class _Timed:
    """One model and its input on a device, ready to time."""

    def __init__(self, model: nn.Module, shape: tuple[int, ...], device: torch.device) -> None:
        self.model = model.to(device).eval()
        self.x = torch.randn(shape, device=device)
        self.device = device

    def passes(self, count: int) -> float:
        """Run ``count`` forward passes; ms per pass."""
        synchronize(self.device)
        start = time.perf_counter()
        for _ in range(count):
            self.model(self.x)
        synchronize(self.device)
        return (time.perf_counter() - start) * 1000 / count

    def warm_up(self, passes: int, min_s: float) -> tuple[int, float]:
        """At least ``passes`` passes and ``min_s`` seconds; (passes run, ms of the last)."""
        done, last, start = 0, 0.0, time.perf_counter()
        while done < passes or (time.perf_counter() - start < min_s and done < 10_000):
            last = self.passes(1)
            done += 1
        return done, last


def _batched(shape: Sequence[int]) -> tuple[int, ...]:
    out = tuple(int(s) for s in shape)
    return (1, *out) if len(out) == 3 else out


def _samples_per_pass(last_ms: float, sample_ms: float) -> int:
    if last_ms <= 0:
        return MAX_PASSES_PER_SAMPLE
    return max(1, min(MAX_PASSES_PER_SAMPLE, math.ceil(sample_ms / last_ms)))


def _check(warmup: int, repeats: int) -> None:
    if repeats < 1 or warmup < 0:
        raise UserError("repeats must be at least 1 and warmup at least 0")


def _timed_rounds(
    arms: Sequence[_Timed], *, warmup: int, warmup_s: float, repeats: int, sample_ms: float
) -> list[Latency]:
    """Warm up every arm, calibrate each, then ``repeats`` rounds alternating the arms."""
    with torch.inference_mode():
        warm = [arm.warm_up(warmup, warmup_s) for arm in arms]
        counts = [_samples_per_pass(last, sample_ms) for _, last in warm]
        times: list[list[float]] = [[] for _ in arms]
        for _ in range(repeats):
            for arm, count, out in zip(arms, counts, times, strict=True):
                out.append(arm.passes(count))
    return [
        Latency(tuple(t), str(arm.device), passes_per_sample=n, warmup_passes=w)
        for arm, t, n, (w, _) in zip(arms, times, counts, warm, strict=True)
    ]


def measure_latency(
    model: nn.Module,
    input_shape: Sequence[int],
    *,
    device: str | torch.device = "cpu",
    warmup: int = WARMUP_PASSES,
    repeats: int = 10,
    warmup_s: float = WARMUP_S,
    sample_ms: float = SAMPLE_MS,
) -> Latency:
    """Time ``repeats`` samples of forward passes (after warm-up) of an input of ``input_shape``.

    ``input_shape`` is C×H×W (batch 1 is added) or N×C×H×W. The model is moved to ``device``
    and put in eval mode.
    """
    _check(warmup, repeats)
    dev = resolve_device(device)
    (latency,) = _timed_rounds(
        [_Timed(model, _batched(input_shape), dev)],
        warmup=warmup, warmup_s=warmup_s, repeats=repeats, sample_ms=sample_ms,
    )  # fmt: skip
    return latency


def compare_latency(
    spec: StackSpec,
    *,
    device: str | torch.device = "cpu",
    warmup: int = WARMUP_PASSES,
    repeats: int = REPEATS,
    batch: int = 1,
    warmup_s: float = WARMUP_S,
    sample_ms: float = SAMPLE_MS,
) -> tuple[Latency, Latency]:
    """(regular, separable) latency of the stack with real (random) weights.

    The two forms are warmed up, then timed alternately, round by round (see the module text).
    """
    if not 1 <= batch <= 1024:
        raise UserError(f"batch must be between 1 and 1024, got {batch}")
    _check(warmup, repeats)
    spec.validate()
    totals = analyse_spec(spec, separable=False).totals
    macs, params = batch * totals.macs, totals.params
    if macs > MAX_MACS or params > MAX_PARAMS:
        raise UserError(
            f"timing runs real forward passes; {macs:,} MACs and {params:,} params are too much "
            f"(limits {MAX_MACS:,} MACs, {MAX_PARAMS:,} params): use a smaller input or stack"
        )
    dev = resolve_device(device)
    torch.manual_seed(0)
    shape = (batch, *spec.input)
    arms = [
        _Timed(build_stack(spec, separable=flag, device=dev), shape, dev) for flag in (False, True)
    ]
    regular, separable = _timed_rounds(
        arms, warmup=warmup, warmup_s=warmup_s, repeats=repeats, sample_ms=sample_ms
    )
    return regular, separable
