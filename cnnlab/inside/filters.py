"""Filters: the kernels of the first conv layers (and of every depthwise layer) as small pictures.

A regular conv's weight [N, M, k, k] is drawn as N rows of M tiles of k×k (one tile per input
channel); a depthwise conv's [M, 1, k, k] (and a first conv's [N, 1, k, k]) as one k×k tile per
channel, in rows of 8. Colours are diverging
(blue negative, white 0, red positive) on one scale per layer, shared by the "before" and
"after" pictures of that layer so the change shows.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from torch import nn

from cnnlab.inside.features import is_depthwise

MAX_FILTERS = 32  # rows drawn (output channels)
MAX_INPUTS = 8  # tiles per row drawn (input channels)
MAX_LAYERS = 4  # layers drawn: the first two regular convs and the first depthwise ones
TILE_PX = 24
GAP_PX = 2


@dataclass(frozen=True)
class FilterLayer:
    """One conv layer's kernels, as they are drawn."""

    name: str
    depthwise: bool
    weight_shape: tuple[int, ...]  # [N, M / groups, k, k]
    kernels: np.ndarray  # float32 [rows, cols, k, k]: what is drawn (capped)

    @property
    def one_per_channel(self) -> bool:
        """Drawn as one kernel per channel (depthwise, or a single input channel)."""
        return self.depthwise or self.weight_shape[1] == 1

    scale: float  # max |w| of the drawn kernels (the colour range is ±scale)


def filter_layers(model: nn.Module) -> list[FilterLayer]:
    """The first two regular convs with a kernel > 1×1 and the first depthwise convs (at most
    :data:`MAX_LAYERS`), in model order."""
    out: list[FilterLayer] = []
    regular = 0
    for name, m in model.named_modules():
        if not isinstance(m, nn.Conv2d) or tuple(m.kernel_size) == (1, 1):
            continue
        depthwise = is_depthwise(m, name)
        if not depthwise and regular >= 2:
            continue
        regular += 0 if depthwise else 1
        w = m.weight.detach().float().cpu().numpy()
        if depthwise or w.shape[1] == 1:  # one k×k kernel per channel: in rows of MAX_INPUTS
            n = min(w.shape[0], MAX_FILTERS * MAX_INPUTS)
            cols = min(n, MAX_INPUTS)
            rows = -(-n // cols)
            flat = np.zeros((rows * cols, *w.shape[2:]), np.float32)
            flat[:n] = w[:n, 0]
            kernels = flat.reshape(rows, cols, *w.shape[2:])
        else:
            kernels = w[:MAX_FILTERS, :MAX_INPUTS]
        scale = float(np.abs(kernels).max()) or 1.0
        out.append(FilterLayer(name, depthwise, tuple(int(s) for s in w.shape), kernels, scale))
        if len(out) >= MAX_LAYERS:
            break
    return out


def _diverging(values: np.ndarray) -> np.ndarray:
    """[-1, 1] → RGB uint8: blue (#2166ac) – white – red (#b2182b)."""
    v = np.clip(values, -1.0, 1.0)[..., None]
    white = np.array([255.0, 255.0, 255.0])
    blue, red = np.array([33.0, 102.0, 172.0]), np.array([178.0, 24.0, 43.0])
    rgb = np.where(v < 0, white + (blue - white) * (-v), white + (red - white) * v)
    return np.clip(np.round(rgb), 0, 255).astype(np.uint8)


def filter_picture(layer: FilterLayer, scale: float | None = None) -> np.ndarray:
    """The drawn kernels as one RGB picture (tiles of :data:`TILE_PX`, grey gaps), on ±``scale``
    (default: the layer's own)."""
    rows, cols, kh, kw = layer.kernels.shape
    px = max(1, TILE_PX // max(kh, kw))
    th, tw = kh * px, kw * px
    canvas = np.full(
        (rows * (th + GAP_PX) - GAP_PX, cols * (tw + GAP_PX) - GAP_PX, 3), 128, np.uint8
    )
    s = scale or layer.scale
    for r in range(rows):
        for c in range(cols):
            tile = _diverging(np.kron(layer.kernels[r, c] / s, np.ones((px, px))))
            canvas[
                r * (th + GAP_PX) : r * (th + GAP_PX) + th,
                c * (tw + GAP_PX) : c * (tw + GAP_PX) + tw,
            ] = tile
    return canvas
