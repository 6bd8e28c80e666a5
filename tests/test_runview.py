"""runview: tables of real store rows, live-curve buffers, smoothing, URL ids, digit preparation."""

from __future__ import annotations

import io
import time

import numpy as np
import pytest
from PIL import Image

from cnnlab.errors import UserError
from cnnlab.format import duration_text, fmt_si, percent
from cnnlab.training.data import load_mnist
from cnnlab.training.store import RunStore
from cnnlab.views import runs as runs_view_model
from cnnlab.views import runview
from cnnlab.views.runview import Curves


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


def _record(store: RunStore, run_id: str, steps: range, epoch_len: int = 10) -> None:
    rows = []
    for step in steps:
        epoch = step / epoch_len
        rows += [
            (step, epoch, "loss", 2.3 / (1 + step)),
            (step, epoch, "train_accuracy", min(0.99, 0.1 + step / 50)),
            (step, epoch, "progress", step / steps.stop),
        ]
        if step % epoch_len == 0 and step:
            rows.append((step, epoch, "test_accuracy", 0.9 + step / 1000))
    store.add_metrics(run_id, rows)


def _run(store: RunStore, name: str = "demo", model: str = "small-cnn") -> str:
    config = {"model": model, "epochs": 2, "input_size": 28, "train_limit": 2000}
    return store.create_run(config, name=name, model=model, params=421_642, macs=2_998_272)


def test_parse_run_id_accepts_store_ids_only(store: RunStore) -> None:
    run_id = _run(store)
    assert runview.parse_run_id(run_id) == run_id
    assert runview.parse_run_id([" x", run_id.upper()]) == run_id
    for bad in (None, "", "abc", "../etc/passwd", "zz" * 8, 42, [], "1234567890abcdef" * 3):
        assert runview.parse_run_id(bad) is None


def test_curves_grow_incrementally_from_new_rows_only(store: RunStore) -> None:
    run_id = _run(store)
    _record(store, run_id, range(1, 21))
    curves = Curves(run_id)
    first = store.metrics(run_id, after_id=curves.last_id)
    assert curves.extend(first) == len(first)
    assert curves.count("loss") == 20
    assert curves.extend(first) == 0  # the same rows again change nothing
    _record(store, run_id, range(21, 31))
    new = store.metrics(run_id, after_id=curves.last_id)
    assert {m.step for m in new} == set(range(21, 31))
    curves.extend(new)
    steps, values = curves.series("loss")
    assert steps == list(range(1, 31))
    assert values[-1] == pytest.approx(2.3 / 31)
    assert curves.series("test_accuracy")[0] == [10, 20, 30]
    assert curves.epochs["test_accuracy"] == [1.0, 2.0, 3.0]
    progress = runview.progress_of(curves, "running")
    assert progress.step == 30 and progress.fraction == pytest.approx(30 / 31)
    assert runview.progress_of(curves, "finished").fraction == 1.0


def test_smoothing_is_debiased_ema() -> None:
    assert runview.smooth([1.0, 2.0, 3.0], 0.0) == [1.0, 2.0, 3.0]
    flat = runview.smooth([5.0] * 10, 0.9)
    assert flat == pytest.approx([5.0] * 10)  # bias correction: no ramp from zero
    out = runview.smooth([0.0, 10.0], 0.5)
    assert out[0] == 0.0 and out[1] == pytest.approx(5 / 0.75)
    noisy = np.sin(np.arange(200)) + np.linspace(0, 1, 200)
    assert np.std(np.diff(runview.smooth(list(noisy), 0.9))) < np.std(np.diff(noisy)) / 3
    with pytest.raises(UserError):
        runview.smooth([1.0], 1.0)


def test_metrics_tables_and_csv(store: RunStore) -> None:
    run_id = _run(store)
    _record(store, run_id, range(1, 11))
    rows = store.metrics(run_id)
    long = runview.metrics_frame(rows)
    assert list(long.columns) == ["step", "epoch", "key", "value", "time"]
    assert len(long) == len(rows) == 31
    wide = runview.wide_metrics(rows)
    assert list(wide["step"]) == list(range(1, 11))
    assert {"epoch", "loss", "train_accuracy", "progress", "test_accuracy"} <= set(wide.columns)
    assert wide["test_accuracy"].notna().sum() == 1
    text = runview.metrics_csv(rows).decode()
    assert text.splitlines()[0] == "step,epoch,key,value,time"
    assert len(text.splitlines()) == 32
    assert runview.wide_metrics([]).empty


def test_runs_table_keeps_integers_exact(store: RunStore) -> None:
    a = _run(store, "first")
    b = _run(store, "second", model="lenet5")
    store.mark_running(a, pid=1, device="cpu")
    store.add_metrics(a, [(5, 1.0, "accuracy", 0.9876), (5, 1.0, "f1", 0.9811)])
    store.finish_run(a, "finished")
    runs = store.list_runs()
    finals = {r.id: store.final_metrics(r.id) for r in runs}
    frame = runs_view_model.runs_frame(runs, finals)
    assert list(frame.columns) == list(runs_view_model.RUNS_COLUMNS)
    row = frame.set_index("id").loc[a]
    assert row["params"] == 421_642 and row["MACs/image"] == 2_998_272
    assert row["accuracy"] == pytest.approx(0.9876) and row["F1"] == pytest.approx(0.9811)
    assert row["status"] == "finished" and row["device"] == "cpu"
    assert row["duration_s"] >= 0
    other = frame.set_index("id").loc[b]
    assert other["status"] == "queued" and np.isnan(other["accuracy"])
    side = runs_view_model.compare_frame(runs, finals)
    assert list(side.columns) == ["second", "first"]
    assert side.loc["params", "first"] == "421,642"
    assert side.loc["accuracy", "first"] == "98.76 %"
    assert side.loc["train images", "first"] == "2,000"


def test_labels_are_unique_when_names_repeat(store: RunStore) -> None:
    ids = [_run(store, "same"), _run(store, "same"), _run(store, "other")]
    labels = runs_view_model.run_labels(store.list_runs())
    assert len(set(labels.values())) == 3
    assert labels[ids[2]] == "other"


def test_formatting_helpers() -> None:
    assert fmt_si(15_470_000_000, "MACs") == "15.47 GMACs"
    assert fmt_si(421_642) == "421.64 k"
    assert fmt_si(16_641_080_000_000_000) == "16.64 P"  # VGG-16, 3 epochs: training FLOPs
    assert fmt_si(12) == "12"
    assert fmt_si(None) == "—"
    assert duration_text(42.4) == "42 s"
    assert duration_text(3.25) == "3.2 s"
    assert duration_text(119.7) == "2 min"
    assert duration_text(3725) == "1 h 2 min"
    assert duration_text(5 * 86400) == "5.0 days"
    assert percent(0.98891) == "98.89 %"


def test_status_line_and_config_text(store: RunStore) -> None:
    run_id = _run(store)
    store.mark_running(run_id, pid=1, device="cpu")
    live = store.require_run(run_id)
    assert runview.status_line(live) == "🏃 running · small-cnn · cpu"  # no clock that stops
    time.sleep(0.01)
    store.finish_run(run_id, "failed", error="boom")
    run = store.get_run(run_id)
    assert run is not None
    assert runview.status_line(run).startswith("❌ failed · small-cnn · cpu · ")
    text = runview.config_text({"model": "vgg16", "input_size": 224, "epochs": 3,
                                "batch_size": 16, "optimizer": "adam", "lr": 1e-4,
                                "schedule": "constant", "train_limit": None, "seed": 0,
                                "device": "auto"})  # fmt: skip
    assert "224×224" in text and "all training images" in text


def _centre_of_mass(img: np.ndarray) -> tuple[float, float]:
    ys, xs = np.indices(img.shape)
    total = img.sum()
    return float((ys * img).sum() / total), float((xs * img).sum() / total)


def test_to_digit_recovers_real_mnist_digits(mnist_path) -> None:
    test = load_mnist("test", limit=20)
    for i in range(20):
        original = test.images[i].numpy()
        # As a user would upload it: 10× larger, dark ink on white paper, off-centre.
        big = np.kron(original, np.ones((10, 10), dtype=np.uint8))
        paper = np.full((400, 360), 255, dtype=np.uint8)
        paper[30:310, 60:340] = 255 - big
        png = io.BytesIO()
        Image.fromarray(paper).save(png, format="PNG")
        digit = runview.to_digit(runview.read_picture(png.getvalue()))
        assert digit.shape == (28, 28) and digit.dtype == np.uint8
        assert digit.max() == 255
        cy, cx = _centre_of_mass(digit.astype(float))
        assert abs(cy - 14) <= 1 and abs(cx - 14) <= 1
        corr = np.corrcoef(digit.ravel().astype(float), original.ravel().astype(float))[0, 1]
        assert corr > 0.95, (i, corr)


def test_to_digit_reads_a_transparent_canvas() -> None:
    rgba = np.zeros((200, 200, 4), dtype=np.uint8)
    rgba[40:160, 95:110] = (0, 0, 0, 255)  # a black stroke "1" on a transparent canvas
    digit = runview.to_digit(rgba)
    assert digit.max() == 255
    rows = np.flatnonzero(digit.max(axis=1) > 50)
    assert rows[0] >= 3 and rows[-1] <= 24 and rows[-1] - rows[0] >= 17  # 20 px tall
    cols = np.flatnonzero(digit.max(axis=0) > 50)
    assert cols[-1] - cols[0] <= 5  # still thin


def test_to_digit_rejects_blank_and_garbage() -> None:
    with pytest.raises(UserError, match="no digit"):
        runview.to_digit(np.zeros((50, 50), dtype=np.uint8))
    with pytest.raises(UserError, match="no digit"):
        runview.to_digit(np.full((50, 50, 3), 255, dtype=np.uint8))
    with pytest.raises(UserError, match="picture"):
        runview.read_picture(b"not a png")
    assert runview.top_prediction([0.0] * 9 + [1.0]) == (9, 1.0)
    with pytest.raises(UserError):
        runview.top_prediction([1.0])


def test_live_progress_says_the_stage_and_counts_the_eta_down(store: RunStore) -> None:
    """Issue 17: a run sat at 100 % "ETA 0.2 s" for ~8 s while it evaluated, and at 0 % for ~9 s
    before its first point. The stage is shown, and the ETA (evaluation included) moves."""
    run_id = _run(store)
    store.add_metrics(run_id, [(937, 1.0, "progress", 1.0), (937, 1.0, "eta_seconds", 8.0),
                               (937, 1.0, "images_per_second", 1843.0)])  # fmt: skip
    curves = Curves(run_id)
    curves.extend(store.metrics(run_id))
    recorded = curves.recorded["eta_seconds"]
    stage = {"stage": "evaluating", "text": "evaluating on 10,000 test digits",
             "since": recorded + 1.0, "eta_seconds": 7.5}  # fmt: skip
    later = runview.progress_of(curves, "running", stage, now=recorded + 4.0)
    assert later.eta_s == pytest.approx(4.5)
    assert later.text.startswith("Evaluating on 10,000 test digits… · 100 %")
    assert "ETA 4.5 s" in later.text and "step 937 of 937" in later.text
    assert "finishing" in runview.progress_of(curves, "running", stage, now=recorded + 60).text
    loading = runview.progress_of(Curves("x"), "running", {"stage": "loading data", "since": 1.0})
    assert loading.text == "Loading data… · 0 %"


def test_a_stopped_run_never_reads_zero_images_per_second(store: RunStore) -> None:
    """Issue 17: VGG-16 at 224 stopped after one ~12 s step showed "0 % · 0 images/s"."""
    run_id = _run(store)
    store.add_metrics(run_id, [(1, 1 / 11250, "progress", 1 / 33750),
                               (1, 1 / 11250, "images_per_second", 1.3)])  # fmt: skip
    curves = Curves(run_id)
    curves.extend(store.metrics(run_id))
    text = runview.progress_of(curves, "stopped").text
    assert text.startswith("stopped at step 1 of 33,750 (< 1 %)")
    assert "1.3 images/s" in text and "0 images/s" not in text and "ETA" not in text
    assert runview.progress_of(Curves("x"), "stopped").text == (
        "stopped before the first training step ended"
    )
    assert runview.speed_text(1843.4) == "1,843" and runview.speed_text(0.04) == "0.04"
