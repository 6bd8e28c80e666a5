"""Runs and metrics as tidy tables, live-curve buffers, summaries and small helpers for the pages.

Plain Python (pandas, numpy, Pillow): the Train and Runs pages lay these out, tests call them
directly. Nothing here trains or writes to the store; numbers come from :mod:`cnnlab.training.store`
exactly as recorded (integers stay integers; formatting happens only in :func:`si`,
:func:`duration_text` and the charts).
"""

from __future__ import annotations

import bisect
import io
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cnnlab.errors import UserError
from cnnlab.format import duration_text
from cnnlab.training.store import Metric, Run

RUN_ID_PATTERN = re.compile(r"^[0-9a-f]{6,32}$")
"""What a run id in the URL may look like (the store makes 12 lower-case hex digits)."""


# --- query string -----------------------------------------------------------------------------


def parse_run_id(value: object) -> str | None:
    """A run id taken from the URL (``?run=…``): the id when well-formed, else None.

    Streamlit gives a string (or a list when the key repeats: the last one wins).
    """
    if isinstance(value, (list, tuple)):
        value = value[-1] if value else None
    if not isinstance(value, str):
        return None
    text = value.strip().lower()
    return text if RUN_ID_PATTERN.fullmatch(text) else None


# --- formatting -------------------------------------------------------------------------------



# --- live curves ------------------------------------------------------------------------------


@dataclass
class Curves:
    """Metric points of one run, grown incrementally from new store rows.

    The live view keeps one of these per run in ``st.session_state`` and on each tick feeds it
    only the rows recorded since :attr:`last_id` (``store.metrics(run_id, after_id=...)``).
    """

    run_id: str
    last_id: int = 0
    steps: dict[str, list[int]] = field(default_factory=dict)
    values: dict[str, list[float]] = field(default_factory=dict)
    epochs: dict[str, list[float]] = field(default_factory=dict)

    def extend(self, rows: Iterable[Metric]) -> int:
        """Append rows not seen before (id above :attr:`last_id`); returns how many were new.

        Rows may come in any order of id (the store orders by step); each key's points are kept
        sorted by step, and a step recorded again replaces its value.
        """
        seen = self.last_id
        fresh = sorted((r for r in rows if r.id > seen), key=lambda r: (r.step, r.id))
        added = 0
        for row in fresh:
            steps = self.steps.setdefault(row.key, [])
            values = self.values.setdefault(row.key, [])
            epochs = self.epochs.setdefault(row.key, [])
            self.last_id = max(self.last_id, row.id)
            if steps and row.step <= steps[-1]:
                at = bisect.bisect_left(steps, row.step)
                if steps[at] == row.step:
                    values[at], epochs[at] = float(row.value), float(row.epoch)
                    continue
                steps.insert(at, int(row.step))
                values.insert(at, float(row.value))
                epochs.insert(at, float(row.epoch))
            else:
                steps.append(int(row.step))
                values.append(float(row.value))
                epochs.append(float(row.epoch))
            added += 1
        return added

    def series(self, key: str) -> tuple[list[int], list[float]]:
        return list(self.steps.get(key, [])), list(self.values.get(key, []))

    def latest(self, key: str) -> float | None:
        values = self.values.get(key)
        return values[-1] if values else None

    def count(self, key: str) -> int:
        return len(self.steps.get(key, []))

    @property
    def total_points(self) -> int:
        return sum(len(v) for v in self.steps.values())


def smooth(values: Sequence[float], weight: float) -> list[float]:
    """Exponential moving average with bias correction (TensorBoard's smoothing).

    ``weight`` 0 returns the values unchanged; 0.99 is very smooth. NaNs are carried through.
    """
    if not 0 <= weight < 1:
        raise UserError(f"smoothing must be in [0, 1), got {weight}")
    if weight == 0:
        return [float(v) for v in values]
    out: list[float] = []
    last = 0.0
    count = 0
    for v in values:
        if not math.isfinite(v):
            out.append(float(v))
            continue
        last = last * weight + (1 - weight) * float(v)
        count += 1
        out.append(last / (1 - weight**count))
    return out


# --- tables -----------------------------------------------------------------------------------


def metrics_frame(rows: Iterable[Metric]) -> pd.DataFrame:
    """Long format, one row per recorded value: step, epoch, key, value, time."""
    records = [
        {"step": r.step, "epoch": r.epoch, "key": r.key, "value": r.value, "time": r.time}
        for r in rows
    ]
    frame = pd.DataFrame.from_records(records, columns=["step", "epoch", "key", "value", "time"])
    return frame.astype({"step": "int64", "epoch": "float64", "value": "float64"})


def wide_metrics(rows: Iterable[Metric]) -> pd.DataFrame:
    """One row per step, one column per metric key (NaN where a key was not recorded)."""
    long = metrics_frame(rows)
    if long.empty:
        return pd.DataFrame(columns=["step", "epoch"])
    epochs = long.groupby("step")["epoch"].max()
    wide = long.pivot_table(index="step", columns="key", values="value", aggfunc="last")
    wide.insert(0, "epoch", epochs)
    wide.columns.name = None
    return wide.reset_index()


def metrics_csv(rows: Iterable[Metric]) -> bytes:
    """The run's metrics as CSV (long format, as recorded), for the download button."""
    return metrics_frame(rows).to_csv(index=False).encode()


# --- run summaries ----------------------------------------------------------------------------


@dataclass(frozen=True)
class Progress:
    """Where a run is, for the live view: fraction done, ETA, speed, last values."""

    fraction: float
    eta_s: float | None
    images_per_s: float | None
    step: int | None
    epoch: float | None
    loss: float | None
    accuracy: float | None
    test_accuracy: float | None

    @property
    def text(self) -> str:
        parts = [f"{100 * self.fraction:.0f} %"]
        if self.epoch is not None:
            parts.append(f"epoch {self.epoch:.2f}")
        if self.eta_s is not None:
            parts.append(f"ETA {duration_text(self.eta_s)}")
        if self.images_per_s is not None:
            parts.append(f"{self.images_per_s:,.0f} images/s")
        return " · ".join(parts)


def progress_of(curves: Curves, status: str) -> Progress:
    frac = curves.latest("progress")
    if status == "finished":
        frac = 1.0
    fraction = 0.0 if frac is None else min(1.0, max(0.0, float(frac)))
    steps = curves.steps.get("progress") or curves.steps.get("loss") or []
    epochs = curves.epochs.get("progress") or curves.epochs.get("loss") or []
    eta = curves.latest("eta_seconds")
    return Progress(
        fraction=fraction,
        eta_s=None if status != "running" else eta,
        images_per_s=curves.latest("images_per_second"),
        step=steps[-1] if steps else None,
        epoch=epochs[-1] if epochs else None,
        loss=curves.latest("loss"),
        accuracy=curves.latest("train_accuracy"),
        test_accuracy=curves.latest("test_accuracy"),
    )


STATUS_ICONS = {
    "queued": "⏳",
    "running": "🏃",
    "finished": "✅",
    "failed": "❌",
    "stopped": "⏹️",
    "interrupted": "⚠️",
}


def status_line(run: Run) -> str:
    """``✅ finished · small-cnn · cpu · 41 s``."""
    parts = [f"{STATUS_ICONS.get(run.status, '')} {run.status}".strip(), run.model]
    if run.device:
        parts.append(run.device)
    if run.duration is not None:
        parts.append(duration_text(run.duration))
    return " · ".join(parts)


def config_text(config: Mapping[str, Any]) -> str:
    """One line of the options a run was started with."""
    limit = config.get("train_limit")
    data = "all training images" if limit is None else f"{limit:,} training images"
    return (
        f"{config.get('model')} at {config.get('input_size')}×{config.get('input_size')}, "
        f"{config.get('epochs')} epoch(s), batch {config.get('batch_size')}, "
        f"{config.get('optimizer')} lr {config.get('lr')}, {config.get('schedule')} schedule, "
        f"{data}, seed {config.get('seed')}, device {config.get('device')}"
    )


# --- "Try it": a drawn or uploaded digit as MNIST input ---------------------------------------


def to_digit(image: np.ndarray, invert: bool | None = None) -> np.ndarray:
    """Any picture of one digit → a 28×28 uint8 MNIST-style digit (white on black).

    Follows MNIST's own preparation: the ink's bounding box is scaled to fit 20×20 (keeping
    the aspect ratio) and placed in a 28×28 field with its centre of mass at pixel (14, 14).
    Accepts grey [H, W], RGB or RGBA [H, W, C] (alpha = ink for a transparent canvas).
    ``invert``: True for dark ink on light paper; None guesses from the border colour.
    """
    from PIL import Image

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
    if invert is None:
        border = np.concatenate([grey[0], grey[-1], grey[:, 0], grey[:, -1]])
        invert = float(np.median(border)) > 127
    if invert:
        grey = 255.0 - grey
    grey = np.clip(grey, 0, 255)
    ink = grey > 0.1 * max(grey.max(), 1.0)
    if grey.max() < 20 or not ink.any():
        raise UserError("no digit found: draw or upload a digit first")
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


MAX_PICTURE_PIXELS = 4096 * 4096
"""Largest upload decoded (a few-KB PNG can claim billions of pixels)."""


def read_picture(data: bytes) -> np.ndarray:
    """Decode an uploaded PNG/JPEG/… into an array (a :class:`UserError` when it isn't one)."""
    from PIL import Image, UnidentifiedImageError

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


def top_prediction(probs: Sequence[float]) -> tuple[int, float]:
    """(digit, probability) of the most likely class."""
    values = [float(p) for p in probs]
    if len(values) != 10:
        raise UserError(f"expected 10 class probabilities, got {len(values)}")
    best = int(np.argmax(values))
    return best, values[best]
