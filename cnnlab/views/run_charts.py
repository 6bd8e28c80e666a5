"""Plotly figures of training runs: curves per step and per epoch, confusion matrix, per-class
bars, several runs overlaid, class probabilities.

Figures only present what the engine recorded (:mod:`cnnlab.training.store` rows, gathered by
:mod:`cnnlab.views.runview`); the one computation here is the optional display smoothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence

import plotly.graph_objects as go

from cnnlab.training import names
from cnnlab.views.runview import MAX_DRAWN_POINTS, Curves, downsample, smooth

PALETTE = (
    "#4C78A8", "#F58518", "#54A24B", "#E45756", "#72B7B2",
    "#B279A2", "#EECA3B", "#9D755D", "#FF9DA6", "#BAB0AC",
)  # fmt: skip
TRAIN_COLOR, TEST_COLOR = "#4C78A8", "#E45756"
CLASSES = [str(d) for d in range(10)]

KEY_TITLES = {
    names.LOSS: "training loss",
    names.TRAIN_ACCURACY: "training accuracy (running)",
    names.ACCURACY: "test accuracy",
    names.TEST_ACCURACY: "test accuracy",
    names.TEST_LOSS: "test loss",
    names.LR: "learning rate",
    names.IMAGES_PER_SECOND: "images/s",
}


def _layout(fig: go.Figure, title: str, height: int = 320) -> go.Figure:
    fig.update_layout(
        title={"text": title, "x": 0.0, "xanchor": "left"},
        height=height,
        margin={"l": 10, "r": 10, "t": 60, "b": 10},
        legend={"orientation": "h", "yanchor": "bottom", "y": 1.02, "x": 1.0, "xanchor": "right"},
        hoverlabel={"namelength": -1},
        uirevision="keep",  # zoom and hidden traces survive live updates
    )
    return fig


def is_fraction(key: str) -> bool:
    """Whether a metric is a 0–1 fraction (drawn as %)."""
    return key in (names.ACCURACY, names.TRAIN_ACCURACY, names.TEST_ACCURACY, names.PROGRESS)


def step_figure(
    curves: Curves,
    key: str,
    smoothing: float = 0.0,
    title: str | None = None,
    max_points: int = MAX_DRAWN_POINTS,
) -> go.Figure:
    """One metric per training step: raw points faint, the smoothed line on top.

    Smoothing runs over every recorded point; each line then draws at most ``max_points``
    (:func:`cnnlab.views.runview.downsample`: LTTB, the last point always drawn).
    """
    steps, values = curves.series(key)
    fig = go.Figure()
    fraction = is_fraction(key)
    shown = [100 * v for v in values] if fraction else values
    unit = " %" if fraction else ""
    if smoothing > 0:
        raw_x, raw_y = downsample(steps, shown, max_points)
        fig.add_trace(
            go.Scatter(
                x=raw_x, y=raw_y, mode="lines", name="raw", line={"color": TRAIN_COLOR, "width": 1},
                opacity=0.3, hovertemplate=f"step %{{x}}<br>raw %{{y:.4g}}{unit}<extra></extra>",
            )
        )  # fmt: skip
    line_x, line_y = downsample(steps, smooth(shown, smoothing), max_points)
    fig.add_trace(
        go.Scatter(
            x=line_x, y=line_y,
            mode="lines+markers" if len(steps) < 30 else "lines",
            name="smoothed" if smoothing > 0 else KEY_TITLES.get(key, key),
            line={"color": TRAIN_COLOR, "width": 2},
            hovertemplate=f"step %{{x}}<br>%{{y:.4g}}{unit}<extra></extra>",
        )
    )  # fmt: skip
    fig.update_xaxes(title_text="step", rangemode="tozero")
    fig.update_yaxes(title_text=KEY_TITLES.get(key, key) + (" (%)" if fraction else ""))
    if not steps:
        fig.add_annotation(text="waiting for the first steps…", showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")  # fmt: skip
    return _layout(fig, title or KEY_TITLES.get(key, key).capitalize() + " per step")


LIVE_CHARTS = ("loss-chart", "acc-chart", "epoch-chart")
"""The live section's charts (their container keys on the Train page)."""


def live_charts(curves: Curves, epochs: int | None, smoothing: float) -> dict[str, go.Figure]:
    """The Train page's three live charts: loss and training accuracy per step, test accuracy
    per epoch. Depends only on the rows in ``curves`` (so on ``curves.last_id``), ``epochs``
    and ``smoothing``: the page builds them once per run and tick and shares them between tabs.
    """
    return dict(
        zip(
            LIVE_CHARTS,
            (
                step_figure(curves, names.LOSS, smoothing),
                step_figure(curves, names.TRAIN_ACCURACY, smoothing),
                epoch_figure(curves, epochs),
            ),
            strict=True,
        )
    )


def epoch_ranges(
    xs: Sequence[float], acc: Sequence[float], epochs: int | None
) -> tuple[list[float], list[float]]:
    """The test-accuracy chart's x span (0 to the run's ``epochs``, or the last epoch drawn) and
    y span (%: down far enough below the lowest accuracy to show the climb)."""
    last = max([*xs, float(epochs or 1)])
    low = min(acc) if acc else None
    y_low = 0.0 if low is None else max(0.0, low - max(5.0, (100 - low) * 0.5))
    return [0.0, last + 0.3], [y_low, 101.0]


EPOCH_EMPTY = "measured on the 10,000 test digits after each epoch"


def epoch_figure(curves: Curves, epochs: int | None = None) -> go.Figure:
    """Test accuracy after each epoch, labelled; the x axis spans the run's ``epochs``."""
    xs = curves.epochs.get(names.TEST_ACCURACY, [])
    acc = [100 * v for v in curves.values.get(names.TEST_ACCURACY, [])]
    fig = go.Figure(
        go.Scatter(
            x=xs, y=acc, mode="lines+markers+text", name="test accuracy",
            text=[f"{v:.2f} %" for v in acc], textposition="top center",
            line={"color": TEST_COLOR, "width": 2}, marker={"size": 10},
            hovertemplate="epoch %{x:.2f}<br>test accuracy %{y:.2f} %<extra></extra>",
        )
    )  # fmt: skip
    x_range, y_range = epoch_ranges(xs, acc, epochs)
    fig.update_xaxes(title_text="epoch", range=x_range, dtick=1)
    fig.update_yaxes(title_text="test accuracy (%)", range=y_range)
    if not acc:
        fig.add_annotation(text=EPOCH_EMPTY, showarrow=False, x=0.5, y=0.5,
                           xref="paper", yref="paper")  # fmt: skip
    return _layout(fig, "Test accuracy per epoch", height=300)


MISTAKE_SCALE = [
    [0.0, "#ffffff"], [1e-6, "#fdd9b5"], [0.15, "#fdae6b"], [0.4, "#fb6a4a"], [1.0, "#de2d26"],
]  # fmt: skip
"""Mistakes: white only for none, a visible tint for a single digit, dark red for the worst
(relative to the largest mistake, so a 0.1 % confusion is not lost beside a 99 % diagonal)."""


def confusion_figure(matrix: Sequence[Sequence[int]]) -> go.Figure:
    """The 10×10 confusion matrix: rows true digit, columns predicted, exact counts in cells.

    The mistakes (off the diagonal) are coloured on their own scale, up to the largest one; the
    diagonal (correct answers) is drawn apart in green — on one shared scale a handful of
    mistakes beside ~1,000 correct digits would be nearly white.
    """
    counts = [[int(c) for c in row] for row in matrix]
    if len(counts) != 10 or any(len(row) != 10 for row in counts):
        raise ValueError("expected a 10×10 confusion matrix")
    totals = [max(1, sum(row)) for row in counts]
    share = [[c / totals[i] for c in row] for i, row in enumerate(counts)]
    off = [[None if i == j else v for j, v in enumerate(row)] for i, row in enumerate(share)]
    diagonal = [[v if i == j else None for j, v in enumerate(row)] for i, row in enumerate(share)]
    worst = max((v for row in off for v in row if v is not None), default=0.0) or 1e-3
    hover = "true %{y} → predicted %{x}<br>%{text} images (%{z:.1%} of the true class)"
    fig = go.Figure()
    fig.add_trace(
        go.Heatmap(
            z=off, x=CLASSES, y=CLASSES, text=counts, texttemplate="%{text}",
            colorscale=MISTAKE_SCALE, zmin=0, zmax=worst, showscale=True, name="mistakes",
            colorbar={"title": {"text": "mistakes:<br>share of<br>true class"},
                      "tickformat": ".1%"},
            hovertemplate=hover + "<extra>mistake</extra>",
        )
    )  # fmt: skip
    fig.add_trace(
        go.Heatmap(
            z=diagonal, x=CLASSES, y=CLASSES, text=counts, texttemplate="%{text}",
            colorscale="Greens", zmin=0, zmax=1, showscale=False, name="correct",
            hovertemplate=hover + "<extra>correct</extra>",
        )
    )  # fmt: skip
    fig.update_xaxes(title_text="predicted digit", side="bottom", type="category")
    fig.update_yaxes(title_text="true digit", autorange="reversed", type="category")
    return _layout(fig, "Confusion matrix (test set): mistakes in red", height=460)


def per_class_figure(per_class: Sequence[Mapping[str, float]]) -> go.Figure:
    """Grouped bars: precision, recall and F1 of each digit (engine rows ``{digit, precision,
    recall, f1, support}``; values 0–1 shown as %)."""
    rows = sorted(per_class, key=lambda r: int(r["digit"]))
    digits = [str(int(r["digit"])) for r in rows]
    fig = go.Figure()
    colors = {names.PRECISION: "#4C78A8", names.RECALL: "#F58518", names.F1: "#54A24B"}
    lows = []
    for key in (names.PRECISION, names.RECALL, names.F1):
        values = [100 * float(r[key]) for r in rows]
        lows += values
        fig.add_trace(
            go.Bar(
                x=digits, y=values, name="F1" if key == names.F1 else key,
                marker_color=colors[key],
                customdata=[int(r.get("support", 0)) for r in rows],
                hovertemplate=f"digit %{{x}}<br>{key} %{{y:.2f}} %"
                "<br>%{customdata} test images<extra></extra>",
            )
        )  # fmt: skip
    low = min(lows) if lows else 0.0
    fig.update_layout(barmode="group")
    fig.update_xaxes(title_text="digit", type="category")
    fig.update_yaxes(title_text="%", range=[max(0.0, low - 5), 100.5])
    return _layout(fig, "Per-class precision, recall and F1", height=360)


def overlay_figure(
    curves: Mapping[str, Curves], key: str, smoothing: float = 0.0, by_epoch: bool = True
) -> go.Figure:
    """The same metric of several runs on one chart (x: epoch, so runs of any size line up)."""
    fig = go.Figure()
    fraction = is_fraction(key)
    for i, (label, run) in enumerate(curves.items()):
        xs = run.epochs.get(key, []) if by_epoch else run.steps.get(key, [])
        ys = run.values.get(key, [])
        shown = [100 * v for v in ys] if fraction else list(ys)
        per_epoch = key.startswith("test_")
        fig.add_trace(
            go.Scatter(
                x=xs, y=shown if per_epoch else smooth(shown, smoothing), name=label,
                mode="lines+markers" if per_epoch or len(xs) < 30 else "lines",
                line={"color": PALETTE[i % len(PALETTE)], "width": 2},
                hovertemplate=f"{label}<br>%{{x:.3g}}: %{{y:.4g}}<extra></extra>",
            )
        )  # fmt: skip
    fig.update_xaxes(title_text="epoch" if by_epoch else "step", rangemode="tozero")
    fig.update_yaxes(title_text=KEY_TITLES.get(key, key) + (" (%)" if fraction else ""))
    return _layout(fig, f"{KEY_TITLES.get(key, key).capitalize()} — runs compared", height=360)


def final_bars(finals: Mapping[str, Mapping[str, float]]) -> go.Figure:
    """Accuracy, precision, recall and F1 of several runs as grouped bars (%, axis from 0: bar
    heights compare honestly; the exact values are printed on the bars)."""
    fig = go.Figure()
    keys = ("accuracy", "precision", "recall", "f1")
    for i, (label, final) in enumerate(finals.items()):
        ys = [100 * final[k] if k in final else None for k in keys]
        fig.add_trace(
            go.Bar(
                x=["accuracy", "precision", "recall", "F1"], y=ys, name=label,
                marker_color=PALETTE[i % len(PALETTE)],
                text=[None if y is None else f"{y:.2f}" for y in ys], textposition="outside",
                hovertemplate=f"{label}<br>%{{x}} %{{y:.2f}} %<extra></extra>",
            )
        )  # fmt: skip
    fig.update_layout(barmode="group")
    fig.update_yaxes(title_text="%", range=[0, 109], tickvals=[0, 20, 40, 60, 80, 100])
    return _layout(fig, "Final test metrics", height=360)


def probability_figure(probs: Sequence[float]) -> go.Figure:
    """The model's probability for each digit, the winner highlighted."""
    values = [100 * float(p) for p in probs]
    best = max(range(len(values)), key=values.__getitem__) if values else -1
    colors = [TEST_COLOR if i == best else "#BAB0AC" for i in range(len(values))]
    fig = go.Figure(
        go.Bar(
            x=CLASSES[: len(values)], y=values, marker_color=colors,
            text=[f"{v:.1f}" for v in values], textposition="outside",
            hovertemplate="digit %{x}: %{y:.2f} %<extra></extra>",
        )
    )  # fmt: skip
    fig.update_xaxes(title_text="digit", type="category")
    fig.update_yaxes(title_text="probability (%)", range=[0, 110])
    return _layout(fig, "Class probabilities", height=300)
