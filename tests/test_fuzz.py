"""Property-based fuzzing of everything that parses user input.

The one property: any input either works or is refused with a :class:`UserError` whose message is
one line. No other exception, no hang, no allocation of real weights for a spec.
"""

from __future__ import annotations

import json
import math
from typing import Any

import pytest
from hypothesis import HealthCheck, assume, given, settings
from hypothesis import strategies as st

from cnnlab.errors import UserError

FUZZ = settings(
    max_examples=150,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.filter_too_much],
)


def one_line(err: UserError) -> None:
    text = str(err)
    assert text.strip(), "empty message"
    assert "\n" not in text.strip(), text
    assert len(text) < 10_000, text[:200]


# --------------------------------------------------------------------------- value strategies

wild_ints = st.one_of(
    st.integers(-3, 70),
    st.integers(-(2**70), 2**70),
    st.sampled_from([0, 1, 2, 3, 4095, 4096, 4097, 65_536, 65_537, 2**31, 2**63, 10**30]),
)
wild_floats = st.one_of(
    st.floats(allow_nan=True, allow_infinity=True),
    st.sampled_from([0.0, 0.5, 1.0, 1.5, -0.1, 3.0, 1e308]),
)
junk_text = st.one_of(
    st.text(max_size=20),
    st.sampled_from(["", " ", "none", "None", "relu", "RELU", "3", "conv", "\x00", "\ud800"]),
)
scalars = st.one_of(st.none(), st.booleans(), wild_ints, wild_floats, junk_text)
json_like = st.recursive(
    scalars,
    lambda children: st.one_of(
        st.lists(children, max_size=4), st.dictionaries(junk_text, children, max_size=4)
    ),
    max_leaves=12,
)

LAYER_KEYS = [
    "out_channels", "kernel", "stride", "padding", "dilation", "groups", "bias", "separable",
    "batchnorm", "activation", "out_features", "p",
]  # fmt: skip
TYPES = ["conv", "maxpool", "avgpool", "flatten", "linear", "dropout"]

small_ints = st.one_of(st.integers(-2, 9), st.sampled_from([16, 28, 32, 64, 4096, 70_000]))
layer_value = st.one_of(
    small_ints, st.booleans(), st.none(), wild_floats, junk_text, st.sampled_from(["relu", "tanh"])
)


@st.composite
def layer_dicts(draw: st.DrawFn) -> dict[str, Any]:
    """Mostly-plausible layers: the right type names and keys with wrong-ish values."""
    layer: dict[str, Any] = {
        "type": draw(st.one_of(st.sampled_from(TYPES), junk_text, st.none(), st.integers()))
    }
    for key in draw(st.lists(st.sampled_from([*LAYER_KEYS, "bogus"]), max_size=6, unique=True)):
        layer[key] = draw(layer_value)
    return layer


@st.composite
def spec_dicts(draw: st.DrawFn) -> dict[str, Any]:
    spec: dict[str, Any] = {}
    if draw(st.integers(0, 20)):
        spec["input"] = draw(
            st.one_of(
                st.lists(small_ints, min_size=3, max_size=3),
                st.lists(st.integers(1, 64), min_size=3, max_size=3),
                json_like,
            )
        )
    spec["layers"] = draw(
        st.one_of(st.lists(layer_dicts(), max_size=8), json_like, st.lists(json_like, max_size=3))
    )
    if draw(st.integers(0, 5)) == 0:
        spec["name"] = draw(json_like)
    if draw(st.integers(0, 10)) == 0:
        spec[draw(junk_text)] = draw(json_like)
    return spec


@st.composite
def valid_ish_specs(draw: st.DrawFn) -> dict[str, Any]:
    """Specs likely to pass the validator, to reach the analysis engine itself."""
    c = draw(st.integers(1, 16))
    h = draw(st.integers(1, 64))
    w = draw(st.integers(1, 64))
    layers: list[dict[str, Any]] = []
    for _ in range(draw(st.integers(0, 6))):
        kind = draw(st.sampled_from(TYPES))
        if kind == "conv":
            layer = {
                "type": "conv",
                "out_channels": draw(st.integers(1, 32)),
                "kernel": draw(st.integers(1, 7)),
                "stride": draw(st.integers(1, 3)),
                "padding": draw(st.integers(0, 3)),
                "dilation": draw(st.integers(1, 3)),
                "groups": draw(st.sampled_from([1, 1, 2, 4])),
                "bias": draw(st.booleans()),
                "separable": draw(st.booleans()),
                "batchnorm": draw(st.booleans()),
                "activation": draw(st.sampled_from([None, "relu", "gelu", "tanh", "silu"])),
            }
        elif kind in ("maxpool", "avgpool"):
            layer = {"type": kind, "kernel": draw(st.integers(1, 4))}
            if draw(st.booleans()):
                layer["stride"] = draw(st.integers(1, 3))
        elif kind == "linear":
            layer = {"type": "linear", "out_features": draw(st.integers(1, 64))}
        elif kind == "dropout":
            layer = {"type": "dropout", "p": draw(st.floats(0, 1))}
        else:
            layer = {"type": "flatten"}
        layers.append(layer)
    return {"input": [c, h, w], "layers": layers}


# --------------------------------------------------------------------------- spec + analysis


def _analyse_or_refuse(obj: Any, separable: bool | None) -> None:
    import torch
    from torch.utils.flop_counter import FlopCounterMode

    from cnnlab.counting.analyse import analyse_spec
    from cnnlab.counting.build import build_stack
    from cnnlab.counting.spec import StackSpec, check_stack

    try:
        spec = StackSpec.from_dict(obj, validate=False)
    except UserError as err:
        one_line(err)
        return
    try:
        analysis = analyse_spec(spec, separable=separable)
    except UserError as err:
        one_line(err)
        return
    checks = check_stack(analysis.spec or spec)
    if analysis.error:
        assert "\n" not in analysis.error
        assert any(c.error for c in checks)
    else:
        assert not any(c.error for c in checks)
        # the one counter (the rule table) agrees with the built tensors and with
        # FlopCounterMode, which counts conv and matmul FLOPs only: 2 × MACs
        effective = analysis.spec or spec
        model = build_stack(effective, device="meta")
        assert analysis.totals.params == sum(p.numel() for p in model.parameters())
        counter = FlopCounterMode(display=False)
        with counter, torch.no_grad():
            model.eval()(torch.empty((1, *effective.input), device="meta"))
        assert counter.get_total_flops() == 2 * analysis.totals.macs
    if separable is None:  # strict parsing refuses exactly what the lenient path marks
        try:
            StackSpec.from_dict(obj)
        except UserError as err:
            one_line(err)
            assert analysis.error
        else:
            assert not analysis.error


@FUZZ
@given(obj=st.one_of(json_like, spec_dicts()), separable=st.sampled_from([None, True, False]))
def test_fuzz_spec_dicts(obj: Any, separable: bool | None) -> None:
    _analyse_or_refuse(obj, separable)


@FUZZ
@given(obj=valid_ish_specs(), separable=st.sampled_from([None, True, False]))
def test_fuzz_valid_ish_specs_reach_the_engine(obj: dict[str, Any], separable: bool | None):
    _analyse_or_refuse(obj, separable)


@FUZZ
@given(text=st.one_of(st.text(max_size=200), st.binary(max_size=200)))
def test_fuzz_spec_text(text: str | bytes) -> None:
    from cnnlab.counting.spec import loads

    try:
        loads(text)
    except UserError as err:
        one_line(err)


@FUZZ
@given(obj=spec_dicts())
def test_fuzz_spec_json_round_trip(obj: dict[str, Any]) -> None:
    """Through JSON text (allow_nan: Python writes NaN/Infinity literals a user may paste)."""
    from cnnlab.counting.spec import dumps, loads

    try:
        text = json.dumps(obj, allow_nan=True)
    except (TypeError, ValueError):
        assume(False)
        return
    try:
        spec = loads(text)
    except UserError as err:
        one_line(err)
        return
    assert loads(dumps(spec)) == spec


@FUZZ
@given(
    text=st.one_of(
        st.text(max_size=40), st.from_regex(r"-?\d{1,6}[x×X*, ]-?\d{1,6}[x×X*, ]-?\d{1,25}")
    )
)
def test_fuzz_shape_text(text: str) -> None:
    from cnnlab.counting.zoo import parse_shape

    try:
        c, h, w = parse_shape(text)
    except UserError as err:
        one_line(err)
        return
    assert all(isinstance(v, int) and v >= 1 for v in (c, h, w))


# --------------------------------------------------------------------------- training config

config_values = st.one_of(
    scalars,
    st.sampled_from(["small-cnn", "lenet5", "stack", "vgg16", "adam", "sgd", "cpu", "auto"]),
    st.sampled_from([28, 32, 64, 224, 1, 128, 1e-3, 0.9, 10]),
)
CONFIG_KEYS = [
    "model", "input_size", "epochs", "batch_size", "lr", "optimizer", "weight_decay",
    "momentum", "schedule", "train_limit", "seed", "device", "name", "spec", "data_dir",
]  # fmt: skip


@FUZZ
@given(
    config=st.one_of(
        st.dictionaries(st.sampled_from(CONFIG_KEYS), config_values, max_size=6),
        st.dictionaries(junk_text, config_values, max_size=3),
        json_like,
    )
)
def test_fuzz_trainconfig(config: Any) -> None:
    from cnnlab.training.config import TrainConfig

    try:
        cfg = TrainConfig.from_dict(config).validate()
    except UserError as err:
        one_line(err)
        return
    assert cfg.epochs >= 1 and cfg.batch_size >= 1 and math.isfinite(cfg.lr) and cfg.lr > 0


@pytest.mark.parametrize("model", ["small-cnn", "lenet5", "no-such-model"])
@given(size=st.one_of(st.sampled_from([28, 32, 64, 112, 224]), wild_ints))
@FUZZ
def test_fuzz_trainconfig_model_check(model: str, size: Any) -> None:
    from cnnlab.training.config import TrainConfig

    try:
        TrainConfig(model=model, input_size=size).check_model()
    except UserError as err:
        one_line(err)


# --------------------------------------------------------------------------- Conv Lab links


def _open_link(value: str) -> None:
    """What the Conv Lab page does with a ``lab=`` value: its view-model, on the editor's rows."""
    from dataclasses import replace

    from cnnlab.views import labstate as lab
    from cnnlab.views.conv_lab import conv_lab_view

    try:
        config = lab.decode_config(value)
    except UserError as err:
        one_line(err)
        return
    layers = lab.layers_from_editor(lab.editor_frame(config.layers, config.mode))
    view = conv_lab_view(replace(config, layers=tuple(layers)))
    for problem in (view.input_error, view.stack_error):
        if problem is not None:
            one_line(UserError(problem))
    for message in view.messages.values():
        assert message.strip() and "\n" not in message


def _pack(obj: Any) -> str:
    import base64
    import zlib

    raw = json.dumps(obj, allow_nan=True).encode()
    return base64.urlsafe_b64encode(zlib.compress(raw)).decode().rstrip("=")


@st.composite
def link_configs(draw: st.DrawFn) -> Any:
    if draw(st.integers(0, 4)) == 0:
        return draw(json_like)
    config: dict[str, Any] = {
        "v": draw(st.sampled_from([1, 1, 1, 2, "1", None])),
        "input": draw(st.one_of(st.lists(small_ints, min_size=3, max_size=3), json_like)),
        "mode": draw(st.sampled_from(["per-layer", "regular", "separable", "x", None])),
        "layers": draw(st.one_of(st.lists(layer_dicts(), max_size=6), json_like)),
    }
    if draw(st.booleans()):
        config["name"] = draw(json_like)
    return config


@FUZZ
@given(value=st.one_of(st.text(max_size=300), st.from_regex(r"[A-Za-z0-9_-]{0,400}")))
def test_fuzz_link_text(value: str) -> None:
    _open_link(value)


@FUZZ
@given(config=link_configs())
def test_fuzz_link_contents(config: Any) -> None:
    try:
        value = _pack(config)
    except (TypeError, ValueError):
        assume(False)
        return
    _open_link(value)


@FUZZ
@given(value=st.one_of(json_like, st.text(max_size=60), st.lists(st.text(max_size=20))))
def test_fuzz_run_id_from_the_url(value: Any) -> None:
    from cnnlab.views.runview import RUN_ID_PATTERN, parse_run_id

    got = parse_run_id(value)
    assert got is None or RUN_ID_PATTERN.fullmatch(got)
