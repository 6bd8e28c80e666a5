"""Feature maps of one input: the output of every conv and pooling layer, caught by forward hooks.

A depthwise-separable conv (:func:`cnnlab.counting.transform.separable_model`, or a Conv Lab
layer built separable) is a depthwise ``Conv2d`` (``groups == in_channels``) followed by a 1×1
pointwise ``Conv2d``: each is its own row, with ``stage`` saying which. Only the first
``max_channels`` channels of a layer are kept (the total is recorded), so VGG-size layers stay
cheap; ``min``/``max`` are over the whole output.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnlab.errors import UserError
from cnnlab.training.recipe import prepare

Stage = Literal["depthwise", "pointwise"]
MAX_CHANNELS = 64
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
TILE_PX = 56  # each channel is drawn at least this many pixels across (nearest-neighbour)
MAX_TILE_PX = 112  # ... and at most this many: a larger map is drawn every 2nd (3rd, …) pixel
GAP_PX = 2

# viridis at 9 evenly spaced stops (matplotlib's values), interpolated to 256 entries
_VIRIDIS_STOPS = np.array(
    [
        [68, 1, 84],
        [71, 44, 122],
        [59, 81, 139],
        [44, 113, 142],
        [33, 144, 141],
        [39, 173, 129],
        [92, 200, 99],
        [170, 220, 50],
        [253, 231, 37],
    ],
    dtype=np.float64,
)
_at = np.linspace(0, 1, len(_VIRIDIS_STOPS))
VIRIDIS = np.stack(
    [np.interp(np.linspace(0, 1, 256), _at, _VIRIDIS_STOPS[:, c]) for c in range(3)], axis=1
).astype(np.uint8)


@dataclass(frozen=True)
class FeatureMap:
    """One conv or pooling layer's output for one input."""

    name: str  # the module's dotted name in the model ("0", "3.pointwise", "features.4")
    type: str  # the module's class name ("Conv2d", "MaxPool2d", …)
    stage: Stage | None  # the half of a depthwise-separable conv, else None
    shape: tuple[int, ...]  # (C, H, W) of the whole output
    maps: np.ndarray  # float32 [kept, H, W]: channels ``first`` to ``first + kept - 1``
    min: float
    max: float
    first: int = 0  # the channel the kept maps start at (a page of a wide layer)

    @property
    def channels(self) -> int:
        return int(self.shape[0])

    @property
    def kept(self) -> int:
        return int(self.maps.shape[0])


@dataclass(frozen=True)
class Features:
    rows: list[FeatureMap]
    probabilities: list[float]  # the 10 class probabilities (softmax of the logits)


def is_depthwise(m: nn.Module, name: str) -> bool:
    """groups == in_channels; with one input channel only when named so (``x.depthwise``)."""
    if not isinstance(m, nn.Conv2d) or m.groups != m.in_channels:
        return False
    return m.groups > 1 or name.rpartition(".")[2] == "depthwise"


def is_pointwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups == 1 and tuple(m.kernel_size) == (1, 1)


def feature_maps(
    model: nn.Module,
    x: torch.Tensor,
    max_channels: int = MAX_CHANNELS,
    first: Mapping[str, int] | None = None,
) -> Features:
    """Run ``model`` (put in eval mode) on one normalised input ``x`` [1, C, H, W]; every conv and
    pooling output in the order they ran, and the class probabilities.

    ``first``: layer name → the first channel kept (a page of a wide layer; default 0)."""
    if x.ndim != 4 or x.shape[0] != 1:
        raise UserError(f"feature maps need one input of shape 1×C×H×W, got {tuple(x.shape)}")
    if max_channels < 1:
        raise UserError(f"max_channels must be at least 1, got {max_channels}")
    rows: list[FeatureMap] = []
    last_conv: list[bool] = []  # whether the conv that ran last was depthwise

    def hook(name: str) -> Callable[[nn.Module, object, torch.Tensor], None]:
        def catch(module: nn.Module, _inputs: object, output: torch.Tensor) -> None:
            if not isinstance(output, torch.Tensor) or output.ndim != 4:
                return
            stage: Stage | None = None
            if isinstance(module, nn.Conv2d):
                if is_depthwise(module, name):  # a 1×1 right after a depthwise pairs up
                    stage = "depthwise"
                elif is_pointwise(module) and last_conv and last_conv[-1]:
                    stage = "pointwise"
                last_conv[:] = [stage == "depthwise"]
            out = output.detach()[0]
            start = min(max(0, int((first or {}).get(name, 0))), max(0, out.shape[0] - 1))
            # copied now: an in-place activation after this layer would change it
            kept = out[start : start + max_channels].float().cpu().numpy().copy()
            rows.append(
                FeatureMap(
                    name=name,
                    type=type(module).__name__,
                    stage=stage,
                    shape=tuple(int(s) for s in out.shape),
                    maps=kept,
                    min=float(out.min()),
                    max=float(out.max()),
                    first=start,
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
        device = next(model.parameters()).device
        with torch.inference_mode():
            logits = model(x.to(device))
    finally:
        for h in handles:
            h.remove()
    probs = logits.float().softmax(1)[0].cpu().tolist()
    return Features(rows, [float(p) for p in probs])


# --- inputs -----------------------------------------------------------------------------------


def digit_input(image_uint8: torch.Tensor, input_size: int) -> torch.Tensor:
    """A 28×28 uint8 digit (white on black) → the normalised [1, 1, S, S] input of training."""
    image = torch.as_tensor(image_uint8)
    if tuple(image.shape) != (28, 28) or image.dtype != torch.uint8:
        raise UserError(f"a digit is uint8 28×28, got {image.dtype} {tuple(image.shape)}")
    return prepare(image.unsqueeze(0), input_size, torch.device("cpu"))


# --- pictures of the maps ---------------------------------------------------------------------


def map_grid(row: FeatureMap, columns: int | None = None, colormap: bool = True) -> np.ndarray:
    """The kept channels as a uint8 picture: one tile per channel, each min-max normalised on
    its own (a constant channel is dark; 1×1 maps share one scale), viridis (H×W×3, white gaps)
    or grayscale (H×W). A map over :data:`MAX_TILE_PX` pixels (VGG at 224) is drawn at every
    k-th pixel."""
    maps = row.maps
    step = -(-max(maps.shape[1:]) // MAX_TILE_PX)
    maps = maps[:, ::step, ::step] if step > 1 else maps
    n, h, w = maps.shape
    cols = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    scale = max(1, TILE_PX // max(h, w))
    th, tw = h * scale, w * scale
    flat = maps.reshape(n, -1)
    lo, hi = flat.min(1), flat.max(1)
    if h * w == 1:  # one value per channel (a global pool): one scale across the channels
        lo, hi = np.full(n, flat.min()), np.full(n, flat.max())
    span = np.where(hi > lo, hi - lo, 1.0)
    norm = (maps - lo[:, None, None]) / span[:, None, None]
    tiles = np.repeat(np.repeat(norm, scale, axis=1), scale, axis=2)  # [n, th, tw]
    # -1 marks the gaps and the empty places of the last row
    tiles = np.pad(tiles, ((0, rows * cols - n), (0, GAP_PX), (0, GAP_PX)), constant_values=-1.0)
    grid = tiles.reshape(rows, cols, th + GAP_PX, tw + GAP_PX).transpose(0, 2, 1, 3)
    canvas = grid.reshape(rows * (th + GAP_PX), cols * (tw + GAP_PX))[:-GAP_PX, :-GAP_PX]
    gaps = canvas < 0
    levels = np.clip(np.round(canvas * 255), 0, 255).astype(np.uint8)
    if not colormap:
        return levels
    picture = VIRIDIS[levels]
    picture[gaps] = 255
    return picture


def save_grid(row: FeatureMap, path: str | Path, colormap: bool = True) -> Path:
    """Write :func:`map_grid` as a PNG (UserError when it cannot be written)."""
    path = Path(path)
    try:
        Image.fromarray(map_grid(row, colormap=colormap)).save(path, format="PNG")
    except OSError as err:
        raise UserError(f"cannot write {path}: {err.strerror or err}") from None
    return path


def png_name(index: int, row: FeatureMap) -> str:
    """``03-features_4.png``: the layer's position and dotted name (dots → underscores)."""
    safe = "".join(ch if ch.isalnum() or ch in "-_" else "_" for ch in row.name) or "model"
    return f"{index:02d}-{safe}.png"
