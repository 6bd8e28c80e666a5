"""run_charts: the figures carry exactly the recorded numbers (as %, smoothed only on request)."""

from __future__ import annotations

import numpy as np
import pytest

from cnnlab.training.store import RunStore
from cnnlab.views import run_charts
from cnnlab.views.runview import (
    MAX_DRAWN_POINTS,
    Curves,
    downsample,
    downsample_indices,
    smooth,
)


@pytest.fixture
def curves(tmp_path) -> Curves:
    store = RunStore(tmp_path / "runs.db")
    run_id = store.create_run({}, name="c", model="small-cnn", params=1, macs=1)
    rows = []
    for step in range(1, 41):
        epoch = step / 20
        rows += [(step, epoch, "loss", 2.0 / step), (step, epoch, "train_accuracy", step / 41)]
        if step % 20 == 0:
            rows += [
                (step, epoch, "test_accuracy", 0.9 + step / 1000),
                (step, epoch, "test_loss", 1.0 / step),
            ]
    store.add_metrics(run_id, rows)
    c = Curves(run_id)
    c.extend(store.metrics(run_id))
    return c


def test_step_figure_raw_and_smoothed(curves: Curves) -> None:
    plain = run_charts.step_figure(curves, "loss")
    assert len(plain.data) == 1
    assert list(plain.data[0].x) == list(range(1, 41))
    assert list(plain.data[0].y) == pytest.approx([2.0 / s for s in range(1, 41)])
    smoothed = run_charts.step_figure(curves, "loss", smoothing=0.8)
    raw, line = smoothed.data
    assert list(raw.y) == pytest.approx(list(plain.data[0].y))
    assert list(line.y) == pytest.approx(smooth([2.0 / s for s in range(1, 41)], 0.8))
    acc = run_charts.step_figure(curves, "train_accuracy")
    assert acc.data[0].y[-1] == pytest.approx(100 * 40 / 41)  # shown in %
    assert "(%)" in acc.layout.yaxis.title.text
    assert acc.layout.uirevision == "keep"  # live updates keep zoom


def test_empty_curves_say_they_wait(tmp_path) -> None:
    fig = run_charts.step_figure(Curves("x"), "loss")
    assert "waiting" in fig.layout.annotations[0].text
    assert run_charts.epoch_figure(Curves("x")).layout.annotations


def test_epoch_figure(curves: Curves) -> None:
    fig = run_charts.epoch_figure(curves, epochs=3)
    (acc,) = fig.data
    assert list(acc.x) == [1.0, 2.0] and list(acc.y) == pytest.approx([92.0, 94.0])
    assert list(acc.text) == ["92.00 %", "94.00 %"]
    assert fig.layout.xaxis.range[1] >= 3  # room for the epochs still to come


def test_confusion_figure_keeps_exact_counts() -> None:
    matrix = [[0] * 10 for _ in range(10)]
    for d in range(10):
        matrix[d][d] = 90 + d
    matrix[4][9] = 7
    fig = run_charts.confusion_figure(matrix)
    heat = fig.data[0]
    assert [list(r) for r in heat.text] == matrix
    assert heat.z[4][9] == pytest.approx(7 / (94 + 7))
    assert fig.layout.yaxis.autorange == "reversed"
    with pytest.raises(ValueError):
        run_charts.confusion_figure([[1, 2], [3, 4]])


def test_per_class_figure_from_engine_rows() -> None:
    rows = [
        {"digit": d, "precision": 0.9 + d / 100, "recall": 0.95, "f1": 0.92, "support": 100 + d}
        for d in reversed(range(10))
    ]
    fig = run_charts.per_class_figure(rows)
    names = [t.name for t in fig.data]
    assert names == ["precision", "recall", "F1"]
    assert list(fig.data[0].x) == [str(d) for d in range(10)]
    assert fig.data[0].y[3] == pytest.approx(93.0)
    assert list(fig.data[0].customdata) == [100 + d for d in range(10)]


def test_overlay_final_bars_and_probabilities(curves: Curves) -> None:
    other = Curves("y")
    fig = run_charts.overlay_figure({"a": curves, "b": other}, "loss", smoothing=0.0)
    assert [t.name for t in fig.data] == ["a", "b"]
    assert list(fig.data[0].x) == pytest.approx([s / 20 for s in range(1, 41)])  # by epoch
    assert len(fig.data[1].x) == 0
    test_acc = run_charts.overlay_figure({"a": curves}, "test_accuracy", smoothing=0.9)
    assert list(test_acc.data[0].y) == pytest.approx([92.0, 94.0])  # per-epoch: never smoothed
    bars = run_charts.final_bars({"a": {"accuracy": 0.99, "f1": 0.98}, "b": {"accuracy": 0.9}})
    assert list(bars.data[0].y) == pytest.approx([99.0, None, None, 98.0])
    probs = [0.01] * 10
    probs[7] = 0.91
    fig = run_charts.probability_figure(probs)
    colors = list(fig.data[0].marker.color)
    assert colors[7] != colors[0] and fig.data[0].y[7] == pytest.approx(91.0)


def test_confusion_figure_shows_a_single_mistake() -> None:
    """Issue 17: on one scale with ~1,000 correct digits, a handful of mistakes was nearly white.
    Mistakes get their own scale (up to the largest one); the diagonal is drawn apart."""
    matrix = [[0] * 10 for _ in range(10)]
    for d in range(10):
        matrix[d][d] = 1000
    matrix[4][9], matrix[7][1] = 20, 1
    mistakes, correct = run_charts.confusion_figure(matrix).data
    assert mistakes.z[4][4] is None and correct.z[4][4] == pytest.approx(1000 / 1020)
    assert correct.z[4][9] is None and mistakes.z[7][1] == pytest.approx(1 / 1001)
    assert mistakes.zmax == pytest.approx(20 / 1020)  # the worst mistake is the darkest
    # One mistaken digit sits past the scale's first tinted stop, so it is not white.
    first_tint = run_charts.MISTAKE_SCALE[1][0]
    assert mistakes.z[7][1] / mistakes.zmax > first_tint
    assert run_charts.MISTAKE_SCALE[1][1].lower() != "#ffffff"


def _long_curves(n: int, nan_at: int | None = None) -> Curves:
    """``n`` loss points of a noisy decaying curve (a long run's worth), one NaN if asked."""
    rng = np.random.default_rng(0)
    c = Curves("long")
    c.steps["loss"] = list(range(1, n + 1))
    values = (2.0 / np.arange(1, n + 1) ** 0.3 + 0.1 * rng.random(n)).tolist()
    if nan_at is not None:
        values[nan_at] = float("nan")
    c.values["loss"] = values
    c.epochs["loss"] = [s / 1000 for s in range(1, n + 1)]
    return c


def test_long_curves_draw_at_most_2000_points_ending_at_the_last_row() -> None:
    c = _long_curves(10_000)
    fig = run_charts.step_figure(c, "loss", smoothing=0.6)
    raw, line = fig.data
    steps, values = c.series("loss")
    smoothed = smooth(values, 0.6)
    for trace, ys in ((raw, values), (line, smoothed)):
        picked = downsample_indices(steps, ys)  # exactly what the chart should draw
        assert len(trace.x) == len(picked) == MAX_DRAWN_POINTS
        assert list(trace.x) == [steps[i] for i in picked]
        assert list(trace.y) == pytest.approx([ys[i] for i in picked])
        assert (trace.x[0], trace.x[-1]) == (1, 10_000)  # first and newest point drawn
        assert trace.y[-1] == pytest.approx(ys[-1])
    # the spike survives downsampling (MinMax-LTTB keeps extremes)
    spiky = _long_curves(10_000)
    spiky.values["loss"][5_000] = 50.0
    assert max(run_charts.step_figure(spiky, "loss").data[0].y) == 50.0


def test_short_curves_are_drawn_whole_and_nan_survives() -> None:
    c = _long_curves(1_999)
    assert list(run_charts.step_figure(c, "loss").data[0].x) == c.steps["loss"]
    nan = _long_curves(5_000, nan_at=4_000)
    xs, ys = downsample(nan.steps["loss"], nan.values["loss"])
    assert len(xs) <= MAX_DRAWN_POINTS and xs[-1] == 5_000
    assert np.isnan(ys[xs.index(4_001)])  # the NaN step (a diverged loss) is still drawn


def test_live_charts_are_the_three_live_figures(curves: Curves) -> None:
    charts = run_charts.live_charts(curves, 2, 0.6)
    assert list(charts) == list(run_charts.LIVE_CHARTS)
    assert list(charts["loss-chart"].data[-1].x) == list(range(1, 41))
    assert list(charts["epoch-chart"].data[0].x) == [1.0, 2.0]
