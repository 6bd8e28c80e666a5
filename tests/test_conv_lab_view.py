"""The Conv Lab view-model (what the page shows), its per-tab state, and the latency timer.

The page, these tests, the corpus and the fuzzer all call :func:`conv_lab_view`.
"""

from __future__ import annotations

import math
from dataclasses import replace

import pandas as pd
import pytest
from torch import nn

from cnnlab.counting.analyse import analyse_spec, compare_separable
from cnnlab.counting.latency import Latency, compare_latency, measure_latency, noise_notes
from cnnlab.counting.spec import MAX_CHANNELS, PRESETS, LayerSpec, StackSpec
from cnnlab.devices import resolve_device
from cnnlab.errors import UserError
from cnnlab.views import charts, lab_session
from cnnlab.views import labstate as lab
from cnnlab.views.conv_lab import conv_lab_view, latency_refusal, measure_latency_view

VGG = PRESETS["VGG block"]
MNIST = PRESETS["MNIST CNN"]


def config_of(spec: StackSpec, mode: str = "per-layer") -> lab.LabConfig:
    return lab.LabConfig.from_spec(spec, mode=mode)


# ---------------------------------------------------------------- the view-model


def test_view_of_a_preset_has_every_part_the_page_shows() -> None:
    view = conv_lab_view(config_of(VGG, "separable"))
    assert view.ok and view.valid and not view.errors
    assert view.regular is not None and view.configured is not None
    assert view.regular.totals == analyse_spec(VGG, separable=False).totals
    assert view.configured.totals == analyse_spec(VGG, separable=True).totals
    assert view.ratio.mac_ratio == pytest.approx(
        view.configured.totals.macs / view.regular.totals.macs
    )
    assert view.table is not None and list(view.table["#"]) == [0, 1, 2]
    assert view.bars is not None and view.theory is not None
    assert lab.decode_config(view.link_value or "") == view.config
    assert view.n_separable == view.n_flippable == 2
    assert '"separable": true' in view.download_json


@pytest.mark.parametrize(
    ("shape", "reason"),
    [
        ((0, 112, 112), f"input channels must be between 1 and {MAX_CHANNELS:,}, got 0"),
        ((99_999_999, 112, 112), f"between 1 and {MAX_CHANNELS:,}, got 99999999"),
        ((3, 0, 5), "input height and width must be between 1 and"),
    ],
)
def test_a_bad_input_shape_is_explained_and_shows_no_results(
    shape: tuple[int, int, int], reason: str
) -> None:
    """Issue 17 bug 4: no stale results — the view has the reason and nothing else."""
    view = conv_lab_view(replace(config_of(VGG), input=shape))
    assert not view.ok and view.input_error is not None and reason in view.input_error
    assert view.table is None and view.regular is None and view.bars is None
    assert view.link_value is None and not view.can_download


def test_per_layer_ratio_box_marks_what_ifs() -> None:
    """Friction: a conv that is regular as configured has its ratio called a what-if."""
    spec = replace(MNIST, layers=(replace(MNIST.layers[0], separable=True), *MNIST.layers[1:]))
    view = conv_lab_view(config_of(spec))
    first, second = view.ratio.lines[:2]
    assert first.startswith("Layer 0: ") and "what-if" not in first
    assert second.startswith("Layer 2 (regular here — what-if): ")
    assert "not in the totals" in view.ratio.lines[-1]
    everything = conv_lab_view(config_of(spec, "separable"))
    assert not any("what-if" in line for line in everything.ratio.lines)


def test_one_numbering_in_table_messages_and_charts() -> None:
    """Issue 17 bug 6: the table's #, the messages and the chart labels agree (from 0)."""
    bad = list(lab.LabConfig.from_spec(MNIST).layers)
    bad[3] = {"type": "maxpool", "kernel": 99}
    view = conv_lab_view(replace(config_of(MNIST), layers=tuple(bad)))
    assert view.errors[0].startswith("Layer 3: ")
    assert view.table is not None and view.table.loc[3, "#"] == 3
    labels = [charts.comparison_label(c) for c in view.comparisons]
    assert labels == ["#0 3×3 1→32", "#2 3×3 32→64"]
    (points,) = [t for t in view.theory.data if t.mode == "markers+text"]  # type: ignore[union-attr]
    assert list(points.text) == ["#0", "#2"]


def test_theory_labels_of_coinciding_points_do_not_overlap() -> None:
    """Issue 17 bug 6: VGG block's two convs sit on one point; they get one joint label."""
    comparisons = compare_separable(VGG)
    assert comparisons[0].out_channels == comparisons[1].out_channels
    assert comparisons[0].ratio == pytest.approx(comparisons[1].ratio)
    fig = charts.theory_curve(comparisons)
    (points,) = [t for t in fig.data if t.mode == "markers+text"]
    assert list(points.text) == ["#0, #1", ""]
    spread = StackSpec((16, 8, 8), tuple(
        LayerSpec(type="conv", out_channels=n, kernel=3, padding=1) for n in (16, 64, 256)
    ))  # fmt: skip
    assert charts.point_labels(compare_separable(spread)) == ["#0", "#1", "#2"]


def test_charts_keep_titles_clear_of_the_toolbar() -> None:
    """Friction (390 px): the title has its own line above the plot; the two bar panels are
    stacked so no axis title sits between them."""
    comparisons = compare_separable(VGG)
    for fig in (charts.separable_bars(comparisons), charts.theory_curve(comparisons)):
        assert fig.layout.title.pad.t >= 30 and fig.layout.margin.t >= 100
    bars = charts.separable_bars(comparisons)
    assert bars.layout.xaxis.domain == bars.layout.xaxis2.domain  # one above the other
    assert not bars.layout.yaxis.title.text and not bars.layout.yaxis2.title.text


def test_stack_errors_are_a_message_not_an_exception() -> None:
    too_many = replace(config_of(VGG), layers=({"type": "flatten"},) * 201)
    view = conv_lab_view(too_many)
    assert not view.ok and "at most 200 layers" in (view.stack_error or "")


# ---------------------------------------------------------------- per-tab state


def test_edits_survive_a_change_of_form() -> None:
    """Issue 17 bug 1, without a browser: the rows as edited survive a change of form, the
    boxes show the effective form, and each layer's own tick comes back with "per layer"."""
    ss: dict = {}
    lab_session.start(ss, None)
    layers = [dict(layer) for layer in ss["lab_layers"]]
    layers[0]["kernel"] = 5
    layers[1]["separable"] = True
    ss["lab_layers"] = layers  # what the page reads back from the editor
    for mode, shown in (("separable", [True, True, None]), ("regular", [False, False, None])):
        ss["lab_mode"] = mode  # the radio's new value, then its callback
        lab_session.refresh(ss)
        source = ss["lab_source"]
        assert [None if pd.isna(v) else bool(v) for v in source["separable"]] == shown
        back = lab.layers_from_editor(source)
        assert back[0]["kernel"] == 5 and back[1]["separable"] is True
        assert not back[0].get("separable")
        ss["lab_layers"] = back
        view = conv_lab_view(lab_session.current_config(ss))
        edited = lab.parse_rows(VGG.input, back).spec
        assert view.configured is not None
        assert view.configured.totals == analyse_spec(lab.effective_spec(edited, mode)).totals
        assert view.regular is not None and view.regular.totals.params == 352_512
    ss["lab_mode"] = "per-layer"
    lab_session.refresh(ss)
    assert list(ss["lab_source"]["separable"])[:2] == [False, True]
    assert lab.OWN_SEPARABLE not in ss["lab_source"]


def test_a_row_added_under_a_global_form_starts_regular_and_the_editor_refreshes() -> None:
    frame = lab.editor_frame(lab.LabConfig.from_spec(VGG).layers, "separable")
    frame.loc[len(frame)] = {"type": "conv", "out": 8, "kernel": 3}
    layers = lab.layers_from_editor(frame)
    assert layers[-1]["type"] == "conv" and "separable" not in layers[-1]
    assert lab.editor_is_stale(frame, layers, "separable")  # its box must show ticked
    ss = {"lab_layers": layers, "lab_mode": "separable", "lab_c": 64, "lab_h": 112,
          "lab_w": 112, "lab_version": 1}  # fmt: skip
    assert lab_session.refresh_if_stale(ss, frame)
    assert bool(ss["lab_source"]["separable"].iloc[-1]) is True
    assert not lab_session.refresh_if_stale(ss, frame)  # at most once per editor version


# ---------------------------------------------------------------- latency


def test_latency_keeps_every_sample_and_its_spread() -> None:
    """Issue 17 bug 5: min / median / max over repeats, real passes on a tiny module."""
    model = nn.Sequential(nn.Conv2d(2, 4, 3, padding=1), nn.ReLU())
    lat = measure_latency(model, (2, 8, 8), warmup=2, repeats=5, warmup_s=0.01, sample_ms=0.5)
    assert lat.runs == len(lat.times_ms) == 5 and lat.device == "cpu"
    assert 0 < lat.min_ms <= lat.p10_ms <= lat.median_ms <= lat.p90_ms <= lat.max_ms
    assert lat.spread == pytest.approx(lat.max_ms / lat.min_ms)
    assert lat.warmup_passes >= 2 and lat.passes_per_sample >= 1


def test_compare_latency_warms_up_both_forms_and_alternates() -> None:
    spec = StackSpec((4, 8, 8), (LayerSpec(type="conv", out_channels=8, kernel=3, padding=1),))
    regular, separable = compare_latency(spec, warmup=3, repeats=4, warmup_s=0.02, sample_ms=1)
    for lat in (regular, separable):
        assert lat.runs == 4 and lat.warmup_passes >= 3 and lat.passes_per_sample >= 1
    with pytest.raises(UserError, match="repeats must be at least 1"):
        compare_latency(spec, repeats=0)


def test_noise_notes_flag_a_wide_spread_and_overlapping_ranges() -> None:
    steady_fast = Latency((1.0, 1.05, 1.1), "cpu")
    steady_slow = Latency((2.0, 2.1, 2.05), "cpu")
    assert noise_notes(steady_fast, steady_slow) == ()
    outlier = Latency((1.0, 10.99, 1.1), "cpu")  # the first click of issue 17
    notes = noise_notes(steady_slow, outlier)
    assert any("separable form's samples vary 11.0×" in n for n in notes)
    assert any("ranges overlap" in n for n in notes)
    assert noise_notes(Latency((1.0, 1.2), "cpu"), Latency((1.1, 1.3), "cpu")) == (
        "the two forms' ranges overlap: the difference between them is within the noise",
    )
    with pytest.raises(ValueError):
        Latency((), "cpu")


def test_latency_view_shows_spread_and_flags_noise() -> None:
    spec = StackSpec((4, 8, 8), (LayerSpec(type="conv", out_channels=8, kernel=3, padding=1),))
    view = conv_lab_view(config_of(spec))
    lat = measure_latency_view(view, "cpu", repeats=3, warmup_s=0.01, sample_ms=0.5)
    assert list(lat.table.columns) == ["Form", "min (ms)", "median (ms)", "max (ms)"]
    assert lat.table.loc[0, "min (ms)"] == round(lat.regular.min_ms, 3)
    assert [m[0] for m in lat.metrics] == ["Regular", "Separable", "MAC ratio", "Time ratio"]
    assert lat.noisy == bool(lat.warning) == bool(lat.notes)
    assert "Median of 3 rounds on cpu" in lat.caption
    assert math.isclose(lat.time_ratio, lat.separable.median_ms / lat.regular.median_ms)
    assert latency_refusal(conv_lab_view(config_of(StackSpec((1, 4, 4), ()))), "cpu")


# ---------------------------------------------------------------- the one device rule


def test_one_device_rule() -> None:
    import torch

    assert resolve_device("cpu") == resolve_device(torch.device("cpu")) == torch.device("cpu")
    assert resolve_device("auto").type in ("cpu", "cuda", "mps")
    for bad in ("tpu", "gpu0", ""):
        with pytest.raises(UserError, match="unknown device"):
            resolve_device(bad)
    if not torch.cuda.is_available():
        with pytest.raises(UserError, match="cuda is not available here"):
            resolve_device("cuda:0")
