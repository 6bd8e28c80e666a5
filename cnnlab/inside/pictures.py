"""One picture pipeline for every digit a student brings: an upload, a drawing, a file.

:func:`read_picture` decodes bytes (refusing bombs and non-pictures before decoding a pixel);
:func:`to_digit` turns any picture of one digit into a 28×28 uint8 MNIST-style digit (white on
black, the ink's box scaled to 20×20 and its centre of mass at (14, 14), as MNIST was made).
The Train page's "Try it", the Inside page and ``cnnlab features --image`` all go through
:func:`digit_from_bytes` / :func:`digit_from_file`; a blank picture is refused with one wording,
:data:`BLANK_TEXT`.
"""

from __future__ import annotations

import io
from pathlib import Path

import numpy as np
from PIL import Image, UnidentifiedImageError

from cnnlab.errors import UserError

MAX_PICTURE_PIXELS = 4096 * 4096
"""Largest upload decoded (a few-KB PNG can claim billions of pixels)."""
MAX_PICTURE_BYTES = 10 * 2**20
"""Largest picture file or upload read (10 MiB)."""
BLANK_TEXT = "no digit found: the picture is blank (one shade); draw or upload a digit first"


def read_picture(data: bytes) -> np.ndarray:
    """Decode an uploaded PNG/JPEG/… into an array (a :class:`UserError` when it isn't one)."""
    if len(data) > MAX_PICTURE_BYTES:
        raise UserError(
            f"the picture is too large ({len(data):,} bytes; at most {MAX_PICTURE_BYTES:,})"
        )
    try:
        with Image.open(io.BytesIO(data)) as img:
            if img.width * img.height > MAX_PICTURE_PIXELS:  # before decoding a single pixel
                raise UserError(
                    f"the picture is too large ({img.width:,}×{img.height:,} pixels; at most"
                    f" {MAX_PICTURE_PIXELS:,}): a digit needs only a few hundred"
                )
            img.load()
            mode = "RGBA" if img.mode in ("RGBA", "LA", "P") else "L"
            return np.asarray(img.convert(mode))
    except Image.DecompressionBombError:
        limit = f"{MAX_PICTURE_PIXELS:,}"
        raise UserError(f"the picture is too large (at most {limit} pixels)") from None
    except (UnidentifiedImageError, OSError, ValueError) as err:
        raise UserError(f"not a picture this app can read ({err})") from None


def to_digit(image: np.ndarray, invert: bool | None = None) -> np.ndarray:
    """Any picture of one digit → a 28×28 uint8 MNIST-style digit (white on black).

    Follows MNIST's own preparation: the ink's bounding box is scaled to fit 20×20 (keeping
    the aspect ratio) and placed in a 28×28 field with its centre of mass at pixel (14, 14).
    Accepts grey [H, W], RGB or RGBA [H, W, C] (alpha = ink for a transparent canvas).
    ``invert``: True for dark ink on light paper; None guesses from the border colour.
    A blank picture (one shade) is refused with :data:`BLANK_TEXT`.
    """
    array = np.asarray(image)
    if array.ndim == 3 and array.shape[2] == 4:
        rgb = array[..., :3].astype(np.float64)
        alpha = array[..., 3].astype(np.float64) / 255.0
        if alpha.min() > 0.99:  # opaque: use the colours
            grey = rgb.mean(axis=2)
        else:  # transparent background: alpha is the ink, its brightness is ignored
            grey = 255.0 * alpha
            invert = False
    elif array.ndim == 3:
        grey = array[..., :3].astype(np.float64).mean(axis=2)
    elif array.ndim == 2:
        grey = array.astype(np.float64)
    else:
        raise UserError(f"expected a picture [H, W] or [H, W, C], got shape {array.shape}")
    if grey.size == 0:
        raise UserError("the picture is empty")
    if float(grey.max()) - float(grey.min()) < 16:  # one shade: nothing drawn on it
        raise UserError(BLANK_TEXT)
    if invert is None:
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        invert = float(np.median(border)) > 127
    if invert:
        grey = 255.0 - grey
    grey = np.clip(grey, 0, 255)
    ink = grey > 0.1 * max(grey.max(), 1.0)
    if grey.max() < 20 or not ink.any():
        raise UserError(BLANK_TEXT)
    rows = np.flatnonzero(ink.any(axis=1))
    cols = np.flatnonzero(ink.any(axis=0))
    crop = grey[rows[0] : rows[-1] + 1, cols[0] : cols[-1] + 1]
    h, w = crop.shape
    scale = 20.0 / max(h, w)
    size = (max(1, round(w * scale)), max(1, round(h * scale)))
    small = np.asarray(
        Image.fromarray(crop.astype(np.uint8)).resize(size, Image.Resampling.LANCZOS),
        dtype=np.float64,
    )
    field_ = np.zeros((28, 28), dtype=np.float64)
    top, left = (28 - small.shape[0]) // 2, (28 - small.shape[1]) // 2
    field_[top : top + small.shape[0], left : left + small.shape[1]] = small
    total = field_.sum()
    if total > 0:
        ys, xs = np.indices(field_.shape)
        cy, cx = (ys * field_).sum() / total, (xs * field_).sum() / total
        dy, dx = round(14.0 - cy), round(14.0 - cx)  # where MNIST puts it (measured)
        dy = int(np.clip(dy, -top, 28 - top - small.shape[0]))
        dx = int(np.clip(dx, -left, 28 - left - small.shape[1]))
        field_ = np.roll(field_, (dy, dx), axis=(0, 1))
    peak = field_.max()
    if peak > 0:
        field_ = field_ * (255.0 / peak)
    return np.clip(np.round(field_), 0, 255).astype(np.uint8)


def digit_from_bytes(data: bytes) -> np.ndarray:
    """An uploaded picture of one digit → a 28×28 uint8 MNIST digit (:class:`UserError` if not)."""
    return to_digit(read_picture(data))


def digit_from_file(path: str | Path) -> np.ndarray:
    """A picture file of one digit → a 28×28 uint8 MNIST digit (``cnnlab features --image``)."""
    path = Path(path)
    try:
        size = path.stat().st_size
        if size > MAX_PICTURE_BYTES:
            raise UserError(
                f"{path}: the picture is too large ({size:,} bytes; at most {MAX_PICTURE_BYTES:,})"
            )
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"{path}: cannot read the picture ({err.strerror or err})") from None
    try:
        return digit_from_bytes(data)
    except UserError as err:
        raise UserError(f"{path}: {err}") from None
