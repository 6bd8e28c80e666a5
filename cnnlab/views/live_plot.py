"""The live charts of a running run as plain JSON for the browser's uPlot chart
(``cnnlab/views/assets/live_plot``): the same curves as :func:`cnnlab.views.run_charts.live_charts`
(loss and training accuracy per step, raw and smoothed; test accuracy per epoch).

Why not Plotly while a run is live: every tick re-sent three Plotly figures and the browser
rebuilt each one; one watching tab cost 0.3-0.55 cores of Chromium on a 2-core machine that also
trains (issue 14). The uPlot chart is made once and redraws its canvas from the new arrays: on a
bare 1 Hz page, three Plotly charts cost 0.32 Chromium cores, the same curves in uPlot 0.056 (a
caption alone 0.034; README, Performance). A finished run's page keeps the Plotly figures.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from typing import Any

from cnnlab.training import names
from cnnlab.views.run_charts import (
    EPOCH_EMPTY,
    KEY_TITLES,
    LIVE_CHARTS,
    TEST_COLOR,
    TRAIN_COLOR,
    epoch_ranges,
    is_fraction,
)
from cnnlab.views.runview import MAX_DRAWN_POINTS, Curves, downsample_indices, smooth

LivePlot = dict[str, Any]
"""``{title, x_label, y_label, unit, height, series: [{label, color, width, alpha, points}],
data: [xs, ys…] (nulls for gaps), x_range, y_range, empty}``: what the chart script reads."""

MARKERS_BELOW = 30  # points drawn as dots too while a curve is this short (as the Plotly charts)


def _finite(values: Sequence[float]) -> list[float | None]:
    """JSON has no NaN or infinity: a non-finite value becomes a gap."""
    return [v if math.isfinite(v) else None for v in values]


def _series(label: str, color: str, width: float, alpha: float, points: bool) -> dict[str, Any]:
    return {"label": label, "color": color, "width": width, "alpha": alpha, "points": points}


def step_plot(
    curves: Curves, key: str, smoothing: float = 0.0, max_points: int = MAX_DRAWN_POINTS
) -> LivePlot:
    """One metric per training step: the smoothed line and, when smoothing, the raw points
    faint behind it; at most ``max_points`` drawn (the indices the Plotly chart would pick)."""
    steps, values = curves.series(key)
    fraction = is_fraction(key)
    shown = [100 * v for v in values] if fraction else list(values)
    line = smooth(shown, smoothing)
    picked = downsample_indices(steps, line, max_points)
    xs = [steps[i] for i in picked]
    points = len(steps) < MARKERS_BELOW
    title = KEY_TITLES.get(key, key)
    series = [_series("smoothed" if smoothing > 0 else title, TRAIN_COLOR, 2, 1.0, points)]
    data: list[list[Any]] = [xs, _finite([line[i] for i in picked])]
    if smoothing > 0:
        series.insert(0, _series("raw", TRAIN_COLOR, 1, 0.3, False))
        data.insert(1, _finite([shown[i] for i in picked]))
    return {
        "title": title.capitalize() + " per step",
        "x_label": "step",
        "y_label": title + (" (%)" if fraction else ""),
        "unit": " %" if fraction else "",
        "height": 320,
        "series": series,
        "data": data,
        "x_range": None,
        "y_range": None,
        "empty": "waiting for the first steps…",
    }


def epoch_plot(curves: Curves, epochs: int | None = None) -> LivePlot:
    """Test accuracy after each epoch; the x axis spans the run's ``epochs`` (as the Plotly
    chart, which labels each point; here the legend shows the value under the cursor)."""
    xs = list(curves.epochs.get(names.TEST_ACCURACY, []))
    acc = [100 * v for v in curves.values.get(names.TEST_ACCURACY, [])]
    x_range, y_range = epoch_ranges(xs, acc, epochs)
    return {
        "title": "Test accuracy per epoch",
        "x_label": "epoch",
        "y_label": "test accuracy (%)",
        "unit": " %",
        "height": 300,
        "series": [_series("test accuracy", TEST_COLOR, 2, 1.0, True)],
        "data": [xs, _finite(acc)],
        "x_range": x_range,
        "y_range": y_range,
        "empty": EPOCH_EMPTY,
    }


def live_plots(curves: Curves, epochs: int | None, smoothing: float) -> dict[str, LivePlot]:
    """The Train page's three live charts (container key → chart), as
    :func:`cnnlab.views.run_charts.live_charts` draws them for a run that ended."""
    plots = (
        step_plot(curves, names.LOSS, smoothing),
        step_plot(curves, names.TRAIN_ACCURACY, smoothing),
        epoch_plot(curves, epochs),
    )
    return dict(zip(LIVE_CHARTS, plots, strict=True))
