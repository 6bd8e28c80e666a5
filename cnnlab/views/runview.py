"""Runs and metrics as tidy tables, live-curve buffers, summaries and small helpers for the pages.

Plain Python (pandas, numpy, Pillow): the Train and Runs pages lay these out, tests call them
directly. Nothing here trains or writes to the store; numbers come from :mod:`cnnlab.training.store`
exactly as recorded (integers stay integers; formatting happens only in :func:`si`,
:func:`duration_text` and the charts).
"""

from __future__ import annotations

import bisect
import math
import re
import time
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from cnnlab.errors import UserError
from cnnlab.format import duration_text
from cnnlab.inside import pictures
from cnnlab.training import names
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
    recorded: dict[str, float] = field(default_factory=dict)
    """When the latest row of each key was written (Unix seconds): an ETA counts down from it."""

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
            if not steps or row.step >= steps[-1]:
                self.recorded[row.key] = float(row.time)
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


MAX_DRAWN_POINTS = 2000
"""A live curve draws at most this many points (LTTB-downsampled, first and last kept)."""


def downsample_indices(
    xs: Sequence[float], ys: Sequence[float], limit: int = MAX_DRAWN_POINTS
) -> list[int]:
    """Which points of a curve to draw: all of them up to ``limit``, else ``limit`` chosen by
    MinMax-LTTB (:mod:`tsdownsample`; keeps the shape, spikes, the first and the last point).

    ``xs`` must be sorted (steps are); NaN values are kept visible (NaN-aware variant).
    """
    n = len(xs)
    if n <= limit:
        return list(range(n))
    # lazy: the Rust downsampler is needed only for curves longer than ``limit``
    from tsdownsample import MinMaxLTTBDownsampler, NaNMinMaxLTTBDownsampler

    x = np.asarray(xs, dtype=np.float64)
    y = np.asarray(ys, dtype=np.float64)
    sampler = NaNMinMaxLTTBDownsampler() if np.isnan(y).any() else MinMaxLTTBDownsampler()
    picked = sampler.downsample(x, y, n_out=limit).tolist()
    if picked[-1] != n - 1:  # the newest point is always drawn
        picked[-1] = n - 1
    return [int(i) for i in picked]


def downsample(
    xs: Sequence[float], ys: Sequence[float], limit: int = MAX_DRAWN_POINTS
) -> tuple[list[float], list[float]]:
    """The points of a curve to draw (see :func:`downsample_indices`)."""
    if len(xs) <= limit:
        return list(xs), list(ys)
    picked = downsample_indices(xs, ys, limit)
    return [xs[i] for i in picked], [ys[i] for i in picked]


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
class LiveProgress:
    """Where a run is, for the live view: fraction done, stage, ETA, speed, last values.

    (The loop's :class:`cnnlab.training.loop.Progress` is what the loop reports per record;
    this is what a page makes of the recorded rows.)
    """

    fraction: float
    eta_s: float | None
    images_per_s: float | None
    step: int | None
    epoch: float | None
    loss: float | None
    accuracy: float | None
    test_accuracy: float | None
    status: str = names.RUNNING
    stage: str | None = None
    """What a running run does now ("loading data", "evaluating on 10,000 test digits", …)."""
    total_steps: int | None = None

    @property
    def text(self) -> str:
        """``42 % · step 400 of 937 · epoch 0.43 · ETA 14 s · 1,843 images/s``; for a run that
        ended early ``stopped at step 1 of 33,750 (< 1 %) · 1.3 images/s``."""
        share = _share_text(self.fraction)
        of = f" of {self.total_steps:,}" if self.total_steps else ""
        parts = []
        if self.status in names.DONE and self.status != names.FINISHED:
            if self.step is None:
                return f"{self.status} before the first training step ended"
            parts.append(f"{self.status} at step {self.step:,}{of} ({share})")
        else:
            if self.stage and self.status == names.RUNNING:
                parts.append(self.stage[:1].upper() + self.stage[1:] + "…")
            parts.append(share)
            if self.step is not None and self.status == names.RUNNING:
                parts.append(f"step {self.step:,}{of}")
        if self.epoch is not None and self.status != names.FINISHED:
            parts.append(f"epoch {self.epoch:.2f}")
        if self.eta_s is not None:
            parts.append(f"ETA {duration_text(self.eta_s)}" if self.eta_s >= 0.5 else "finishing")
        if self.images_per_s is not None:
            parts.append(f"{speed_text(self.images_per_s)} images/s")
        return " · ".join(parts)


def _share_text(fraction: float) -> str:
    if 0 < fraction < 0.01:
        return "< 1 %"
    return f"{100 * fraction:.0f} %"


def speed_text(images_per_s: float) -> str:
    """``1,843``; below ten images a second one decimal (``1.3``), never a bare ``0``."""
    if images_per_s >= 10:
        return f"{images_per_s:,.0f}"
    return f"{images_per_s:.1f}" if images_per_s >= 0.1 else f"{images_per_s:.2g}"


def progress_of(
    curves: Curves,
    status: str,
    stage: Mapping[str, Any] | None = None,
    now: float | None = None,
) -> LiveProgress:
    """The live view's progress from the recorded rows (and the run's ``stage`` artifact data).

    While running, the ETA counts down from its latest record — a metric row or the start of a
    stage, whichever is newer — so it keeps moving between records and through an evaluation.
    """
    frac = curves.latest(names.PROGRESS)
    if status == names.FINISHED:
        frac = 1.0
    fraction = 0.0 if frac is None else min(1.0, max(0.0, float(frac)))
    steps = curves.steps.get(names.PROGRESS) or curves.steps.get(names.LOSS) or []
    epochs = curves.epochs.get(names.PROGRESS) or curves.epochs.get(names.LOSS) or []
    step = steps[-1] if steps else None
    total = round(step / frac) if step and frac else None
    eta, stage_text = None, None
    if status == names.RUNNING:
        now = time.time() if now is None else now
        eta, since = curves.latest(names.ETA_SECONDS), curves.recorded.get(names.ETA_SECONDS)
        if stage:
            stage_text = str(stage.get("text") or stage.get("stage") or "") or None
            stage_since, stage_eta = stage.get("since"), stage.get("eta_seconds")
            if isinstance(stage_since, (int, float)) and (since is None or stage_since > since):
                eta = float(stage_eta) if isinstance(stage_eta, (int, float)) else None
                since = float(stage_since)
        if eta is not None and since is not None:
            eta = max(0.0, float(eta) - max(0.0, now - since))
    return LiveProgress(
        fraction=fraction,
        eta_s=eta,
        images_per_s=curves.latest(names.IMAGES_PER_SECOND),
        step=step,
        epoch=epochs[-1] if epochs else None,
        loss=curves.latest(names.LOSS),
        accuracy=curves.latest(names.TRAIN_ACCURACY),
        test_accuracy=curves.latest(names.TEST_ACCURACY),
        status=status,
        stage=stage_text,
        total_steps=total,
    )


STATUS_ICONS = {
    names.QUEUED: "⏳",
    names.RUNNING: "🏃",
    names.FINISHED: "✅",
    names.FAILED: "❌",
    names.STOPPED: "⏹️",
    names.INTERRUPTED: "⚠️",
}


def status_line(run: Run) -> str:
    """``✅ finished · small-cnn · cpu · 41 s``; no duration while queued or running (the line
    is drawn when the status changes, not every tick: the progress line has the ETA)."""
    parts = [f"{STATUS_ICONS.get(run.status, '')} {run.status}".strip(), run.model]
    if run.device:
        parts.append(run.device)
    if run.duration is not None and not run.active:
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


# One pipeline for every picture (the Train page's "Try it", the Inside page, the CLI): it lives
# in cnnlab.inside.pictures; these names stay here for the pages and tests that use them.
to_digit = pictures.to_digit
read_picture = pictures.read_picture
MAX_PICTURE_PIXELS = pictures.MAX_PICTURE_PIXELS


def top_prediction(probs: Sequence[float]) -> tuple[int, float]:
    """(digit, probability) of the most likely class."""
    values = [float(p) for p in probs]
    if len(values) != 10:
        raise UserError(f"expected 10 class probabilities, got {len(values)}")
    best = int(np.argmax(values))
    return best, values[best]
