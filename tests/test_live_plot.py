"""live_plot: a live run's charts carry exactly the recorded numbers (as the finished run's Plotly
figures do), as strict JSON, in the shape the browser script reads; and the Train page's
view-model hands them out only while the run is queued or running."""

from __future__ import annotations

import json
import math

import pytest
from test_run_charts import _long_curves

from cnnlab.training.store import RunStore
from cnnlab.views import live_plot, run_charts
from cnnlab.views import train as tv
from cnnlab.views.runview import MAX_DRAWN_POINTS, Curves, downsample_indices, smooth


def _curves(store: RunStore, run_id: str, steps: int = 40) -> Curves:
    rows = []
    for step in range(1, steps + 1):
        epoch = step / 20
        rows += [(step, epoch, "loss", 2.0 / step), (step, epoch, "train_accuracy", step / 41)]
        if step % 20 == 0:
            rows.append((step, epoch, "test_accuracy", 0.9 + step / 1000))
    store.add_metrics(run_id, rows)
    c = Curves(run_id)
    c.extend(store.metrics(run_id))
    return c


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


def test_step_plot_holds_the_rows_raw_and_smoothed(store: RunStore) -> None:
    run_id = store.create_run({}, name="c", model="small-cnn", params=1, macs=1)
    curves = _curves(store, run_id)
    plot = live_plot.step_plot(curves, "loss", 0.6)
    xs, raw, line = plot["data"]
    assert xs == list(range(1, 41))
    assert raw == pytest.approx([2.0 / s for s in xs])
    assert line == pytest.approx(smooth([2.0 / s for s in xs], 0.6))
    assert [s["label"] for s in plot["series"]] == ["raw", "smoothed"]
    assert plot["series"][0]["alpha"] < plot["series"][1]["alpha"] == 1.0
    plain = live_plot.step_plot(curves, "loss", 0.0)  # no smoothing: one line, the values
    assert len(plain["data"]) == 2 and plain["data"][1] == pytest.approx(raw)
    acc = live_plot.step_plot(curves, "train_accuracy", 0.0)
    assert acc["unit"] == " %" and acc["data"][1][-1] == pytest.approx(100 * 40 / 41)
    assert acc["y_label"].endswith("(%)")


def test_a_long_curve_draws_the_points_the_plotly_chart_would_pick() -> None:
    c = _long_curves(10_000)
    plot = live_plot.step_plot(c, "loss", 0.6)
    line = smooth(c.values["loss"], 0.6)
    picked = downsample_indices(c.steps["loss"], line)
    assert len(plot["data"][0]) == len(picked) <= MAX_DRAWN_POINTS
    assert plot["data"][0] == [c.steps["loss"][i] for i in picked]
    assert plot["data"][0][-1] == 10_000  # the newest row is drawn
    figure = run_charts.step_figure(c, "loss", 0.6)  # the same smoothed line as the Plotly one
    assert list(figure.data[-1].x) == plot["data"][0]
    assert list(figure.data[-1].y) == pytest.approx(plot["data"][2])


def test_non_finite_values_become_gaps_and_the_plot_is_strict_json() -> None:
    c = _long_curves(50, nan_at=10)
    c.values["loss"][20] = math.inf
    plot = live_plot.step_plot(c, "loss", 0.0)
    assert plot["data"][1][10] is None and plot["data"][1][20] is None
    text = json.dumps(live_plot.live_plots(c, 1, 0.6), allow_nan=False)  # the browser's JSON
    assert json.loads(text)["loss-chart"]["data"][0] == c.steps["loss"]


def test_epoch_plot_spans_the_run_and_frames_the_accuracies(store: RunStore) -> None:
    run_id = store.create_run({}, name="c", model="small-cnn", params=1, macs=1)
    plot = live_plot.epoch_plot(_curves(store, run_id), epochs=3)
    assert plot["data"] == [[1.0, 2.0], pytest.approx([92.0, 94.0])]
    assert plot["x_range"] == [0.0, 3.3]
    assert plot["y_range"][0] < 92.0 and plot["y_range"][1] == 101.0
    empty = live_plot.epoch_plot(Curves("none"), epochs=None)
    assert empty["data"] == [[], []] and empty["x_range"] == [0.0, 1.3]
    assert empty["y_range"] == [0.0, 101.0] and "after each epoch" in empty["empty"]


def test_live_plots_are_the_train_pages_three_charts(store: RunStore) -> None:
    run_id = store.create_run({}, name="c", model="small-cnn", params=1, macs=1)
    plots = live_plot.live_plots(_curves(store, run_id), 2, 0.6)
    assert list(plots) == list(run_charts.LIVE_CHARTS)
    assert plots["epoch-chart"]["data"][0] == [1.0, 2.0]


def test_live_view_hands_out_live_plots_while_active_and_figures_once_ended(
    store: RunStore,
) -> None:
    run_id = store.create_run({"epochs": 2}, name="c", model="small-cnn", params=1, macs=1)
    assert store.mark_running(run_id, pid=1, device="cpu")
    running = tv.live_view(
        store, store.get_run(run_id), Curves(run_id), page_status="running", smoothing=0.6
    )
    assert running.charts == {} and list(running.plots) == list(run_charts.LIVE_CHARTS)
    assert running.plots["loss-chart"]["data"][0] == []  # nothing recorded yet
    _curves(store, run_id)
    store.finish_run(run_id, "finished")
    ended = tv.live_view(
        store, store.get_run(run_id), Curves(run_id), page_status="running", smoothing=0.6
    )
    assert ended.plots == {} and list(ended.charts) == list(run_charts.LIVE_CHARTS)
    assert list(ended.charts["loss-chart"].data[-1].x) == list(range(1, 41))
    assert ended.points == 40 and ended.ended_since_drawn
