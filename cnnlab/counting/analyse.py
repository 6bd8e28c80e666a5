"""Model or spec → per-layer rows and totals, without real weights.

A forward pass on the ``meta`` device (shapes only) with hooks on the leaf modules; every leaf's
numbers and formula text come from the rule table (:mod:`~cnnlab.counting.rules`). Params no
executed leaf holds (a leaf not run in ``forward``, a container holding a tensor directly) still
get a row, so the params total always equals ``sum(p.numel() for p in model.parameters())``.
"""

from __future__ import annotations

import math
import re
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import lru_cache
from typing import Any

from torch import nn

from cnnlab.counting import zoo
from cnnlab.counting.build import build_layer
from cnnlab.counting.probe import ForwardFailed, run_forward
from cnnlab.counting.rules import count_module
from cnnlab.counting.spec import (
    LayerSpec,
    StackSpec,
    check_input_shape,
    check_stack,
    describe_layer,
    layer_label,
    with_separable,
)
from cnnlab.counting.transform import separable_model
from cnnlab.errors import UserError

FP32_BYTES = 4


@dataclass(frozen=True)
class LayerRow:
    """One leaf module's place in the forward pass and what it costs."""

    name: str
    type: str
    group: str
    input_shape: tuple[int, ...]
    output_shape: tuple[int, ...]
    params: int
    trainable_params: int
    macs: int
    flops: int
    activation_bytes: int
    params_formula: str
    macs_formula: str
    flops_formula: str
    counted: bool
    receptive_field: int | None = None


@dataclass(frozen=True)
class Totals:
    params: int
    trainable_params: int
    macs: int
    flops: int
    activation_bytes: int
    param_bytes: int

    @classmethod
    def of(cls, rows: Sequence[LayerRow], param_bytes: int) -> Totals:
        """The sums of the rows (``param_bytes`` is the model's, rows may not hold it all)."""
        return cls(
            params=sum(r.params for r in rows),
            trainable_params=sum(r.trainable_params for r in rows),
            macs=sum(r.macs for r in rows),
            flops=sum(r.flops for r in rows),
            activation_bytes=sum(r.activation_bytes for r in rows),
            param_bytes=param_bytes,
        )


@dataclass(frozen=True)
class Footer:
    """torchinfo-style memory estimate in MB (10⁶ bytes), counting every layer's activations."""

    input_mb: float
    forward_backward_mb: float
    params_mb: float
    total_mb: float


@dataclass(frozen=True)
class Analysis:
    model: str
    input_shape: tuple[int, ...]
    rows: tuple[LayerRow, ...]
    totals: Totals
    footer: Footer
    error: str | None = None
    error_layer: int | None = None
    spec: StackSpec | None = field(default=None, compare=False)
    """For a spec analysis: the spec actually analysed (after any separable override)."""


def _group(name: str) -> str:
    return name.split(".", 1)[0]


def analyse_model(model: nn.Module, input_shape: tuple[int, ...], name: str = "model") -> Analysis:
    """Per-leaf rows and totals of ``model`` for an input of ``input_shape`` (with batch).

    Build the model on the ``meta`` device to count without allocating weights.
    Raises :class:`ForwardFailed` (a :class:`UserError`) when the model cannot take the input.
    """
    input_shape = tuple(int(s) for s in input_shape)
    records = run_forward(model, input_shape)
    seen: set[int] = set()
    rows: list[LayerRow] = []

    def take_params(module: nn.Module, recurse: bool) -> tuple[int, int, int]:
        total = trainable = nbytes = 0
        for p in module.parameters(recurse=recurse):
            if id(p) in seen:
                continue
            seen.add(id(p))
            total += p.numel()
            nbytes += p.numel() * p.element_size()
            if p.requires_grad:
                trainable += p.numel()
        return total, trainable, nbytes

    param_bytes = 0
    for rec in records:
        count = count_module(rec.module, rec.in_shape, rec.out_shape)
        params, trainable, nbytes = take_params(rec.module, recurse=True)
        param_bytes += nbytes
        p_formula = count.params_formula
        if params != count.params:  # tied weights or a rule that disagrees with the tensors
            p_formula = f"{params:,} (tensor count; rule gives {count.params_formula})"
        rows.append(
            LayerRow(
                name=rec.name,
                type=type(rec.module).__name__,
                group=_group(rec.name),
                input_shape=rec.in_shape,
                output_shape=rec.out_shape,
                params=params,
                trainable_params=trainable,
                macs=count.macs,
                flops=count.flops,
                activation_bytes=FP32_BYTES * math.prod(rec.out_shape) if rec.out_shape else 0,
                params_formula=p_formula,
                macs_formula=count.macs_formula,
                flops_formula=count.flops_formula,
                counted=count.counted,
            )
        )

    # Parameters outside the executed leaves: leaves never called, tensors held by containers.
    for mod_name, module in model.named_modules():
        is_leaf = next(iter(module.children()), None) is None
        params, trainable, nbytes = take_params(module, recurse=False)
        if not params:
            continue
        param_bytes += nbytes
        label = mod_name or type(model).__name__
        why = "not run in forward" if is_leaf else "held directly by a container"
        rows.append(
            LayerRow(
                name=label,
                type=type(module).__name__,
                group=_group(label),
                input_shape=(),
                output_shape=(),
                params=params,
                trainable_params=trainable,
                macs=0,
                flops=0,
                activation_bytes=0,
                params_formula=f"{params:,} (tensor count; {why})",
                macs_formula="not counted",
                flops_formula="not counted",
                counted=False,
            )
        )

    totals = Totals.of(rows, param_bytes)
    return Analysis(
        model=name,
        input_shape=input_shape,
        rows=tuple(rows),
        totals=totals,
        footer=footer_for(input_shape, totals),
    )


def footer_for(input_shape: Sequence[int], totals: Totals) -> Footer:
    """Input, forward/backward (2 × every activation), params and total, in MB."""
    input_mb = FP32_BYTES * math.prod(input_shape) / 1e6
    fwd_bwd_mb = 2 * totals.activation_bytes / 1e6
    params_mb = totals.param_bytes / 1e6
    return Footer(input_mb, fwd_bwd_mb, params_mb, input_mb + fwd_bwd_mb + params_mb)


def analyse_zoo(
    name: str,
    *,
    input_shape: tuple[int, int, int] | None = None,
    mnist: bool = False,
    input_size: int | None = None,
    separable: bool = False,
    spec: StackSpec | None = None,
) -> Analysis:
    """Analyse a named model (or ``"stack"`` with ``spec``) on the meta device.

    ``input_shape`` (C, H, W) defaults to the model's native input (see
    :func:`cnnlab.counting.zoo.default_input_shape`). ``separable=True`` is the whole-model what-if:
    every conv with kernel > 1 and groups = 1 becomes depthwise + pointwise.
    """
    if input_shape is None:
        input_shape = zoo.default_input_shape(name, mnist=mnist, input_size=input_size, spec=spec)
    else:
        input_shape = check_input_shape(input_shape, max_values=None)  # meta: nothing allocated
    model = zoo.build_model(name, mnist=mnist, device="meta", spec=spec)
    if separable:
        model = separable_model(model)
    label = name if name != zoo.STACK or spec is None else spec.name
    if mnist:
        label += " (MNIST)"
    if separable:
        label += " (separable)"
    try:
        return analyse_model(model, (1, *input_shape), name=label)
    except ForwardFailed as err:
        raise UserError(zoo.explain_failure(name, model, tuple(input_shape), err)) from None


# ---------------------------------------------------------------- specs


LAYER_CACHE_SIZE = 4096  # analysed (layer, input shape) pairs kept per process


@lru_cache(maxsize=LAYER_CACHE_SIZE)
def _layer_analysis(layer: LayerSpec, in_shape: tuple[int, ...]) -> Analysis:
    """One valid spec layer with input ``in_shape``, analysed alone (leaf names ``"0.conv"``…).

    The counts of a layer in a stack depend only on the layer and its input shape, so a Conv
    Lab edit re-analyses only the layers it changed (and those whose input it changed); the
    result is immutable (frozen rows), so sharing it between calls and threads is safe.
    """
    model = nn.Sequential()
    model.add_module("0", build_layer(layer, in_shape, device="meta"))
    return analyse_model(model, (1, *in_shape))


def analyse_spec(spec: StackSpec, separable: bool | None = None) -> Analysis:
    """Analyse a Conv Lab stack: rows for the valid prefix, the first invalid layer as error.

    ``separable``: None keeps each layer's flag, True makes every flippable conv separable,
    False makes every conv regular. Rows are grouped by spec layer (``group`` = its index) and
    carry that layer's receptive field. Each layer is analysed once per (layer, input shape)
    and process (:func:`_layer_analysis`): the same rows as one forward pass of the whole
    stack, since a stack's layers share nothing.
    """
    if separable is not None:
        spec = with_separable(spec, separable)
    checks = check_stack(spec)
    bad = next((c for c in checks if c.error is not None), None)
    n_valid = bad.index if bad is not None else len(spec.layers)
    rows: list[LayerRow] = []
    param_bytes = 0
    if n_valid == 0:  # an empty stack is one identity leaf, as a forward pass sees it
        rows += analyse_model(nn.Sequential(), (1, *spec.input)).rows
    for check, layer in zip(checks[:n_valid], spec.layers[:n_valid], strict=True):
        assert check.in_shape is not None
        group = str(check.index)
        try:
            part = _layer_analysis(layer, check.in_shape)
        except ForwardFailed as err:  # name the layer as in the whole stack
            where = err.layer.replace("0.", f"{group}.", 1) if err.layer else None
            raise ForwardFailed(err.reason, where, err.kind) from None
        param_bytes += part.totals.param_bytes
        rows += [
            replace(
                row,
                name=f"{group}.{row.name.split('.', 1)[1]}",
                group=group,
                receptive_field=check.receptive_field,
            )
            if row.group == "0" and "." in row.name
            else row
            for row in part.rows
        ]
    input_shape = (1, *spec.input)
    totals = Totals.of(rows, param_bytes)
    error = None
    if bad is not None:
        error = f"{layer_label(bad.index, spec.layers[bad.index].type)}: {bad.error}"
    return Analysis(
        model=spec.name,
        input_shape=input_shape,
        rows=tuple(rows),
        totals=totals,
        footer=footer_for(input_shape, totals),
        error=error,
        error_layer=bad.index if bad is not None else None,
        spec=spec,
    )


@dataclass(frozen=True)
class SpecLayerSummary:
    """One spec layer: its leaf rows added up (a separable conv is depthwise + pointwise)."""

    index: int
    type: str
    label: str
    output_shape: tuple[int, ...] | None
    params: int
    macs: int
    flops: int
    activation_bytes: int
    params_formula: str
    macs_formula: str
    receptive_field: int | None
    error: str | None
    flops_formula: str = ""
    separable: bool = False
    input_shape: tuple[int, ...] | None = None


_ROLE = {
    "conv": "conv",
    "depthwise": "dw",
    "pointwise": "pw",
    "bn": "bn",
    "dw_bn": "dw bn",
    "pw_bn": "pw bn",
    "linear": "linear",
}


def _join_formulas(rows: Sequence[LayerRow], attr: str, value_attr: str) -> str:
    """One formula for a spec layer: the single contributing leaf's, or ``dw … + pw … = total``."""
    parts = [r for r in rows if getattr(r, value_attr)]
    total = sum(getattr(r, value_attr) for r in rows)
    if not parts:
        return "0"
    if len(parts) == 1:
        return str(getattr(parts[0], attr))
    terms = []
    for r in parts:
        text = str(getattr(r, attr))
        expr = text.rsplit(" = ", 1)[0] if " = " in text else text
        expr = re.sub(r" \((bias|scale \+ shift|activation|compares|adds \+ divide)\)", "", expr)
        if " + " in expr or " − " in expr:
            expr = f"({expr})"
        role = _ROLE.get(r.name.rsplit(".", 1)[-1], r.name.rsplit(".", 1)[-1])
        terms.append(f"{role} {expr}")
    return f"{' + '.join(terms)} = {total:,}"


def summarise_layers(spec: StackSpec, analysis: Analysis) -> list[SpecLayerSummary]:
    """One summary per spec layer (valid or not), from a :func:`analyse_spec` result."""
    spec = analysis.spec or spec
    checks = check_stack(spec)
    by_group: dict[str, list[LayerRow]] = {}
    for row in analysis.rows:
        by_group.setdefault(row.group, []).append(row)
    out = []
    for check, layer in zip(checks, spec.layers, strict=True):
        rows = by_group.get(str(check.index), [])
        in_c = check.in_shape[0] if check.in_shape else None
        out.append(
            SpecLayerSummary(
                index=check.index,
                type=layer.type,
                label=describe_layer(layer, in_c),
                output_shape=check.out_shape if check.error is None else None,
                params=sum(r.params for r in rows),
                macs=sum(r.macs for r in rows),
                flops=sum(r.flops for r in rows),
                activation_bytes=rows[-1].activation_bytes if rows else 0,
                params_formula=_join_formulas(rows, "params_formula", "params") if rows else "",
                macs_formula=_join_formulas(rows, "macs_formula", "macs") if rows else "",
                receptive_field=check.receptive_field,
                error=check.error,
                flops_formula=_join_formulas(rows, "flops_formula", "flops") if rows else "",
                separable=layer.type == "conv" and layer.separable,
                input_shape=check.in_shape,
            )
        )
    return out


@dataclass(frozen=True)
class SeparableComparison:
    """A conv layer in regular and in depthwise-separable form (valid prefix of a spec)."""

    index: int
    kernel: int
    in_channels: int
    out_channels: int
    regular_params: int
    separable_params: int
    regular_macs: int
    separable_macs: int
    ratio: float
    theory: float
    regular_flops: int = 0
    separable_flops: int = 0


def compare_separable(spec: StackSpec) -> list[SeparableComparison]:
    """Every flippable conv (kernel > 1, groups = 1) of the valid prefix, both forms.

    Params include the layer's bias and batch norm as the spec sets them; ``ratio`` is
    separable / regular MACs and ``theory`` is 1/N + 1/k² (MobileNet v1, Eq. 5).
    """
    checks = check_stack(spec)
    bad = next((c.index for c in checks if c.error is not None), len(spec.layers))
    wanted = [
        i
        for i in range(bad)
        if spec.layers[i].type == "conv"
        and (spec.layers[i].kernel or 0) > 1
        and spec.layers[i].groups == 1
    ]
    if not wanted:
        return []
    prefix = replace(spec, layers=spec.layers[:bad])
    regular = analyse_spec(with_separable(prefix, False))
    separable = analyse_spec(with_separable(prefix, True))

    def sums(analysis: Analysis, index: int) -> tuple[int, int, int]:
        rows = [r for r in analysis.rows if r.group == str(index)]
        return (
            sum(r.params for r in rows),
            sum(r.macs for r in rows),
            sum(r.flops for r in rows),
        )

    out = []
    for i in wanted:
        layer = spec.layers[i]
        in_shape = checks[i].in_shape
        assert in_shape is not None and layer.kernel is not None and layer.out_channels
        rp, rm, rf = sums(regular, i)
        sp, sm, sf = sums(separable, i)
        k, n = layer.kernel, layer.out_channels
        out.append(
            SeparableComparison(
                index=i,
                kernel=k,
                in_channels=in_shape[0],
                out_channels=n,
                regular_params=rp,
                separable_params=sp,
                regular_macs=rm,
                separable_macs=sm,
                ratio=sm / rm if rm else math.nan,
                theory=1 / n + 1 / (k * k),
                regular_flops=rf,
                separable_flops=sf,
            )
        )
    return out


# ---------------------------------------------------------------- export and checking


def to_json_dict(analysis: Analysis) -> dict[str, Any]:
    """The CLI's JSON object (issue 3): model, input_shape, totals, layers."""
    t = analysis.totals
    return {
        "model": analysis.model,
        "input_shape": list(analysis.input_shape),
        "totals": {
            "params": t.params,
            "trainable_params": t.trainable_params,
            "macs": t.macs,
            "flops": t.flops,
            "activation_bytes": t.activation_bytes,
            "param_bytes": t.param_bytes,
        },
        "layers": [
            {
                "name": r.name,
                "type": r.type,
                "output_shape": list(r.output_shape),
                "params": r.params,
                "macs": r.macs,
                "flops": r.flops,
                "params_formula": r.params_formula,
                "macs_formula": r.macs_formula,
            }
            for r in analysis.rows
        ],
    }
