"""One output, step by step: the multiply-adds that make one number of a conv layer's output.

:func:`trace` records every conv and pooling module of one forward pass (its input, its output,
its geometry) in the order they ran; :func:`receptive_box` walks back through them to the box of
the model's input that one output position sees; :func:`one_output` writes out the products of
one output number, sums them, checks the sum against the layer's real output and ties the count
to the layer's MAC rule (:func:`cnnlab.counting.rules.count_module`, the numbers of
``cnnlab profile``): count per output = layer MACs / output elements — ``(M / groups)·k·k``, so
``k·k·M`` for a regular conv, ``k·k`` for a depthwise one and ``M`` for a pointwise one.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import numpy as np
import torch
from torch import nn

from cnnlab.counting.rules import Count, count_module
from cnnlab.errors import UserError
from cnnlab.inside.features import POOLS, Stage, is_depthwise, is_pointwise

MAX_TERMS_WRITTEN = 12  # the products written out; the rest are counted, not listed


@dataclass(frozen=True)
class Traced:
    """One conv or pooling module as it ran on one input."""

    name: str
    module: nn.Module
    stage: Stage | None
    input: torch.Tensor  # [1, C_in, H_in, W_in], as the module received it
    output: torch.Tensor  # [1, C_out, H_out, W_out], before any activation after it

    @property
    def is_conv(self) -> bool:
        return isinstance(self.module, nn.Conv2d)


def _pair(value: int | tuple[int, ...]) -> tuple[int, int]:
    if isinstance(value, int):
        return value, value
    return int(value[0]), int(value[-1])


def geometry(
    module: nn.Module,
) -> tuple[tuple[int, int], tuple[int, int], tuple[int, int], tuple[int, int]] | None:
    """(kernel, stride, padding, dilation) of a conv or pool (None: adaptive, sees everything)."""
    if isinstance(module, nn.Conv2d):
        kernel, dilation = _pair(module.kernel_size), _pair(module.dilation)
        if isinstance(module.padding, str):  # "valid": none; "same": half the dilated kernel
            same = module.padding == "same"
            padding = tuple(
                d * (k - 1) // 2 if same else 0 for k, d in zip(kernel, dilation, strict=True)
            )
        else:
            padding = module.padding
        return kernel, _pair(module.stride), _pair(padding), dilation
    if isinstance(module, (nn.MaxPool2d, nn.AvgPool2d)):
        kernel = _pair(module.kernel_size)
        stride = _pair(module.stride or module.kernel_size)
        dilation = _pair(getattr(module, "dilation", 1))
        return kernel, stride, _pair(module.padding), dilation
    return None


def trace(model: nn.Module, x: torch.Tensor) -> list[Traced]:
    """Every conv and pooling module of one forward pass of ``x`` [1, C, H, W], in order."""
    rows: list[Traced] = []
    last_depthwise = [False]

    def hook(name: str) -> Callable[[nn.Module, tuple[torch.Tensor, ...], torch.Tensor], None]:
        def catch(
            module: nn.Module, inputs: tuple[torch.Tensor, ...], output: torch.Tensor
        ) -> None:
            if not isinstance(output, torch.Tensor) or output.ndim != 4 or not inputs:
                return
            stage: Stage | None = None
            if isinstance(module, nn.Conv2d):
                if is_depthwise(module, name):
                    stage = "depthwise"
                elif is_pointwise(module) and last_depthwise[0]:
                    stage = "pointwise"
                last_depthwise[0] = stage == "depthwise"
            # cloned now: an in-place activation after the layer would change them
            rows.append(
                Traced(
                    name,
                    module,
                    stage,
                    inputs[0].detach().float().clone(),
                    output.detach().float().clone(),
                )
            )

        return catch

    handles = [
        m.register_forward_hook(hook(name))
        for name, m in model.named_modules()
        if isinstance(m, (nn.Conv2d, *POOLS))
    ]
    model.eval()
    try:
        with torch.inference_mode():
            model(x.to(next(model.parameters()).device))
    finally:
        for h in handles:
            h.remove()
    return rows


def receptive_box(rows: list[Traced], index: int, y: int, x: int) -> tuple[int, int, int, int]:
    """(top, left, bottom, right), inclusive, of the model's input seen by output (y, x) of
    ``rows[index]``: each conv or pool back to the input maps [a, b] to
    [a·s − p, b·s − p + d·(k − 1)], clipped to the input."""
    top, bottom, left, right = y, y, x, x
    for row in reversed(rows[: index + 1]):
        geo = geometry(row.module)
        h_in, w_in = int(row.input.shape[2]), int(row.input.shape[3])
        if geo is None:  # adaptive pooling: every input position can matter
            top, bottom, left, right = 0, h_in - 1, 0, w_in - 1
            continue
        (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geo
        top, bottom = top * sh - ph, bottom * sh - ph + dh * (kh - 1)
        left, right = left * sw - pw, right * sw - pw + dw * (kw - 1)
        top, bottom = max(0, top), min(h_in - 1, bottom)
        left, right = max(0, left), min(w_in - 1, right)
    return top, left, bottom, right


@dataclass(frozen=True)
class Term:
    """One product of the sum: weight × input value (0 where the kernel is over the padding)."""

    weight: float
    value: float
    where: str  # "w[c, m, i, j] · x[m, y, x]", or "… · padding"


@dataclass(frozen=True)
class OneOutput:
    """The multiply-adds of one output number, written out and counted."""

    layer: str
    stage: Stage | None
    channel: int
    y: int
    x: int
    terms: tuple[Term, ...]  # the first :data:`MAX_TERMS_WRITTEN` products
    count: int  # multiply-adds that make this number: (M / groups) · k · k
    count_formula: str  # "3 × 3 × 16 = 144" (k·k·M), "3 × 3 = 9" (depthwise), "16" (pointwise)
    bias: float | None
    total: float  # Σ products + bias, computed here
    actual: float  # the layer's own output at (channel, y, x)
    rule: Count  # the layer's row in the rule table (MACs of the whole output)
    output_elements: int  # C_out × H_out × W_out

    @property
    def matches(self) -> bool:
        return bool(np.isclose(self.total, self.actual, rtol=1e-4, atol=1e-4))

    @property
    def per_output(self) -> float:
        """Layer MACs / output elements (the rule table's number, per output)."""
        return self.rule.macs / self.output_elements


def conv_rows(rows: list[Traced]) -> list[int]:
    """Indices of the conv rows (the ones whose outputs are multiply-adds)."""
    return [i for i, r in enumerate(rows) if r.is_conv]


def one_output(rows: list[Traced], index: int, channel: int, y: int, x: int) -> OneOutput:
    """Output ``(channel, y, x)`` of the conv ``rows[index]`` as its products (a :class:`UserError`
    for a layer that is not a conv or a position outside its output)."""
    if not 0 <= index < len(rows):
        raise UserError(f"layer {index} does not exist (0 to {len(rows) - 1})")
    row = rows[index]
    if not isinstance(row.module, nn.Conv2d):
        raise UserError(
            f"layer {row.name} is a {type(row.module).__name__}: only a conv layer's outputs are"
            " multiply-adds; choose a conv layer"
        )
    conv = row.module
    _, c_out, h_out, w_out = (int(s) for s in row.output.shape)
    if not 0 <= channel < c_out:
        raise UserError(f"channel {channel} is outside layer {row.name} (0 to {c_out - 1})")
    if not (0 <= y < h_out and 0 <= x < w_out):
        raise UserError(
            f"position ({y}, {x}) is outside layer {row.name}'s {h_out}×{w_out} output"
            f" (row 0 to {h_out - 1}, column 0 to {w_out - 1})"
        )
    geo = geometry(conv)
    assert geo is not None
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geo
    groups, c_in = conv.groups, conv.in_channels
    per_group = c_in // groups
    first_in = (channel // (c_out // groups)) * per_group
    weight = conv.weight.detach().float().cpu()[channel]  # [per_group, kh, kw]
    inp = row.input[0].cpu()
    h_in, w_in = int(inp.shape[1]), int(inp.shape[2])
    products: list[Term] = []
    total = 0.0
    for m in range(per_group):
        for i in range(kh):
            for j in range(kw):
                yy, xx = y * sh - ph + i * dh, x * sw - pw + j * dw
                w = float(weight[m, i, j])
                inside = 0 <= yy < h_in and 0 <= xx < w_in
                v = float(inp[first_in + m, yy, xx]) if inside else 0.0
                total += w * v
                if len(products) < MAX_TERMS_WRITTEN:
                    at = f"x[{first_in + m}, {yy}, {xx}]" if inside else "padding"
                    products.append(Term(w, v, f"w[{channel}, {m}, {i}, {j}] · {at}"))
    bias = None if conv.bias is None else float(conv.bias.detach()[channel])
    total += bias or 0.0
    count = per_group * kh * kw
    factors = ([kh, kw] if (kh, kw) != (1, 1) else []) + ([per_group] if per_group > 1 else [])
    text = " × ".join(str(f) for f in factors) if factors else "1"
    formula = text if len(factors) <= 1 else f"{text} = {count:,}"
    shape_in = tuple(int(s) for s in row.input.shape)
    shape_out = tuple(int(s) for s in row.output.shape)
    return OneOutput(
        layer=row.name,
        stage=row.stage,
        channel=channel,
        y=y,
        x=x,
        terms=tuple(products),
        count=count,
        count_formula=formula,
        bias=bias,
        total=total,
        actual=float(row.output[0, channel, y, x]),
        rule=count_module(conv, shape_in, shape_out),
        output_elements=c_out * h_out * w_out,
    )
