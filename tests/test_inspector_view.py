"""The Model Inspector's view-model (``cnnlab.views.inspector``): what the page shows, tested
without a browser — bad inputs, the MNIST size move, the formula beside its count, the names a
course uses, "check my calculation" with its three states, and the exports."""

from __future__ import annotations

import pytest

from cnnlab.counting.analyse import analyse_zoo
from cnnlab.counting.spec import PRESETS
from cnnlab.views import inspector
from cnnlab.views.inspector import inspector_view


@pytest.fixture(scope="module")
def vgg16() -> inspector.InspectorView:
    return inspector_view("vgg16", input_shape=(3, 224, 224))


def test_out_of_range_input_says_what_is_wrong_and_shows_nothing_stale() -> None:
    for shape, words in (
        ((0, 224, 224), "input channels must be between 1 and 65,536, got 0"),
        ((99_999_999, 224, 224), "input channels must be between 1 and 65,536, got 99999999"),
        ((3, 0, 224), "between 1 and 4096, got 0×224"),
    ):
        view = inspector_view("alexnet", input_shape=shape)
        assert view.input_error is not None and words in view.input_error
        assert view.analysis is None and not view.ok and not view.charts and not view.footer


def test_a_model_that_cannot_take_the_input_is_an_error_not_an_input_error() -> None:
    view = inspector_view("vgg16", input_shape=(3, 16, 16))
    assert view.input_error is None and view.analysis is None
    assert view.error is not None and "use input size ≥ 32" in view.error


def test_mnist_size_moves_to_the_smallest_offered_size_the_model_takes() -> None:
    size, note = inspector.settle_mnist_size("alexnet-report", 28)
    assert size == 64 and note is not None
    assert "alexnet-report cannot take 1×28×28" in note
    assert "input size moved to 64×64" in note and "28/32/64/224" in note
    assert inspector.settle_mnist_size("vgg16", 28)[0] == 32
    assert inspector.settle_mnist_size("vgg16", 64) == (64, None)
    assert inspector.settle_mnist_size("lenet5", 28) == (28, None)


def test_formula_sits_beside_its_count_with_the_course_names(
    vgg16: inspector.InspectorView,
) -> None:
    frame = vgg16.layer_table()
    columns = list(frame.columns)
    assert columns == [
        "Layer", "Name", "Params", "Params formula", "MACs", "MACs formula",
    ]  # fmt: skip
    first = frame.iloc[0]
    assert (first["Layer"], first["Name"], first["Params"]) == ("features.0", "conv1_1", 1792)
    assert first["Params formula"] == "3 × 3 × 3 × 64 + 64 = 1,792"
    assert list(frame["Name"][frame["Name"] != ""]) == [
        "conv1_1", "conv1_2", "conv2_1", "conv2_2", "conv3_1", "conv3_2", "conv3_3",
        "conv4_1", "conv4_2", "conv4_3", "conv5_1", "conv5_2", "conv5_3", "fc6", "fc7", "fc8",
    ]  # fmt: skip
    detailed = vgg16.layer_table(only_costly=False, details=True)
    assert len(detailed) == len(vgg16.analysis.rows)  # type: ignore[union-attr]
    assert list(detailed.columns)[6:] == [
        "Output", "Type", "FLOPs", "FLOPs formula", "Activations (bytes)", "Counted",
    ]  # fmt: skip

    report = inspector_view("alexnet-report", input_shape=(3, 224, 224)).layer_table()
    named = dict(zip(report["Layer"], report["Name"], strict=True))
    assert named["features.0"] == "conv1" and named["features.10"] == "conv5"
    assert [named[f"classifier.{i}"] for i in (1, 4, 6)] == ["fc6", "fc7", "fc8"]
    resnet = inspector_view("resnet18", input_shape=(3, 224, 224)).layer_table()
    assert list(resnet.columns)[:2] == ["Layer", "Type"]  # no course names: the type instead


def test_the_model_list_says_which_alexnet_is_which() -> None:
    label = inspector.model_label("alexnet-report")
    assert "4096→1024→1000" in label and f"{analyse_zoo('alexnet-report').totals.params:,}" in label
    assert f"{analyse_zoo('alexnet').totals.params:,} params" in inspector.model_label("alexnet")
    assert "61,100,840" in inspector.model_label("alexnet")
    assert inspector.model_label("vgg16") == "vgg16"
    assert inspector.model_choices(True).index(inspector.CONV_LAB) == len(inspector.zoo.ZOO)


def test_totals_footer_and_charts(vgg16: inspector.InspectorView) -> None:
    assert "| MACs | 15,470,264,320 |" in vgg16.totals_markdown
    assert "Params size (MB): 553.43" in vgg16.footer
    assert "Total params: 138,357,544" in vgg16.footer
    layers, share = vgg16.charts
    assert layers.title == "vgg16: where the parameters and the MACs are"
    assert share.title.startswith("Share of the totals by layer kind")
    for chart in vgg16.charts:  # the title is printed by the page; the toolbar stands upright
        assert not chart.figure.layout.title.text
        assert chart.figure.layout.modebar.orientation == "v"
    assert "conv1_1" in str(layers.figure.data[0].customdata[0])


def test_check_my_calculation_counts_unreadable_cells_apart(
    vgg16: inspector.InspectorView,
) -> None:
    assert vgg16.check_layers[:2] == ("features.0", "features.2")
    check = vgg16.check({0: "1,793", 1: "abc", 2: "  "})
    assert [c.status for c in check.results] == ["wrong", "unreadable"]
    assert check.summary == (
        "1 of 1 checked layers are wrong. 1 cell could not be read as a whole number "
        "(not counted as wrong)."
    )
    assert check.frame is not None and list(check.frame[""]) == ["❌", "❓"]
    assert list(check.frame["You wrote"]) == ["1,793", "abc"]
    only_text = vgg16.check({0: "abc"})
    assert only_text.tone == "warning" and only_text.summary.startswith("No number to check")
    right = vgg16.check({0: "1792", 1: "36 928"})
    assert right.tone == "success" and right.summary == "All 2 checked layers are right."
    assert vgg16.check({}).frame is None


def test_a_pasted_column_goes_into_the_one_table(vgg16: inspector.InspectorView) -> None:
    cells = inspector.entered_cells({}, {"edited_rows": {0: {"Your params": "1,793"}}})
    assert cells == {0: "1,793"}
    filled, note = inspector.fill_from_column(cells, "1792\n\n36 928\n", len(vgg16.check_layers))
    assert filled == {0: "1792", 1: "36 928"} and note.startswith("2 pasted numbers went")
    source = vgg16.check_source(filled)
    assert list(source[inspector.CHECK_COLUMN][:3]) == ["1792", "36 928", None]
    # typed edits on a filled table win: the editor shows one set of cells, and that is checked
    cells = inspector.entered_cells(filled, {"edited_rows": {"1": {"Your params": "5"}}})
    assert [c.status for c in vgg16.check(cells).results] == ["right", "wrong"]
    too_many = "\n".join(["1"] * 20)
    _, note = inspector.fill_from_column({}, too_many, len(vgg16.check_layers))
    assert (
        note
        == "You pasted 20 numbers for 16 layers with parameters; the first 16 went into the table."
    )


def test_markdown_export_carries_the_checks_and_an_ascii_name(
    vgg16: inspector.InspectorView,
) -> None:
    check = vgg16.check({0: "1,793", 1: "abc"})
    report = vgg16.markdown(None, check)
    assert "## Check my calculation" in report
    assert "| ❌ | features.0 | 1,793 | 1,792 | 3 × 3 × 3 × 64 + 64 = 1,792 |" in report
    assert "| ❓ | features.2 | unreadable |" in report
    assert "1 of 1 checked layers are wrong." in report
    assert "## Check my calculation" not in vgg16.markdown()
    assert vgg16.file_stem == "vgg16_3x224x224" and vgg16.file_stem.isascii()
    lab = inspector_view(
        inspector.CONV_LAB, input_shape=(1, 28, 28), mnist=True, spec=PRESETS["MNIST CNN"]
    )
    assert lab.file_stem == "Conv_Lab_stack_1x28x28_mnist"
