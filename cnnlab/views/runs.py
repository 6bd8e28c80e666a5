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

from cnnlab.classroom.access import MACHINE, Viewer, may_change, require_change, why_not
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
    "duration_s", "device", "created", "owner", "experiment",
)  # fmt: skip
"""The columns of :func:`runs_frame` (the page adds ``error`` and picks the order it shows)."""

TABLE_ORDER = (
    "name", "model", "status", "params", "MACs/image", "accuracy", "F1", "owner", "experiment",
    "duration_s", "device", "created", "error", "id",
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

CLI_OWNER = "command line"
"""The owner shown for a run launched from the CLI (the machine's owner)."""
EXPERIMENT_LINK = "Experiments?experiment={}"
"""The Experiments page's address for one experiment (the ``experiment`` column's links)."""
EXPERIMENT_TEXT = r"experiment=(.+)$"
"""What the ``experiment`` column shows of its link: the experiment's id."""
ALL, SINGLE = "all", "single"
"""The experiment filter's two fixed choices: every run, and runs of no experiment."""


def owner_text(run: Run) -> str:
    """Who launched ``run``, as plain text (the CLI: :data:`CLI_OWNER`)."""
    if run.owner_id is None:
        return CLI_OWNER
    return run.owner_name or f"student-{run.owner_id[:4]}"


def experiment_link(run: Run) -> str | None:
    return None if run.experiment_id is None else EXPERIMENT_LINK.format(run.experiment_id)


def filter_runs(runs: Sequence[Run], experiment: str = ALL) -> tuple[Run, ...]:
    """``runs`` (newest first) of one experiment (its id), of none (:data:`SINGLE`) or all
    (:data:`ALL`); for :data:`ALL` an experiment's runs are kept together, where its newest is."""
    if experiment == ALL:
        first: dict[str, int] = {}
        for i, run in enumerate(runs):
            first.setdefault(run.experiment_id or run.id, i)
        ranked = sorted(enumerate(runs), key=lambda p: (first[p[1].experiment_id or p[1].id], p[0]))
        return tuple(run for _, run in ranked)
    if experiment == SINGLE:
        return tuple(r for r in runs if r.experiment_id is None)
    return tuple(r for r in runs if r.experiment_id == experiment)


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
                "owner": owner_text(run),
                "experiment": experiment_link(run),
            }
        )
    frame = pd.DataFrame.from_records(records, columns=list(RUNS_COLUMNS))
    for column in ("params", "MACs/image"):
        frame[column] = frame[column].astype("Int64")
    for column in ("accuracy", "F1", "duration_s"):
        frame[column] = frame[column].astype("float64")
    links = [experiment_link(run) for run in runs]  # None (not NaN) where there is no link
    frame["experiment"] = pd.Series(links, index=frame.index, dtype=object)
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
    """The runs in the trash that the viewer may restore."""
    problem: str | None = None
    """Set when the store could not be read (then everything else is empty)."""
    viewer: Viewer = MACHINE
    locked: Mapping[str, str] = field(default_factory=dict)
    """Selected run id → why the viewer may not change it (others' runs: read-only)."""
    experiments: tuple[tuple[str, str], ...] = ((ALL, "all runs"),)
    """The experiment filter's choices: (value, label)."""
    experiment: str = ALL

    @property
    def ids(self) -> tuple[str, ...]:
        return tuple(r.id for r in self.runs)

    @property
    def single(self) -> Run | None:
        return self.selected[0] if len(self.selected) == 1 else None

    @property
    def stoppable(self) -> tuple[Run, ...]:
        return tuple(r for r in self.selected if r.active and r.id not in self.locked)

    @property
    def deletable(self) -> tuple[Run, ...]:
        return tuple(r for r in self.selected if r.status != RUNNING and r.id not in self.locked)

    @property
    def renamable(self) -> Run | None:
        """The single selected run, if the viewer may rename it."""
        single = self.single
        return single if single is not None and single.id not in self.locked else None

    @property
    def locked_text(self) -> str | None:
        """One line about the selected runs the viewer may only look at (None: none)."""
        if not self.locked:
            return None
        if len(self.locked) == 1:
            return next(iter(self.locked.values()))
        return (
            f"read-only: {len(self.locked)} of the selected runs belong to someone else;"
            " only they or the teacher can change them"
        )

    def overlay(self, key: str, smoothing: float) -> go.Figure:
        """One curve (:data:`OVERLAY_KEYS`) of every selected run on one chart."""
        return run_charts.overlay_figure(self.curves, key, smoothing)


def runs_view(
    store: RunStore,
    selected_ids: Sequence[str] = (),
    *,
    viewer: Viewer = MACHINE,
    experiment: str = ALL,
) -> RunsView:
    """Read the run list (of one ``experiment``: see :func:`filter_runs`) and, for the selected
    runs (ids that are gone are dropped), their final metrics and curves; which of them
    ``viewer`` may change; never raises for an unreadable store (see :attr:`problem`)."""
    try:
        token = store.change_token()
        every = store.list_runs()
        names = {e.id: e.name for e in store.list_experiments()}
        choices = [(ALL, "all runs"), (SINGLE, "single runs (no experiment)")]
        for exp_id in dict.fromkeys(r.experiment_id for r in every if r.experiment_id):
            choices.append((exp_id, f"{names.get(exp_id, 'experiment')} ({exp_id})"))
        if experiment not in {value for value, _ in choices}:
            experiment = ALL
        runs = filter_runs(every, experiment)
        finals = {r.id: store.final_metrics(r.id) for r in runs}
        trash = tuple(r for r in store.list_trash() if may_change(r, viewer))
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
        viewer=viewer,
        locked={r.id: why for r in selected if (why := why_not(r, viewer)) is not None},
        experiments=tuple(choices),
        experiment=experiment,
    )


def _changeable(store: RunStore, run_id: str, viewer: Viewer, *, trashed: bool = False) -> Run:
    """The run as the store has it now, if ``viewer`` may change it (else :class:`UserError`):
    the check is made here, on the action, not only by a disabled button."""
    run = store.require_run(run_id, trashed=trashed)
    require_change(run, viewer)
    return run


def stop_runs(store: RunStore, run_ids: Sequence[str], viewer: Viewer = MACHINE) -> str | None:
    """Stop (or cancel, if queued) each run ``viewer`` may change; the first refusal (or None)."""
    for run_id in run_ids:
        try:
            _changeable(store, run_id, viewer)
            store.request_stop(run_id)
        except UserError as err:
            return str(err)
    return None


def rename_run(store: RunStore, run_id: str, name: str, viewer: Viewer = MACHINE) -> str | None:
    """Rename a run ``viewer`` may change; why not (or None)."""
    try:
        _changeable(store, run_id, viewer)
        store.rename(run_id, name)
    except UserError as err:
        return str(err)
    return None


def trash_runs(
    store: RunStore, runs: Sequence[Run], viewer: Viewer = MACHINE
) -> tuple[list[Run], str | None]:
    """Move ``runs`` to the trash; the ones moved, and the first refusal (or None)."""
    moved: list[Run] = []
    for run in runs:
        try:
            _changeable(store, run.id, viewer)
            moved.append(store.trash_run(run.id))
        except UserError as err:
            return moved, str(err)
    return moved, None


def restore_runs(store: RunStore, run_ids: Sequence[str], viewer: Viewer = MACHINE) -> str | None:
    """Take runs out of the trash; the first refusal (or None)."""
    for run_id in run_ids:
        try:
            _changeable(store, run_id, viewer, trashed=True)
            store.restore_run(run_id)
        except UserError as err:
            return str(err)
    return None
