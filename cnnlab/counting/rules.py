"""One rule table: layer kind → params, MACs, FLOPs and the formula text that produced them.

Every count cnnlab shows comes from a rule here, looked up by the module's class along its MRO
(so a subclass of ``nn.Conv2d`` uses the conv rule). A rule is a small function
``(module, in_shape, out_shape) -> Count``; shapes include the batch dimension. A leaf module with
no rule is reported as *not counted* (MACs and FLOPs 0, params still counted), never hidden.

Conventions (fixed across cnnlab; :data:`CONVENTIONS_MARKDOWN` renders them for the README):

- **MACs** are the multiply-accumulates of conv and linear layers only, bias additions excluded —
  the convention of torchvision's published "GFLOPS" figures.
- **FLOPs** are every arithmetic operation cnnlab counts: 2 × MACs (one multiply + one add),
  plus one add per output element for a bias, plus normalisation, activation and pooling costs
  as listed in the table.
- Work done outside modules (residual additions, ``x * scale`` in squeeze-excitation,
  ``torch.flatten`` in ``forward``) is not counted by any tool that works per module, and not here.
"""

from __future__ import annotations

import importlib
import math
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

from torch import nn

Shape = Sequence[int]


@dataclass(frozen=True)
class Count:
    """What one module costs, with the formula text for each number."""

    params: int
    macs: int
    flops: int
    params_formula: str
    macs_formula: str
    flops_formula: str
    counted: bool = True


Rule = Callable[[nn.Module, Shape, Shape], Count]

RULES: dict[type, Rule] = {}
"""Module class → rule. Use :func:`rule_for` to look one up along the MRO."""

ATOMIC: set[type] = set()
"""Module classes counted as one unit with their children (their forward uses the children's
tensors directly, e.g. ``MultiheadAttention`` and its ``out_proj``)."""

RULE_DOCS: list[tuple[str, str, str, str]] = []
"""(layer kinds, params, MACs, FLOPs) rows for :data:`CONVENTIONS_MARKDOWN`."""

_LAZY: dict[str, tuple[Rule, bool]] = {}
"""``"module:Class"`` → (rule, atomic) for torchvision's layer classes, bound to the class once
torchvision is imported: a model can hold one only after that, and importing torchvision just
to register them cost ``cnnlab train`` ~1.5 s for models that have none."""


def register(
    *types: type | str, params: str, macs: str, flops: str, atomic: bool = False
) -> Callable[[Rule], Rule]:
    """Register a rule for module classes (or ``"module:Class"`` names, bound lazily), with
    its documentation row. ``atomic``: the rule counts the module together with its children.
    """

    def deco(fn: Rule) -> Rule:
        for t in types:
            if isinstance(t, str):
                _LAZY[t] = (fn, atomic)
                continue
            RULES[t] = fn
            if atomic:
                ATOMIC.add(t)
        kinds = (t.rpartition(":")[2] if isinstance(t, str) else t.__name__ for t in types)
        RULE_DOCS.append((", ".join(kinds), params, macs, flops))
        return fn

    return deco


def _bind_lazy() -> None:
    """Give the named classes their rules once their package is imported."""
    for name in [n for n in _LAZY if n.partition(".")[0].partition(":")[0] in sys.modules]:
        module, _, cls_name = name.partition(":")
        fn, atomic = _LAZY.pop(name)
        cls = getattr(importlib.import_module(module), cls_name)
        RULES[cls] = fn
        if atomic:
            ATOMIC.add(cls)


def is_atomic(module: nn.Module) -> bool:
    """Whether ``module`` is counted as one unit with its children."""
    if _LAZY:
        _bind_lazy()
    return any(cls in ATOMIC for cls in type(module).__mro__)


def rule_for(module: nn.Module) -> Rule | None:
    """The rule for ``module`` (nearest class along its MRO), or None."""
    if _LAZY:
        _bind_lazy()
    for cls in type(module).__mro__:
        rule = RULES.get(cls)
        if rule is not None:
            return rule
    return None


def count_module(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    """Apply the rule for ``module``; a module without a rule is ``counted=False``."""
    rule = rule_for(module)
    if rule is None:
        params = own_params(module)
        return Count(
            params=params,
            macs=0,
            flops=0,
            params_formula=f"{params:,} (tensor count)",
            macs_formula="not counted",
            flops_formula="not counted",
            counted=False,
        )
    return rule(module, in_shape, out_shape)


# ---------------------------------------------------------------- helpers


def own_params(module: nn.Module) -> int:
    """Parameters held by this module and its children (a leaf: its own)."""
    return sum(p.numel() for p in module.parameters())


def _n(x: int) -> str:
    return f"{x:,}"


def _product(factors: Sequence[int]) -> int:
    return math.prod(int(f) for f in factors)


def _expr(factors: Sequence[int]) -> str:
    return " × ".join(_n(f) for f in factors) if factors else "1"


def _eq(expr: str, value: int) -> str:
    """``expr = value``, but just ``value`` where the expression is the value itself."""
    return _n(value) if expr == _n(value) else f"{expr} = {_n(value)}"


def _numel(shape: Shape) -> int:
    return _product(shape)


def _batch_factors(shape: Shape) -> list[int]:
    """The batch dimension as a factor list: empty for batch 1."""
    return [int(shape[0])] if shape and int(shape[0]) != 1 else []


def _shape_factors(shape: Shape) -> list[int]:
    """Factors of an activation shape for formula text (batch 1 left out)."""
    return _batch_factors(shape) + [int(s) for s in shape[1:]]


def _as_tuple(value: int | Sequence[int], ndim: int) -> tuple[int, ...]:
    if isinstance(value, int):
        return (value,) * ndim
    return tuple(int(v) for v in value)


def _zero(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    params = own_params(module)
    return Count(params, 0, 0, _n(params), "0", "0")


def _elementwise(per_elem: int, label: str) -> Rule:
    def rule(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
        params = own_params(module)
        factors = _shape_factors(out_shape)
        flops = per_elem * _numel(out_shape)
        expr = _expr(factors)
        if per_elem != 1:
            expr = f"{per_elem} × {expr}"
        return Count(params, 0, flops, _n(params), "0", f"{_eq(expr, flops)} ({label})")

    return rule


# ---------------------------------------------------------------- conv


@register(
    nn.Conv1d,
    nn.Conv2d,
    nn.Conv3d,
    params="(C_in / groups) × k_h × k_w × C_out, + C_out with bias",
    macs="(C_in / groups) × k_h × k_w × C_out × H_out × W_out (bias excluded)",
    flops="2 × MACs, + C_out × H_out × W_out with bias",
)
def conv_rule(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    """Any conv: regular, grouped, depthwise (groups = C_in) and pointwise (1×1).

    Written as ``C_in × k × k × C_out`` (``k × k × C_out`` for depthwise, where each filter
    sees one input channel; ``C_in × C_out`` for a 1×1 conv).
    """
    assert isinstance(module, nn.modules.conv._ConvNd)
    ndim = len(out_shape) - 2
    kernel = _as_tuple(module.kernel_size, ndim)
    c_in, c_out, groups = module.in_channels, module.out_channels, module.groups
    per_group = c_in // groups
    kernel_factors = [] if all(k == 1 for k in kernel) else list(kernel)  # pointwise: in × out
    depthwise = groups > 1 and per_group == 1  # each filter sees one input channel
    weight_factors = ([] if depthwise else [per_group]) + kernel_factors + [c_out]
    weight = _product(weight_factors)
    bias = c_out if module.bias is not None else 0
    params = weight + bias
    p_expr = _expr(weight_factors) + (f" + {_n(bias)}" if bias else "")

    out_spatial = [int(s) for s in out_shape[2:]]
    mac_factors = _batch_factors(out_shape) + weight_factors + out_spatial
    macs = _product(mac_factors)
    bias_adds = bias * _product(out_spatial) * int(out_shape[0]) if bias else 0
    flops = 2 * macs + bias_adds
    f_expr = f"2 × {_n(macs)}" + (f" + {_n(bias_adds)} (bias)" if bias_adds else "")
    return Count(
        params, macs, flops, _eq(p_expr, params), _eq(_expr(mac_factors), macs), _eq(f_expr, flops)
    )


@register(
    nn.ConvTranspose1d,
    nn.ConvTranspose2d,
    nn.ConvTranspose3d,
    params="C_in × k_h × k_w × (C_out / groups), + C_out with bias",
    macs="C_in × k_h × k_w × (C_out / groups) × H_in × W_in (bias excluded)",
    flops="2 × MACs, + C_out × H_out × W_out with bias",
)
def conv_transpose_rule(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    """Transposed conv: every input pixel scatters a k×k×(C_out/groups) patch."""
    assert isinstance(module, nn.modules.conv._ConvTransposeNd)
    ndim = len(out_shape) - 2
    kernel = _as_tuple(module.kernel_size, ndim)
    c_in, c_out, groups = module.in_channels, module.out_channels, module.groups
    weight_factors = [c_in, *kernel] + ([c_out // groups] if c_out // groups != 1 else [])
    weight = _product(weight_factors)
    bias = c_out if module.bias is not None else 0
    params = weight + bias
    p_expr = _expr(weight_factors) + (f" + {_n(bias)}" if bias else "")
    mac_factors = _batch_factors(in_shape) + weight_factors + [int(s) for s in in_shape[2:]]
    macs = _product(mac_factors)
    bias_adds = bias * _product(out_shape[2:]) * int(out_shape[0]) if bias else 0
    flops = 2 * macs + bias_adds
    f_expr = f"2 × {_n(macs)}" + (f" + {_n(bias_adds)} (bias)" if bias_adds else "")
    return Count(
        params, macs, flops, _eq(p_expr, params), _eq(_expr(mac_factors), macs), _eq(f_expr, flops)
    )


# ---------------------------------------------------------------- linear


@register(
    nn.Linear,
    params="in × out, + out with bias",
    macs="in × out per input row (bias excluded)",
    flops="2 × MACs, + out per row with bias",
)
def linear_rule(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    """Fully connected layer; leading dimensions (batch, tokens) multiply the MACs."""
    assert isinstance(module, nn.Linear)
    f_in, f_out = module.in_features, module.out_features
    bias = f_out if module.bias is not None else 0
    params = f_in * f_out + bias
    p_expr = f"{_n(f_in)} × {_n(f_out)}" + (f" + {_n(bias)}" if bias else "")
    rows = [int(s) for s in in_shape[:-1]]
    row_factors = [r for r in rows if r != 1]
    mac_factors = [*row_factors, f_in, f_out]
    macs = _product(mac_factors)
    bias_adds = bias * _product(rows)
    flops = 2 * macs + bias_adds
    f_expr = f"2 × {_n(macs)}" + (f" + {_n(bias_adds)} (bias)" if bias_adds else "")
    return Count(
        params, macs, flops, _eq(p_expr, params), _eq(_expr(mac_factors), macs), _eq(f_expr, flops)
    )


@register(
    nn.Bilinear,
    params="in1 × in2 × out, + out with bias",
    macs="in1 × in2 × out per row",
    flops="2 × MACs, + out per row with bias",
)
def bilinear_rule(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    assert isinstance(module, nn.Bilinear)
    a, b, o = module.in1_features, module.in2_features, module.out_features
    bias = o if module.bias is not None else 0
    params = a * b * o + bias
    rows = [int(s) for s in out_shape[:-1]]
    mac_factors = [*[r for r in rows if r != 1], a, b, o]
    macs = _product(mac_factors)
    bias_adds = bias * _product(rows)
    flops = 2 * macs + bias_adds
    p_expr = f"{_n(a)} × {_n(b)} × {_n(o)}" + (f" + {_n(bias)}" if bias else "")
    f_expr = f"2 × {_n(macs)}" + (f" + {_n(bias_adds)} (bias)" if bias_adds else "")
    return Count(
        params, macs, flops, _eq(p_expr, params), _eq(_expr(mac_factors), macs), _eq(f_expr, flops)
    )


# ---------------------------------------------------------------- normalisation


@register(
    nn.BatchNorm1d,
    nn.BatchNorm2d,
    nn.BatchNorm3d,
    params="2 × C (γ, β) when affine; running mean/var are buffers, not params",
    macs="0",
    flops="2 per output element (inference: folded to one scale and one shift)",
)
def batchnorm_rule(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    assert isinstance(module, nn.modules.batchnorm._BatchNorm)
    c = module.num_features
    params = 2 * c if module.affine else 0
    p_text = _eq(f"2 × {_n(c)}", params) if module.affine else "0 (affine=False)"
    flops = 2 * _numel(out_shape)
    return Count(
        params,
        0,
        flops,
        p_text,
        "0",
        f"{_eq('2 × ' + _expr(_shape_factors(out_shape)), flops)} (scale + shift)",
    )


def _norm_rule(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    params = own_params(module)
    weight = getattr(module, "weight", None)
    bias = getattr(module, "bias", None)
    terms = [_n(t.numel()) for t in (weight, bias) if t is not None]
    p_text = _eq(" + ".join(terms), params) if terms else "0 (no affine)"
    per_elem = 5 + (1 if weight is not None else 0) + (1 if bias is not None else 0)
    flops = per_elem * _numel(out_shape)
    f_text = _eq(f"{per_elem} × {_expr(_shape_factors(out_shape))}", flops)
    return Count(params, 0, flops, p_text, "0", f"{f_text} (statistics + normalise + affine)")


register(
    nn.LayerNorm,
    nn.GroupNorm,
    params="γ and β (normalised shape, or C for GroupNorm) when affine",
    macs="0",
    flops="5 per element (mean, variance, normalise), + 1 per element each for γ and β",
)(_norm_rule)


# ---------------------------------------------------------------- activations


ACTIVATION_TYPES: tuple[type[nn.Module], ...] = (
    nn.ReLU,
    nn.ReLU6,
    nn.LeakyReLU,
    nn.ELU,
    nn.GELU,
    nn.SiLU,
    nn.Mish,
    nn.Sigmoid,
    nn.Tanh,
    nn.Hardswish,
    nn.Hardsigmoid,
    nn.Hardtanh,
)
"""Element-wise activations: 1 FLOP per output element, output shaped as the input."""

register(
    *ACTIVATION_TYPES,
    params="0",
    macs="0",
    flops="1 per output element",
)(_elementwise(1, "activation"))


register(
    nn.Softmax,
    nn.LogSoftmax,
    params="0",
    macs="0",
    flops="3 per output element (exp, sum, divide)",
)(_elementwise(3, "softmax"))


# ---------------------------------------------------------------- pooling


_POOLS = (nn.MaxPool1d, nn.MaxPool2d, nn.MaxPool3d, nn.AvgPool1d, nn.AvgPool2d, nn.AvgPool3d)


def _pool_kernel(module: nn.Module, ndim: int) -> tuple[int, ...]:
    assert isinstance(module, _POOLS)
    return _as_tuple(module.kernel_size, ndim)


@register(
    nn.MaxPool1d,
    nn.MaxPool2d,
    nn.MaxPool3d,
    params="0",
    macs="0",
    flops="(k_h × k_w − 1) comparisons per output element",
)
def maxpool_rule(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    ndim = len(out_shape) - 2
    kernel = _pool_kernel(module, ndim)
    window = _product(kernel)
    factors = _shape_factors(out_shape)
    flops = (window - 1) * _numel(out_shape)
    expr = f"({_expr(kernel)} − 1) × {_expr(factors)}"
    return Count(0, 0, flops, "0", "0", f"{_eq(expr, flops)} (compares)")


@register(
    nn.AvgPool1d,
    nn.AvgPool2d,
    nn.AvgPool3d,
    params="0",
    macs="0",
    flops="k_h × k_w per output element (k·k − 1 adds + 1 divide)",
)
def avgpool_rule(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    ndim = len(out_shape) - 2
    kernel = _pool_kernel(module, ndim)
    factors = _shape_factors(out_shape)
    flops = _product(kernel) * _numel(out_shape)
    expr = f"{_expr(kernel)} × {_expr(factors)}"
    return Count(0, 0, flops, "0", "0", f"{_eq(expr, flops)} (adds + divide)")


def _adaptive_bins(size_in: int, size_out: int) -> int:
    """Sum of the bin lengths of adaptive pooling along one dimension (PyTorch's bins)."""
    total = 0
    for i in range(size_out):
        start = (i * size_in) // size_out
        end = -((-(i + 1) * size_in) // size_out)
        total += end - start
    return total


def _adaptive(kind: str) -> Rule:
    def rule(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
        spatial_in = [int(s) for s in in_shape[2:]]
        spatial_out = [int(s) for s in out_shape[2:]]
        lead = [int(s) for s in out_shape[:2]]
        bins = [_adaptive_bins(i, o) for i, o in zip(spatial_in, spatial_out, strict=True)]
        reads = _product(lead) * _product(bins)  # input elements read, summed over outputs
        outputs = _numel(out_shape)
        flops = reads - outputs if kind == "max" else reads
        uniform = all(i % o == 0 for i, o in zip(spatial_in, spatial_out, strict=True))
        if uniform:
            kernel = [i // o for i, o in zip(spatial_in, spatial_out, strict=True)]
            k_expr = _expr(kernel)
            expr = (f"({k_expr} − 1) × " if kind == "max" else f"{k_expr} × ") + _expr(
                _shape_factors(out_shape)
            )
        else:
            expr = f"{_expr(_shape_factors(out_shape)[: -len(bins)] or [1])} × bins {_expr(bins)}"
            if kind == "max":
                expr += f" − {_n(outputs)}"
        label = "compares" if kind == "max" else "adds + divide"
        return Count(0, 0, flops, "0", "0", f"{_eq(expr, flops)} ({label})")

    return rule


register(
    nn.AdaptiveAvgPool1d,
    nn.AdaptiveAvgPool2d,
    nn.AdaptiveAvgPool3d,
    params="0",
    macs="0",
    flops="bin size per output element (as average pooling; bins as PyTorch splits them)",
)(_adaptive("avg"))

register(
    nn.AdaptiveMaxPool1d,
    nn.AdaptiveMaxPool2d,
    nn.AdaptiveMaxPool3d,
    params="0",
    macs="0",
    flops="bin size − 1 comparisons per output element",
)(_adaptive("max"))


# ---------------------------------------------------------------- attention


@register(
    nn.MultiheadAttention,
    params="q/k/v projections + out projection (weights and biases)",
    macs="L × (E + k_dim + v_dim) × E (q, k, v) + 2 × L × L × E (QKᵀ, AV) + L × E × E (out); "
    "self-attention assumed (keys as long as queries)",
    flops="2 × MACs + bias adds + 3 per attention score (softmax)",
    atomic=True,
)
def attention_rule(module: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    """Multi-head attention as torchvision's ViT uses it (self-attention, L tokens of width E)."""
    assert isinstance(module, nn.MultiheadAttention)
    e, heads = module.embed_dim, module.num_heads
    kd, vd = module.kdim, module.vdim
    if len(in_shape) == 3:
        n, length = (in_shape[0], in_shape[1]) if module.batch_first else (in_shape[1], in_shape[0])
    else:  # unbatched (L, E)
        n, length = 1, in_shape[0]
    n, length = int(n), int(length)
    params = own_params(module)
    if module._qkv_same_embed_dim:
        p_terms = [f"3 × {_n(e)} × {_n(e)}"]
    else:
        p_terms = [f"({_n(e)} + {_n(kd)} + {_n(vd)}) × {_n(e)}"]
    if module.in_proj_bias is not None:
        p_terms.append(f"3 × {_n(e)}")
    p_terms.append(f"{_n(e)} × {_n(e)}")
    if module.out_proj.bias is not None:
        p_terms.append(_n(e))
    if module.bias_k is not None:
        p_terms.append(f"2 × {_n(e)}")
    p_text = f"{' + '.join(p_terms)} = {_n(params)}"
    lead = [n] if n != 1 else []
    proj = _product([*lead, length, e + kd + vd, e])
    attn = 2 * _product([*lead, length, length, e])
    out = _product([*lead, length, e, e])
    macs = proj + attn + out
    lead_text = f"{_n(n)} × " if n != 1 else ""
    m_text = (
        f"{lead_text}{_n(length)} × {_n(e + kd + vd)} × {_n(e)} + "
        f"2 × {lead_text}{_n(length)} × {_n(length)} × {_n(e)} + "
        f"{lead_text}{_n(length)} × {_n(e)} × {_n(e)} = {_n(macs)}"
    )
    bias_adds = 0
    if module.in_proj_bias is not None:
        bias_adds += n * length * 3 * e
    if module.out_proj.bias is not None:
        bias_adds += n * length * e
    softmax = 3 * n * heads * length * length
    flops = 2 * macs + bias_adds + softmax
    f_text = f"2 × {_n(macs)} + {_n(bias_adds)} (bias) + {_n(softmax)} (softmax) = {_n(flops)}"
    return Count(params, macs, flops, p_text, m_text, f_text)


SWIN_ATTENTION = "torchvision.models.swin_transformer:ShiftedWindowAttention"


@register(
    SWIN_ATTENTION,
    params="q/k/v and out projections + relative position bias table (V2: its MLP)",
    macs="T × C × 3C (q, k, v) + 2 × T × w_h·w_w × C (QKᵀ, AV) + T × C × C (out), T = tokens "
    "after padding to whole windows; V2 adds its position-bias MLP",
    flops="2 × MACs + bias adds + 3 per attention score (softmax)",
    atomic=True,
)
def window_attention_rule(layer: nn.Module, in_shape: Shape, out_shape: Shape) -> Count:
    """Swin's (shifted) window attention: attention within w_h × w_w windows of B × H × W × C."""
    assert any(  # isinstance(layer, ShiftedWindowAttention), V2 included, without the import
        f"{c.__module__}:{c.__name__}" == SWIN_ATTENTION for c in type(layer).__mro__
    )
    module: Any = layer  # torchvision's class, bound lazily (its attributes are read below)
    b, h, w, c = (int(s) for s in in_shape)
    wh, ww = (int(s) for s in module.window_size)
    pad_h, pad_w = -(-h // wh) * wh, -(-w // ww) * ww
    tokens = b * pad_h * pad_w
    window = wh * ww
    params = own_params(module)
    macs = tokens * c * 3 * c + 2 * tokens * window * c + tokens * c * c
    t = _n(tokens)
    m_text = (
        f"{t} × {_n(c)} × {_n(3 * c)} + 2 × {t} × {_n(window)} × {_n(c)} + {t} × {_n(c)} × {_n(c)}"
    )
    cpb = getattr(module, "cpb_mlp", None)
    if cpb is not None:  # V2: an MLP maps the (2w_h − 1)(2w_w − 1) relative offsets to biases
        table = (2 * wh - 1) * (2 * ww - 1)
        linears = [m for m in cpb.modules() if isinstance(m, nn.Linear)]
        cpb_macs = sum(table * lin.in_features * lin.out_features for lin in linears)
        macs += cpb_macs
        m_text += f" + {_n(cpb_macs)} (bias MLP)"
    bias_adds = tokens * 4 * c if module.qkv.bias is not None else 0
    softmax = 3 * tokens * window * module.num_heads
    flops = 2 * macs + bias_adds + softmax
    f_text = f"2 × {_n(macs)} + {_n(bias_adds)} (bias) + {_n(softmax)} (softmax) = {_n(flops)}"
    return Count(
        params,
        macs,
        flops,
        f"{_n(params)} (q/k/v, out, position bias)",
        f"{m_text} = {_n(macs)}",
        f_text,
    )


# ---------------------------------------------------------------- free layers


IDENTITY_AT_INFERENCE: tuple[type[nn.Module], ...] = (
    nn.Dropout,
    nn.Dropout1d,
    nn.Dropout2d,
    nn.Dropout3d,
    nn.AlphaDropout,
    nn.Identity,
)
"""Dropouts and Identity: the input itself at inference (free, output shaped as the input)."""

register(
    nn.Flatten,
    nn.Unflatten,
    *IDENTITY_AT_INFERENCE,
    "torchvision.ops.stochastic_depth:StochasticDepth",
    "torchvision.ops.misc:Permute",
    params="0",
    macs="0",
    flops="0 (reshape or permute; dropout and stochastic depth are the identity at inference)",
)(_zero)


def _conventions_markdown() -> str:
    lines = [
        "| layer kinds | params | MACs | FLOPs |",
        "|---|---|---|---|",
    ]
    for kinds, params, macs, flops in RULE_DOCS:
        lines.append(f"| {kinds} | {params} | {macs} | {flops} |")
    lines.append(
        "| anything else | tensor count | not counted | not counted (shown as *not counted*) |"
    )
    return "\n".join(lines) + "\n"


CONVENTIONS_MARKDOWN: str = (
    "**MACs** = multiply-accumulates of conv and linear layers, bias additions excluded "
    "(torchvision's published convention). **FLOPs** = 2 × MACs plus bias adds, "
    "normalisation, activation and pooling, per the rules below. Work outside modules "
    "(residual additions, squeeze-excitation scaling) is not counted.\n\n" + _conventions_markdown()
)
"""The rule table as Markdown, for the README and the Markdown report."""
