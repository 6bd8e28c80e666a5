"""Conv Lab state: link encoding, editor table ↔ spec, per-row reasons, the results table."""

from __future__ import annotations

import base64
import json
import zlib
from dataclasses import replace

import pandas as pd
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from cnnlab.counting.analyse import analyse_spec, summarise_layers
from cnnlab.counting.spec import ACTIVATIONS, PRESETS, LayerSpec, StackSpec
from cnnlab.errors import UserError
from cnnlab.views import labstate as lab

TABLE3 = PRESETS["MobileNet v1 Table 3 layer"]


def b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).decode().rstrip("=")


def packed(obj: object) -> str:
    return b64(zlib.compress(json.dumps(obj).encode()))


def stack_of(spec: StackSpec) -> lab.LabStack:
    """The preset as it comes back from the editor."""
    layers = lab.layers_from_frame(lab.frame_from_spec(spec))
    return lab.parse_rows(spec.input, layers, spec.name)


# ---------------------------------------------------------------- the link


@pytest.mark.parametrize("name", list(PRESETS))
@pytest.mark.parametrize("mode", lab.MODES)
def test_every_preset_round_trips_through_the_link(name: str, mode: str) -> None:
    config = lab.LabConfig.from_spec(PRESETS[name], mode=mode)
    value = lab.encode_config(config)
    assert set(value) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_")
    assert len(value) < 400  # compact: defaults left out, then compressed
    decoded = lab.decode_config(value)
    assert decoded == config
    assert lab.parse_rows(decoded.input, decoded.layers, decoded.name).spec == PRESETS[name]


def test_link_keeps_invalid_rows_as_typed() -> None:
    config = lab.LabConfig(
        input=(3, 8, 8),
        layers=({"type": "conv", "out_channels": 4, "kernel": 99}, {"type": None}),
    )
    decoded = lab.decode_config(lab.encode_config(config))
    assert decoded.layers[0] == {"type": "conv", "out_channels": 4, "kernel": 99}
    stack = lab.parse_rows(decoded.input, decoded.layers)
    assert stack.row_errors == {1: "choose a layer type (conv, maxpool, avgpool, flatten, "
                                   "linear, dropout)"}  # fmt: skip


def test_compact_layer_drops_defaults_only() -> None:
    assert lab.compact_layer(LayerSpec(type="maxpool", kernel=3).to_dict()) == {
        "type": "maxpool",
        "kernel": 3,
    }
    assert lab.compact_layer(LayerSpec(type="maxpool", kernel=3, stride=2).to_dict()) == {
        "type": "maxpool",
        "kernel": 3,
        "stride": 2,
    }
    conv = LayerSpec(type="conv", out_channels=8, kernel=3, bias=False, separable=True)
    assert lab.compact_layer(conv.to_dict()) == {
        "type": "conv",
        "out_channels": 8,
        "kernel": 3,
        "bias": False,
        "separable": True,
    }


@pytest.mark.parametrize(
    ("value", "message"),
    [
        ("", "is empty"),
        ("not base64!!", "not base64url"),
        (b64(b"plain text, not compressed"), "garbled or cut off"),
        (lab.encode_config(lab.LabConfig.from_spec(PRESETS["MNIST CNN"]))[:-12], "cut off"),
        (b64(zlib.compress(b"\xff\xfe not utf-8")), "does not hold JSON"),
        (b64(zlib.compress(b"{not json")), "does not hold JSON"),
        (packed([1, 2, 3]), "must be a JSON object"),
        (packed({"input": [3, 32]}), "three whole numbers"),
        (packed({"input": [3, 0, 32]}), "height and width"),
        (packed({"input": [3, 32, 32], "mode": "fast"}), "unknown mode 'fast'"),
        (packed({"input": [3, 32, 32], "layers": {"type": "conv"}}), "must be a list"),
        (packed({"input": [3, 32, 32], "layers": [{}] * 201}), "at most 200 layers"),
        (packed({"input": [3, 32, 32], "name": ""}), "stack name"),
        (packed({"v": 7, "input": [3, 32, 32]}), "different cnnlab version"),
        ("A" * (lab.MAX_QUERY_CHARS + 1), "too long"),
        (b64(zlib.compress(b" " * 2_000_000)), "unpacks to more than"),
    ],
)
def test_bad_links_raise_one_clear_line(value: str, message: str) -> None:
    with pytest.raises(UserError, match=message) as info:
        lab.decode_config(value)
    assert "\n" not in str(info.value)


def test_too_large_a_stack_for_a_link(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(lab, "MAX_QUERY_CHARS", 40)
    with pytest.raises(UserError, match=r"too large for a link.*download the spec as JSON"):
        lab.encode_config(lab.LabConfig.from_spec(PRESETS["MNIST CNN"]))


def test_a_non_object_layer_in_a_link_becomes_an_invalid_row() -> None:
    config = lab.decode_config(packed({"input": [1, 28, 28], "layers": [{"type": "flatten"}, 7]}))
    stack = lab.parse_rows(config.input, config.layers)
    assert stack.row_errors == {1: "choose a layer type (conv, maxpool, avgpool, flatten, "
                                   "linear, dropout)"}  # fmt: skip
    assert len(stack.spec.layers) == 1


# ---------------------------------------------------------------- the editor table


@pytest.mark.parametrize("name", list(PRESETS))
def test_editor_frame_round_trips_every_preset(name: str) -> None:
    stack = stack_of(PRESETS[name])
    assert stack.complete
    assert stack.spec == PRESETS[name]


def test_editor_frame_types_and_empty_cells() -> None:
    frame = lab.frame_from_spec(PRESETS["MNIST CNN"])
    assert list(frame.columns) == list(lab.COLUMNS)
    assert str(frame["kernel"].dtype) == "Int64"
    assert str(frame["bias"].dtype) == "boolean"
    assert str(frame["p"].dtype) == "Float64"
    flatten = frame.iloc[4]
    assert flatten["type"] == "flatten"
    assert all(pd.isna(flatten[c]) for c in lab.COLUMNS[1:])
    pool = frame.iloc[1]
    assert pool["stride"] == 2 and pd.isna(pool["out"]) and pd.isna(pool["bias"])
    assert frame.iloc[5]["out"] == 128  # a linear's out_features
    assert frame.iloc[6]["p"] == pytest.approx(0.25)


def test_edits_in_the_frame_reach_the_spec() -> None:
    frame = lab.frame_from_spec(PRESETS["VGG block"])
    frame.loc[0, "kernel"] = 5
    frame.loc[1, "separable"] = True
    frame.loc[2, "out"] = 999  # does not apply to a maxpool: ignored
    new_row = pd.DataFrame([{"type": "avgpool", "kernel": 2.0, "stride": None}])
    frame = pd.concat([frame, new_row], ignore_index=True)
    stack = lab.parse_rows((64, 112, 112), lab.layers_from_frame(frame))
    assert stack.complete
    layers = stack.spec.layers
    assert layers[0].kernel == 5 and not layers[0].separable
    assert layers[1].separable
    assert layers[3] == LayerSpec(type="avgpool", kernel=2, stride=2)


def test_row_reasons_for_rows_that_do_not_parse() -> None:
    layers = [
        {"type": "conv", "out_channels": 8, "kernel": 3},
        {"type": "conv", "out_channels": 8},
        {"type": ""},
        {"type": "pool", "kernel": 2},
        {"type": "dropout", "p": "half"},
        {"type": "linear", "out_features": 10},
    ]
    stack = lab.parse_rows((3, 16, 16), layers)
    assert stack.row_errors == {
        1: "'kernel' is required",
        2: "choose a layer type (conv, maxpool, avgpool, flatten, linear, dropout)",
        3: "unknown type 'pool'; choose one of conv, maxpool, avgpool, flatten, linear, dropout",
        4: "p must be a number, got a string",
    }
    assert stack.first_bad_row == 1 and not stack.complete
    assert len(stack.spec.layers) == 1  # the rows above the first bad one
    messages = lab.row_messages(stack)
    assert messages[1] == "'kernel' is required"
    assert messages[5] == "not analysed: layer 1 above is invalid"


@pytest.mark.parametrize(
    ("layer", "reason"),
    [
        ({"type": "conv", "out_channels": 8, "kernel": -3}, "kernel must be at least 1, got -3"),
        ({"type": "conv", "out_channels": 8, "kernel": 3, "padding": -1},
         "padding must be at least 0, got -1"),
        ({"type": "conv", "out_channels": 8, "kernel": 3, "groups": 5},
         "groups 5 does not divide the 64 input channels"),
        ({"type": "conv", "out_channels": 8, "kernel": 9}, "kernel 9 is larger than the input 8×8"),
        ({"type": "maxpool", "kernel": 2, "stride": 16}, None),
        ({"type": "linear", "out_features": 10}, "add a flatten layer before it"),
    ],
)  # fmt: skip
def test_shape_reasons_come_from_the_spec_check(layer: dict, reason: str | None) -> None:
    layers = [{"type": "conv", "out_channels": 64, "kernel": 3, "padding": 1}, layer]
    stack = lab.parse_rows((3, 8, 8), layers)
    assert stack.complete
    messages = lab.row_messages(stack)
    if reason is None:
        assert messages == {}
    else:
        assert reason in messages[1]
        assert 0 not in messages


def test_spatial_size_reaching_zero_is_an_inline_reason() -> None:
    layers = [{"type": "maxpool", "kernel": 2}] * 4
    stack = lab.parse_rows((1, 8, 8), layers)
    assert lab.row_messages(stack) == {3: "kernel 2 is larger than the input 1×1"}


# ---------------------------------------------------------------- modes and results


def test_modes_flip_every_flippable_conv() -> None:
    spec = replace(
        PRESETS["VGG block"],
        layers=(*PRESETS["VGG block"].layers, LayerSpec(type="conv", out_channels=8, kernel=1)),
    )
    separable = lab.effective_spec(spec, "separable")
    assert [layer.separable for layer in separable.layers] == [True, True, False, False]
    assert lab.effective_spec(separable, "regular") == spec
    assert lab.effective_spec(separable, "per-layer") == separable
    with pytest.raises(UserError, match="unknown mode"):
        lab.effective_spec(spec, "fast")


def test_table3_layer_regular_and_separable_through_the_lab() -> None:
    stack = stack_of(TABLE3)
    regular = analyse_spec(lab.effective_spec(stack.spec, "regular")).totals
    separable = analyse_spec(lab.effective_spec(stack.spec, "separable")).totals
    assert (regular.params, regular.macs) == (2_359_296, 462_422_016)
    assert (separable.params, separable.macs) == (266_752, 52_283_392)


def test_results_table_keeps_rows_above_an_invalid_one() -> None:
    layers = [
        {"type": "conv", "out_channels": 16, "kernel": 3, "padding": 1, "activation": "relu"},
        {"type": "maxpool", "kernel": 2},
        {"type": "conv", "out_channels": 32, "kernel": 3, "groups": 3},
        {"type": "flatten"},
    ]
    stack = lab.parse_rows((3, 32, 32), layers)
    analysis = analyse_spec(stack.spec)
    table = lab.layer_table(stack, summarise_layers(stack.spec, analysis), layers)
    assert list(table["#"]) == [0, 1, 2, 3]
    assert table.loc[0, "Params"] == 3 * 3 * 3 * 16 + 16
    assert table.loc[0, "MACs"] == 3 * 3 * 3 * 16 * 32 * 32
    assert table.loc[0, "Output"] == "16×32×32"
    assert table.loc[0, "Receptive field"] == "3×3"
    assert table.loc[0, "Status"] == "✅"
    assert table.loc[1, "Output"] == "16×16×16"
    assert table.loc[2, "Status"] == "⚠️ groups 3 does not divide the 16 input channels"
    assert pd.isna(table.loc[2, "Params"]) and table.loc[2, "Params formula"] == ""
    assert table.loc[3, "Status"] == "⚠️ not analysed: layer 2 above is invalid"
    assert analysis.totals.params == table.loc[0, "Params"]


def test_results_table_labels_rows_that_do_not_parse() -> None:
    layers = [{"type": "flatten"}, {"type": "linear"}, {"type": None}]
    stack = lab.parse_rows((1, 4, 4), layers)
    table = lab.layer_table(stack, summarise_layers(stack.spec, analyse_spec(stack.spec)), layers)
    assert list(table["Layer"]) == ["flatten", "linear", "(no type)"]
    assert table.loc[1, "Status"] == "⚠️ 'out_features' is required"
    assert table.loc[2, "Status"].startswith("⚠️ choose a layer type")


def test_move_layer() -> None:
    layers = [{"type": "flatten"}, {"type": "dropout"}, {"type": "linear", "out_features": 2}]
    assert [x["type"] for x in lab.move_layer(layers, 2, -1)] == ["flatten", "linear", "dropout"]
    assert [x["type"] for x in lab.move_layer(layers, 0, -1)] == ["flatten", "dropout", "linear"]
    assert [x["type"] for x in lab.move_layer(layers, 0, 5)] == ["dropout", "linear", "flatten"]
    with pytest.raises(UserError, match="no layer 3"):
        lab.move_layer(layers, 3, 1)


# ---------------------------------------------------------------- properties

small = st.integers(min_value=1, max_value=9)
layers_strategy = st.lists(
    st.one_of(
        st.builds(
            LayerSpec,
            type=st.just("conv"),
            out_channels=st.integers(1, 512),
            kernel=small,
            stride=small,
            padding=st.integers(0, 4),
            dilation=st.integers(1, 3),
            groups=st.integers(1, 4),
            bias=st.booleans(),
            separable=st.booleans(),
            batchnorm=st.booleans(),
            activation=st.sampled_from([None, *ACTIVATIONS]),
        ),
        st.builds(LayerSpec, type=st.sampled_from(["maxpool", "avgpool"]), kernel=small,
                  stride=st.one_of(st.none(), small), padding=st.integers(0, 2)),
        st.just(LayerSpec(type="flatten")),
        st.builds(LayerSpec, type=st.just("linear"), out_features=st.integers(1, 4096),
                  bias=st.booleans(), batchnorm=st.booleans(),
                  activation=st.sampled_from([None, *ACTIVATIONS])),
        st.builds(LayerSpec, type=st.just("dropout"),
                  p=st.floats(0, 1, allow_nan=False).map(lambda p: round(p, 3))),
    ),
    max_size=12,
)  # fmt: skip


@settings(max_examples=60, deadline=None)
@given(layers=layers_strategy, shape=st.tuples(small, st.integers(1, 64), st.integers(1, 64)))
def test_any_spec_round_trips_through_table_and_link(
    layers: list[LayerSpec], shape: tuple[int, int, int]
) -> None:
    spec = StackSpec(input=shape, layers=tuple(layers), name="random")
    assert stack_of(spec).spec == spec
    config = lab.decode_config(lab.encode_config(lab.LabConfig.from_spec(spec)))
    assert lab.parse_rows(config.input, config.layers, config.name).spec == spec
    # Shape problems never break the table: every row has a status.
    stack = stack_of(spec)
    table = lab.layer_table(stack, summarise_layers(stack.spec, analyse_spec(stack.spec)))
    assert len(table) == len(layers)
    assert all(s == "✅" or s.startswith("⚠️ ") for s in table["Status"])
    first_bad = next((i for i, s in enumerate(table["Status"]) if s != "✅"), len(layers))
    assert table["Params"][:first_bad].notna().all()
    assert table["Params"][first_bad:].isna().all()
