"""The class board's view-model (teacher): every run by student, each student's best accuracy,
what is queued and running now, a CSV of it all, and the class limits form.

Plain Python (pandas): ``pages/7_Class_Board.py`` lays a :class:`ClassBoardView` out; the tests
assert on it. Names are plain text (the page shows them in tables, never as Markdown).
"""

from __future__ import annotations

import io
from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import pandas as pd

from cnnlab.classroom.access import Viewer
from cnnlab.classroom.limits import ClassLimits, load_limits, save_limits
from cnnlab.counting import zoo
from cnnlab.errors import UserError
from cnnlab.training.names import ACCURACY, FINISHED, QUEUED, RUNNING
from cnnlab.training.store import Run, RunStore
from cnnlab.views.runs import owner_text

STUDENT_COLUMNS = (
    "student", "runs", "queued", "running", "finished", "best accuracy", "best run",
)  # fmt: skip
RUN_COLUMNS = (
    "student", "name", "model", "status", "epochs", "train images", "accuracy", "experiment",
    "created", "id",
)  # fmt: skip
ACTIVE_COLUMNS = ("student", "name", "model", "status", "turn", "created", "id")
CSV_UNSAFE = ("=", "+", "-", "@", "\t", "\r")
"""A CSV cell starting with one of these is run as a formula by spreadsheets: quoted with '."""


@dataclass(frozen=True)
class ClassBoardView:
    """What the class board shows."""

    students: pd.DataFrame = field(default_factory=pd.DataFrame)
    """One row per student (and one for the command line): counts and best accuracy."""
    runs: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Every run, by student, newest first."""
    active: pd.DataFrame = field(default_factory=pd.DataFrame)
    """Queued and running now; ``turn`` is the run's place among its student's entries."""
    csv: bytes = b""
    limits: ClassLimits = field(default_factory=ClassLimits)
    models: tuple[str, ...] = ()
    """The models a class may allow (the zoo's MNIST models and Conv Lab stacks)."""
    problem: str | None = None


def model_choices() -> tuple[str, ...]:
    """The models a class may allow: the MNIST models, Conv Lab stacks, the rest of the zoo."""
    return tuple(dict.fromkeys([*zoo.MNIST_MODELS, zoo.STACK, *zoo.ZOO]))


def current_limits(store: RunStore) -> ClassLimits:
    """The class limits now (:class:`UserError` when the store cannot be read)."""
    return load_limits(store)


def _student_key(run: Run) -> str:
    return run.owner_id or ""


def _best(runs: list[Run], finals: Mapping[str, Mapping[str, float]]) -> tuple[float | None, str]:
    scored = [(finals[r.id][ACCURACY], r.name) for r in runs if ACCURACY in finals.get(r.id, {})]
    if not scored:
        return None, ""
    accuracy, name = max(scored, key=lambda pair: pair[0])
    return accuracy, name


def class_board_view(store: RunStore) -> ClassBoardView:
    """Read every run and the class limits; never raises for an unreadable store."""
    try:
        runs = store.list_runs()
        finals = {r.id: store.final_metrics(r.id) for r in runs if r.status == FINISHED}
        limits = load_limits(store)
    except UserError as err:
        return ClassBoardView(problem=f"The run store cannot be read: {err}")
    by_student: dict[str, list[Run]] = {}
    for run in runs:
        by_student.setdefault(_student_key(run), []).append(run)
    students = []
    for group in by_student.values():
        best, best_name = _best(group, finals)
        students.append(
            {
                "student": owner_text(group[0]),
                "runs": len(group),
                "queued": sum(r.status == QUEUED for r in group),
                "running": sum(r.status == RUNNING for r in group),
                "finished": sum(r.status == FINISHED for r in group),
                "best accuracy": best,
                "best run": best_name,
            }
        )
    student_frame = pd.DataFrame.from_records(students, columns=list(STUDENT_COLUMNS))
    student_frame["best accuracy"] = student_frame["best accuracy"].astype("float64")
    student_frame = student_frame.sort_values(
        ["best accuracy", "student"], ascending=[False, True], na_position="last"
    ).reset_index(drop=True)
    ordered = sorted(runs, key=lambda r: (owner_text(r).casefold(), _student_key(r), -r.created))
    run_frame = pd.DataFrame.from_records(
        [_run_record(r, finals) for r in ordered], columns=list(RUN_COLUMNS)
    )
    run_frame["accuracy"] = run_frame["accuracy"].astype("float64")
    return ClassBoardView(
        students=student_frame,
        runs=run_frame,
        active=_active_frame(runs),
        csv=board_csv(run_frame),
        limits=limits,
        models=model_choices(),
    )


def _run_record(run: Run, finals: Mapping[str, Mapping[str, float]]) -> dict[str, Any]:
    config = run.config or {}
    limit = config.get("train_limit")
    return {
        "student": owner_text(run),
        "name": run.name,
        "model": run.model,
        "status": run.status,
        "epochs": config.get("epochs"),
        "train images": "all" if limit is None else str(limit),
        "accuracy": finals.get(run.id, {}).get(ACCURACY),
        "experiment": run.experiment_id or "",
        "created": datetime.fromtimestamp(run.created),
        "id": run.id,
    }


def _active_frame(runs: list[Run]) -> pd.DataFrame:
    active = sorted((r for r in runs if r.active), key=lambda r: (r.created, r.id))
    turn: dict[str, int] = {}
    seen: set[tuple[str, str]] = set()
    records = []
    for run in active:
        entry = (_student_key(run), run.experiment_id or run.id)
        if entry not in seen:
            seen.add(entry)
            turn[entry[0]] = turn.get(entry[0], 0) + 1
        records.append(
            {
                "student": owner_text(run),
                "name": run.name,
                "model": run.model,
                "status": run.status,
                "turn": turn[entry[0]],
                "created": datetime.fromtimestamp(run.created),
                "id": run.id,
            }
        )
    frame = pd.DataFrame.from_records(records, columns=list(ACTIVE_COLUMNS))
    order = {RUNNING: 0, QUEUED: 1}
    return frame.sort_values(
        ["status", "turn", "created"], key=lambda c: c.map(order) if c.name == "status" else c
    ).reset_index(drop=True)


def _csv_cell(value: Any) -> Any:
    if isinstance(value, str) and value.startswith(CSV_UNSAFE):
        return "'" + value
    return value


def board_csv(frame: pd.DataFrame) -> bytes:
    """Every run as CSV (UTF-8), text cells that a spreadsheet would run as formulas quoted."""
    safe = frame.copy()
    for column in safe.columns:
        if not pd.api.types.is_numeric_dtype(safe[column]):
            safe[column] = safe[column].map(_csv_cell)
    out = io.StringIO()
    safe.to_csv(out, index=False)
    return out.getvalue().encode("utf-8")


def limits_from_form(
    allowed: list[str] | tuple[str, ...],
    max_epochs: int,
    max_train_images: int,
    runs_per_student: int,
    queue_cap: int,
) -> ClassLimits:
    """The limits the form describes (0 or an empty list: no limit); :class:`UserError` if bad."""
    return ClassLimits(
        allowed_models=tuple(allowed) or None,
        max_epochs=int(max_epochs) or None,
        max_train_images=int(max_train_images) or None,
        runs_per_student=int(runs_per_student),
        queue_cap=int(queue_cap) or None,
    ).validate()


def save_class_limits(store: RunStore, limits: ClassLimits, viewer: Viewer) -> str | None:
    """Store ``limits`` if ``viewer`` is the teacher; why not (or None)."""
    if not viewer.teacher:
        return "only the teacher can set the class limits (log in in the sidebar)"
    try:
        save_limits(store, limits)
    except UserError as err:
        return str(err)
    return None
