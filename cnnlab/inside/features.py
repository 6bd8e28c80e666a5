"""Feature maps of one input: the output of every conv and pooling layer, caught by forward hooks.

A depthwise-separable conv (:func:`cnnlab.counting.transform.separable_model`, or a Conv Lab
layer built separable) is a depthwise ``Conv2d`` (``groups == in_channels``) followed by a 1×1
pointwise ``Conv2d``: each is its own row, with ``stage`` saying which. Only the first
``max_channels`` channels of a layer are kept (the total is recorded), so VGG-size layers stay
cheap; ``min``/``max`` are over the whole output.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import torch
from PIL import Image
from torch import nn

from cnnlab.errors import UserError, error_text
from cnnlab.training.recipe import prepare

Stage = Literal["depthwise", "pointwise"]
MAX_CHANNELS = 64
POOLS = (nn.MaxPool2d, nn.AvgPool2d, nn.AdaptiveAvgPool2d, nn.AdaptiveMaxPool2d)
MAX_IMAGE_BYTES = 10 * 2**20  # an uploaded picture larger than this is refused
MAX_IMAGE_PIXELS = 4096 * 4096
TILE_PX = 56  # each channel is drawn at least this many pixels across (nearest-neighbour)
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
    maps: np.ndarray  # float32 [kept, H, W]: the first ``kept`` channels
    min: float
    max: float

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


def _is_depthwise(m: nn.Module, name: str) -> bool:
    """groups == in_channels; with one input channel only when named so (``x.depthwise``)."""
    if not isinstance(m, nn.Conv2d) or m.groups != m.in_channels:
        return False
    return m.groups > 1 or name.rpartition(".")[2] == "depthwise"


def _is_pointwise(m: nn.Module) -> bool:
    return isinstance(m, nn.Conv2d) and m.groups == 1 and tuple(m.kernel_size) == (1, 1)


def feature_maps(model: nn.Module, x: torch.Tensor, max_channels: int = MAX_CHANNELS) -> Features:
    """Run ``model`` (put in eval mode) on one normalised input ``x`` [1, C, H, W]; every conv and
    pooling output in the order they ran, and the class probabilities."""
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
                if _is_depthwise(module, name):  # a 1×1 right after a depthwise pairs up
                    stage = "depthwise"
                elif _is_pointwise(module) and last_conv and last_conv[-1]:
                    stage = "pointwise"
                last_conv[:] = [stage == "depthwise"]
            out = output.detach()[0]
            # copied now: an in-place activation after this layer would change it
            kept = out[:max_channels].float().cpu().numpy().copy()
            rows.append(
                FeatureMap(
                    name=name,
                    type=type(module).__name__,
                    stage=stage,
                    shape=tuple(int(s) for s in out.shape),
                    maps=kept,
                    min=float(out.min()),
                    max=float(out.max()),
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


def read_picture(path: str | Path) -> torch.Tensor:
    """A picture file → a 28×28 uint8 digit, white on black like MNIST.

    Grayscale, resized to 28×28; a picture on a light background is inverted. A file over
    10 MiB or 4096×4096 pixels, an unreadable file and a blank (single-shade) picture are refused.
    """
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError as err:
        raise UserError(f"{path}: cannot read the picture ({err.strerror or err})") from None
    if size > MAX_IMAGE_BYTES:
        raise UserError(f"{path}: picture too large ({size:,} bytes, at most {MAX_IMAGE_BYTES:,})")
    try:
        with Image.open(path) as img:
            w, h = img.size
            if w * h > MAX_IMAGE_PIXELS:
                raise UserError(f"{path}: picture too large ({w}×{h}, at most 4096×4096 pixels)")
            gray = img.convert("L")
            gray.load()
    except UserError:
        raise
    except Exception as err:  # PIL raises many types for a file that is not a picture
        raise UserError(f"{path}: not a readable picture ({error_text(err)})") from None
    pixels = np.asarray(gray.resize((28, 28), Image.Resampling.BILINEAR), dtype=np.uint8)
    if int(pixels.max()) - int(pixels.min()) < 16:
        raise UserError(f"{path}: the picture is blank (one shade): draw or photograph a digit")
    border = np.concatenate([pixels[0], pixels[-1], pixels[:, 0], pixels[:, -1]])
    if border.mean() > 127:  # dark ink on light paper: MNIST digits are white on black
        pixels = 255 - pixels
    return torch.from_numpy(pixels.copy())


# --- pictures of the maps ---------------------------------------------------------------------


def map_grid(row: FeatureMap, columns: int | None = None, colormap: bool = True) -> np.ndarray:
    """The kept channels as a uint8 picture: one tile per channel, each min-max normalised on
    its own (a constant channel is dark), viridis (H×W×3) or grayscale (H×W)."""
    maps = row.maps
    n, h, w = maps.shape
    cols = columns or int(np.ceil(np.sqrt(n)))
    rows = int(np.ceil(n / cols))
    scale = max(1, TILE_PX // max(h, w))
    th, tw = h * scale, w * scale
    canvas = np.full((rows * (th + GAP_PX) - GAP_PX, cols * (tw + GAP_PX) - GAP_PX), 0.0)
    lo = maps.reshape(n, -1).min(1)
    hi = maps.reshape(n, -1).max(1)
    span = np.where(hi > lo, hi - lo, 1.0)
    norm = (maps - lo[:, None, None]) / span[:, None, None]
    for i in range(n):
        r, c = divmod(i, cols)
        tile = np.kron(norm[i], np.ones((scale, scale)))
        canvas[
            r * (th + GAP_PX) : r * (th + GAP_PX) + th, c * (tw + GAP_PX) : c * (tw + GAP_PX) + tw
        ] = tile
    levels = np.clip(np.round(canvas * 255), 0, 255).astype(np.uint8)
    if not colormap:
        return levels
    picture = VIRIDIS[levels]
    gaps = np.ones_like(levels, dtype=bool)
    for i in range(n):  # the gaps between tiles stay white
        r, c = divmod(i, cols)
        gaps[
            r * (th + GAP_PX) : r * (th + GAP_PX) + th, c * (tw + GAP_PX) : c * (tw + GAP_PX) + tw
        ] = False
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
