"""The bad-input corpus (tests/corpus/*.jsonl): each case ends in one clear line, no traceback.

Each surface has a manifest; each case says what is fed in and what must come out
(``expect.message`` is a case-insensitive regex; CLI cases also give ``expect.exit``, default 2).
Big and binary inputs (multi-megabyte specs, corrupt MNIST files, malicious checkpoints) are
generated here at test time from small recipes, so the repository holds no megabytes.
"""

from __future__ import annotations

import gzip
import json
import os
import random
import re
import struct
import zlib
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from reliability_helpers import (
    assert_cli_error,
    assert_user_message,
    forbid_real_work,
    params,
    run_cli,
    run_cli_subprocess,
)

from cnnlab.errors import UserError

# =============================================================================== MNIST files

MNIST_NAMES = {
    "train-images": "train-images-idx3-ubyte",
    "train-labels": "train-labels-idx1-ubyte",
    "test-images": "t10k-images-idx3-ubyte",
    "test-labels": "t10k-labels-idx1-ubyte",
}
SMALL = {"train": 200, "test": 100}  # real digits copied from the full set


def _idx(magic: int, dims: tuple[int, ...], payload: bytes) -> bytes:
    return struct.pack(f">i{len(dims)}i", magic, *dims) + payload


@pytest.fixture(scope="session")
def small_mnist(mnist_path: Path) -> dict[str, bytes]:
    """Raw (decompressed) IDX bytes of the first real digits of each split."""
    out: dict[str, bytes] = {}
    for key, stem in MNIST_NAMES.items():
        split = key.split("-")[0]
        n = SMALL[split]
        with gzip.open(mnist_path / f"{stem}.gz") as fh:
            raw = fh.read(16 + n * 784 if key.endswith("images") else 8 + n)
        if key.endswith("images"):
            out[key] = _idx(2051, (n, 28, 28), raw[16:])
        else:
            out[key] = _idx(2049, (n,), raw[8:])
    return out


def _store(path_stem: Path, raw: bytes, store: str) -> None:
    gz = path_stem.with_name(path_stem.name + ".gz")
    if store == "raw":
        path_stem.write_bytes(raw)
    elif store == "gz":
        gz.write_bytes(gzip.compress(raw) if raw else b"")
    elif store == "raw-named-gz":
        gz.write_bytes(raw)
    elif store == "double-gz":
        gz.write_bytes(gzip.compress(gzip.compress(raw)))
    elif store == "gz+garbage":
        gz.write_bytes(gzip.compress(raw) + b"this is not gzip")
    elif store == "gz-bad-crc":
        blob = bytearray(gzip.compress(raw))
        blob[-8] ^= 0xFF  # the CRC32 of the member
        gz.write_bytes(bytes(blob))
    else:
        raise AssertionError(f"unknown store {store}")


def build_mnist_case(case: dict[str, Any], small: dict[str, bytes], tmp: Path) -> Path:
    """A data folder holding the small real set with the case's one corruption applied."""
    folder = tmp / "mnist"
    folder.mkdir()
    target, op = case["target"], case["op"]
    if target == "dir":
        return _bad_dir(op, tmp)
    for key, raw in small.items():
        if key != target:
            _store(folder / MNIST_NAMES[key], raw, "gz")
    stem = folder / MNIST_NAMES[target]
    raw = small[target]
    images = target.endswith("images")
    header = 16 if images else 8
    store = case.get("store", "gz")
    if op == "identity":
        pass
    elif op == "truncate_gz":
        blob = gzip.compress(raw)
        keep = case["keep"]
        keep = int(len(blob) * keep) if isinstance(keep, float) else keep
        stem.with_name(stem.name + ".gz").write_bytes(blob[:keep])
        return folder
    elif op == "random_bytes":
        raw = random.Random(case["id"]).randbytes(case["size"])
        stem.with_name(stem.name + ".gz").write_bytes(raw)
        return folder
    elif op == "raw_file":
        raw = bytes.fromhex(case["hex"])
        if store == "gz":  # a zero-byte .gz file, as a failed copy leaves it
            stem.with_name(stem.name + ".gz").write_bytes(raw)
            return folder
    elif op == "set_magic":
        raw = struct.pack(">i", case["value"]) + raw[4:]
    elif op == "truncate_raw":
        raw = raw[: case["keep"]]
    elif op == "append":
        raw = raw + b"\x00" * case["count"]
    elif op == "set_dims":
        dims = tuple(case["dims"])
        fit = case.get("fit_data")
        if fit is True:
            payload = bytes(int(np.prod(dims)))
        elif fit == "empty":
            payload = b""
        else:  # keep the real payload: the header lies about it
            payload = raw[header:]
        raw = _idx(2051, dims, payload)
    elif op == "empty_split":
        raw = _idx(2051, (0, 28, 28), b"")
        _store(folder / MNIST_NAMES["test-labels"], _idx(2049, (0,), b""), "gz")
    elif op == "keep_items":
        raw = _idx(2049, (case["count"],), raw[header : header + case["count"]])
    elif op == "add_items":
        raw = _idx(2049, (SMALL["test"] + case["count"],), raw[header:] + b"\x01" * case["count"])
    elif op == "set_item":
        blob = bytearray(raw)
        blob[header + case["index"]] = case["value"]
        raw = bytes(blob)
    elif op == "swap_with_labels":
        raw = small["test-labels"]
        _store(folder / MNIST_NAMES["test-labels"], small["test-images"], "gz")
    elif op == "delete":
        return folder
    elif op == "make_dir":
        stem.with_name(stem.name + ".gz").mkdir()
        return folder
    elif op == "symlink_loop":
        link = stem.with_name(stem.name + ".gz")
        link.symlink_to(link.name)
        return folder
    elif op == "dangling_symlink":
        stem.with_name(stem.name + ".gz").symlink_to(tmp / "nowhere.gz")
        return folder
    else:
        raise AssertionError(f"unknown op {op}")
    _store(stem, raw, store)
    return folder


def _bad_dir(op: str, tmp: Path) -> Path:
    if op == "nonexistent":
        return tmp / "no" / "such" / "folder"
    if op == "regular_file":
        path = tmp / "a-file"
        path.write_text("not a folder")
        return path
    if op == "empty_dir":
        path = tmp / "empty"
        path.mkdir()
        return path
    if op == "unrelated_files":
        path = tmp / "other"
        path.mkdir()
        (path / "README.md").write_text("digits")
        (path / "train.csv").write_text("1,2,3")
        return path
    if op == "long_name":
        return tmp / ("x" * 5000)
    if op == "nul_name":
        return Path(str(tmp) + "/bad\x00name")
    raise AssertionError(f"unknown dir op {op}")


@pytest.mark.parametrize("case", params("mnist"))
def test_mnist_corpus(
    case: dict[str, Any],
    small_mnist: dict[str, bytes],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
) -> None:
    from cnnlab.training.data import MnistError, load_mnist

    folder = build_mnist_case(case, small_mnist, tmp_path)
    split = "train" if case["target"].startswith("train") else "test"
    with pytest.raises(MnistError) as info:
        load_mnist(split, data_dir=folder)  # type: ignore[arg-type]
    assert_user_message(str(info.value), case["expect"])
    if "\x00" not in str(folder):  # a shell cannot pass NUL in argv
        result = run_cli(["data", "--data-dir", str(folder)], capsys)
        assert_cli_error(result, case["expect"])


def test_valid_small_mnist_loads(small_mnist: dict[str, bytes], tmp_path: Path) -> None:
    """The corpus' base folder is valid: each case fails because of its one corruption."""
    from cnnlab.training.data import load_mnist

    folder = tmp_path / "ok"
    folder.mkdir()
    for key, raw in small_mnist.items():
        _store(folder / MNIST_NAMES[key], raw, "gz")
    assert len(load_mnist("train", data_dir=folder)) == SMALL["train"]
    test = load_mnist("test", data_dir=folder)
    assert len(test) == SMALL["test"] and sum(test.class_counts()) == SMALL["test"]


# =============================================================================== spec JSON

VALID_SPEC = {"input": [1, 28, 28], "layers": [{"type": "conv", "out_channels": 8, "kernel": 3}]}


def spec_bytes(case: dict[str, Any]) -> bytes:
    """The bytes of a spec case: inline object or text, hex, or generated at test time."""
    if "spec" in case:
        return json.dumps(case["spec"]).encode()
    if "text" in case:
        return case["text"].encode("utf-8", "surrogatepass")
    if "hex" in case:
        return bytes.fromhex(case["hex"])
    gen = case["generate"]
    kind = gen["kind"]
    if kind == "long_int":
        layer = f'{{"type": "conv", "out_channels": {"7" * gen["digits"]}, "kernel": 3}}'
        return f'{{"input": [1, 28, 28], "layers": [{layer}]}}'.encode()
    if kind == "deep":
        return ("[" * gen["depth"] + "]" * gen["depth"]).encode()
    if kind == "deep_objects":
        return ('{"a": ' * gen["depth"] + "1" + "}" * gen["depth"]).encode()
    if kind == "deep_layers":
        nested = "[" * gen["depth"] + "]" * gen["depth"]
        return f'{{"input": [1, 28, 28], "layers": {nested}}}'.encode()
    if kind == "pad":
        text = json.dumps(VALID_SPEC)
        return (text[:-1] + " " * gen["bytes"] + "}").encode()
    if kind == "big_name":
        return json.dumps({**VALID_SPEC, "name": "n" * gen["bytes"]}).encode()
    if kind == "many_layers":
        layers = [{"type": "dropout", "p": 0.1}] * gen["count"]
        return json.dumps({"input": [1, 28, 28], "layers": layers}).encode()
    raise AssertionError(f"unknown generator {kind}")


@pytest.mark.parametrize("case", params("spec"))
def test_spec_corpus(case: dict[str, Any], tmp_path: Path, capsys: pytest.CaptureFixture[str]):
    """Engine (strict and lenient parse), then ``cnnlab profile FILE``: one line each time."""
    from cnnlab.counting import spec as specmod
    from cnnlab.counting.analyse import analyse_spec

    data = spec_bytes(case)
    separable = True if case.get("separable") else None
    with pytest.raises(UserError) as info:
        analysis = analyse_spec(specmod.loads(data), separable=separable)
        if analysis.error:
            raise UserError(analysis.error)
    assert_user_message(str(info.value), case["expect"])

    # The Conv Lab keeps the valid rows of a spec and shows the first bad layer inline.
    try:
        lenient = specmod.loads(data, validate=False)
    except UserError as err:
        assert_user_message(str(err), case["expect"])
    else:
        analysis = analyse_spec(lenient, separable=separable)
        assert analysis.error, "the lenient path accepted a bad spec"
        assert_user_message(analysis.error, case["expect"])

    if "spec" in case:  # pages and training configs hand the engine a dict, not text
        with pytest.raises(UserError) as info:
            analysis = analyse_spec(specmod.StackSpec.from_dict(case["spec"]), separable=separable)
            if analysis.error:
                raise UserError(analysis.error)
        assert_user_message(str(info.value), case["expect"])

    path = tmp_path / "spec.json"
    path.write_bytes(data)
    argv = ["profile", str(path), "--json", *(["--separable"] if separable else [])]
    assert_cli_error(run_cli(argv, capsys), case["expect"])


def test_spec_corpus_base_is_valid(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """The spec the generators pad and grow is itself fine: the corruption is what fails."""
    path = tmp_path / "ok.json"
    path.write_text(json.dumps(VALID_SPEC))
    result = run_cli(["profile", str(path), "--json"], capsys)
    assert result.code == 0, result.err
    assert json.loads(result.out)["totals"]["params"] == 1 * 3 * 3 * 8 + 8


# =============================================================================== uploaded pictures


def _png_chunk(kind: bytes, data: bytes) -> bytes:
    crc = zlib.crc32(kind + data) & 0xFFFFFFFF
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", crc)


def _png(case: dict[str, Any]) -> bytes:
    """A PNG as its header claims: rows of zeros (few bytes compressed, many pixels)."""
    width, height, depth = case["width"], case["height"], case.get("depth", 8)
    ihdr = struct.pack(">IIBBBBB", width, height, depth, 0, 0, 0, 0)
    if "idat_hex" in case:
        idat = bytes.fromhex(case["idat_hex"])
    else:
        row = b"\x00" * (1 + (width * depth + 7) // 8)
        comp = zlib.compressobj(9)
        parts = [comp.compress(row) for _ in range(case.get("rows", height))]
        idat = b"".join(parts) + comp.flush()
    head = _png_chunk(b"IHDR", ihdr)
    if case.get("bad_crc"):
        head = head[:-1] + bytes([head[-1] ^ 0xFF])
    blob = b"\x89PNG\r\n\x1a\n" + head + _png_chunk(b"IDAT", idat) + _png_chunk(b"IEND", b"")
    return blob[: case["cut"]] if "cut" in case else blob


def _tiff_header(width: int, height: int) -> bytes:
    """A little-endian TIFF whose IFD claims ``width`` × ``height`` 8-bit grey pixels."""
    tags = [(256, 4, width), (257, 4, height), (258, 3, 8), (259, 3, 1), (262, 3, 1),
            (273, 4, 200), (277, 3, 1), (278, 4, height), (279, 4, width * height)]  # fmt: skip
    ifd = struct.pack("<H", len(tags))
    for tag, kind, value in tags:
        ifd += struct.pack("<HHI", tag, kind, 1) + (
            struct.pack("<HH", value, 0) if kind == 3 else struct.pack("<I", value)
        )
    return b"II*\x00" + struct.pack("<I", 8) + ifd + struct.pack("<I", 0) + b"\x00" * 64


def picture_bytes(case: dict[str, Any]) -> bytes:
    import io

    from PIL import Image

    make = case["make"]
    if make == "bytes":
        return bytes.fromhex(case["hex"])
    if make == "text":
        return case["text"].encode()
    if make == "png":
        return _png(case)
    if make == "tiff_header":
        return _tiff_header(case["width"], case["height"])
    out = io.BytesIO()
    if make == "jpeg":
        ramp = np.tile(np.arange(0, 256, 4, dtype=np.uint8), (64, 1))
        Image.fromarray(ramp).save(out, format="JPEG")
        return out.getvalue()[: case["cut"]]
    if make == "solid":
        Image.new("L", (280, 280), case["value"]).save(out, format="PNG")
    elif make == "rgba_clear":
        Image.new("RGBA", (280, 280), (255, 255, 255, 0)).save(out, format="PNG")
    else:
        raise AssertionError(f"unknown picture recipe {make}")
    return out.getvalue()


@pytest.mark.parametrize("case", params("pictures"))
def test_picture_corpus(case: dict[str, Any]) -> None:
    """The Train page's "Try it" upload: a bad or oversized picture is one clear line."""
    from cnnlab.inside.pictures import read_picture, to_digit

    data = picture_bytes(case)
    with pytest.raises(UserError) as info:
        to_digit(read_picture(data))
    assert_user_message(str(info.value), case["expect"])


# =============================================================================== checkpoints


class Evil:
    """Unpickling this runs a command: what a malicious "checkpoint" would carry."""

    def __init__(self, call: str, marker: Path) -> None:
        self.call, self.marker = call, marker

    def __reduce__(self) -> tuple[Any, ...]:
        import builtins
        import subprocess

        if self.call == "os.system":
            return (os.system, (f"touch {self.marker}",))
        if self.call == "builtins.eval":
            return (builtins.eval, (f"open({str(self.marker)!r}, 'w').close()",))
        return (subprocess.call, (["touch", str(self.marker)],))


def _small_cnn_state() -> dict[str, Any]:
    from cnnlab.counting import zoo

    return zoo.build_model("small-cnn", mnist=True).state_dict()


def checkpoint_file(case: dict[str, Any], tmp: Path, marker: Path) -> Path:
    import pickle
    import zipfile

    import torch

    from cnnlab.training.config import TrainConfig

    path = tmp / "model.pt"
    make = case["make"]
    config = TrainConfig().to_dict()
    if make == "evil_torch_save":
        torch.save({"state_dict": {}, "config": Evil(case["call"], marker)}, path)
    elif make == "evil_raw_pickle":
        path.write_bytes(pickle.dumps(Evil(case["call"], marker), case.get("protocol", 4)))
    elif make == "evil_in_state_dict":
        torch.save({"state_dict": {"w": Evil("os.system", marker)}, "config": config}, path)
    elif make == "numpy_payload":
        torch.save({"state_dict": {"w": np.zeros(3)}, "config": config}, path)
    elif make == "bytes":
        path.write_bytes(bytes.fromhex(case["hex"]))
    elif make == "random":
        path.write_bytes(random.Random(case["id"]).randbytes(case["size"]))
    elif make == "text":
        path.write_text(case["text"])
    elif make == "valid":
        torch.save({"state_dict": _small_cnn_state(), "config": config}, path)
        blob = path.read_bytes()
        path.write_bytes(blob[: int(len(blob) * case["cut"])])
    elif make == "plain_zip":
        with zipfile.ZipFile(path, "w") as zf:
            zf.writestr("readme.txt", "not a model")
    elif make == "missing":
        pass
    elif make == "directory":
        path.mkdir()
    elif make == "torch_save":
        torch.save(_checkpoint_payload(case["payload"], config), path)
    else:
        raise AssertionError(f"unknown checkpoint recipe {make}")
    return path


def _checkpoint_payload(kind: str, config: dict[str, Any]) -> Any:
    import torch

    from cnnlab.counting import zoo

    state = _small_cnn_state()
    bad = {"input": [1, 28, 28], "layers": [{"type": "conv", "kernel": 3}]}
    stack_config = {**config, "model": "stack", "spec": bad}
    items = state.items()
    payloads: dict[str, Any] = {
        "state_dict_only": state,
        "list": [state, config],
        "tensor": torch.zeros(3),
        "config_string": {"state_dict": state, "config": "small-cnn"},
        "config_unknown_model": {"state_dict": state, "config": {**config, "model": "resnet9000"}},
        "config_bad_epochs": {"state_dict": state, "config": {**config, "epochs": -1}},
        "config_unknown_key": {"state_dict": state, "config": {**config, "pickle": "yes"}},
        "config_bad_stack": {"state_dict": state, "config": stack_config},
        "lenet_weights_small_config": {
            "state_dict": zoo.build_model("lenet5", mnist=True).state_dict(),
            "config": config,
        },
        "wrong_shapes": {
            "state_dict": {k: torch.zeros([d + 1 for d in v.shape] or [2]) for k, v in items},
            "config": config,
        },
        "missing_keys": {"state_dict": dict(list(state.items())[:1]), "config": config},
        "state_dict_list": {"state_dict": list(state.values()), "config": config},
        "state_dict_strings": {"state_dict": {k: "w" for k in state}, "config": config},
    }
    return payloads[kind]


@pytest.mark.parametrize("case", params("checkpoints"))
def test_checkpoint_corpus(case: dict[str, Any], tmp_path: Path) -> None:
    """``load_checkpoint`` (the "Try it" panel): weights_only loading, one line per refusal."""
    from cnnlab.training.checkpoints import load_checkpoint

    marker = tmp_path / "pwned"
    path = checkpoint_file(case, tmp_path, marker)
    with pytest.raises(UserError) as info:
        load_checkpoint(path)
    assert_user_message(str(info.value), case["expect"])
    assert not marker.exists(), "loading the checkpoint ran code from it"


def test_checkpoint_corpus_base_loads(tmp_path: Path) -> None:
    """The corpus' valid checkpoint loads, so each case fails for its own reason."""
    import torch

    from cnnlab.training.checkpoints import load_checkpoint
    from cnnlab.training.config import TrainConfig

    path = tmp_path / "ok.pt"
    torch.save({"state_dict": _small_cnn_state(), "config": TrainConfig().to_dict()}, path)
    model, config = load_checkpoint(path)
    assert config.model == "small-cnn" and not model.training


def test_evil_pickle_would_run_without_weights_only(tmp_path: Path) -> None:
    """The malicious files are real: plain ``torch.load`` (weights_only=False) runs them."""
    import torch

    marker = tmp_path / "pwned"
    path = tmp_path / "evil.pt"
    torch.save({"state_dict": {}, "config": Evil("os.system", marker)}, path)
    torch.load(path, weights_only=False)
    assert marker.exists()


UNSAFE = re.compile(
    r"\bpickle\.loads?\(|\bdill\.|\bmarshal\.loads?\(|(?<![\w.])eval\(|(?<![\w.])exec\("
    r"|yaml\.load\(|shell=True|os\.system\(|weights_only\s*=\s*False"
)


def test_no_unsafe_deserialisation_in_the_product() -> None:
    """No eval/exec/pickle of anything; every torch.load says weights_only=True."""
    root = Path(__file__).resolve().parents[1]
    files = [*(root / "cnnlab").rglob("*.py"), *(root / "pages").glob("*.py"), root / "app.py",
             root / "serve.py"]  # fmt: skip
    problems = []
    for path in files:
        for number, line in enumerate(path.read_text().splitlines(), 1):
            code = line.split("#", 1)[0]
            if UNSAFE.search(code) or ("torch.load(" in code and "weights_only=True" not in code):
                problems.append(f"{path.relative_to(root)}:{number}: {line.strip()}")
    assert not problems, "\n".join(problems)


# =========================================================================== Conv Lab rows, links


def convlab_pipeline(
    input_shape: tuple[int, int, int], layers: list[dict[str, Any]], mode: str, name: str = "stack"
) -> tuple[Any, dict[int, str], Any]:
    """The Conv Lab page's view-model on the editor's rows: (stack, row messages, table).

    A stack the page cannot analyse at all (bad input shape, too many layers) raises its message.
    """
    from cnnlab.views import labstate as lab
    from cnnlab.views.conv_lab import conv_lab_view

    view = conv_lab_view(lab.LabConfig(input_shape, tuple(layers), mode, name))
    if not view.ok:
        raise UserError(view.input_error or view.stack_error or "")
    return view.stack, view.messages, view.table


def assert_row_error(messages: dict[int, str], table: Any, expect: dict[str, Any]) -> None:
    """The bad row says why; rows above it keep their numbers; rows below are not analysed."""
    row = expect["row"]
    assert row in messages, f"row {row} has no message: {messages}"
    assert_user_message(messages[row], expect, f"row {row} message")
    assert min(messages) == row, f"rows above {row} are marked too: {messages}"
    for i in range(row):
        assert str(table.loc[i, "Status"]).startswith("✅"), table.loc[i].to_dict()
        assert int(table.loc[i, "Params"]) >= 0
    assert str(table.loc[row, "Status"]).startswith("⚠️")
    for i in range(row + 1, len(table)):
        assert not str(table.loc[i, "Status"]).startswith("✅")


@pytest.mark.parametrize("case", params("convlab_rows"))
def test_convlab_rows_corpus(case: dict[str, Any]) -> None:
    import pandas as pd

    from cnnlab.views import labstate as lab

    frame = pd.DataFrame.from_records(case["rows"], columns=list(lab.COLUMNS))
    layers = lab.layers_from_frame(frame)
    shape = tuple(case["input"])
    if case["expect"].get("stack"):  # the page shows "Cannot analyse this stack: …"
        with pytest.raises(UserError) as info:
            convlab_pipeline(shape, layers, case["mode"])  # type: ignore[arg-type]
        assert_user_message(str(info.value), case["expect"])
        return
    _, messages, table = convlab_pipeline(shape, layers, case["mode"])  # type: ignore[arg-type]
    assert len(table) == len(case["rows"])
    assert_row_error(messages, table, case["expect"])


def link_value(case: dict[str, Any]) -> str:
    """The ``lab=`` value of a case: given raw, or packed as the app packs it (zlib+base64url)."""
    import base64

    if "value" in case:
        return case["value"]
    enc = case["encode"]
    if "obj" in enc:
        raw = json.dumps(enc["obj"]).encode()
    elif "text" in enc:
        raw = enc["text"].encode()
    else:
        kind = enc["generate"]["kind"]
        if kind == "bomb":
            raw = b'{"v": 1, "input": [1, 28, 28], "name": "' + b" " * 4_000_000 + b'"}'
        elif kind == "deep":
            raw = b'{"v": 1, "input": [1, 28, 28], "layers": ' + b"[" * 100_000 + b"]" * 100_000
            raw += b"}"
        elif kind == "latin1":
            raw = '{"v": 1, "name": "Größe"}'.encode("latin-1")
        elif kind == "truncated":
            from cnnlab.counting.spec import PRESETS
            from cnnlab.views.labstate import LabConfig, encode_config

            full = encode_config(LabConfig.from_spec(PRESETS["MNIST CNN"]))
            return full[: len(full) // 2]
        else:
            raise AssertionError(kind)
    return base64.urlsafe_b64encode(zlib.compress(raw, 9)).decode().rstrip("=")


@pytest.mark.parametrize("case", params("query"))
def test_query_corpus(case: dict[str, Any]) -> None:
    """URL query strings: Conv Lab ``lab=`` links and the Train page's ``run=`` id."""
    expect = case["expect"]
    if case["page"] == "train":
        from cnnlab.training.store import RunStore
        from cnnlab.views.runview import parse_run_id

        run_id = parse_run_id(case["value"])
        if expect.get("known_format"):
            assert run_id is not None and RunStore().get_run(run_id) is None
        else:
            assert run_id is None, f"{case['value']!r} taken for a run id"
        return
    from cnnlab.views import labstate as lab

    value = link_value(case)
    if expect["stage"] == "link":
        with pytest.raises(UserError) as info:
            config = lab.decode_config(value)
            layers = lab.layers_from_frame(lab.frame_from_layers(config.layers))
            convlab_pipeline(config.input, layers, config.mode, config.name)
        assert_user_message(str(info.value), expect)
        return
    config = lab.decode_config(value)
    layers = lab.layers_from_frame(lab.frame_from_layers(config.layers))  # the editor round trip
    _, messages, table = convlab_pipeline(config.input, layers, config.mode, config.name)
    assert_row_error(messages, table, expect)


PAGE_CASES = [c for c in params("query") if c.values[0].get("page_check")]


@pytest.mark.parametrize("case", PAGE_CASES)
def test_query_corpus_on_the_page(case: dict[str, Any]) -> None:
    """A few links opened on the real page (AppTest): an inline error, the rest still works."""
    from streamlit.testing.v1 import AppTest

    app = str(Path(__file__).resolve().parents[1] / "app.py")
    at = AppTest.from_file(app, default_timeout=120)
    expect = case["expect"]
    if case["page"] == "train":
        at.switch_page("pages/3_Train.py")
        at.query_params["run"] = case["value"]
        at.run()
        assert not at.exception, [e.value for e in at.exception]
        errors = [str(e.value) for e in at.error]
        wanted = expect["message"] if expect.get("known_format") else "is not a run id"
        assert any(wanted in e for e in errors), errors
        for e in errors:
            assert_user_message(e.replace("\n", " "), {}, "page error")
        assert at.selectbox(key="tr_model").value == "small-cnn"  # the form still works
        assert any(m.label == "Parameters" for m in at.metric)
        return
    at.switch_page("pages/1_Conv_Lab.py")
    at.query_params["lab"] = link_value(case)
    at.run()
    assert not at.exception, [e.value for e in at.exception]
    errors = [str(e.value) for e in at.error]
    if expect["stage"] == "link":
        shown = [e for e in errors if "could not be read" in e]
        assert shown, errors
        assert_user_message(shown[0], expect, "page error")
    else:
        prefix = f"Layer {expect['row']}: "
        shown = [e for e in errors if e.startswith(prefix)]
        assert shown, errors
        assert_user_message(shown[0][len(prefix) :], expect, "page error")
    # the rest of the page still works: the table and the totals are there
    assert at.dataframe and any(m.label == "Params" for m in at.metric)


# ========================================================================== "check my calculation"


@pytest.fixture(scope="module")
def alexnet_analysis() -> Any:
    from cnnlab.counting.analyse import analyse_zoo

    return analyse_zoo("alexnet")


@pytest.mark.parametrize("case", params("param_cells"))
def test_param_cells_corpus(case: dict[str, Any], alexnet_analysis: Any) -> None:
    """Model Inspector's "check my calculation": a bad cell is flagged in one line, never raises."""
    from cnnlab.counting.check import check_user_params

    if "generate" in case:
        gen = case["generate"]
        cell: Any = gen.get("prefix", "") + "9" * gen["digits"] + gen.get("suffix", "")
    else:
        cell = case["cell"]
    checks = check_user_params(alexnet_analysis, {case["layer"]: cell})
    assert len(checks) == 1 and not checks[0].ok, checks
    assert_user_message(checks[0].message, case["expect"])


# =============================================================================== CLI flags


def _expand(arg: str, tmp: Path) -> str:
    return arg.replace("{tmp}", str(tmp)).replace("{long}", "y" * 5000)


def _setup_run(kind: str) -> str:
    """A run in the test's store for cases that need one (``{run}`` in argv)."""
    from cnnlab.training.store import RunStore

    store = RunStore()
    config = {"model": "small-cnn"}
    run_id = store.create_run(config, name=None, model="small-cnn", params=1, macs=1)
    if kind == "running_run":  # claimed by this (live) process, so no reaper takes it for dead
        assert store.mark_running(run_id, os.getpid(), "cpu")
    return run_id


@pytest.mark.parametrize("case", params("cli"))
def test_cli_corpus(
    case: dict[str, Any],
    tmp_path: Path,
    capsys: pytest.CaptureFixture[str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    if case.get("requires") == "no-cuda":
        import torch

        if torch.cuda.is_available():
            pytest.skip("this machine has a CUDA GPU")
    _need_subcommand(case["argv"][0])
    for name, text in case.get("files", {}).items():
        (tmp_path / name).parent.mkdir(parents=True, exist_ok=True)
        (tmp_path / name).write_text(text, encoding="utf-8")
    for key, value in case.get("env", {}).items():
        monkeypatch.setenv(key, value)
    forbid_real_work(monkeypatch)
    run_id = _setup_run(case["setup"]) if "setup" in case else ""
    argv = [_expand(a, tmp_path).replace("{run}", run_id) for a in case["argv"]]
    assert_cli_error(run_cli(argv, capsys), case["expect"])


def _need_subcommand(name: str) -> None:
    import importlib.util

    if name in ("profile", "train", "runs", "worker") and not importlib.util.find_spec(
        f"cnnlab.cli.{name}"
    ):
        pytest.skip(f"cnnlab {name} not built yet")


SUBPROCESS_CASES = [
    (["data", "--data-dir", "/no/such/folder"], "no such data directory"),
    (["data", "--data-dir", "/tmp/" + "z" * 5000], "too long|cannot|no such"),
    ([b"data", b"--data-dir", b"/tmp/\xff\xfe-not-utf8"], "no such data directory"),
    (["nosuch-command"], "invalid choice"),
    (["data", "--bogus-flag"], "unrecognized arguments"),
]


@pytest.mark.parametrize(("argv", "pattern"), SUBPROCESS_CASES)
def test_cli_subprocess_one_line(argv: list[Any], pattern: str) -> None:
    """A handful of cases as a user runs them: a real process, real stderr, exit 2."""
    assert_cli_error(run_cli_subprocess(argv), {"message": pattern})


# =============================================================================== training form


@pytest.mark.parametrize("case", params("trainconfig"))
def test_trainconfig_corpus(case: dict[str, Any]) -> None:
    from cnnlab.training.config import TrainConfig

    with pytest.raises(UserError) as info:
        config = TrainConfig.from_dict(case["config"])
        if case.get("stage") == "model":
            config.check_model()
        else:
            config.validate()
    assert_user_message(str(info.value), case["expect"])


def test_corpus_size_and_readme() -> None:
    """At least 200 bad inputs, and the README's table counts what is really there."""
    from reliability_helpers import CORPUS, load_manifest

    counts = {p.stem: len(load_manifest(p.stem)) for p in sorted(CORPUS.glob("*.jsonl"))}
    assert sum(counts.values()) >= 200, counts
    readme = (CORPUS / "README.md").read_text()
    for name, n in counts.items():
        assert re.search(rf"`{name}\.jsonl` \|[^\n]*\| {n} \|", readme), (name, n)
    assert f"**{sum(counts.values())}**" in readme


@pytest.mark.browser
def test_bad_links_in_the_browser(page: Any, app_url: str) -> None:
    """Real Chromium: a garbled Conv Lab link and a bogus run id show an inline error, and the
    rest of each page still works (the preset stack is analysed; the Train form estimates)."""
    from browser_helpers import assert_no_exception, open_app
    from playwright.sync_api import expect

    open_app(page, f"{app_url}/Conv_Lab?lab=%F0%9F%92%A3not-a-link")
    expect(page.get_by_text("could not be read")).to_be_visible()
    assert_no_exception(page)
    expect(page.locator(".st-key-lab-table")).to_contain_text("conv")
    expect(page.locator("[data-testid='stMetric']").first).to_contain_text("Params")

    open_app(page, f"{app_url}/Train?run=..%2F..%2Fetc%2Fpasswd")
    expect(page.get_by_text("is not a run id")).to_be_visible()
    assert_no_exception(page)
    expect(page.locator(".st-key-train-cost")).to_contain_text("Parameters")


def test_app_binds_to_localhost_by_default() -> None:
    """A classroom server is opened on purpose (README), never by default."""
    import tomllib

    root = Path(__file__).resolve().parents[1]
    config = tomllib.loads((root / ".streamlit" / "config.toml").read_text())
    assert config["server"]["address"] in ("localhost", "127.0.0.1")
    assert config["server"].get("maxUploadSize", 200) <= 10  # MB: specs and digits are tiny


# =============================================================================== classroom


def _classroom_value(case: dict[str, Any]) -> Any:
    if "generate" in case:
        return case["generate"]["repeat"] * case["generate"]["times"]
    return case.get("value")


@pytest.mark.parametrize("case", params("classroom"))
def test_classroom_corpus(case: dict[str, Any], monkeypatch: pytest.MonkeyPatch) -> None:
    """Display names, owner ids, teacher passwords and hashes, class limits, and submissions
    that break them: one clear line; a refused submission queues nothing."""
    from cnnlab.classroom import fair_queue, identity, limits, teacher
    from cnnlab.training.config import TrainConfig
    from cnnlab.training.store import RunStore

    surface, value = case["surface"], _classroom_value(case)
    with pytest.raises(UserError) as caught:
        if surface == "name":
            identity.check_name(value)
        elif surface == "owner_id":
            identity.check_owner_id(value)
        elif surface == "password":
            teacher.hash_password(value)
        elif surface == "hash":
            teacher.verify_password("correct horse", value)
        elif surface == "limits":
            limits.ClassLimits.from_dict(value)
        elif surface == "limit_config":
            config = TrainConfig.from_dict(case["config"]).validate()
            limits.ClassLimits.from_dict(case["limits"]).check_config(config)
        elif surface == "submit":
            monkeypatch.setenv(teacher.ENV_VAR, teacher.hash_password("correct horse"))
            store = RunStore()
            limits.save_limits(store, limits.ClassLimits.from_dict(case["limits"]))
            owner = identity.Owner(identity.new_owner_id(), "Ada")
            small = TrainConfig(train_limit=100, device="cpu")
            for _ in range(case["before"]):
                fair_queue.submit([small], store, owner)
            before = len(store.list_runs())
            configs = [TrainConfig.from_dict(c) for c in case.get("configs", [case.get("config")])]
            try:
                fair_queue.submit(configs, store, owner)
            finally:
                assert len(store.list_runs()) == before  # nothing queued
        else:
            raise AssertionError(f"unknown classroom surface {surface!r}")
    assert_user_message(str(caught.value), case["expect"])
