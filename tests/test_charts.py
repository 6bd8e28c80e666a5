"""Plotly figures show exactly the engine's numbers: bars add up to the totals, points sit on
the MobileNet curve, shares add up to 100 %."""

from __future__ import annotations

import json

import pytest

from cnnlab.counting.analyse import Analysis, analyse_zoo, compare_separable
from cnnlab.counting.spec import PRESETS, with_separable
from cnnlab.views import charts


@pytest.fixture(scope="module")
def alexnet_report() -> Analysis:
    return analyse_zoo("alexnet-report")


@pytest.fixture(scope="module")
def vgg16() -> Analysis:
    return analyse_zoo("vgg16")


def traces(fig, **match):  # type: ignore[no-untyped-def]
    return [t for t in fig.data if all(getattr(t, k) == v for k, v in match.items())]


def test_layer_kinds() -> None:
    assert charts.layer_kind("Conv2d") == "conv"
    assert charts.layer_kind("ConvTranspose2d") == "conv"
    assert charts.layer_kind("Linear") == "linear"
    assert charts.layer_kind("BatchNorm2d") == "norm"
    assert charts.layer_kind("ReLU6") == "activation"
    assert charts.layer_kind("AdaptiveAvgPool2d") == "pool"
    assert charts.layer_kind("MaxPool2d") == "pool"
    assert charts.layer_kind("Dropout") == "other"
    assert charts.layer_kind("StochasticDepth") == "other"


def test_separable_bars_show_each_conv_both_ways() -> None:
    comparisons = compare_separable(PRESETS["VGG block"])
    fig = charts.separable_bars(comparisons)
    assert len(fig.data) == 4
    (reg_params, reg_macs) = traces(fig, name="regular")
    (sep_params, sep_macs) = traces(fig, name="separable")
    assert list(reg_params.y) == [c.regular_params for c in comparisons]
    assert list(sep_params.y) == [c.separable_params for c in comparisons]
    assert list(reg_macs.y) == [c.regular_macs for c in comparisons]
    assert list(sep_macs.y) == [c.separable_macs for c in comparisons]
    assert list(reg_params.x) == ["#0 3×3 64→128", "#1 3×3 128→128"]  # the table's row numbers
    assert reg_params.customdata[0] == f"{comparisons[0].regular_params:,}"
    json.loads(fig.to_json())


def test_table3_point_sits_on_the_theory_curve() -> None:
    comparisons = compare_separable(PRESETS["MobileNet v1 Table 3 layer"])
    (c,) = comparisons
    assert (c.regular_macs, c.separable_macs) == (462_422_016, 52_283_392)
    fig = charts.theory_curve(comparisons)
    (curve,) = [t for t in fig.data if t.mode == "lines"]
    (points,) = [t for t in fig.data if t.mode == "markers+text"]
    assert list(points.x) == [512]
    assert points.y[0] == pytest.approx(52_283_392 / 462_422_016)
    assert points.y[0] == pytest.approx(1 / 512 + 1 / 9)  # no bias: exactly the theory
    for n, y in zip(curve.x, curve.y, strict=True):
        assert y == pytest.approx(1 / n + 1 / 9)
    assert max(curve.x) >= 1024
    assert fig.layout.xaxis.type == "log"


def test_theory_curve_draws_one_curve_per_kernel() -> None:
    spec = PRESETS["MNIST CNN"]
    layers = list(spec.layers)
    layers[2] = type(layers[2])(type="conv", out_channels=64, kernel=5, padding=2)
    spec = type(spec)(input=spec.input, layers=tuple(layers), name="mixed")
    fig = charts.theory_curve(compare_separable(spec))
    names = [t.name for t in fig.data]
    assert "theory k=3: 1/N + 1/9" in names and "theory k=5: 1/N + 1/25" in names
    assert charts.theory_curve([]).data  # an empty stack still shows the k=3 curve


def test_model_bars_add_up_to_the_totals(alexnet_report: Analysis) -> None:
    fig = charts.model_layer_bars(alexnet_report)
    params = sum(sum(t.y) for t in fig.data if t.yaxis == "y")
    macs = sum(sum(t.y) for t in fig.data if t.yaxis == "y2")
    assert params == alexnet_report.totals.params == 45_442_856
    assert macs == alexnet_report.totals.macs == 698_533_568
    assert {t.name for t in fig.data} == {"conv", "linear"}
    names = [r.name for r in charts.costly_rows(alexnet_report)]
    assert list(fig.layout.xaxis.categoryarray) == names
    assert names[0] == "features.0" and names[-1] == "classifier.6"
    json.loads(fig.to_json())


def test_shares_by_kind(vgg16: Analysis) -> None:
    shares = {s.kind: s for s in charts.shares_by_kind(vgg16)}
    assert shares["conv"].layers == 13 and shares["linear"].layers == 3
    assert sum(s.params for s in shares.values()) == vgg16.totals.params
    assert sum(s.macs for s in shares.values()) == vgg16.totals.macs
    assert sum(s.flops for s in shares.values()) == vgg16.totals.flops
    fig = charts.kind_share_bars(vgg16)
    for measure in range(4):
        assert sum(t.x[measure] for t in fig.data) == pytest.approx(100)
    linear = next(t for t in fig.data if t.name.startswith("linear"))
    assert linear.x[0] == pytest.approx(100 * 123_642_856 / 138_357_544)


def test_lesson_names_the_first_fc_layer(alexnet_report: Analysis, vgg16: Analysis) -> None:
    text = charts.lesson(alexnet_report)
    assert "classifier.1 (Linear)" in text
    assert f"{100 * 37_752_832 / 45_442_856:.1f} %" in text
    assert "conv layers do" in text
    assert "classifier.0 (Linear), holds 74.3 %" in charts.lesson(vgg16)


def test_separable_what_if_charts() -> None:
    spec = with_separable(PRESETS["VGG block"], True)
    assert charts.separable_bars(compare_separable(spec)).data
    mobilenet = analyse_zoo("mobilenet_v2")
    kinds = {s.kind for s in charts.shares_by_kind(mobilenet)}
    assert {"conv", "norm", "activation", "linear"} <= kinds
    json.loads(charts.kind_share_bars(mobilenet).to_json())
