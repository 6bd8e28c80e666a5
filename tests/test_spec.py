"""Conv Lab specs: JSON round trips, defaults, one-line errors, limits, shape arithmetic."""

from __future__ import annotations

import json
import os
from dataclasses import fields
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.counting.spec import (
    MAX_CHANNELS,
    MAX_LAYERS,
    MAX_SPATIAL,
    PRESETS,
    LayerCheck,
    LayerSpec,
    StackSpec,
    check_input_shape,
    check_stack,
    dumps,
    load,
    loads,
    with_separable,
)
from cnnlab.errors import UserError

EXAMPLES = int(os.environ.get("CNNLAB_HYPOTHESIS_EXAMPLES", "100"))  # percent

ISSUE_EXAMPLE = {
    "input": [3, 32, 32],
    "layers": [
        {
            "type": "conv",
            "out_channels": 64,
            "kernel": 3,
            "stride": 1,
            "padding": 1,
            "dilation": 1,
            "groups": 1,
            "bias": True,
            "separable": False,
            "batchnorm": False,
            "activation": "relu",
        },
        {"type": "maxpool", "kernel": 2, "stride": 2},
        {"type": "avgpool", "kernel": 2},
        {"type": "flatten"},
        {"type": "linear", "out_features": 10, "bias": True, "activation": None},
        {"type": "dropout", "p": 0.5},
    ],
}


def spec_text(layers: list[dict], input_shape: list[int] | None = None) -> str:
    return json.dumps({"input": input_shape or [3, 32, 32], "layers": layers})


def error_of(text: str) -> str:
    with pytest.raises(UserError) as info:
        loads(text)
    message = str(info.value)
    assert "\n" not in message
    return message


def test_issue_example_parses_with_defaults() -> None:
    spec = StackSpec.from_dict(ISSUE_EXAMPLE)
    conv, _maxpool, avgpool, flatten, linear, dropout = spec.layers
    assert conv == LayerSpec(type="conv", out_channels=64, kernel=3, padding=1, activation="relu")
    assert conv.stride == 1 and conv.groups == 1 and conv.bias and not conv.separable
    assert avgpool.stride == 2  # pooling stride defaults to the kernel
    assert flatten.type == "flatten" and linear.out_features == 10 and dropout.p == 0.5
    checks = check_stack(spec)
    assert [c.out_shape for c in checks] == [
        (64, 32, 32),
        (64, 16, 16),
        (64, 8, 8),
        (4096,),
        (10,),
        (10,),
    ]


@pytest.mark.parametrize("name", sorted(PRESETS))
def test_presets_round_trip_and_are_valid(name: str) -> None:
    spec = PRESETS[name]
    assert loads(dumps(spec)) == spec
    assert StackSpec.from_dict(spec.to_dict()) == spec
    assert all(c.error is None for c in check_stack(spec))


def test_table3_preset() -> None:
    spec = PRESETS["MobileNet v1 Table 3 layer"]
    assert spec.input == (512, 14, 14)
    (conv,) = spec.layers
    assert (conv.kernel, conv.out_channels, conv.padding, conv.bias) == (3, 512, 1, False)


def test_layer_round_trip_and_canonical_form() -> None:
    layer = LayerSpec(type="maxpool", kernel=3, out_channels=64, activation="relu")
    assert layer.out_channels is None and layer.activation is None and layer.stride == 3
    assert LayerSpec.from_dict(layer.to_dict()) == layer
    assert LayerSpec(type="conv", out_channels=4, kernel=3, activation="none").activation is None


def test_kernel_larger_than_padded_input_names_the_layer() -> None:
    text = spec_text(
        [
            {"type": "conv", "out_channels": 8, "kernel": 3},
            {"type": "conv", "out_channels": 8, "kernel": 3},
            {"type": "conv", "out_channels": 8, "kernel": 3},
            {"type": "conv", "out_channels": 8, "kernel": 7, "padding": 1},
        ],
        [3, 9, 9],
    )
    assert error_of(text) == "layer 3 (conv): kernel 7 is larger than the padded input 5×5"


@pytest.mark.parametrize(
    ("layers", "expected"),
    [
        ([{"type": "conv", "out_channels": 8, "kernel": 3, "groups": 3}], "groups 3 does not"),
        ([{"type": "conv", "out_channels": -8, "kernel": 3}], "out_channels must be at least 1"),
        ([{"type": "conv", "out_channels": 8, "kernel": 0}], "kernel must be at least 1"),
        ([{"type": "conv", "out_channels": 8, "kernel": 3, "padding": -1}], "padding must be"),
        ([{"type": "conv", "out_channels": 8, "kernel": True}], "kernel must be a whole number"),
        ([{"type": "conv", "out_channels": 8, "kernel": 3.0}], "kernel must be a whole number"),
        ([{"type": "conv", "out_channels": 8, "kernal": 3}], "allowed keys: type, out_channels"),
        ([{"type": "conv", "out_channels": 8}], "'kernel' is required"),
        ([{"type": "conv2d"}], "unknown type 'conv2d'"),
        ([{"type": "conv", "out_channels": 8, "kernel": 3, "activation": "relu7"}], "relu7"),
        ([{"type": "conv", "out_channels": 8, "kernel": 3, "bias": 1}], "bias must be true"),
        ([{"type": "maxpool", "kernel": 2, "out_channels": 4}], "does not apply to maxpool"),
        ([{"type": "maxpool", "kernel": 3, "padding": 2}], "at most half the kernel"),
        ([{"type": "linear", "out_features": 10}], "add a flatten layer"),
        ([{"type": "flatten"}, {"type": "conv", "out_channels": 8, "kernel": 1}], "flat"),
        ([{"type": "dropout", "p": 1.5}], "p must be between 0 and 1"),
        ([{"type": "maxpool", "kernel": 2}] * 6, "layer 5 (maxpool): kernel 2 is larger"),
        ([{"type": "conv", "out_channels": 70000, "kernel": 1}], "at most 65,536"),
        (
            [
                {"type": "conv", "out_channels": 8, "kernel": 3, "separable": True},
                {"type": "conv", "out_channels": 8, "kernel": 3, "groups": 2, "separable": True},
            ],
            "separable conv needs groups 1",
        ),
    ],
)
def test_bad_layers_give_one_precise_line(layers: list[dict], expected: str) -> None:
    assert expected in error_of(spec_text(layers))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ('{"input": [3, 32, 32], "layers": [{"type": "dropout", "p": NaN}]}', "NaN"),
        ('{"input": [3, 32, 32], "layers": [{"type": "dropout", "p": Infinity}]}', "Infinity"),
        ('{"input": [3, 32, 32], "layers": [{"type": "dropout", "p": 1e999}]}', "out of range"),
        ('{"input": [3, 32], "layers": []}', "three whole numbers"),
        ('{"input": [true, 32, 32], "layers": []}', "three whole numbers"),
        ('{"input": [0, 32, 32], "layers": []}', "channels must be between"),
        ('{"input": [3, 5000, 32], "layers": []}', "between 1 and 4096"),
        ('{"input": [3, 32, 32], "layers": [], "extra": 1}', "allowed keys: input, layers, name"),
        ('{"layers": []}', 'needs "input"'),
        ('{"input": [3, 32, 32], "layers": {}}', "must be a list"),
        ('{"input": [3, 32, 32], "layers": [7]}', "layer 0: must be an object"),
        ("[1, 2", "not valid JSON"),
        ("[" * 50 + "]" * 50, "nested more than"),
        ('"just a string"', "must be a JSON object"),
    ],
)
def test_bad_documents(text: str, expected: str) -> None:
    assert expected in error_of(text)


def test_size_limits_refused_before_building() -> None:
    assert "larger than 1 MB" in error_of(" " * 1_000_001)
    many = spec_text([{"type": "dropout"}] * (MAX_LAYERS + 1))
    assert f"at most {MAX_LAYERS} layers" in error_of(many)
    huge = spec_text(
        [
            {"type": "flatten"},
            {"type": "linear", "out_features": 1_000_000},
            {"type": "linear", "out_features": 1_000_000},
        ],
        [64, 64, 64],
    )
    assert "parameters; the limit is" in error_of(huge)
    wide = spec_text([{"type": "conv", "out_channels": 65536, "kernel": 1}], [3, 4096, 4096])
    assert "values (the limit)" in error_of(wide)


def test_spec_checks_shapes_and_leaves_counting_to_the_rule_table() -> None:
    # one counter: a LayerCheck carries shapes, never params or MACs (those come from
    # cnnlab.counting.rules through analyse_spec)
    assert {f.name for f in fields(LayerCheck)} == {
        "index",
        "in_shape",
        "out_shape",
        "error",
        "receptive_field",
    }
    # the size guard bounds the weight tensors alone: 2 × 262,144 × 1,000 weights here
    two_linears = [
        {"type": "flatten"},
        {"type": "linear", "out_features": 1000},
        {"type": "linear", "out_features": 250_000},
    ]
    message = error_of(spec_text(two_linears, [64, 64, 64]))
    assert message == (
        "layer 2 (linear): the stack's weights alone would hold 512,144,000 parameters; "
        "the limit is 500,000,000"
    )


def test_one_input_shape_check() -> None:
    assert check_input_shape([3, 224, 224]) == (3, 224, 224)
    with pytest.raises(UserError, match="input channels must be between 1 and 65,536, got 0"):
        check_input_shape((0, 32, 32))
    with pytest.raises(UserError, match="between 1 and 4096, got 5000×32"):
        check_input_shape((3, 5000, 32))
    with pytest.raises(UserError, match="three whole numbers"):
        check_input_shape((3, 32))
    big = (MAX_CHANNELS, MAX_SPATIAL, MAX_SPATIAL)
    with pytest.raises(UserError, match="values"):
        check_input_shape(big)
    assert check_input_shape(big, max_values=None) == big


def test_check_stack_receptive_fields_and_later_layers() -> None:
    spec = StackSpec(
        input=(3, 32, 32),
        layers=(
            LayerSpec(type="conv", out_channels=8, kernel=3, padding=1),
            LayerSpec(type="conv", out_channels=8, kernel=3, padding=1),
            LayerSpec(type="maxpool", kernel=2),
            LayerSpec(type="conv", out_channels=8, kernel=3, padding=1, dilation=2),
            LayerSpec(type="conv", out_channels=8, kernel=99),
            LayerSpec(type="flatten"),
        ),
    )
    checks = check_stack(spec)
    assert [c.receptive_field for c in checks[:4]] == [3, 5, 6, 14]
    assert checks[4].error == "kernel 99 is larger than the input 14×14"
    assert checks[4].in_shape == (8, 14, 14) and checks[4].out_shape is None
    assert checks[5].error == "not analysed: layer 4 above is invalid"
    with pytest.raises(UserError, match=r"^layer 4 \(conv\): kernel 99"):
        spec.validate()
    # from_dict(validate=False) keeps it for the page to show the valid prefix
    assert StackSpec.from_dict(spec.to_dict(), validate=False) == spec


def test_with_separable_flips_only_flippable_convs() -> None:
    spec = StackSpec(
        input=(8, 16, 16),
        layers=(
            LayerSpec(type="conv", out_channels=8, kernel=3, padding=1),
            LayerSpec(type="conv", out_channels=8, kernel=1),
            LayerSpec(type="conv", out_channels=8, kernel=3, padding=1, groups=2),
            LayerSpec(type="maxpool", kernel=2),
            LayerSpec(type="conv", out_channels=8, kernel=3, padding=1),
        ),
    )
    on = with_separable(spec, True)
    assert [getattr(layer, "separable", False) for layer in on.layers] == [
        True,
        False,
        False,
        False,
        True,
    ]
    only_last = with_separable(spec, True, indices=[4])
    assert [layer.separable for layer in only_last.layers] == [False] * 4 + [True]
    assert with_separable(on, False) == spec


def test_load_from_file(tmp_path: Path) -> None:
    path = tmp_path / "mystack.json"
    path.write_text(json.dumps(ISSUE_EXAMPLE))
    spec = load(path)
    assert spec.name == "mystack" and len(spec.layers) == 6
    with pytest.raises(UserError, match="spec file not found"):
        load(tmp_path / "missing.json")
    (tmp_path / "bin.json").write_bytes(b"\xff\xfe\x00")
    with pytest.raises(UserError, match="UTF-8"):
        load(tmp_path / "bin.json")


json_values = st.recursive(
    st.none()
    | st.booleans()
    | st.integers(-(2**40), 2**40)
    | st.floats(allow_nan=True, allow_infinity=True)
    | st.text(max_size=8),
    lambda inner: st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=8), inner),
    max_leaves=12,
)
layer_dicts = st.fixed_dictionaries(
    {"type": st.sampled_from(["conv", "maxpool", "avgpool", "flatten", "linear", "dropout", "x"])},
    optional={
        key: st.one_of(st.integers(-3, 70), st.booleans(), st.none(), json_values)
        for key in ("out_channels", "kernel", "stride", "padding", "groups", "out_features", "p")
    }
    | {"activation": st.sampled_from(["relu", "tanh", "nope", None, 3])},
)


@settings(max_examples=EXAMPLES * 150 // 100, deadline=None)
@given(
    st.fixed_dictionaries(
        {
            "input": st.one_of(st.lists(st.integers(-2, 40), min_size=2, max_size=4), json_values),
            "layers": st.lists(layer_dicts, max_size=6),
        }
    )
)
def test_any_document_parses_or_fails_with_user_error(doc: dict) -> None:
    try:
        spec = StackSpec.from_dict(doc)
    except UserError as err:
        assert "\n" not in str(err)
        return
    assert all(c.error is None for c in check_stack(spec))
    assert loads(dumps(spec)) == spec
