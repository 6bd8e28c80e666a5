"""The Runs page's view-model: the runs table, the selection, the side-by-side comparison, its
charts and messages — everything the page shows, from one call (:func:`runs_view`).

Plain Python (pandas, plotly): the page lays a :class:`RunsView` out, the tests assert on it.
Integers stay exact in the table (params, MACs); text formatting comes from :mod:`cnnlab.format`.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd
import plotly.graph_objects as go

from cnnlab.errors import UserError
from cnnlab.format import MISSING, duration_text, fmt_int, md_escape, percent
from cnnlab.training.names import (
    ACCURACY,
    F1,
    FAILED,
    INTERRUPTED,
    LOSS,
    PRECISION,
    RECALL,
    RUNNING,
    TEST_ACCURACY,
    TEST_LOSS,
    TRAIN_ACCURACY,
)
from cnnlab.training.store import TRASH_KEEP_S, Run, RunStore
from cnnlab.views import run_charts
from cnnlab.views.runview import Curves

RUNS_COLUMNS = (
    "id", "name", "model", "status", "params", "MACs/image", "accuracy", "F1",
    "duration_s", "device", "created",
)  # fmt: skip
"""The columns of :func:`runs_frame` (the page adds ``error`` and picks the order it shows)."""

TABLE_ORDER = (
    "name", "model", "status", "params", "MACs/image", "accuracy", "F1", "duration_s", "device",
    "created", "error", "id",
)  # fmt: skip
"""The order the page shows the table's columns in (the row's selection box comes first)."""

OVERLAY_KEYS = {
    LOSS: "training loss",
    TRAIN_ACCURACY: "training accuracy (running)",
    TEST_ACCURACY: "test accuracy (per epoch)",
    TEST_LOSS: "test loss (per epoch)",
}
"""The curves the comparison can overlay, with their labels."""

COMPARE_ROWS = (
    "model", "status", "epochs", "input size", "train images", "batch size", "learning rate",
    "optimizer", "weight decay", "schedule", "seed", "params", "MACs/image", "accuracy",
    "precision", "recall", "F1", "test loss", "duration", "device",
)  # fmt: skip

TRASH_DAYS = round(TRASH_KEEP_S / 86_400)


# --- tables -----------------------------------------------------------------------------------


def runs_frame(runs: Sequence[Run], finals: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """The Runs table: one row per run, exact integers for params and MACs."""
    records = []
    for run in runs:
        final = finals.get(run.id, {})
        records.append(
            {
                "id": run.id,
                "name": run.name,
                "model": run.model,
                "status": run.status,
                "params": run.params,
                "MACs/image": run.macs,
                "accuracy": final.get(ACCURACY),
                "F1": final.get(F1),
                "duration_s": run.duration,
                "device": run.device,
                "created": datetime.fromtimestamp(run.created),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=list(RUNS_COLUMNS))
    for column in ("params", "MACs/image"):
        frame[column] = frame[column].astype("Int64")
    for column in ("accuracy", "F1", "duration_s"):
        frame[column] = frame[column].astype("float64")
    return frame


def _text(value: Any) -> str:
    return MISSING if value is None or value == "" else str(value)


def _number(value: Any) -> str:
    return f"{value:g}" if isinstance(value, (int, float)) else _text(value)


def compare_frame(runs: Sequence[Run], finals: Mapping[str, Mapping[str, float]]) -> pd.DataFrame:
    """Several runs side by side: one column per run, one row per setting or result
    (:data:`COMPARE_ROWS`), every cell as text."""
    table: dict[str, list[str]] = {}
    labels = run_labels(runs)
    for run in runs:
        final = finals.get(run.id, {})
        config = run.config or {}
        limit = config.get("train_limit")
        size = config.get("input_size")
        table[labels[run.id]] = [
            run.model,
            run.status,
            _text(config.get("epochs")),
            MISSING if size is None else f"{size}×{size}",
            "all" if limit is None else fmt_int(limit),
            _text(config.get("batch_size")),
            _number(config.get("lr")),
            _text(config.get("optimizer")),
            _number(config.get("weight_decay")),
            _text(config.get("schedule")),
            _text(config.get("seed")),
            fmt_int(run.params),
            fmt_int(run.macs),
            percent(final.get(ACCURACY)),
            percent(final.get(PRECISION)),
            percent(final.get(RECALL)),
            percent(final.get(F1)),
            MISSING if final.get(TEST_LOSS) is None else f"{final[TEST_LOSS]:.4f}",
            duration_text(run.duration),
            run.device or MISSING,
        ]
    return pd.DataFrame(table, index=list(COMPARE_ROWS), dtype=str)


def run_labels(runs: Sequence[Run]) -> dict[str, str]:
    """A short unique label per run for legends: its name, plus the id when names repeat."""
    names = [r.name for r in runs]
    return {r.id: r.name if names.count(r.name) == 1 else f"{r.name} ({r.id[:6]})" for r in runs}


# --- the page's view --------------------------------------------------------------------------


@dataclass(frozen=True)
class RunsView:
    """What the Runs page shows for one selection of runs."""

    runs: tuple[Run, ...] = ()
    table: pd.DataFrame = field(default_factory=pd.DataFrame)
    """:func:`runs_frame` plus an ``error`` column, one row per run in :attr:`runs` order."""
    token: str = ""
    """The store's :meth:`~RunStore.change_token` when this view was read."""
    selected: tuple[Run, ...] = ()
    selected_rows: tuple[int, ...] = ()
    """Where the selected runs are in :attr:`table` (to restore the table's selection)."""
    errors: tuple[str, ...] = ()
    """Why each selected run failed or was interrupted."""
    compare: pd.DataFrame | None = None
    bars: go.Figure | None = None
    """Final accuracy, precision, recall and F1 of the selected finished runs (axis from 0)."""
    curves: Mapping[str, Curves] = field(default_factory=dict)
    trash: tuple[Run, ...] = ()
    problem: str | None = None
    """Set when the store could not be read (then everything else is empty)."""

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.runs)

    @property
    def single(self) -> Run | None:
        return self.selected[0] if len(self.selected) == 1 else None

    @property
    def stoppable(self) -> tuple[Run, ...]:
        return tuple(r for r in self.selected if r.active)

    @property
    def deletable(self) -> tuple[Run, ...]:
        return tuple(r for r in self.selected if r.status != RUNNING)

    def overlay(self, key: str, smoothing: float) -> go.Figure:
        """One curve (:data:`OVERLAY_KEYS`) of every selected run on one chart."""
        return run_charts.overlay_figure(self.curves, key, smoothing)


def runs_view(store: RunStore, selected_ids: Sequence[str] = ()) -> RunsView:
    """Read the run list and, for the selected runs (ids that are gone are dropped), their
    final metrics and curves; never raises for an unreadable store (see :attr:`problem`)."""
    try:
        token = store.change_token()
        runs = tuple(store.list_runs())
        finals = {r.id: store.final_metrics(r.id) for r in runs}
        trash = tuple(store.list_trash())
        position = {r.id: i for i, r in enumerate(runs)}
        wanted = list(dict.fromkeys(i for i in selected_ids if i in position))
        rows = tuple(sorted(position[i] for i in wanted))
        selected = tuple(runs[i] for i in rows)
        labels = run_labels(selected)
        curves: dict[str, Curves] = {}
        for run in selected:
            curves[labels[run.id]] = Curves(run.id)
            curves[labels[run.id]].extend(store.metrics(run.id, keys=list(OVERLAY_KEYS)))
    except UserError as err:
        return RunsView(problem=f"The run store cannot be read: {err}")
    table = runs_frame(runs, finals)
    table["error"] = [r.error or "" for r in runs]
    with_accuracy = {labels[r.id]: finals[r.id] for r in selected if ACCURACY in finals[r.id]}
    return RunsView(
        runs=runs,
        table=table,
        token=token,
        selected=selected,
        selected_rows=rows,
        errors=tuple(
            f"**{md_escape(r.name)}** {r.status}: {md_escape(r.error)}"
            for r in selected
            if r.status in (FAILED, INTERRUPTED) and r.error
        ),
        compare=compare_frame(selected, finals) if selected else None,
        bars=run_charts.final_bars(with_accuracy) if with_accuracy else None,
        curves=curves,
        trash=trash,
    )


def trash_runs(store: RunStore, runs: Sequence[Run]) -> tuple[list[Run], str | None]:
    """Move ``runs`` to the trash; the ones moved, and the first refusal (or None)."""
    moved: list[Run] = []
    for run in runs:
        try:
            moved.append(store.trash_run(run.id))
        except UserError as err:
            return moved, str(err)
    return moved, None


def restore_runs(store: RunStore, run_ids: Sequence[str]) -> str | None:
    """Take runs out of the trash; the first refusal (or None)."""
    for run_id in run_ids:
        try:
            store.restore_run(run_id)
        except UserError as err:
            return str(err)
    return None
