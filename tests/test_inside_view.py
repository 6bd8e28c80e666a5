"""Inside the network, below the page: one output step by step against the rule table, receptive
fields, filters before/after training, captum saliency, and the page's view-model on a real tiny
trained run (and on a seeded Conv Lab stack) — bad inputs included."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from torch import nn

from cnnlab.counting import zoo
from cnnlab.counting.analyse import analyse_model
from cnnlab.counting.spec import StackSpec
from cnnlab.counting.transform import separable_model
from cnnlab.errors import UserError
from cnnlab.inside import steps
from cnnlab.inside.features import digit_input, feature_maps
from cnnlab.inside.pictures import BLANK_TEXT, digit_from_bytes, to_digit
from cnnlab.inside.saliency import METHODS, saliency_map
from cnnlab.training import loop, names
from cnnlab.training.checkpoints import INITIAL, load_checkpoint, predict
from cnnlab.training.config import TrainConfig
from cnnlab.training.data import load_mnist
from cnnlab.training.store import RunStore
from cnnlab.views import inside as iv
from cnnlab.views import runview
from cnnlab.views import train as tv

SEPARABLE_STACK = {
    "name": "sep",
    "input": [1, 28, 28],
    "layers": [
        {"type": "conv", "out_channels": 8, "kernel": 3, "padding": 1, "activation": "relu"},
        {"type": "maxpool", "kernel": 2},
        {"type": "conv", "out_channels": 12, "kernel": 3, "padding": 1, "separable": True},
        {"type": "conv", "out_channels": 6, "kernel": 5, "stride": 2, "dilation": 2, "groups": 2},
    ],
}


@pytest.fixture(scope="module")
def digit() -> np.ndarray:
    return load_mnist("test", limit=4).images[3].numpy()


@pytest.fixture(scope="module")
def tiny_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, str]:
    """A real small-cnn run on 500 MNIST digits, trained here (its store in its own home)."""
    home = tmp_path_factory.mktemp("inside-home")
    store = RunStore(home / "runs.db")
    config = TrainConfig(train_limit=500, batch_size=100, name="inside", device="cpu")
    run_id = store.create_run(config.to_dict(), name=config.name, model=config.model,
                              params=None, macs=None)  # fmt: skip
    assert loop.train(config, store, run_id).status == names.FINISHED
    return home, run_id


@pytest.fixture()
def run_id(tiny_run: tuple[Path, str], monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv("CNNLAB_HOME", str(tiny_run[0]))
    return tiny_run[1]


# --- feature maps equal a direct forward pass -------------------------------------------------


def test_maps_equal_the_model_cut_after_each_layer(digit: np.ndarray) -> None:
    torch.manual_seed(0)
    model = zoo.build_model("small-cnn", mnist=True).eval()
    x = digit_input(torch.from_numpy(digit), 28)
    rows = feature_maps(model, x).rows
    layers = list(model.children())  # small-cnn is a Sequential: cut it after each layer

    def upto(i: int) -> nn.Module:
        return nn.Sequential(*layers[: i + 1])

    for row in rows:
        with torch.inference_mode():
            direct = upto(int(row.name))(x)[0].numpy()
        np.testing.assert_allclose(row.maps, direct, rtol=1e-5, atol=1e-5)
    paged = feature_maps(model, x, max_channels=8, first={"4": 8}).rows[2]
    assert (paged.first, paged.kept, paged.channels) == (8, 8, 32)
    with torch.inference_mode():
        np.testing.assert_allclose(paged.maps, upto(4)(x)[0, 8:16].numpy(), atol=1e-5)


def test_a_separable_conv_lab_stack_shows_both_stages_with_their_channels(digit: np.ndarray):
    key = iv.lab_key(SEPARABLE_STACK, seed=3)
    view = iv.maps_view(iv.LAB, key, digit, "a digit")
    got = [(p.name, p.stage, p.channels) for p in view.layers]
    assert got[:4] == [
        ("0.conv", None, 8),
        ("1.pool", None, 8),
        ("2.depthwise", "depthwise", 8),  # one map per input channel: no mixing
        ("2.pointwise", "pointwise", 12),  # channels mixed
    ]
    assert "no mixing of channels" in view.layers[2].sentence
    assert "channels mixed" in view.layers[3].sentence
    again = iv.maps_view(iv.LAB, key, digit, "a digit")
    other = iv.maps_view(iv.LAB, iv.lab_key(SEPARABLE_STACK, seed=4), digit, "a digit")
    assert np.array_equal(again.layers[0].picture, view.layers[0].picture)  # seeded
    assert not np.array_equal(other.layers[0].picture, view.layers[0].picture)
    square = dict(SEPARABLE_STACK, input=[1, 28, 32])
    with pytest.raises(UserError, match="square input"):
        iv.maps_view(iv.LAB, iv.lab_key(square, 0), digit, "")


# --- one output, step by step -----------------------------------------------------------------


def _profile_rows(model: nn.Module, shape: tuple[int, ...]) -> dict[str, tuple[int, int]]:
    """Layer name → (MACs, output elements) as `cnnlab profile` counts them."""
    rows = analyse_model(model, (1, *shape)).rows
    return {r.name: (r.macs, int(np.prod(r.output_shape[1:]))) for r in rows}


@pytest.mark.parametrize("form", ["regular", "separable", "stack"])
def test_one_output_count_is_layer_macs_over_output_elements(form: str, digit: np.ndarray):
    torch.manual_seed(1)
    if form == "stack":
        model = zoo.build_model(zoo.STACK, mnist=True, spec=StackSpec.from_dict(SEPARABLE_STACK))
    else:
        model = zoo.build_model("small-cnn", mnist=True)
        model = separable_model(model) if form == "separable" else model
    model.eval()
    x = digit_input(torch.from_numpy(digit), 28)
    rows = steps.trace(model, x)
    profile = _profile_rows(model, (1, 28, 28))
    convs = steps.conv_rows(rows)
    assert len(convs) >= 2
    for i in convs:
        c, h, w = (int(s) for s in rows[i].output.shape[1:])
        one = steps.one_output(rows, i, c - 1, h // 2, w - 1)
        macs, elements = profile[rows[i].name]
        assert one.count == macs // elements and one.count * elements == macs
        assert one.per_output == one.count and one.rule.macs == macs
        assert one.matches, (rows[i].name, one.total, one.actual)  # the products make the output
        conv = rows[i].module
        assert isinstance(conv, nn.Conv2d)
        kh, kw = conv.kernel_size
        expected = {"depthwise": kh * kw, "pointwise": conv.in_channels}.get(
            rows[i].stage or "", kh * kw * conv.in_channels // conv.groups
        )
        assert one.count == expected
    stages = [rows[i].stage for i in convs]
    if form != "regular":
        assert "depthwise" in stages and "pointwise" in stages


def test_receptive_field_walks_back_through_convs_and_pools(digit: np.ndarray) -> None:
    model = zoo.build_model("small-cnn", mnist=True).eval()
    rows = steps.trace(model, digit_input(torch.from_numpy(digit), 28))
    assert steps.receptive_box(rows, 0, 0, 0) == (0, 0, 1, 1)  # 3×3 pad 1 at the corner
    assert steps.receptive_box(rows, 0, 10, 12) == (9, 11, 11, 13)
    # conv 3×3 → pool 2 → conv 3×3: rows 4–6 of the pooled map are input rows 7–14
    assert steps.receptive_box(rows, 2, 5, 6) == (7, 9, 14, 16)
    assert steps.receptive_box(rows, 3, 3, 3) == (9, 9, 18, 18)


def test_bad_layer_channel_or_position_is_one_clear_message(run_id: str, digit: np.ndarray):
    layers = iv.conv_layers(iv.RUN, run_id, digit)
    assert [shape for _, _, shape in layers] == [(16, 28, 28), (32, 14, 14)]
    first = layers[0][0]
    view = iv.step_view(iv.RUN, run_id, digit, first, 2, 0, 27)
    assert view.output.count == 9 and "= 9 = 9" in view.rule_text and "✓" in view.sum_text
    assert len(view.animation.frames) >= 2 and view.box == (0, 26, 1, 27)
    for args, message in [
        ((1, 0, 0, 0), "not one of the conv layers"),  # the pool after conv 0
        ((first, 16, 0, 0), "channel 16 is outside"),
        ((first, 0, 28, 0), r"position \(28, 0\) is outside"),
        ((first, 0, 0, -1), "is outside"),
    ]:
        with pytest.raises(UserError, match=message):
            iv.step_view(iv.RUN, run_id, digit, *args)


# --- filters, before and after ------------------------------------------------------------------


def test_the_run_kept_its_initial_weights_and_they_differ_from_the_final(run_id: str) -> None:
    store = RunStore()
    initial = store.get_artifact(run_id, INITIAL)
    final = store.get_artifact(run_id, names.CHECKPOINT)
    assert initial is not None and final is not None and initial.path != final.path
    before, config = load_checkpoint(initial.path)
    after, _ = load_checkpoint(final.path)
    assert config.model == "small-cnn"
    w0, w1 = before.state_dict()["0.weight"], after.state_dict()["0.weight"]
    assert w0.shape == w1.shape and not torch.equal(w0, w1)
    view = iv.filters_view(iv.RUN, run_id)
    assert [p.name for p in view.panels] == ["0", "4"] and view.note == ""
    first = view.panels[0]
    assert first.before is not None and first.before.shape == first.after.shape
    assert not np.array_equal(first.before, first.after)
    assert "kernel per output channel (one input channel) (16 of 16)" in first.drawn_text
    assert first.after.shape[:2] == (2 * 26 - 2, 8 * 26 - 2)  # 16 kernels in 2 rows of 8
    assert "first 32 of 32" in view.panels[1].drawn_text


def test_a_lab_stack_has_no_before_and_says_why(digit: np.ndarray) -> None:
    view = iv.filters_view(iv.LAB, iv.lab_key(SEPARABLE_STACK, 0))
    assert [p.kind for p in view.panels] == ["regular", "depthwise", "regular"]
    assert all(p.before is None for p in view.panels) and "random weights" in view.note


# --- saliency (captum) ------------------------------------------------------------------------


@pytest.mark.parametrize("method", list(METHODS))
def test_captum_saliency_has_the_input_shape_and_is_finite(method: str, digit: np.ndarray):
    torch.manual_seed(0)
    model = zoo.build_model("small-cnn", mnist=True).eval()
    x = digit_input(torch.from_numpy(digit), 28)
    black = digit_input(torch.zeros(28, 28, dtype=torch.uint8), 28)
    raw = saliency_map(model, x, 3, method, black)
    assert raw.shape == (28, 28) and np.isfinite(raw).all() and raw.max() > 0
    with pytest.raises(UserError, match="not a digit"):
        saliency_map(model, x, 10, method, black)


def test_saliency_view_of_the_run(run_id: str, digit: np.ndarray) -> None:
    view = iv.saliency_view(iv.RUN, run_id, digit, "saliency")
    assert view.raw.shape == (28, 28) and view.picture.shape == (224, 224, 3)
    assert 0 <= view.target < 10 and "Saliency" in view.text
    with pytest.raises(UserError, match="unknown saliency method"):
        iv.saliency_view(iv.RUN, run_id, digit, "lime")


# --- the view-model on a real run ---------------------------------------------------------------


def test_maps_view_of_the_run(run_id: str, digit: np.ndarray) -> None:
    view = iv.maps_view(iv.RUN, run_id, digit, "test #3")
    assert [p.title for p in view.layers] == [
        "0 · Conv2d · 16 × 28 × 28",
        "3 · MaxPool2d · 16 × 14 × 14",
        "4 · Conv2d · 32 × 14 × 14",
        "7 · MaxPool2d · 32 × 7 × 7",
    ]
    assert all(p.pages == 1 and p.drawn == p.channels for p in view.layers)
    assert abs(sum(view.probabilities) - 1) < 1e-5 and len(view.top) == 3
    model, config = load_checkpoint(RunStore().get_artifact(run_id, names.CHECKPOINT).path)
    probs = predict(model, config, torch.from_numpy(digit).unsqueeze(0))[0]
    assert view.top[0][0] == int(probs.argmax())
    assert view.picture.shape == (112, 112)


def test_mistakes_and_a_cell_are_the_runs_own_predictions(run_id: str) -> None:
    test = load_mnist("test", limit=600)  # an MNIST-size model predicts them all
    view = iv.mistakes_view(run_id, test)
    matrix = np.array(view.matrix)
    assert matrix.sum() == 600 and view.digits == 600 and view.note == ""
    off = matrix - np.diag(np.diag(matrix))
    np.testing.assert_array_equal(view.off_diagonal, off)
    assert view.worst == max(1, int(off.max()))
    np.testing.assert_array_equal(matrix.sum(1), np.bincount(test.labels.numpy(), minlength=10))
    true, pred = np.unravel_index(np.argmax(matrix - np.diag(np.diag(matrix))), matrix.shape)
    cell = iv.cell_view(run_id, int(true), int(pred), test)
    assert cell.count == matrix[true, pred] > 0
    model, config = load_checkpoint(RunStore().get_artifact(run_id, names.CHECKPOINT).path)
    guesses = predict(model, config, test.images[list(cell.indices)]).argmax(1)
    assert all(int(test.labels[i]) == true for i in cell.indices)
    assert guesses.tolist() == [pred] * len(cell.indices)
    with pytest.raises(UserError, match="two digits 0–9"):
        iv.cell_view(run_id, 10, 0, test)


def test_bad_sources_and_digits_are_one_clear_message(run_id: str, digit: np.ndarray):
    store = RunStore()
    failed = store.create_run({"model": "small-cnn"}, name="broken", model="small-cnn",
                              params=None, macs=None)  # fmt: skip
    store.finish_run(failed, names.FAILED, "boom")
    cases = [
        (failed, r"has no checkpoint \(it is failed\)"),
        ("0123456789ab", "no run with id 0123456789ab"),
        ("../etc", "is not a run id"),
    ]
    for key, message in cases:
        with pytest.raises(UserError, match=message):
            iv.maps_view(iv.RUN, key, digit, "")
    gone = store.create_run({"model": "small-cnn"}, name="gone", model="small-cnn",
                            params=None, macs=None)  # fmt: skip
    store.trash_run(gone)
    with pytest.raises(UserError, match="was deleted"):
        iv.load_source(iv.RUN, gone)
    with pytest.raises(UserError, match="outside the test set"):
        iv.test_digit(load_mnist("test", limit=10), 10)
    with pytest.raises(UserError, match="28×28 uint8"):
        iv.maps_view(iv.RUN, run_id, np.zeros((28, 27), np.uint8), "")
    with pytest.raises(UserError, match="no Conv Lab stack"):
        iv.lab_spec(None, None)


# --- one picture pipeline -----------------------------------------------------------------------


def test_train_page_cli_and_inside_share_one_picture_pipeline(tmp_path: Path) -> None:
    import io

    from PIL import Image

    assert runview.read_picture is not None and runview.to_digit is to_digit
    paper = np.full((120, 90), 250, np.uint8)
    paper[20:100, 40:52] = 10  # a dark "1" on light paper
    buf = io.BytesIO()
    Image.fromarray(paper).save(buf, format="PNG")
    from_upload = tv.uploaded_digit(buf.getvalue())
    np.testing.assert_array_equal(from_upload, digit_from_bytes(buf.getvalue()))
    (tmp_path / "one.png").write_bytes(buf.getvalue())
    from cnnlab.inside.pictures import digit_from_file

    np.testing.assert_array_equal(digit_from_file(tmp_path / "one.png"), from_upload)
    with pytest.raises(UserError, match="too large"):
        digit_from_bytes(b"\x89PNG" + bytes(11 * 2**20))  # over 10 MiB: refused unread
    big = tmp_path / "big.png"
    big.write_bytes(bytes(11 * 2**20))
    with pytest.raises(UserError, match=r"big\.png: the picture is too large"):
        digit_from_file(big)
    for blank in (np.zeros((30, 30), np.uint8), np.full((30, 30), 200, np.uint8)):
        with pytest.raises(UserError) as err:
            to_digit(blank)
        assert str(err.value) == BLANK_TEXT
