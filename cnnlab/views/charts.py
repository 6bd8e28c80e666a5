"""Plotly figures from analysis rows: per-layer costs, regular vs separable, shares by kind.

Charts only present numbers the analysis computed (:mod:`~cnnlab.counting.analyse`); the one thing
done here is grouping and adding them up for display (shares by layer kind, the "lesson" sentence).
Hover texts show exact integers; axes use SI prefixes.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import plotly.graph_objects as go
from plotly.subplots import make_subplots

from cnnlab.counting.analyse import Analysis, LayerRow, SeparableComparison

REGULAR_COLOR = "#4C78A8"
SEPARABLE_COLOR = "#F58518"
KIND_COLORS: dict[str, str] = {
    "conv": "#4C78A8",
    "linear": "#F58518",
    "norm": "#54A24B",
    "activation": "#B279A2",
    "pool": "#72B7B2",
    "other": "#9D755D",
}
KINDS: tuple[str, ...] = tuple(KIND_COLORS)
"""Layer kinds in display order."""

_KIND_BY_PREFIX: tuple[tuple[str, str], ...] = (
    ("ConvTranspose", "conv"),
    ("Conv", "conv"),
    ("Linear", "linear"),
    ("Bilinear", "linear"),
    ("BatchNorm", "norm"),
    ("LayerNorm", "norm"),
    ("GroupNorm", "norm"),
    ("InstanceNorm", "norm"),
    ("LocalResponseNorm", "norm"),
    ("MaxPool", "pool"),
    ("AvgPool", "pool"),
    ("AdaptiveAvgPool", "pool"),
    ("AdaptiveMaxPool", "pool"),
)
_ACTIVATIONS = {
    "ReLU", "ReLU6", "LeakyReLU", "ELU", "GELU", "SiLU", "Mish", "Sigmoid", "Tanh",
    "Hardswish", "Hardsigmoid", "Hardtanh", "Softmax", "LogSoftmax", "PReLU", "SELU",
}  # fmt: skip


def layer_kind(module_type: str) -> str:
    """``"Conv2d"`` → ``"conv"``; one of :data:`KINDS`."""
    if module_type in _ACTIVATIONS:
        return "activation"
    for prefix, kind in _KIND_BY_PREFIX:
        if module_type.startswith(prefix):
            return kind
    return "other"


def _layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    fig.update_layout(
        title={
            "text": title,
            "x": 0.0,
            "xanchor": "left",
            "yref": "container",
            "y": 0.98,
            "yanchor": "top",
        },
        height=height,
        margin={"l": 10, "r": 10, "t": 100, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.08, "x": 0.0, "xanchor": "left"},
        hoverlabel={"namelength": -1},
        bargap=0.2,
    )
    return fig


# ---------------------------------------------------------------- regular vs separable


def comparison_label(c: SeparableComparison) -> str:
    """``#1 3×3 64→128`` — a conv layer of a stack for axis labels.

    ``#`` is the layer's row number in the Conv Lab editor and tables, counted from 0 like the
    spec's messages (``layer 1 (conv): …``) and PyTorch's ``features.1`` — one numbering.
    """
    return f"#{c.index} {c.kernel}×{c.kernel} {c.in_channels}→{c.out_channels}"


def _lab_layout(fig: go.Figure, title: str, height: int) -> go.Figure:
    """:func:`_layout`, with the title and legend kept clear of plotly's toolbar (which sits at
    the top right and, on a phone, appears on the first tap): the title gets its own line."""
    _layout(fig, title, height)
    fig.update_layout(title={"y": 1.0, "pad": {"t": 36}}, margin={"t": 130})
    return fig


def separable_bars(comparisons: Sequence[SeparableComparison]) -> go.Figure:
    """Per conv layer: params (top) and MACs (bottom), regular vs depthwise-separable.

    The two panels are stacked, not side by side, so a narrow screen has no axis title squeezed
    between them; each panel's title names its unit.
    """
    labels = [comparison_label(c) for c in comparisons]
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.14,
        subplot_titles=("Parameters", "MACs"),
    )  # fmt: skip
    panels = (
        ("params", [c.regular_params for c in comparisons],
         [c.separable_params for c in comparisons]),
        ("MACs", [c.regular_macs for c in comparisons], [c.separable_macs for c in comparisons]),
    )  # fmt: skip
    for row, (unit, regular, separable) in enumerate(panels, start=1):
        for name, values, color in (
            ("regular", regular, REGULAR_COLOR),
            ("separable", separable, SEPARABLE_COLOR),
        ):
            fig.add_trace(
                go.Bar(
                    x=labels,
                    y=values,
                    name=name,
                    marker_color=color,
                    legendgroup=name,
                    showlegend=row == 1,
                    customdata=[f"{v:,}" for v in values],
                    hovertemplate=f"%{{x}}<br>{name}: %{{customdata}} {unit}<extra></extra>",
                ),
                row=row,
                col=1,
            )
        fig.update_yaxes(tickformat="~s", row=row, col=1)
    fig.update_layout(barmode="group")
    return _lab_layout(fig, "Per conv layer: regular vs separable", 520)


POINT_LABEL_GAP = (0.06, 0.04)
"""Points closer than this (decades of N, ratio) share one label on the theory chart."""


def point_labels(comparisons: Sequence[SeparableComparison]) -> list[str]:
    """One text label per point of :func:`theory_curve`: points that would sit on top of each
    other (the same N, about the same ratio) get one joint label (``#0, #1``) on the first of
    them and none on the others, so labels never overlap."""
    labels = [""] * len(comparisons)
    anchors: list[int] = []
    for i, c in enumerate(comparisons):
        for a in anchors:
            other = comparisons[a]
            if (
                abs(math.log10(c.out_channels) - math.log10(other.out_channels))
                < POINT_LABEL_GAP[0]
                and abs(c.ratio - other.ratio) < POINT_LABEL_GAP[1]
            ):
                labels[a] += f", #{c.index}"
                break
        else:
            anchors.append(i)
            labels[i] = f"#{c.index}"
    return labels


def theory_curve(
    comparisons: Sequence[SeparableComparison], *, n_max: int | None = None
) -> go.Figure:
    """The MobileNet cost ratio 1/N + 1/k² over N for each kernel in use; layers as points.

    The y value of a point is the layer's measured separable / regular MAC ratio, so a point on
    its curve means the counts agree with the theory. Points are labelled ``#<row>`` as in the
    Conv Lab table; coinciding points share one label (:func:`point_labels`).
    """
    fig = go.Figure()
    kernels = sorted({c.kernel for c in comparisons}) or [3]
    top = n_max or max([1024, *(2 * c.out_channels for c in comparisons)])
    n_values = _log_range(1, top, 200)
    palette = ("#4C78A8", "#54A24B", "#E45756", "#72B7B2", "#B279A2", "#9D755D")
    text = dict(zip((c.index for c in comparisons), point_labels(comparisons), strict=True))
    for i, k in enumerate(kernels):
        color = palette[i % len(palette)]
        fig.add_trace(
            go.Scatter(
                x=n_values,
                y=[1 / n + 1 / (k * k) for n in n_values],
                mode="lines",
                name=f"theory k={k}: 1/N + 1/{k * k}",
                line={"color": color},
                hovertemplate=f"k={k}, N=%{{x:.0f}}: ratio %{{y:.4f}}<extra></extra>",
            )
        )
        fig.add_hline(
            y=1 / (k * k), line_dash="dot", line_color=color, opacity=0.5,
            annotation_text=f"1/k² = 1/{k * k}", annotation_position="bottom right",
        )  # fmt: skip
        points = [c for c in comparisons if c.kernel == k]
        if points:
            fig.add_trace(
                go.Scatter(
                    x=[c.out_channels for c in points],
                    y=[c.ratio for c in points],
                    mode="markers+text",
                    name=f"stack layers k={k}",
                    marker={
                        "color": SEPARABLE_COLOR,
                        "size": 12,
                        "line": {"color": color, "width": 2},
                    },
                    text=[text[c.index] for c in points],
                    textposition="top center",
                    customdata=[
                        [comparison_label(c), c.separable_macs, c.regular_macs, c.theory]
                        for c in points
                    ],
                    hovertemplate=(
                        "%{customdata[0]}<br>separable / regular MACs = %{y:.4f}"
                        "<br>theory 1/N + 1/k² = %{customdata[3]:.4f}<extra></extra>"
                    ),
                )
            )
    fig.update_xaxes(type="log", title_text="N = output channels (log scale)")
    fig.update_yaxes(title_text="separable / regular MACs", rangemode="tozero")
    return _lab_layout(fig, "Cost ratio 1/N + 1/k² (MobileNet v1)", 520)


def _log_range(lo: int, hi: int, count: int) -> list[float]:
    a, b = math.log10(lo), math.log10(max(hi, lo + 1))
    return [10 ** (a + (b - a) * i / (count - 1)) for i in range(count)]


# ---------------------------------------------------------------- a whole model


def costly_rows(analysis: Analysis) -> list[LayerRow]:
    """Rows that hold parameters or do MACs (conv, linear, …), in forward order."""
    return [r for r in analysis.rows if r.params > 0 or r.macs > 0]


def model_layer_bars(analysis: Analysis, names: Mapping[str, str] | None = None) -> go.Figure:
    """Params (top) and MACs (bottom) per layer, coloured by kind, for a whole model.

    ``names`` (module → a course's name, ``features.0`` → ``conv1``) show in the hover text.
    """
    rows = costly_rows(analysis)
    also = names or {}
    labels = [r.type + (f", {also[r.name]}" if r.name in also else "") for r in rows]
    modules = [r.name for r in rows]
    fig = make_subplots(
        rows=2, cols=1, shared_xaxes=True, vertical_spacing=0.08,
        subplot_titles=("Parameters per layer", "MACs per layer"),
    )  # fmt: skip
    total_params = analysis.totals.params or 1
    total_macs = analysis.totals.macs or 1
    for kind in KINDS:
        idx = [i for i, r in enumerate(rows) if layer_kind(r.type) == kind]
        if not idx:
            continue
        for row_no, attr, unit, total in (
            (1, "params", "params", total_params),
            (2, "macs", "MACs", total_macs),
        ):
            values = [getattr(rows[i], attr) for i in idx]
            fig.add_trace(
                go.Bar(
                    x=[modules[i] for i in idx],
                    y=values,
                    name=kind,
                    legendgroup=kind,
                    showlegend=row_no == 1,
                    marker_color=KIND_COLORS[kind],
                    customdata=[
                        [labels[i], f"{v:,}", 100 * v / total]
                        for i, v in zip(idx, values, strict=True)
                    ],
                    hovertemplate=(
                        f"%{{x}} (%{{customdata[0]}})<br>%{{customdata[1]}} {unit}"
                        " (%{customdata[2]:.1f} % of total)<extra></extra>"
                    ),
                ),
                row=row_no,
                col=1,
            )
    fig.update_xaxes(categoryorder="array", categoryarray=modules, tickangle=-45)
    fig.update_yaxes(title_text="params", tickformat="~s", row=1, col=1)
    fig.update_yaxes(title_text="MACs", tickformat="~s", row=2, col=1)
    return _layout(fig, f"{analysis.model}: where the parameters and the MACs are", 620)


@dataclass(frozen=True)
class KindShare:
    """One layer kind's part of a model's totals."""

    kind: str
    layers: int
    params: int
    macs: int
    flops: int
    activation_bytes: int


def shares_by_kind(analysis: Analysis) -> list[KindShare]:
    """Totals per layer kind (conv, linear, norm, activation, pool, other), kinds present only."""
    out = []
    for kind in KINDS:
        rows = [r for r in analysis.rows if layer_kind(r.type) == kind]
        if rows:
            out.append(
                KindShare(
                    kind=kind,
                    layers=len(rows),
                    params=sum(r.params for r in rows),
                    macs=sum(r.macs for r in rows),
                    flops=sum(r.flops for r in rows),
                    activation_bytes=sum(r.activation_bytes for r in rows),
                )
            )
    return out


def kind_share_bars(analysis: Analysis) -> go.Figure:
    """100 %-stacked bars: each kind's share of params, MACs, FLOPs and activation memory."""
    shares = shares_by_kind(analysis)
    measures = (
        ("params", "params", analysis.totals.params),
        ("MACs", "macs", analysis.totals.macs),
        ("FLOPs", "flops", analysis.totals.flops),
        ("activation memory", "activation_bytes", analysis.totals.activation_bytes),
    )
    fig = go.Figure()
    labels = [m[0] for m in measures]
    for share in shares:
        values = [getattr(share, attr) for _, attr, _ in measures]
        totals = [total for _, _, total in measures]
        percent = [100 * v / t if t else 0.0 for v, t in zip(values, totals, strict=True)]
        fig.add_trace(
            go.Bar(
                y=labels,
                x=percent,
                name=f"{share.kind} ({share.layers})",
                orientation="h",
                marker_color=KIND_COLORS[share.kind],
                text=[f"{p:.0f} %" if p >= 4 else "" for p in percent],
                textposition="inside",
                customdata=[f"{v:,}" for v in values],
                hovertemplate=(
                    f"{share.kind}: %{{x:.1f}} % of %{{y}} (%{{customdata}})<extra></extra>"
                ),
            )
        )
    fig.update_layout(barmode="stack", legend_traceorder="normal")
    fig.update_xaxes(range=[0, 100], title_text="% of the model's total", ticksuffix=" %")
    fig.update_yaxes(autorange="reversed")
    return _layout(fig, "Share of the totals by layer kind (number of layers in brackets)", 320)


def lesson(analysis: Analysis) -> str:
    """One sentence on where the parameters and the MACs are (the classic AlexNet/VGG lesson)."""
    rows = costly_rows(analysis)
    if not rows or not analysis.totals.params:
        return ""
    biggest = max(rows, key=lambda r: r.params)
    shares = {s.kind: s for s in shares_by_kind(analysis)}
    p_share = 100 * biggest.params / analysis.totals.params
    text = (
        f"The largest layer, {biggest.name} ({biggest.type}), holds {p_share:.1f} % of the "
        f"{analysis.totals.params:,} parameters"
    )
    conv, linear = shares.get("conv"), shares.get("linear")
    if conv is not None and analysis.totals.macs:
        text += f"; conv layers do {100 * conv.macs / analysis.totals.macs:.1f} % of the MACs"
        if linear is not None:
            text += (
                f" while linear layers hold {100 * linear.params / analysis.totals.params:.1f} % "
                "of the parameters"
            )
    return text + "."
