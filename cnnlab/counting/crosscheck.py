"""What other tools report for the same model, beside cnnlab's own totals.

torchinfo, fvcore and ``torch.utils.flop_counter.FlopCounterMode`` each run a real forward pass
(real weights on CPU, so this takes seconds for VGG-16: call it on demand; results are cached per
model and input). Each :class:`ToolReport` says what the number counts, so the differences read
as conventions, not errors (see the conventions table in the README).
"""

from __future__ import annotations

import contextlib
import functools
import io
import logging
import warnings
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Any

import torch
import torchinfo
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.counting import zoo
from cnnlab.counting.analyse import analyse_zoo
from cnnlab.counting.spec import StackSpec, with_separable
from cnnlab.counting.transform import separable_model
from cnnlab.errors import UserError

# The cross-check builds real weights and runs three real forward passes: refuse, before any
# allocation, inputs that would take minutes or gigabytes (VGG-16 at 224×224: 15.5 G MACs).
MAX_MACS = 100 * 10**9
MAX_ACTIVATION_BYTES = 4 * 10**9


@dataclass(frozen=True)
class ToolReport:
    """One total from one tool: ``quantity`` is what it really counts (params, MACs or FLOPs)."""

    tool: str
    quantity: str
    value: int
    unit: str
    includes: str
    note: str = ""


@contextlib.contextmanager
def _quiet() -> Iterator[None]:
    """Silence fvcore's logger, tracer warnings and any printing while tools run."""
    loggers = [logging.getLogger(n) for n in ("fvcore", "fvcore.nn.jit_analysis", "iopath")]
    levels = [lg.level for lg in loggers]
    for lg in loggers:
        lg.setLevel(logging.CRITICAL)
    try:
        with (
            warnings.catch_warnings(),
            contextlib.redirect_stdout(io.StringIO()),
            contextlib.redirect_stderr(io.StringIO()),
        ):
            warnings.simplefilter("ignore")
            yield
    finally:
        for lg, level in zip(loggers, levels, strict=True):
            lg.setLevel(level)


def torchinfo_totals(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, int]:
    """(total params, total mult-adds) from ``torchinfo.summary``."""
    stats = torchinfo.summary(model, input_data=x, verbose=0, device=x.device, mode="eval")
    return int(stats.total_params), int(stats.total_mult_adds)


def fvcore_total(model: torch.nn.Module, x: torch.Tensor) -> tuple[int, dict[str, int]]:
    """(fvcore ``FlopCountAnalysis.total()``, unsupported op → count)."""
    from fvcore.nn import FlopCountAnalysis  # ~0.1 s: imported only when a cross-check runs

    analysis = (
        FlopCountAnalysis(model, x)
        .unsupported_ops_warnings(False)
        .uncalled_modules_warnings(False)
        .tracer_warnings("none")
    )
    total = int(analysis.total())
    return total, dict(analysis.unsupported_ops())


def flop_counter_total(model: torch.nn.Module, x: torch.Tensor) -> int:
    """``torch.utils.flop_counter.FlopCounterMode`` total over one forward pass."""
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model(x)
    return int(counter.get_total_flops())


@functools.lru_cache(maxsize=32)
def _crosscheck_cached(
    name: str,
    input_shape: tuple[int, int, int] | None,
    mnist: bool,
    input_size: int | None,
    spec: StackSpec | None,
    separable: bool,
) -> tuple[ToolReport, ...]:
    if name == zoo.STACK and spec is not None and separable:
        spec, separable = with_separable(spec, True), False
    ours = analyse_zoo(
        name,
        input_shape=input_shape,
        mnist=mnist,
        input_size=input_size,
        spec=spec,
        separable=separable,
    )
    t = ours.totals
    if t.macs > MAX_MACS or t.activation_bytes > MAX_ACTIVATION_BYTES:
        raise UserError(
            f"the cross-check runs real forward passes; {t.macs:,} MACs and"
            f" {t.activation_bytes / 1e9:.1f} GB of activations are too much"
            f" (limits {MAX_MACS:,} MACs, {MAX_ACTIVATION_BYTES / 1e9:.0f} GB): use a smaller input"
        )
    shape = tuple(ours.input_shape)
    torch.manual_seed(0)
    model = zoo.build_model(name, mnist=mnist, device="cpu", spec=spec)
    if separable:
        model = separable_model(model)
    model.eval()
    x = torch.zeros(shape)
    with _quiet():
        ti_params, ti_macs = torchinfo_totals(model, x)
        fv_total, fv_unsupported = fvcore_total(model, x)
        fc_flops = flop_counter_total(model, x)
    unsupported = ", ".join(f"{op} ×{n}" for op, n in sorted(fv_unsupported.items()))
    t = ours.totals
    return (
        ToolReport("cnnlab", "params", t.params, "parameters", "every parameter tensor, once"),
        ToolReport(
            "cnnlab",
            "MACs",
            t.macs,
            "multiply-accumulates",
            "conv + linear; bias excluded; BN, pooling, activations 0",
            "torchvision's published convention",
        ),
        ToolReport(
            "cnnlab",
            "FLOPs",
            t.flops,
            "floating-point operations",
            "2 × MACs + bias adds + BN (2/elem) + activations (1/elem) + pooling",
            "see the conventions table",
        ),
        ToolReport("torchinfo", "params", ti_params, "parameters", "every parameter tensor"),
        ToolReport(
            "torchinfo",
            "MACs",
            ti_macs,
            "multiply-adds (total_mult_adds)",
            "conv + linear, bias included; layers without parameters count 0",
            "bias adds make it larger than cnnlab's MACs",
        ),
        ToolReport(
            "fvcore",
            "MACs",
            fv_total,
            "fused multiply-adds (fvcore calls them flops)",
            "conv + linear, no bias; batch norm and adaptive average pooling counted",
            f"unsupported, counted 0: {unsupported}" if unsupported else "",
        ),
        ToolReport(
            "FlopCounterMode",
            "FLOPs",
            fc_flops,
            "FLOPs (2 per multiply-add)",
            "conv + matmul only, no bias; BN, pooling, activations 0",
            "half of it is cnnlab's MACs for conv/linear models",
        ),
    )


def crosscheck(
    name: str,
    *,
    input_shape: tuple[int, int, int] | None = None,
    mnist: bool = False,
    input_size: int | None = None,
    spec: StackSpec | None = None,
    separable: bool = False,
) -> list[ToolReport]:
    """cnnlab's totals and those of torchinfo, fvcore and FlopCounterMode (real forward pass).

    ``separable`` applies the whole-model what-if first (every conv with kernel > 1 and
    groups = 1 made depthwise-separable). Bad names and inputs raise
    :class:`~cnnlab.errors.UserError` before any weights are built.
    """
    shape = tuple(input_shape) if input_shape is not None else None
    return list(_crosscheck_cached(name, shape, mnist, input_size, spec, separable))


def crosscheck_json(reports: list[ToolReport]) -> dict[str, Any]:
    """``{"torchinfo": {"params", "macs"}, "fvcore": {"flops"}, "flop_counter": {"flops"}}``."""
    by = {(r.tool, r.quantity): r.value for r in reports}
    return {
        "torchinfo": {"params": by[("torchinfo", "params")], "macs": by[("torchinfo", "MACs")]},
        "fvcore": {"flops": by[("fvcore", "MACs")]},
        "flop_counter": {"flops": by[("FlopCounterMode", "FLOPs")]},
    }
