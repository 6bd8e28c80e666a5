"""The Inside page's view-models: feature maps, filters, one output step by step, mistakes.

A *source* is a finished run (``("run", RUN_ID)``: its checkpoint, and its initial weights when
the run kept them) or the Conv Lab stack (``("lab", SPEC_JSON)``: random weights, seeded). The
arguments are plain strings, arrays and tuples so a page can cache every view per server process
(:func:`cnnlab.views.ui.cached_view`); the models themselves are loaded once per checkpoint file
here. Every bad input is a :class:`UserError` with one line to show.
"""

from __future__ import annotations

import json
import threading
import time
from collections import OrderedDict
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import plotly.graph_objects as go
import torch
from torch import nn

from cnnlab.counting import zoo
from cnnlab.counting.spec import StackSpec
from cnnlab.errors import UserError
from cnnlab.inside import filters as filt
from cnnlab.inside import steps
from cnnlab.inside.features import MAX_TILE_PX, FeatureMap, digit_input, feature_maps, map_grid
from cnnlab.inside.saliency import METHODS, saliency_map
from cnnlab.training import names
from cnnlab.training.checkpoints import INITIAL, load_checkpoint
from cnnlab.training.data import MnistSplit, load_mnist
from cnnlab.training.recipe import prepare
from cnnlab.training.store import RunStore
from cnnlab.views import run_charts
from cnnlab.views.images import upscale
from cnnlab.views.runview import parse_run_id

PAGE_CHANNELS = 32  # channels drawn per layer and page (a wide layer pages through the rest)
GRID_INDEX_PX, GRID_CELL_PX = 80, 56  # the clickable confusion matrix's column widths
CELL_DIGITS = 24  # test digits shown for one confusion-matrix cell
FULL_TEST_MAX_INPUT = 64  # up to this input size a model predicts the whole test set
PREDICT_BUDGET_S = 15.0  # the confusion matrix predicts as many test digits as fit in this
FIRST_BATCH = 4  # the warm-up batch; the timed one is 4× that
RUN, LAB = "run", "lab"


# --- sources ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class Loaded:
    """A source's model(s), ready to run on one digit."""

    title: str
    model: nn.Module
    input_size: int
    initial: nn.Module | None  # the weights before training (None: not kept)
    initial_note: str
    run_id: str | None


_models: OrderedDict[tuple[str, ...], Loaded] = OrderedDict()
_lock = threading.Lock()
MODELS_KEPT = 4


def _remember(key: tuple[str, ...], make: Any) -> Loaded:
    with _lock:
        if key in _models:
            _models.move_to_end(key)
            return _models[key]
    loaded: Loaded = make()
    with _lock:
        _models[key] = loaded
        while len(_models) > MODELS_KEPT:
            _models.popitem(last=False)
    return loaded


def finished_runs(store: RunStore) -> list[tuple[str, str]]:
    """(run id, label) of the finished runs, newest first: the page's run picker."""
    return [
        (r.id, f"{r.name} · {r.model} · {r.id}") for r in store.list_runs(status=names.FINISHED)
    ]


def _run_checkpoint(store: RunStore, run_id: str) -> tuple[str, Path]:
    if parse_run_id(run_id) is None:
        raise UserError(f"{run_id!r} is not a run id (12 hex digits): pick a run from the list")
    run = store.get_run(run_id, trashed=True)
    if run is None:
        raise UserError(f"no run with id {run_id} (it may have been deleted)")
    if run.deleted_at is not None:
        raise UserError(
            f"run {run_id} was deleted: it is in the trash (restore it on the Runs page)"
        )
    artifact = store.get_artifact(run.id, names.CHECKPOINT)
    if artifact is None or artifact.path is None or not Path(artifact.path).is_file():
        why = "" if run.status == names.FINISHED else f" (it is {run.status})"
        raise UserError(f"run {run.id} has no checkpoint{why}: only a finished run can be opened")
    return f"{run.name} ({run.model})", Path(artifact.path)


def load_source(kind: str, key: str) -> Loaded:
    """The model of a source: ``("run", run_id)`` or ``("lab", lab_key(spec, seed))``."""
    if kind == RUN:
        store = RunStore()
        title, path = _run_checkpoint(store, key)
        initial = store.get_artifact(key, INITIAL)
        init_path = initial.path if initial is not None else None

        def load() -> Loaded:
            model, config = load_checkpoint(path)
            before, note = None, "this run did not keep its initial weights (a run from before"
            note += " they were kept, or a model over 2 M parameters)"
            if init_path is not None and Path(init_path).is_file():
                before, note = load_checkpoint(init_path)[0], ""
            return Loaded(f"run {key}: {title}", model, config.input_size, before, note, key)

        return _remember((RUN, key, str(path), str(path.stat().st_mtime)), load)
    if kind == LAB:
        return _remember((LAB, key), lambda: _lab_model(key))
    raise UserError(f"unknown source {kind!r}: a finished run or the Conv Lab stack")


def lab_key(spec: Mapping[str, Any], seed: int) -> str:
    """The Conv Lab stack (spec dict) and seed as one cache key."""
    return json.dumps({"spec": dict(spec), "seed": int(seed)}, sort_keys=True)


def _lab_model(key: str) -> Loaded:
    blob = json.loads(key)
    spec = StackSpec.from_dict(blob["spec"])
    _, h, w = spec.input
    if h != w:
        raise UserError(f"the Conv Lab stack's input is {h}×{w}: a digit needs a square input")
    torch.manual_seed(int(blob["seed"]))
    model = zoo.build_model(zoo.STACK, mnist=True, spec=spec).eval()
    title = f"Conv Lab stack “{spec.name}” (random weights, seed {blob['seed']})"
    note = "random weights: train this stack on the Train page to see learned filters"
    return Loaded(title, model, int(h), None, note, None)


# --- feature maps -----------------------------------------------------------------------------

SENTENCES = {
    "depthwise": "Depthwise {k}: one k×k filter per input channel, each map filtered on its own"
    " — spatial filtering only, no mixing of channels ({k2} multiply-adds per output).",
    "pointwise": "Pointwise 1×1: every output map is a weighted sum of the {m} depthwise maps at"
    " the same pixel — channels mixed, no spatial filtering ({m} multiply-adds per output).",
    "conv": "Conv {k}: each of its {n} maps is a {k} window slid over all {m} input map(s),"
    " {km} products summed per output — a pattern detector across channels.",
    "MaxPool2d": "Max-pool {k}: keeps the strongest value of each window — smaller maps, the"
    " strongest responses kept, no weights.",
    "AvgPool2d": "Average-pool {k}: the mean of each window — smaller, smoother maps, no weights.",
    "pool": "{type}: one value per window of the maps before it — smaller maps, no weights.",
}


@dataclass(frozen=True)
class LayerPanel:
    """One conv or pooling output (or one stage of a separable conv) as the page draws it."""

    index: int
    name: str
    type: str
    stage: str | None
    shape_text: str  # "16 × 28 × 28"
    sentence: str
    picture: np.ndarray  # the grid of heatmaps (uint8 RGB)
    first: int  # first channel drawn
    drawn: int  # channels drawn
    channels: int  # channels in the layer
    pages: int  # pages of PAGE_CHANNELS channels
    min: float
    max: float

    @property
    def title(self) -> str:
        stage = f" — {self.stage} stage" if self.stage else ""
        return f"{self.name} · {self.type}{stage} · {self.shape_text}"

    @property
    def drawn_text(self) -> str:
        step = -(-max(int(s) for s in self.shape_text.split(" × ")[1:]) // MAX_TILE_PX)
        every = f", one pixel in {step} drawn" if step > 1 else ""
        if self.drawn == self.channels:
            return f"all {self.channels} channels, each on its own colour scale{every}"
        return f"channels {self.first}–{self.first + self.drawn - 1} of {self.channels}{every}"


@dataclass(frozen=True)
class MapsView:
    title: str
    picture: np.ndarray  # the 28×28 digit, enlarged
    label: str
    top: tuple[tuple[int, float], ...]  # (digit, probability), the 3 most likely
    probabilities: tuple[float, ...]
    figure: go.Figure
    layers: tuple[LayerPanel, ...]


def _sentence(row: FeatureMap, model: nn.Module) -> str:
    module = dict(model.named_modules()).get(row.name)
    if isinstance(module, nn.Conv2d):
        kh, kw = module.kernel_size
        k, m = f"{kh}×{kw}", module.in_channels // module.groups
        kind = row.stage or "conv"
        return SENTENCES[kind].format(k=k, k2=kh * kw, m=m, n=module.out_channels, km=kh * kw * m)
    size = getattr(module, "kernel_size", None)
    k = "×".join(str(v) for v in size) if isinstance(size, tuple) else f"{size}×{size}"
    return SENTENCES.get(row.type, SENTENCES["pool"]).format(type=row.type, k=k)


def maps_view(
    kind: str, key: str, digit: np.ndarray, label: str, pages: tuple[tuple[str, int], ...] = ()
) -> MapsView:
    """Every conv and pooling output of the source's model for one 28×28 uint8 digit.

    ``pages``: (layer name, page) pairs for wide layers (page p shows channels
    p·:data:`PAGE_CHANNELS` onwards)."""
    loaded = load_source(kind, key)
    x = _input(digit, loaded.input_size)
    first = {name: max(0, int(page)) * PAGE_CHANNELS for name, page in pages}
    features = feature_maps(loaded.model, x, PAGE_CHANNELS, first)
    panels = []
    for i, row in enumerate(features.rows):
        panels.append(
            LayerPanel(
                index=i,
                name=row.name,
                type=row.type,
                stage=row.stage,
                shape_text=" × ".join(str(s) for s in row.shape),
                sentence=_sentence(row, loaded.model),
                picture=map_grid(row),
                first=row.first,
                drawn=row.kept,
                channels=row.channels,
                pages=-(-row.channels // PAGE_CHANNELS),
                min=row.min,
                max=row.max,
            )
        )
    probs = tuple(features.probabilities)
    order = sorted(range(len(probs)), key=lambda d: -probs[d])[:3]
    return MapsView(
        title=loaded.title,
        picture=upscale(np.asarray(digit, dtype=np.uint8), 4),
        label=label,
        top=tuple((d, probs[d]) for d in order),
        probabilities=probs,
        figure=run_charts.probability_figure(probs),
        layers=tuple(panels),
    )


def _input(digit: np.ndarray, size: int) -> torch.Tensor:
    array = np.asarray(digit)
    if array.shape != (28, 28) or array.dtype != np.uint8:
        raise UserError(f"a digit is a 28×28 uint8 picture, got {array.dtype} {array.shape}")
    return digit_input(torch.from_numpy(np.ascontiguousarray(array)), size)


def test_digit(test: MnistSplit, index: int) -> tuple[np.ndarray, str]:
    """Test digit ``index`` and its caption (a :class:`UserError` outside the test set)."""
    if not 0 <= int(index) < len(test):
        raise UserError(f"test digit {index} is outside the test set (0 to {len(test) - 1:,})")
    return test.images[int(index)].numpy(), f"test #{index}, true label {int(test.labels[index])}"


# --- filters ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class FilterPanel:
    name: str
    kind: str  # "regular" or "depthwise"
    shape_text: str  # "16 × 1 × 5 × 5"
    drawn_text: str
    after: np.ndarray
    before: np.ndarray | None
    scale: float


@dataclass(frozen=True)
class FiltersView:
    title: str
    panels: tuple[FilterPanel, ...]
    note: str  # why there is no "before" (empty when there is)


def filters_view(kind: str, key: str) -> FiltersView:
    """The first conv layers' kernels (and depthwise ones), before and after training."""
    loaded = load_source(kind, key)
    after = filt.filter_layers(loaded.model)
    before = {f.name: f for f in filt.filter_layers(loaded.initial)} if loaded.initial else {}
    panels = []
    for layer in after:
        old = before.get(layer.name)
        scale = max(layer.scale, old.scale) if old is not None else layer.scale
        rows, cols = layer.kernels.shape[:2]
        if layer.one_per_channel:
            what = "channel" if layer.depthwise else "output channel (one input channel)"
            drawn = f"one {layer.weight_shape[2]}×{layer.weight_shape[3]} kernel per {what}"
            drawn += f" ({min(layer.weight_shape[0], rows * cols)} of {layer.weight_shape[0]})"
        else:
            drawn = f"rows: output channels (first {rows} of {layer.weight_shape[0]}); columns:"
            drawn += f" input channels (first {cols} of {layer.weight_shape[1]})"
        panels.append(
            FilterPanel(
                name=layer.name,
                kind="depthwise" if layer.depthwise else "regular",
                shape_text=" × ".join(str(s) for s in layer.weight_shape),
                drawn_text=drawn + f"; blue < 0 < red, ±{scale:.3g}",
                after=filt.filter_picture(layer, scale),
                before=None if old is None else filt.filter_picture(old, scale),
                scale=scale,
            )
        )
    return FiltersView(loaded.title, tuple(panels), loaded.initial_note)


# --- one output, step by step -----------------------------------------------------------------


@dataclass(frozen=True)
class StepView:
    layers: tuple[tuple[int, str], ...]  # (trace index, label) of the conv layers
    layer: int
    shape: tuple[int, int, int]  # the chosen layer's output C, H, W
    output: steps.OneOutput
    box: tuple[
        int, int, int, int
    ]  # receptive field on the model's input (top, left, bottom, right)
    field_figure: go.Figure
    lines: tuple[str, ...]  # the products written out
    sum_text: str
    count_text: str
    rule_text: str
    pair_text: str  # for a separable stage: how the two halves add up ("" otherwise)
    animation: go.Figure


def conv_layers(
    kind: str, key: str, digit: np.ndarray
) -> tuple[tuple[int, str, tuple[int, int, int]], ...]:
    """(trace index, label, output C×H×W) of every conv layer: the page's layer picker."""
    loaded = load_source(kind, key)
    rows = steps.trace(loaded.model, _input(digit, loaded.input_size))
    return tuple(
        (i, _conv_label(rows[i]), tuple(int(s) for s in rows[i].output.shape[1:]))  # type: ignore[misc]
        for i in steps.conv_rows(rows)
    )


def _conv_label(row: steps.Traced) -> str:
    stage = f" ({row.stage})" if row.stage else ""
    c, h, w = (int(s) for s in row.output.shape[1:])
    return f"{row.name}{stage} · {c} × {h} × {w}"


def step_view(
    kind: str, key: str, digit: np.ndarray, layer: int, channel: int, y: int, x: int
) -> StepView:
    """Output (channel, y, x) of conv layer ``layer`` (a trace index): its receptive field, its
    products, its count and the layer's rule-table MACs."""
    loaded = load_source(kind, key)
    inp = _input(digit, loaded.input_size)
    rows = steps.trace(loaded.model, inp)
    convs = steps.conv_rows(rows)
    if layer not in convs:
        raise UserError(
            f"layer {layer} is not one of the conv layers ({', '.join(map(str, convs))})"
        )
    one = steps.one_output(rows, layer, channel, y, x)
    box = steps.receptive_box(rows, layer, y, x)
    row = rows[layer]
    conv = row.module
    assert isinstance(conv, nn.Conv2d)
    lines = tuple(f"{t.weight:+.4f} × {t.value:+.4f}   ({t.where})" for t in one.terms)
    more = one.count - len(one.terms)
    if more > 0:
        lines += (f"… and {more:,} more products",)
    bias = f" + bias {one.bias:+.4f}" if one.bias is not None else ""
    check = "✓ equals" if one.matches else "✗ differs from"
    sum_text = (
        f"Σ of {one.count:,} products{bias} = {one.total:+.5f} — {check} the layer's output"
        f" {one.actual:+.5f} (before its activation)"
    )
    kh, kw = conv.kernel_size
    m = conv.in_channels // conv.groups
    what = {"depthwise": "k·k (one input channel)", "pointwise": "M (1×1, every input channel)"}
    count_text = f"{one.count_formula} multiply-adds for this one number: " + what.get(
        row.stage or "", f"k·k·M = {kh}·{kw}·{m}" if m > 1 else "k·k"
    )
    c, h, w = (int(s) for s in row.output.shape[1:])
    rule_text = (
        f"Rule table (as `cnnlab profile`): layer MACs = {one.rule.macs_formula}; output elements"
        f" {c} × {h} × {w} = {one.output_elements:,}; MACs / output elements ="
        f" {one.per_output:,.0f} {'=' if one.per_output == one.count else '≠'} {one.count:,}"
    )
    pair_text = _pair_text(rows, layer)
    return StepView(
        layers=tuple((i, _conv_label(rows[i])) for i in convs),
        layer=layer,
        shape=(c, h, w),
        output=one,
        box=box,
        field_figure=_field_figure(inp, box, one),
        lines=lines,
        sum_text=sum_text,
        count_text=count_text,
        rule_text=rule_text,
        pair_text=pair_text,
        animation=_slide_figure(row, one),
    )


def _pair_text(rows: list[steps.Traced], index: int) -> str:
    row = rows[index]
    if row.stage is None:
        return ""
    dw_i = index if row.stage == "depthwise" else index - 1
    pw_i = dw_i + 1
    if not (dw_i >= 0 and pw_i < len(rows)) or rows[pw_i].stage != "pointwise":
        return ""
    dw, pw = rows[dw_i].module, rows[pw_i].module
    assert isinstance(dw, nn.Conv2d) and isinstance(pw, nn.Conv2d)
    kh, kw = dw.kernel_size
    m, n = pw.in_channels, pw.out_channels
    sep, reg = kh * kw * m + m * n, kh * kw * m * n
    return (
        f"Separable layer: per output pixel, depthwise {kh}·{kw}·{m} + pointwise {m}·{n} ="
        f" {sep:,} multiply-adds, against {kh}·{kw}·{m}·{n} = {reg:,} for a regular {kh}×{kw}"
        f" conv ({sep / reg:.1%}: 1/N + 1/k² = {1 / n + 1 / (kh * kw):.1%})"
    )


def _field_figure(
    inp: torch.Tensor, box: tuple[int, int, int, int], one: steps.OneOutput
) -> go.Figure:
    image = inp[0, 0].float().cpu().numpy()
    top, left, bottom, right = box
    fig = go.Figure(
        go.Heatmap(
            z=image,
            colorscale="Greys",
            reversescale=True,
            showscale=False,
            hovertemplate="row %{y}, column %{x}: %{z:.2f}<extra></extra>",
        )
    )
    fig.add_shape(
        type="rect",
        x0=left - 0.5,
        x1=right + 0.5,
        y0=top - 0.5,
        y1=bottom + 0.5,
        line={"color": "#E45756", "width": 3},
        fillcolor="rgba(228,87,86,0.18)",
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x", showticklabels=False)
    fig.update_xaxes(showticklabels=False)
    size = f"{bottom - top + 1}×{right - left + 1}"
    fig.update_layout(
        title={
            "text": f"Receptive field of ({one.channel}, {one.y}, {one.x}) of {one.layer}:"
            f" {size} input pixels",
            "x": 0,
        },
        height=340,
        margin={"l": 10, "r": 10, "t": 50, "b": 10},
    )
    return fig


MAX_SLIDE = 14  # the animation shows at most a 14×14 piece of the layer's input
MAX_FRAMES = 16


def _slide_figure(row: steps.Traced, one: steps.OneOutput) -> go.Figure:
    """A plotly-frames animation: the kernel's window sliding along the chosen output row over
    one input channel of the layer (a piece of at most 14×14 around the chosen position), the
    output it makes in each frame's title."""
    conv = row.module
    assert isinstance(conv, nn.Conv2d)
    geo = steps.geometry(conv)
    assert geo is not None
    (kh, kw), (sh, sw), (ph, pw), (dh, dw) = geo
    per_out = conv.out_channels // conv.groups
    channel_in = (one.channel // per_out) * (conv.in_channels // conv.groups)
    plane = row.input[0, channel_in].cpu().numpy()
    h_in, w_in = plane.shape
    span_h, span_w = dh * (kh - 1), dw * (kw - 1)  # the window's reach beyond its first pixel
    y0 = one.y * sh - ph  # the window's first input row (may be in the padding)

    def corner(at: int, size: int) -> int:
        return int(np.clip(at - MAX_SLIDE // 2, 0, max(0, size - MAX_SLIDE)))

    top = corner(y0 + span_h // 2, h_in)
    left = corner(one.x * sw - pw + span_w // 2, w_in)
    bottom, right = min(h_in, top + MAX_SLIDE), min(w_in, left + MAX_SLIDE)
    out = row.output[0, one.channel].cpu().numpy()
    xs = [
        x for x in range(out.shape[1]) if left - 1 <= x * sw - pw and x * sw - pw + span_w <= right
    ]
    if one.x in xs and len(xs) > MAX_FRAMES:  # keep the chosen position among the frames
        at = xs.index(one.x)
        xs = xs[max(0, at - MAX_FRAMES // 2) :][:MAX_FRAMES]
    xs = xs[:MAX_FRAMES] or [one.x]

    def window(x: int) -> dict[str, Any]:
        x0 = x * sw - pw
        return {
            "type": "rect",
            "x0": x0 - 0.5,
            "x1": x0 + span_w + 0.5,
            "y0": y0 - 0.5,
            "y1": y0 + span_h + 0.5,
            "line": {"color": "#E45756", "width": 3},
        }

    def title(x: int) -> str:
        value = f"output ({one.channel}, {one.y}, {x}) = {float(out[one.y, x]):+.3f}"
        return f"{value}<br><sub>the {kh}×{kw} window on input channel {channel_in}</sub>"

    frames = [
        go.Frame(name=str(x), layout={"shapes": [window(x)], "title": {"text": title(x)}})
        for x in xs
    ]
    heat = go.Heatmap(
        z=plane[top:bottom, left:right],
        x=list(range(left, right)),
        y=list(range(top, bottom)),
        colorscale="Viridis",
        showscale=False,
        hovertemplate="row %{y}, column %{x}: %{z:.2f}<extra></extra>",
    )
    first = xs.index(one.x) if one.x in xs else 0
    play = {"frame": {"duration": 500, "redraw": True}, "fromcurrent": True}
    jump = {"mode": "immediate", "frame": {"duration": 0, "redraw": True}}
    fig = go.Figure(data=[heat], frames=frames)
    fig.update_layout(
        shapes=[window(xs[first])],
        title={"text": title(xs[first]), "x": 0},
        height=440,
        margin={"l": 10, "r": 10, "t": 80, "b": 90},
        updatemenus=[
            {
                "type": "buttons",
                "showactive": False,
                "x": 0,
                "y": -0.18,
                "xanchor": "left",
                "yanchor": "top",
                "buttons": [{"label": "▶ slide", "method": "animate", "args": [None, play]}],
            }
        ],
        sliders=[
            {
                "active": first,
                "x": 0.16,
                "len": 0.84,
                "y": -0.12,
                "yanchor": "top",
                "currentvalue": {"prefix": "output column "},
                "steps": [
                    {"label": str(x), "method": "animate", "args": [[str(x)], jump]} for x in xs
                ],
            }
        ],
    )
    fig.update_yaxes(autorange="reversed", scaleanchor="x")
    return fig


# --- mistakes ---------------------------------------------------------------------------------

_predictions: OrderedDict[tuple[str, int], tuple[np.ndarray, np.ndarray]] = OrderedDict()


DIAGONAL_CSS = np.where(np.eye(10, dtype=bool), "background-color: #c7e9c0", "")
"""The confusion table's styles: the correct answers (the diagonal) green, apart."""


@dataclass(frozen=True)
class MistakesView:
    matrix: tuple[tuple[int, ...], ...]  # 10×10 counts: rows true, columns predicted
    digits: int  # test digits predicted
    note: str

    @property
    def off_diagonal(self) -> np.ndarray:
        """The mistakes only (the diagonal 0): what the table's red shades."""
        return np.array(self.matrix) * (1 - np.eye(10, dtype=np.int64))

    @property
    def worst(self) -> int:
        """The largest mistake count (at least 1): the darkest red."""
        return max(1, int(self.off_diagonal.max()))


def _predicted(run_id: str, test: MnistSplit) -> tuple[np.ndarray, np.ndarray]:
    """(labels, predictions) of the run's model on the test digits: all of them at an input up
    to 64×64; for a larger input as many as fit in :data:`PREDICT_BUDGET_S` seconds here (the
    first few dozen for VGG-16 at 224 on a CPU), timed on a batch after a warm-up one."""
    loaded = load_source(RUN, run_id)
    key = (f"{run_id}:{id(loaded.model)}", len(test))
    with _lock:
        if key in _predictions:
            return _predictions[key]
    loaded.model.eval()
    preds: list[np.ndarray] = []
    n, done = len(test), 0
    with torch.inference_mode():
        for size in (FIRST_BATCH, 4 * FIRST_BATCH):  # a warm-up batch, then one timed
            started = time.perf_counter()
            preds.append(_predict(loaded, test.images[done : min(n, done + size)]))
            done += len(preds[-1])
        per_digit = (time.perf_counter() - started) / max(1, len(preds[-1]))
        if loaded.input_size > FULL_TEST_MAX_INPUT:  # MNIST-size models: always the whole set
            n = min(n, max(done, int(PREDICT_BUDGET_S / max(per_digit, 1e-9))))
        while done < n:
            preds.append(_predict(loaded, test.images[done : min(n, done + 500)]))
            done += len(preds[-1])
    result = (test.labels[:done].numpy().astype(np.int64), np.concatenate(preds).astype(np.int64))
    with _lock:
        _predictions[key] = result
        while len(_predictions) > MODELS_KEPT:
            _predictions.popitem(last=False)
    return result


def _predict(loaded: Loaded, images: torch.Tensor) -> np.ndarray:
    if not len(images):
        return np.zeros(0, np.int64)
    x = prepare(images, loaded.input_size, torch.device("cpu"))
    return loaded.model(x).argmax(1).numpy()


def _test_split(test: MnistSplit | None) -> MnistSplit:
    global _test
    if test is not None:
        return test
    if _test is None:
        _test = load_mnist("test")
    return _test


_test: MnistSplit | None = None


def mistakes_view(run_id: str, test: MnistSplit | None = None) -> MistakesView:
    """The run's confusion matrix, computed here from its predictions (the same digits the cells
    then list) on ``test`` (default: the MNIST test set)."""
    test = _test_split(test)
    labels, preds = _predicted(run_id, test)
    matrix = np.zeros((10, 10), np.int64)
    np.add.at(matrix, (labels, preds), 1)
    note = (
        ""
        if len(labels) == len(test)
        else (
            f"the first {len(labels):,} test digits only: all {len(test):,} would take this"
            f" model more than {PREDICT_BUDGET_S:.0f} s here"
        )
    )
    return MistakesView(tuple(tuple(int(c) for c in row) for row in matrix), len(labels), note)


@dataclass(frozen=True)
class CellView:
    true: int
    predicted: int
    count: int
    indices: tuple[int, ...]  # the first :data:`CELL_DIGITS` of the cell
    pictures: tuple[np.ndarray, ...]
    caption: str


def cell_view(run_id: str, true: int, predicted: int, test: MnistSplit | None = None) -> CellView:
    """The test digits of one cell of the confusion matrix (true ``true``, predicted
    ``predicted``)."""
    test = _test_split(test)
    if not (0 <= int(true) < 10 and 0 <= int(predicted) < 10):
        raise UserError(f"a confusion-matrix cell is two digits 0–9, got ({true}, {predicted})")
    labels, preds = _predicted(run_id, test)
    hits = np.flatnonzero((labels == true) & (preds == predicted))
    shown = tuple(int(i) for i in hits[:CELL_DIGITS])
    what = "correct" if true == predicted else "mistaken"
    caption = f"{len(hits):,} test digits: true {true}, predicted {predicted} ({what})"
    if len(hits) > len(shown):
        caption += f"; the first {len(shown)} shown"
    return CellView(
        true=int(true),
        predicted=int(predicted),
        count=len(hits),
        indices=shown,
        pictures=tuple(upscale(test.images[i].numpy(), 2) for i in shown),
        caption=caption,
    )


# --- saliency ---------------------------------------------------------------------------------


@dataclass(frozen=True)
class SaliencyView:
    method: str
    target: int
    text: str
    picture: np.ndarray  # RGB uint8: the digit (grey) with the map over it (red–yellow)
    raw: np.ndarray  # the [H, W] float map as computed


def saliency_view(
    kind: str, key: str, digit: np.ndarray, method: str, target: int | None = None
) -> SaliencyView:
    """A captum attribution map for the predicted (or ``target``) class of one digit."""
    loaded = load_source(kind, key)
    x = _input(digit, loaded.input_size)
    if target is None:
        with torch.inference_mode():
            target = int(loaded.model(x).argmax(1))
    black = _input(np.zeros((28, 28), np.uint8), loaded.input_size)
    raw = saliency_map(loaded.model, x, int(target), method, black)
    peak = float(raw.max()) or 1.0
    heat = np.clip(raw / peak, 0, 1)
    grey = (x[0, 0].cpu().numpy() - float(x.min())) / max(1e-6, float(x.max() - x.min()))
    base = np.stack([grey * 0.6] * 3, axis=-1)
    hot = np.stack([np.ones_like(heat), heat, np.zeros_like(heat)], axis=-1)
    alpha = heat[..., None] ** 0.7
    picture = np.clip(np.round(255 * ((1 - alpha) * base + alpha * hot)), 0, 255).astype(np.uint8)
    scale = max(1, 224 // picture.shape[0])
    picture = np.kron(picture, np.ones((scale, scale, 1), np.uint8))
    return SaliencyView(method, int(target), METHODS[method] + f" (class {target})", picture, raw)


def page_pairs(pages: Mapping[str, int]) -> tuple[tuple[str, int], ...]:
    """A layer → page mapping as the hashable argument :func:`maps_view` takes."""
    return tuple(sorted((str(k), int(v)) for k, v in pages.items() if int(v) > 0))


def lab_spec(link_value: str | None, session_spec: Mapping[str, Any] | None) -> dict[str, Any]:
    """The Conv Lab stack to open: the one in this tab's session (the Conv Lab page keeps it),
    else the page link's ``lab=`` value; a :class:`UserError` when there is none or it does not
    make a complete stack."""
    # lazy: labstate is the Conv Lab page's module (pandas editor tables), only needed here
    from cnnlab.views import labstate

    if session_spec:
        return dict(session_spec)
    if not link_value:
        raise UserError(
            "no Conv Lab stack in this tab yet: build one on the Conv Lab page (or open a"
            " Conv Lab link with ?lab=…)"
        )
    config = labstate.decode_config(link_value)
    stack = labstate.parse_rows(config.input, config.layers, config.name)
    if stack.first_bad_row is not None:
        row = stack.first_bad_row
        raise UserError(f"the Conv Lab stack's row {row} does not parse: {stack.row_errors[row]}")
    return labstate.effective_spec(stack.spec, config.mode).to_dict()
