"""``python -m cnnlab profile``: table, JSON shape, exit code 2 with one line on bad input."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from cnnlab.cli import main
from cnnlab.counting.spec import PRESETS, dumps

ROOT = Path(__file__).resolve().parents[1]


def run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = main(["profile", *argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_model_table(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, err = run(capsys, "alexnet")
    assert code == 0 and err == ""
    assert "features.0" in out and "23,296" in out and "714,188,480" in out


def test_model_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "vgg16", "--json")
    assert code == 0
    data = json.loads(out)
    assert data["model"] == "vgg16" and data["input_shape"] == [1, 3, 224, 224]
    assert data["totals"]["params"] == 138_357_544
    assert data["totals"]["macs"] == 15_470_264_320
    assert data["layers"][0]["params_formula"] == "3 × 3 × 3 × 64 + 64 = 1,792"


def test_mnist_input_size_and_separable(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "vgg16", "--mnist", "--input-size", "32", "--json")
    assert code == 0 and json.loads(out)["input_shape"] == [1, 1, 32, 32]
    code, out, _ = run(capsys, "resnet18", "--input", "3x64x64", "--separable", "--json")
    data = json.loads(out)
    assert code == 0 and any(layer["name"].endswith("depthwise") for layer in data["layers"])


def test_spec_file(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    path = tmp_path / "table3.json"
    path.write_text(dumps(PRESETS["MobileNet v1 Table 3 layer"]))
    code, out, _ = run(capsys, str(path), "--json")
    assert code == 0 and json.loads(out)["totals"]["macs"] == 462_422_016
    code, out, _ = run(capsys, str(path), "--separable", "--json")
    assert code == 0 and json.loads(out)["totals"]["macs"] == 52_283_392
    code, out, _ = run(capsys, str(path), "--separable", "--formulas")
    assert code == 0 and "3 × 3 × 512 = 4,608" in out


def test_crosscheck_json(capsys: pytest.CaptureFixture[str]) -> None:
    code, out, _ = run(capsys, "lenet5", "--crosscheck", "--json")
    data = json.loads(out)
    assert code == 0
    assert data["crosscheck"]["torchinfo"]["params"] == data["totals"]["params"] == 61_706
    assert data["crosscheck"]["flop_counter"]["flops"] == 2 * data["totals"]["macs"]
    assert set(data["crosscheck"]) == {"torchinfo", "fvcore", "flop_counter"}


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["vgg61"], "unknown model 'vgg61'; did you mean vgg1"),
        (["alexnet", "--input", "3x22"], "input shape must look like 3x224x224"),
        (["vgg16", "--input", "3x28x28"], "use input size ≥ 32"),
        (["missing.json"], "spec file not found"),
        (["alexnet", "--input", "3x9x9", "--input-size", "9"], "not both"),
    ],
)
def test_bad_input_exits_2_with_one_line(
    capsys: pytest.CaptureFixture[str], argv: list[str], message: str
) -> None:
    code, out, err = run(capsys, *argv)
    assert code == 2 and out == ""
    assert err.startswith("cnnlab: error: ") and err.count("\n") == 1
    assert message in err


def test_bad_spec_exits_2_naming_the_layer(tmp_path: Path) -> None:
    path = tmp_path / "bad.json"
    path.write_text(
        json.dumps(
            {
                "input": [3, 5, 5],
                "layers": [
                    {"type": "conv", "out_channels": 4, "kernel": 3},
                    {"type": "conv", "out_channels": 4, "kernel": 7, "padding": 1},
                ],
            }
        )
    )
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", "profile", str(path)],
        cwd=ROOT,
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2 and proc.stdout == ""
    assert proc.stderr == (
        "cnnlab: error: layer 1 (conv): kernel 7 is larger than the padded input 5×5\n"
    )
