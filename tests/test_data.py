"""MNIST loading: the full set, the bundled subset, validation of bad files, the CLI."""

from __future__ import annotations

import gzip
import json
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import torch

from cnnlab.training import data
from cnnlab.training.data import MnistError, load_bundled, load_mnist

FULL_TRAIN_COUNTS = [5923, 6742, 5958, 6131, 5842, 5421, 5918, 6265, 5851, 5949]
FULL_TEST_COUNTS = [980, 1135, 1032, 1010, 982, 892, 958, 1028, 974, 1009]


def test_full_mnist_from_folder(mnist_path: Path) -> None:
    train = load_mnist("train", data_dir=mnist_path)
    test = load_mnist("test", data_dir=mnist_path)
    assert train.images.shape == (60_000, 28, 28) and train.images.dtype == torch.uint8
    assert train.labels.dtype == torch.int64
    assert test.images.shape == (10_000, 28, 28)
    assert train.class_counts() == FULL_TRAIN_COUNTS
    assert test.class_counts() == FULL_TEST_COUNTS
    assert not train.is_subset
    # a real digit, not noise: ink covers a minority of pixels and reaches full intensity
    assert 0.05 < (train.images[0] > 0).float().mean() < 0.5 and int(train.images[0].max()) == 255


def test_env_var_and_limit(mnist_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("CNNLAB_DATA_DIR", str(mnist_path))
    part = load_mnist("train", limit=500)
    assert len(part) == 500 and part.images.shape == (500, 28, 28)
    full = load_mnist("train")
    assert torch.equal(part.labels, full.labels[:500])


def test_cache_returns_same_tensors(mnist_path: Path) -> None:
    first = load_mnist("test", data_dir=mnist_path)
    second = load_mnist("test", data_dir=mnist_path)
    assert first.images.data_ptr() == second.images.data_ptr()


def test_torchvision_raw_layout_and_plain_files(mnist_path: Path, tmp_path: Path) -> None:
    raw = tmp_path / "MNIST" / "raw"
    raw.mkdir(parents=True)
    for name in ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"):
        (raw / name).write_bytes(gzip.decompress((mnist_path / f"{name}.gz").read_bytes()))
    test = load_mnist("test", data_dir=tmp_path)
    assert test.class_counts() == FULL_TEST_COUNTS
    assert test.location == str(raw.resolve())
    with pytest.raises(MnistError, match="missing train-images-idx3-ubyte"):
        load_mnist("train", data_dir=tmp_path)


def test_bundled_subset_is_disjoint_and_balanced() -> None:
    train, test = load_bundled("train"), load_bundled("test")
    assert len(train) == 4000 and len(test) == 1000
    assert train.class_counts() == [400] * 10 and test.class_counts() == [100] * 10
    assert train.is_subset
    train_rows = {bytes(img.numpy()) for img in train.images}
    assert not any(bytes(img.numpy()) in train_rows for img in test.images)


def test_fallback_to_bundled_when_offline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("CNNLAB_DATA_DIR", raising=False)
    monkeypatch.setenv("CNNLAB_OFFLINE", "1")
    split = load_mnist("test")
    assert split.source == data.SOURCE_BUNDLED and len(split) == 1000


def _copy(mnist_path: Path, tmp_path: Path) -> Path:
    folder = tmp_path / "mnist"
    shutil.copytree(mnist_path, folder)
    for f in folder.iterdir():
        f.chmod(0o644)
    return folder


def test_truncated_file_is_named(mnist_path: Path, tmp_path: Path) -> None:
    folder = _copy(mnist_path, tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    raw = gzip.decompress(labels.read_bytes())
    labels.write_bytes(gzip.compress(raw[: len(raw) // 2]))
    with pytest.raises(MnistError, match=r"t10k-labels-idx1-ubyte\.gz: truncated"):
        load_mnist("test", data_dir=folder)


def test_truncated_gzip_stream(mnist_path: Path, tmp_path: Path) -> None:
    folder = _copy(mnist_path, tmp_path)
    images = folder / "t10k-images-idx3-ubyte.gz"
    images.write_bytes(images.read_bytes()[:1000])
    with pytest.raises(MnistError, match=r"t10k-images-idx3-ubyte\.gz"):
        load_mnist("test", data_dir=folder)


def test_wrong_magic_number(mnist_path: Path, tmp_path: Path) -> None:
    folder = _copy(mnist_path, tmp_path)
    images = folder / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(images.read_bytes()))
    raw[2:4] = b"\x08\x01"  # a labels magic where images belong
    images.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(MnistError, match="wrong magic number 2049 \\(expected 2051\\)"):
        load_mnist("test", data_dir=folder)


def test_label_out_of_range(mnist_path: Path, tmp_path: Path) -> None:
    folder = _copy(mnist_path, tmp_path)
    labels = folder / "t10k-labels-idx1-ubyte.gz"
    raw = bytearray(gzip.decompress(labels.read_bytes()))
    raw[8] = 12
    labels.write_bytes(gzip.compress(bytes(raw)))
    with pytest.raises(MnistError, match="label 12 outside 0–9"):
        load_mnist("test", data_dir=folder)


def test_cli_data_json(mnist_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "data", "--json", "--data-dir", str(mnist_path)],
        capture_output=True, text=True, check=True,
    )  # fmt: skip
    info = json.loads(out.stdout)
    assert info["train_size"] == 60_000 and info["test_size"] == 10_000
    assert info["train_class_counts"] == FULL_TRAIN_COUNTS
    assert info["test_class_counts"] == FULL_TEST_COUNTS
    assert info["is_subset"] is False


def test_cli_data_bad_dir_is_one_line(tmp_path: Path) -> None:
    out = subprocess.run(
        [sys.executable, "-m", "cnnlab", "data", "--data-dir", str(tmp_path / "nope")],
        capture_output=True, text=True,
    )  # fmt: skip
    assert out.returncode == 2
    assert out.stderr.count("\n") == 1 and "no such data directory" in out.stderr
    assert "Traceback" not in out.stderr
