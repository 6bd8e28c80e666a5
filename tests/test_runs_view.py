"""The Runs page's view-model on a real store: the table, the selection kept by run id when new
runs arrive, the comparison's settings rows, the bar chart's axis, the trash, an unreadable
store."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from cnnlab.training.names import FINISHED
from cnnlab.training.store import RunStore
from cnnlab.views import runs as rv


@pytest.fixture
def store(tmp_path: Path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


def finished_run(store: RunStore, name: str, accuracy: float, **config: object) -> str:
    settings = {
        "model": "small-cnn", "input_size": 28, "epochs": 2, "batch_size": 50, "lr": 1e-3,
        "optimizer": "adam", "weight_decay": 0.0, "schedule": "onecycle", "train_limit": 1000,
        "seed": 0, "device": "cpu", **config,
    }  # fmt: skip
    run_id = store.create_run(settings, name=name, model="small-cnn", params=409_082, macs=1)
    store.mark_running(run_id, os.getpid(), "cpu")
    store.add_metrics(
        run_id,
        [(1, 0.5, "loss", 2.0), (2, 1.0, "loss", 1.0), (2, 1.0, "accuracy", accuracy)]
        + [(2, 1.0, key, accuracy - 0.01) for key in ("precision", "recall", "f1")],
    )
    store.finish_run(run_id, FINISHED)
    return run_id


def test_comparison_shows_every_setting_and_bars_from_zero(store: RunStore) -> None:
    a = finished_run(store, "adam run", 0.97)
    b = finished_run(
        store, "sgd run", 0.95, lr=3e-3, batch_size=32, optimizer="sgd", seed=7,
        schedule="cosine", epochs=3, input_size=32, train_limit=None, weight_decay=5e-4,
    )  # fmt: skip
    view = rv.runs_view(store, [a, b])
    assert view.problem is None and [r.id for r in view.selected] == [b, a]
    side = view.compare
    assert side is not None and list(side.columns) == ["sgd run", "adam run"]
    expected = {
        "learning rate": ("0.003", "0.001"),
        "batch size": ("32", "50"),
        "optimizer": ("sgd", "adam"),
        "seed": ("7", "0"),
        "schedule": ("cosine", "onecycle"),
        "epochs": ("3", "2"),
        "input size": ("32×32", "28×28"),
        "train images": ("all", "1,000"),
        "weight decay": ("0.0005", "0"),
        "accuracy": ("95.00 %", "97.00 %"),
    }
    for row, values in expected.items():
        assert tuple(side.loc[row]) == values, row
    assert view.bars is not None
    assert view.bars.layout.yaxis.range[0] == 0  # not zoomed to the smallest bar
    assert [t.name for t in view.bars.data] == ["sgd run", "adam run"]
    overlay = view.overlay("loss", 0.0)
    assert [t.name for t in overlay.data] == ["sgd run", "adam run"]
    assert list(overlay.data[0].y) == [2.0, 1.0]


def test_selection_follows_run_ids_when_runs_arrive_or_leave(store: RunStore) -> None:
    old = finished_run(store, "old", 0.9)
    mid = finished_run(store, "mid", 0.9)
    first = rv.runs_view(store, [old])
    assert first.ids == (mid, old) and first.selected_rows == (1,)
    newer = store.create_run({"model": "small-cnn"}, name="new", model="small-cnn", params=1,
                             macs=1)  # fmt: skip
    assert store.change_token() != first.token  # what the page's poll notices
    again = rv.runs_view(store, [old])
    assert again.ids == (newer, mid, old) and again.selected_rows == (2,)  # same run, new row
    assert [r.name for r in again.selected] == ["old"]
    store.trash_run(mid)
    after = rv.runs_view(store, [old, mid, "gone00000000"])
    assert after.ids == (newer, old) and [r.name for r in after.selected] == ["old"]
    assert [r.id for r in after.trash] == [mid]
    assert rv.restore_runs(store, [mid]) is None
    assert mid in rv.runs_view(store).ids
    assert "not in the trash" in (rv.restore_runs(store, [mid]) or "")


def test_nothing_selected_and_an_unreadable_store(store: RunStore, tmp_path: Path) -> None:
    finished_run(store, "only", 0.9)
    view = rv.runs_view(store)
    assert view.selected == () and view.compare is None and view.bars is None
    assert list(view.table["name"]) == ["only"] and "error" in view.table.columns
    store.path.write_bytes(b"this is not a database" * 100)
    for suffix in ("-wal", "-shm"):
        Path(str(store.path) + suffix).unlink(missing_ok=True)
    broken = rv.runs_view(store, ["x"])
    assert broken.problem is not None and "cannot be read" in broken.problem
    assert broken.runs == () and broken.selected == ()
