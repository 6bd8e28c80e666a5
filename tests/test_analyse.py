"""The analysis engine: published totals, hand values, golden tables, property tests."""

from __future__ import annotations

import difflib
import os
from dataclasses import replace
from pathlib import Path

import pytest
import torch
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.counting.analyse import (
    analyse_model,
    analyse_spec,
    analyse_zoo,
    compare_separable,
    summarise_layers,
    to_json_dict,
)
from cnnlab.counting.build import build_stack
from cnnlab.counting.check import check_user_params
from cnnlab.counting.spec import PRESETS, LayerSpec, StackSpec, check_stack, with_separable
from cnnlab.counting.zoo import build_model
from cnnlab.errors import UserError
from cnnlab.views.tables import table_text

EXAMPLES = int(os.environ.get("CNNLAB_HYPOTHESIS_EXAMPLES", "100"))  # percent

GOLDEN = Path(__file__).parent / "golden"

# ---------------------------------------------------------------- published figures


@pytest.mark.parametrize(
    ("name", "params", "macs"),
    [
        ("alexnet", 61_100_840, 714_188_480),
        ("vgg16", 138_357_544, 15_470_264_320),
        ("alexnet-report", 45_442_856, 698_533_568),
        ("resnet18", 11_689_512, 1_814_073_344),
    ],
)
def test_published_totals(name: str, params: int, macs: int) -> None:
    a = analyse_zoo(name)
    assert (a.totals.params, a.totals.macs) == (params, macs)
    assert a.input_shape == (1, 3, 224, 224)
    assert all(r.counted for r in a.rows)


@pytest.mark.parametrize(
    "name", ["googlenet", "vit_b_16", "convnext_tiny", "swin_t", "mobilenet_v3_small"]
)
def test_totals_equal_every_parameter_even_outside_leaves(name: str) -> None:
    model = build_model(name, device="meta")
    a = analyse_model(model, (1, 3, 224, 224), name=name)
    assert a.totals.params == sum(p.numel() for p in model.parameters())
    assert a.totals.param_bytes == 4 * a.totals.params
    uncounted = [r for r in a.rows if not r.counted]
    assert all(r.macs == 0 and r.flops == 0 for r in uncounted)


def test_alexnet_rows_and_footer() -> None:
    a = analyse_zoo("alexnet")
    conv1 = a.rows[0]
    assert (conv1.name, conv1.type, conv1.group) == ("features.0", "Conv2d", "features")
    assert conv1.output_shape == (1, 64, 55, 55)
    assert conv1.params_formula == "3 × 11 × 11 × 64 + 64 = 23,296"
    assert conv1.activation_bytes == 4 * 64 * 55 * 55
    assert a.totals.activation_bytes == sum(r.activation_bytes for r in a.rows)
    assert a.footer.params_mb == pytest.approx(61_100_840 * 4 / 1e6)
    assert a.footer.input_mb == pytest.approx(3 * 224 * 224 * 4 / 1e6)
    assert a.footer.forward_backward_mb == pytest.approx(2 * a.totals.activation_bytes / 1e6)
    fc1 = next(r for r in a.rows if r.name == "classifier.1")
    assert fc1.params == 37_752_832  # the classic lesson: the first FC layer holds the most
    assert max(a.rows, key=lambda r: r.params) is fc1


def test_mnist_and_separable_what_if() -> None:
    a = analyse_zoo("vgg16", mnist=True, input_size=32)
    assert a.input_shape == (1, 1, 32, 32) and a.rows[-1].output_shape == (1, 10)
    sep = analyse_zoo("vgg16", separable=True)
    assert sep.totals.macs < analyse_zoo("vgg16").totals.macs / 5
    assert any(r.name == "features.0.depthwise" for r in sep.rows)
    with pytest.raises(UserError, match="use input size ≥ 32"):
        analyse_zoo("vgg16", mnist=True)


def test_flop_counter_on_a_real_forward_is_twice_the_macs() -> None:
    for name in ("lenet5", "alexnet-report"):
        model = build_model(name, device="meta")
        shape = analyse_zoo(name).input_shape
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model.eval()(torch.empty(shape, device="meta"))
        assert counter.get_total_flops() == 2 * analyse_zoo(name).totals.macs


# ---------------------------------------------------------------- golden tables


@pytest.mark.parametrize("name", ["alexnet", "alexnet-report", "vgg16"])
def test_golden_table(name: str) -> None:
    text = table_text(analyse_zoo(name), formulas=True)
    path = GOLDEN / f"{name}.txt"
    if os.environ.get("CNNLAB_UPDATE_GOLDEN") == "1":
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(text, encoding="utf-8")
    if not path.exists():
        pytest.fail(f"missing {path}: run with CNNLAB_UPDATE_GOLDEN=1 to write it")
    expected = path.read_text(encoding="utf-8")
    if text != expected:
        diff = "".join(
            difflib.unified_diff(
                expected.splitlines(keepends=True),
                text.splitlines(keepends=True),
                fromfile=f"golden/{name}.txt",
                tofile="now",
            )
        )
        pytest.fail(f"{name} table changed (CNNLAB_UPDATE_GOLDEN=1 rewrites):\n{diff}")


# ---------------------------------------------------------------- Conv Lab specs

TABLE3 = PRESETS["MobileNet v1 Table 3 layer"]


def test_mobilenet_table3_by_hand() -> None:
    (cmp,) = compare_separable(TABLE3)
    assert (cmp.regular_macs, cmp.separable_macs) == (462_422_016, 52_283_392)
    assert (cmp.regular_params, cmp.separable_params) == (2_359_296, 266_752)
    assert (cmp.kernel, cmp.in_channels, cmp.out_channels) == (3, 512, 512)
    assert cmp.ratio == pytest.approx(1 / 512 + 1 / 9) == cmp.theory
    reg, sep = analyse_spec(TABLE3), analyse_spec(TABLE3, separable=True)
    assert reg.totals.macs == 462_422_016 and sep.totals.macs == 52_283_392
    assert [r.name for r in sep.rows] == ["0.depthwise", "0.pointwise"]
    (summary,) = summarise_layers(TABLE3, sep)
    assert summary.label == "conv 3×3 512→512 p1 (separable)"
    assert summary.params_formula == "dw 3 × 3 × 512 + pw 512 × 512 = 266,752"
    assert summary.macs == 52_283_392 and summary.receptive_field == 3


def test_invalid_layer_keeps_the_rows_above() -> None:
    spec = StackSpec(
        input=(3, 16, 16),
        layers=(
            LayerSpec(type="conv", out_channels=8, kernel=3, padding=1, activation="relu"),
            LayerSpec(type="maxpool", kernel=2),
            LayerSpec(type="conv", out_channels=8, kernel=11),
            LayerSpec(type="flatten"),
        ),
    )
    a = analyse_spec(spec)
    assert a.error == "layer 2 (conv): kernel 11 is larger than the input 8×8"
    assert a.error_layer == 2
    assert {r.group for r in a.rows} == {"0", "1"}
    assert [r.receptive_field for r in a.rows] == [3, 3, 4]
    summaries = summarise_layers(spec, a)
    assert [s.error is None for s in summaries] == [True, True, False, False]
    assert summaries[0].params == 3 * 9 * 8 + 8 and summaries[2].params == 0
    assert summaries[3].error == "not analysed: layer 2 above is invalid"


def test_compare_separable_covers_flippable_convs_of_the_valid_prefix() -> None:
    spec = PRESETS["VGG block"]
    comps = compare_separable(spec)
    assert [c.index for c in comps] == [0, 1]
    for c in comps:
        assert c.ratio == pytest.approx(c.theory)
        assert c.separable_params < c.regular_params


def test_json_dict_shape() -> None:
    d = to_json_dict(analyse_spec(PRESETS["MNIST CNN"]))
    assert set(d) == {"model", "input_shape", "totals", "layers"}
    assert d["input_shape"] == [1, 1, 28, 28]
    assert set(d["totals"]) == {
        "params",
        "trainable_params",
        "macs",
        "flops",
        "activation_bytes",
        "param_bytes",
    }
    assert set(d["layers"][0]) == {
        "name",
        "type",
        "output_shape",
        "params",
        "macs",
        "flops",
        "params_formula",
        "macs_formula",
    }
    assert d["layers"][0]["name"] == "0.conv"


def test_check_my_calculation() -> None:
    a = analyse_zoo("alexnet")
    checks = check_user_params(
        a,
        {
            "features.0": "23796",  # the report's mistake
            "features.3": "307,392",
            "classifier.1": 37_752_832,
            "classifier.4": "lots",
            "classifier.6": "",
            "nope": 5,
        },
    )
    by = {c.name: c for c in checks}
    assert not by["features.0"].ok and by["features.0"].correct == 23_296
    assert "3 × 11 × 11 × 64 + 64 = 23,296" in by["features.0"].message
    assert by["features.3"].ok and by["classifier.1"].ok
    assert not by["classifier.4"].ok and by["classifier.4"].user_value is None
    assert "classifier.6" not in by
    assert not by["nope"].ok


def test_twenty_layer_stack_is_analysed() -> None:
    block = [
        LayerSpec(
            type="conv", out_channels=32, kernel=3, padding=1, batchnorm=True, activation="relu"
        )
    ] * 4 + [LayerSpec(type="maxpool", kernel=2)]
    spec = StackSpec(input=(3, 64, 64), layers=tuple(block * 4))
    a = analyse_spec(spec)
    assert len(spec.layers) == 20 and a.error is None
    assert a.rows[-1].output_shape == (1, 32, 4, 4)


# ---------------------------------------------------------------- properties


@st.composite
def stacks(draw: st.DrawFn) -> StackSpec:
    """A random valid stack: drawn layer by layer, each kept only if the shapes allow it."""
    c0 = draw(st.integers(1, 6))
    h = draw(st.integers(4, 24))
    w = draw(st.integers(4, 24))
    layers: list[LayerSpec] = []
    flat = False
    for _ in range(draw(st.integers(0, 7))):
        shape = (
            check_stack(StackSpec((c0, h, w), tuple(layers)))[-1].out_shape
            if layers
            else (c0, h, w)
        )
        assert shape is not None
        c = shape[0]
        kind = draw(st.sampled_from(["conv", "conv", "maxpool", "avgpool", "linear", "dropout"]))
        act = draw(st.sampled_from([None, "relu", "relu6", "gelu", "silu", "sigmoid", "tanh"]))
        if kind == "conv" and not flat:
            out = draw(st.integers(1, 12))
            groups = draw(st.sampled_from([1, 1, 2, 3]))
            if c % groups or out % groups:
                groups = 1
            layer = LayerSpec(
                type="conv",
                out_channels=out,
                kernel=draw(st.integers(1, 5)),
                stride=draw(st.integers(1, 3)),
                padding=draw(st.integers(0, 2)),
                dilation=draw(st.integers(1, 2)),
                groups=groups,
                bias=draw(st.booleans()),
                separable=groups == 1 and draw(st.booleans()),
                batchnorm=draw(st.booleans()),
                activation=act,
            )
        elif kind in ("maxpool", "avgpool") and not flat:
            k = draw(st.integers(1, 3))
            layer = LayerSpec(
                type=kind,
                kernel=k,
                stride=draw(st.integers(1, 3)),
                padding=draw(st.integers(0, k // 2)),
            )
        elif kind == "linear":
            if not flat:
                layers.append(LayerSpec(type="flatten"))
                flat = True
            layer = LayerSpec(
                type="linear",
                out_features=draw(st.integers(1, 16)),
                bias=draw(st.booleans()),
                batchnorm=draw(st.booleans()),
                activation=act,
            )
        else:
            layer = LayerSpec(type="dropout", p=draw(st.floats(0, 1)))
        candidate = StackSpec((c0, h, w), (*layers, layer))
        if check_stack(candidate)[-1].error is None:
            layers.append(layer)
    return StackSpec((c0, h, w), tuple(layers))


def test_zoo_input_shapes_take_the_one_input_check() -> None:
    with pytest.raises(UserError, match="input channels must be between 1 and 65,536, got 0"):
        analyse_zoo("alexnet", input_shape=(0, 224, 224))
    with pytest.raises(UserError, match="input height and width must be between 1 and 4096"):
        analyse_zoo("alexnet", input_shape=(3, 5000, 224))
    with pytest.raises(UserError, match="three whole numbers"):
        analyse_zoo("alexnet", input_shape=(3, 224))  # type: ignore[arg-type]


@settings(
    max_examples=EXAMPLES * 60 // 100, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
@given(stacks(), st.sampled_from([None, True, False]))
def test_random_valid_stacks_match_the_built_module(
    spec: StackSpec, separable: bool | None
) -> None:
    a = analyse_spec(spec, separable=separable)
    assert a.error is None
    model = build_stack(spec, separable=separable, device="meta")
    assert a.totals.params == sum(p.numel() for p in model.parameters())
    effective = spec if separable is None else with_separable(spec, separable)
    checks = check_stack(effective)
    summaries = summarise_layers(spec, a)
    if spec.layers:
        assert a.rows[-1].output_shape == (1, *checks[-1].out_shape)  # type: ignore[misc]
    # one counter (the rule table): each spec layer's params are its built tensors, and its
    # MACs are what FlopCounterMode sees that layer do (conv and matmul FLOPs = 2 × MACs)
    for s, check in zip(summaries, checks, strict=True):
        block = model[s.index]
        assert s.params == sum(p.numel() for p in block.parameters())
        assert check.in_shape is not None
        layer_counter = FlopCounterMode(display=False)
        with layer_counter, torch.no_grad():
            block.eval()(torch.empty((1, *check.in_shape), device="meta"))
        assert layer_counter.get_total_flops() == 2 * s.macs
    # FlopCounterMode counts conv and matmul FLOPs only: exactly 2 × cnnlab's MACs
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        model.eval()(torch.empty((1, *spec.input), device="meta"))
    assert counter.get_total_flops() == 2 * a.totals.macs
    assert sum(s.params for s in summaries) == a.totals.params


def test_real_weights_param_count_matches() -> None:
    spec = replace(PRESETS["MobileNet v1 block"], input=(32, 16, 16))
    model = build_stack(spec)
    a = analyse_spec(spec)
    assert sum(p.numel() for p in model.parameters()) == a.totals.params
    with torch.no_grad():
        assert model.eval()(torch.randn(1, 32, 16, 16)).shape == a.rows[-1].output_shape


field_values = st.one_of(
    st.none(), st.booleans(), st.integers(-5, 300), st.floats(allow_nan=True), st.text(max_size=4)
)


@settings(max_examples=EXAMPLES * 150 // 100, deadline=None)
@given(
    st.lists(
        st.builds(
            LayerSpec,
            type=st.sampled_from(
                ["conv", "maxpool", "avgpool", "flatten", "linear", "dropout", "?"]
            ),
            out_channels=field_values,
            kernel=field_values,
            stride=field_values,
            padding=field_values,
            dilation=field_values,
            groups=field_values,
            bias=st.booleans(),
            separable=st.booleans(),
            batchnorm=st.booleans(),
            activation=st.sampled_from([None, "relu", "tanh", "bogus"]),
            out_features=field_values,
            p=field_values,
        ),
        max_size=5,
    ),
    st.tuples(st.integers(-1, 40), st.integers(-1, 40), st.integers(-1, 40)),
)
def test_analyse_never_raises_anything_but_user_error(layers: list, shape: tuple) -> None:
    spec = StackSpec(input=shape, layers=tuple(layers))
    try:
        a = analyse_spec(spec)
    except UserError:
        return
    if a.error is not None:
        assert a.error_layer is not None and a.error.startswith(f"layer {a.error_layer} ")
    summarise_layers(spec, a)
    compare_separable(spec)


def test_analyse_model_on_a_plain_module() -> None:
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.PReLU(), nn.Flatten(), nn.LazyLinear(3))
    with pytest.raises(UserError):  # lazy modules cannot run on meta without data: one line
        analyse_model(model.to("meta"), (1, 2, 5, 5))
    model = nn.Sequential(nn.Conv2d(2, 4, 3), nn.PReLU(), nn.Flatten(), nn.Linear(36, 3))
    a = analyse_model(model, (1, 2, 5, 5))
    prelu = a.rows[1]
    assert not prelu.counted and prelu.params == 1 and prelu.flops == 0
    assert a.totals.params == sum(p.numel() for p in model.parameters())


# ---------------------------------------------------------------- latency


def test_latency_of_regular_and_separable_forms() -> None:
    from cnnlab.counting.latency import compare_latency, measure_latency

    spec = replace(TABLE3, input=(64, 8, 8), layers=(replace(TABLE3.layers[0], out_channels=64),))
    regular, separable = compare_latency(spec, warmup=1, repeats=3)
    for lat in (regular, separable):
        assert lat.device == "cpu" and lat.runs == 3
        assert 0 < lat.p10_ms <= lat.median_ms <= lat.p90_ms
    single = measure_latency(build_model("lenet5"), (1, 28, 28), warmup=1, repeats=2)
    assert single.median_ms > 0 and single.runs == 2
    huge = StackSpec((64, 2048, 2048), (LayerSpec(type="conv", out_channels=64, kernel=3),))
    with pytest.raises(UserError, match="too much"):
        compare_latency(huge)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="no GPU"):
            measure_latency(build_model("lenet5"), (1, 28, 28), device="cuda")
