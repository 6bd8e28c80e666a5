"""Inside the network: feature maps of a real small model, their PNGs, and `cnnlab features`."""

from __future__ import annotations

import json
import time
from pathlib import Path

import numpy as np
import pytest
import torch
from PIL import Image

from cnnlab.cli import main
from cnnlab.counting import zoo
from cnnlab.counting.transform import separable_model
from cnnlab.inside.features import digit_input, feature_maps, save_grid
from cnnlab.inside.pictures import digit_from_file
from cnnlab.training.data import load_mnist
from cnnlab.training.store import RunStore


def _forward_shapes(model: torch.nn.Module, x: torch.Tensor) -> list[tuple[int, ...]]:
    shapes: list[tuple[int, ...]] = []
    hooks = [
        m.register_forward_hook(lambda _m, _i, o: shapes.append(tuple(o.shape[1:])))
        for m in model.modules()
        if isinstance(m, (torch.nn.Conv2d, torch.nn.MaxPool2d))
    ]
    with torch.inference_mode():
        model(x)
    for h in hooks:
        h.remove()
    return shapes


def test_rows_match_the_forward_shapes_and_probabilities_sum_to_one(tmp_path: Path):
    torch.manual_seed(0)
    model = zoo.build_model("small-cnn", mnist=True).eval()
    x = digit_input(load_mnist("test", limit=1).images[0], 28)
    started = time.perf_counter()
    features = feature_maps(model, x)
    print(f"small-cnn feature maps: {1000 * (time.perf_counter() - started):.1f} ms")
    assert [r.shape for r in features.rows] == _forward_shapes(model, x)
    assert [r.type for r in features.rows] == ["Conv2d", "MaxPool2d", "Conv2d", "MaxPool2d"]
    assert [r.shape for r in features.rows] == [
        (16, 28, 28),
        (16, 14, 14),
        (32, 14, 14),
        (32, 7, 7),
    ]
    assert all(r.stage is None for r in features.rows)
    assert all(r.maps.shape == r.shape and r.min <= r.max for r in features.rows)
    assert len(features.probabilities) == 10
    assert sum(features.probabilities) == pytest.approx(1.0, abs=1e-5)
    png = save_grid(features.rows[0], tmp_path / "a.png")
    with Image.open(png) as img:
        assert img.format == "PNG" and img.mode == "RGB" and min(img.size) >= 56


def test_separable_layers_give_depthwise_and_pointwise_maps():
    torch.manual_seed(0)
    model = separable_model(zoo.build_model("small-cnn", mnist=True)).eval()
    x = digit_input(load_mnist("test", limit=1).images[0], 28)
    rows = feature_maps(model, x, max_channels=8).rows
    assert [(r.name, r.stage) for r in rows] == [
        ("0.depthwise", "depthwise"),
        ("0.pointwise", "pointwise"),
        ("3", None),
        ("4.depthwise", "depthwise"),
        ("4.pointwise", "pointwise"),
        ("7", None),
    ]
    assert rows[0].shape == (1, 28, 28) and rows[1].shape == (16, 28, 28)
    assert rows[3].shape == (16, 14, 14) and rows[4].shape == (32, 14, 14)
    assert rows[4].kept == 8 and rows[4].channels == 32  # capped, total kept


def test_picture_is_grayscale_white_on_black_and_blank_is_refused(tmp_path: Path):
    page = np.full((200, 150), 255, np.uint8)
    page[50:150, 70:80] = 0  # a dark "1" on white paper
    Image.fromarray(page).save(tmp_path / "one.png")
    digit = digit_from_file(tmp_path / "one.png")
    assert digit.shape == (28, 28) and digit[0, 0] == 0 and digit.max() > 200
    Image.fromarray(np.full((40, 40), 200, np.uint8)).save(tmp_path / "blank.png")
    with pytest.raises(ValueError, match="blank"):
        digit_from_file(tmp_path / "blank.png")


@pytest.fixture(scope="module")
def finished_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[str, Path]:
    home = tmp_path_factory.mktemp("features-home")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_HOME", str(home))
        args = ["train", "--model", "small-cnn", "--epochs", "1", "--train-limit", "500"]
        assert main([*args, "--device", "cpu", "--json"]) == 0
        run_id = RunStore().list_runs()[0].id
    return run_id, home


def test_cli_end_to_end(
    finished_run: tuple[str, Path],
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    capsys: pytest.CaptureFixture[str],
):
    run_id, home = finished_run
    monkeypatch.setenv("CNNLAB_HOME", str(home))
    capsys.readouterr()
    out = tmp_path / "maps"
    assert main(["features", run_id, "--test-index", "3", "--out", str(out), "--json"]) == 0
    got = json.loads(capsys.readouterr().out)
    assert set(got) == {"run_id", "input", "probabilities", "layers"}
    assert got["run_id"] == run_id and got["input"]["test_index"] == 3
    assert len(got["probabilities"]) == 10 and sum(got["probabilities"]) == pytest.approx(1, 1e-4)
    assert [layer["shape"] for layer in got["layers"]] == [
        [16, 28, 28],
        [16, 14, 14],
        [32, 14, 14],
        [32, 7, 7],
    ]
    for layer in got["layers"]:
        assert {"name", "type", "stage", "shape", "png", "min", "max"} <= set(layer)
        with Image.open(layer["png"]) as img:
            assert img.format == "PNG"
    assert main(["features", run_id, "--test-index", "0", "--out", str(out)]) == 0
    assert "predicts" in capsys.readouterr().out

    # bad input: one line on stderr, exit 2
    assert main(["features", run_id, "--test-index", "10000", "--out", str(out)]) == 2
    err = capsys.readouterr().err
    assert "outside the test set" in err and err.count("\n") == 1
    assert main(["features", "nope", "--test-index", "0", "--out", str(out)]) == 2
    assert "no run with id 'nope'" in capsys.readouterr().err
    Image.fromarray(np.zeros((28, 28), np.uint8)).save(tmp_path / "black.png")
    assert (
        main(["features", run_id, "--image", str(tmp_path / "black.png"), "--out", str(out)]) == 2
    )
    assert "blank" in capsys.readouterr().err


def test_cli_refuses_an_out_that_is_a_file(
    finished_run: tuple[str, Path], tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys
):
    run_id, home = finished_run
    monkeypatch.setenv("CNNLAB_HOME", str(home))
    (tmp_path / "file").write_text("x")
    assert main(["features", run_id, "--test-index", "0", "--out", str(tmp_path / "file")]) == 2
    assert "not a writable folder" in capsys.readouterr().err
