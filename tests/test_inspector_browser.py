"""The Model Inspector in a real browser: VGG-16's table and charts, "check my calculation"
flagging a wrong cell, a clear error for an input the model cannot take, and the cross-check;
the formula in sight at 1,400 px, an out-of-range input said next to it, the MNIST size moving
to one the model takes, and a phone-sized window.

Expected numbers come from the engine (``cnnlab.counting.analyse``) on the same models.
"""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser_helpers import assert_no_exception, open_app, screenshot, wait_idle
from grid_helpers import cell, column_of, edit_cell, grid_in
from playwright.sync_api import Page, expect

from cnnlab.counting.analyse import analyse_zoo

pytestmark = pytest.mark.browser
expect.set_options(timeout=30_000)


@pytest.fixture
def page(page: Page) -> Page:
    """A tall window: the whole page fits, so screenshots show it all."""
    page.set_viewport_size({"width": 1400, "height": 3600})
    return page


def pick_model(page: Page, name: str) -> None:
    box = page.locator(".st-key-insp-controls [data-testid='stSelectbox']").first
    box.click()
    page.keyboard.type(name)
    # an option reads "name" or "name — what tells it apart" (the two AlexNets)
    page.get_by_role("option", name=re.compile(rf"^{re.escape(name)}( —.*)?$")).click()
    heading = re.compile(rf"^{re.escape(name)}( \(MNIST\))? at ")
    expect(page.get_by_role("heading", name=heading)).to_be_visible()
    wait_idle(page)


def test_vgg16_table_chart_and_check_my_calculation(page: Page, app_url: str) -> None:
    open_app(page, f"{app_url}/Model_Inspector")
    pick_model(page, "vgg16")
    vgg = analyse_zoo("vgg16")

    table = grid_in(page, "insp-table")
    layer_col, params_col = column_of(table, "Layer"), column_of(table, "Params")
    expect(cell(table, layer_col, 0)).to_have_text("features.0")
    expect(cell(table, params_col, 0)).to_have_text(str(vgg.rows[0].params))
    expect(page.locator(".st-key-insp-totals")).to_contain_text(f"{vgg.totals.params:,}")
    expect(page.locator(".st-key-insp-totals")).to_contain_text("15,470,264,320")
    expect(page.locator(".st-key-insp-footer")).to_contain_text("Params size (MB): 553.43")
    expect(page.locator(".st-key-insp-chart-layers [data-testid='stPlotlyChart']")).to_be_visible()
    expect(page.locator(".st-key-insp-chart-share [data-testid='stPlotlyChart']")).to_be_visible()
    expect(page.locator(".st-key-insp-chart-share")).to_contain_text("conv (13)")
    expect(page.locator(".st-key-insp-chart-layers")).to_contain_text("classifier.0")
    expect(page.locator(".st-key-insp-lesson")).to_contain_text("classifier.0 (Linear)")

    # One wrong number: features.0 is 3 × 3 × 3 × 64 + 64 = 1,792, not 1,793.
    editor = grid_in(page, "insp-check-editor")
    edit_cell(page, editor, column_of(editor, "Your params"), 0, "1,793")
    results = page.locator(".st-key-insp-check-results")
    expect(results).to_contain_text("1 of 1 checked layers are wrong")
    result_grid = grid_in(page, "insp-check-results")
    expect(cell(result_grid, 0, 0)).to_have_text("❌")
    expect(cell(result_grid, column_of(result_grid, "Formula"), 0)).to_have_text(
        "3 × 3 × 3 × 64 + 64 = 1,792"
    )
    # Text that is not a number is unreadable, counted apart, not wrong.
    edit_cell(page, editor, column_of(editor, "Your params"), 2, "abc")
    expect(results).to_contain_text("1 of 1 checked layers are wrong")
    expect(results).to_contain_text("1 cell could not be read as a whole number")
    assert_no_exception(page)
    screenshot(page, "inspector_vgg16_check")

    # A pasted column goes into the table (one input), in table order; the typed cell it
    # covers is replaced there, and the rest stays.
    paste = page.get_by_label("…or paste a column")
    paste.fill("1792\n36 928")
    paste.press("Control+Enter")
    page.get_by_role("button", name="Put the column in the table").click()
    expect(page.locator(".st-key-insp-check-editor")).to_be_visible()
    editor = grid_in(page, "insp-check-editor")
    expect(cell(editor, column_of(editor, "Your params"), 0)).to_have_text("1792")
    expect(cell(editor, column_of(editor, "Your params"), 2)).to_have_text("abc")
    expect(results).to_contain_text("All 2 checked layers are right")
    expect(results).to_contain_text("1 cell could not be read")
    expect(paste).to_have_value("")
    assert_no_exception(page)

    with page.expect_download() as info:
        page.get_by_role("button", name="Markdown report").click()
    assert info.value.suggested_filename == "vgg16_3x224x224.md"
    report = Path(info.value.path()).read_text()
    assert report.startswith("# vgg16: parameters and MACs by layer")
    assert "| features.0 | Conv2d | 64×224×224 | 1,792 | 3 × 3 × 3 × 64 + 64 = 1,792 |" in report
    assert "| params | 138,357,544 |" in report
    assert "## Check my calculation" in report
    assert "| ✅ | features.0 | 1,792 | 1,792 | 3 × 3 × 3 × 64 + 64 = 1,792 |" in report
    with page.expect_download() as info:
        page.get_by_role("button", name="Table as CSV").click()
    assert info.value.suggested_filename == "vgg16_3x224x224.csv"
    csv = Path(info.value.path()).read_text().splitlines()
    assert csv[0].startswith("name,type,group,input_shape,output_shape,params")
    assert len(csv) == 1 + len(vgg.rows)


def test_formulas_and_course_names_are_in_sight_at_1400px(page: Page, app_url: str) -> None:
    page.set_viewport_size({"width": 1400, "height": 1400})
    open_app(page, f"{app_url}/Model_Inspector")
    pick_model(page, "alexnet-report")
    table = grid_in(page, "insp-table")
    # The grid keeps DOM cells only for the columns in sight: both formulas are there
    # without scrolling sideways (before, at 1,400 px, only 7 of 11 columns were).
    formula = cell(table, column_of(table, "Params formula"), 0)
    expect(formula).to_have_text("3 × 11 × 11 × 64 + 64 = 23,296")
    macs_formula = cell(table, column_of(table, "MACs formula"), 0)
    expect(macs_formula).to_have_text("3 × 11 × 11 × 64 × 55 × 55 = 70,276,800")
    name_col = column_of(table, "Name")
    expect(cell(table, column_of(table, "Layer"), 0)).to_have_text("features.0")
    expect(cell(table, name_col, 0)).to_have_text("conv1")
    expect(cell(table, name_col, 5)).to_have_text("fc6")
    controls = page.locator(".st-key-insp-controls")
    expect(controls).to_contain_text("the report's AlexNet")
    expect(controls).to_contain_text("4096→1024→1000")
    assert_no_exception(page)


def test_mnist_size_moves_to_one_the_model_takes(page: Page, app_url: str) -> None:
    open_app(page, f"{app_url}/Model_Inspector")
    pick_model(page, "vgg16")
    page.locator(".st-key-insp-controls").get_by_text("MNIST adaptation").click()

    note = page.locator(".st-key-insp-size-note")
    expect(note).to_contain_text("vgg16 cannot take 1×28×28")
    expect(note).to_contain_text("input size moved to 32×32")
    expect(page.locator(".st-key-insp-error")).to_have_count(0)
    mnist32 = analyse_zoo("vgg16", mnist=True, input_shape=(1, 32, 32))
    expect(page.locator(".st-key-insp-totals")).to_contain_text(f"{mnist32.totals.params:,}")
    assert_no_exception(page)
    screenshot(page, "inspector_vgg16_mnist28_moved")

    pick_model(page, "alexnet-report")  # needs ≥ 63×63: 28 and 32 are too small
    expect(note).to_contain_text("alexnet-report cannot take 1×32×32")
    expect(note).to_contain_text("input size moved to 64×64")
    expect(page.get_by_role("combobox", name="MNIST input size")).to_have_value("64")
    expect(page.get_by_role("heading", name="alexnet-report (MNIST) at 1×64×64")).to_be_visible()
    assert_no_exception(page)


def _set_number(page: Page, label: str, value: int) -> None:
    box = page.get_by_label(label, exact=True)
    box.fill(str(value))
    box.press("Enter")
    wait_idle(page)


def test_an_input_the_model_cannot_take_is_a_clear_error(page: Page, app_url: str) -> None:
    open_app(page, f"{app_url}/Model_Inspector")
    pick_model(page, "vgg16")
    _set_number(page, "Height", 16)
    _set_number(page, "Width", 16)
    error = page.locator(".st-key-insp-error")
    expect(error).to_contain_text("vgg16 cannot take 3×16×16")
    expect(error).to_contain_text("use input size ≥ 32")
    expect(page.locator(".st-key-insp-table")).to_have_count(0)
    assert_no_exception(page)
    screenshot(page, "inspector_vgg16_16x16_error")


def test_channels_zero_is_said_next_to_the_input_and_hides_the_results(
    page: Page, app_url: str
) -> None:
    open_app(page, f"{app_url}/Model_Inspector")
    pick_model(page, "vgg16")
    expect(page.locator(".st-key-insp-totals")).to_be_visible()
    _set_number(page, "Channels", 0)
    error = page.locator(".st-key-insp-input-error")
    expect(error).to_contain_text("input channels must be between 1 and 65,536, got 0")
    for stale in ("insp-table", "insp-totals", "insp-chart-layers", "insp-check-editor"):
        expect(page.locator(f".st-key-{stale}")).to_have_count(0)
    _set_number(page, "Channels", 3)
    expect(error).to_have_count(0)
    expect(page.locator(".st-key-insp-totals")).to_contain_text("138,357,544")
    assert_no_exception(page)


def test_phone_toolbar_covers_no_chart_title(page: Page, app_url: str) -> None:
    page.set_viewport_size({"width": 390, "height": 844})
    open_app(page, f"{app_url}/Model_Inspector")
    pick_model(page, "vgg16")
    for key in ("insp-chart-layers", "insp-chart-share"):
        chart = page.locator(f".st-key-{key}")
        chart.scroll_into_view_if_needed()
        plot = chart.locator("[data-testid='stPlotlyChart']")
        expect(plot).to_be_visible()
        plot.hover()
        modebar = plot.locator(".modebar").first
        expect(modebar).to_be_visible()
        bar = modebar.bounding_box()
        assert bar is not None
        # the chart's title (printed above it, or plotly's own), its legend and panel titles
        title = chart.locator("[data-testid='stMarkdownContainer'] p, .gtitle")
        covered = [*title.all(), *plot.locator(".legend, .annotation").all()]
        assert title.count() >= 1 and len(covered) >= 2
        for thing in covered:
            box = thing.bounding_box()
            assert box is not None
            apart = (
                bar["x"] >= box["x"] + box["width"] or box["x"] >= bar["x"] + bar["width"]
                or bar["y"] >= box["y"] + box["height"] or box["y"] >= bar["y"] + bar["height"]
            )  # fmt: skip
            assert apart, (key, thing, box, bar)
    assert_no_exception(page)


def test_crosscheck_panel_shows_each_tool(page: Page, app_url: str) -> None:
    open_app(page, f"{app_url}/Model_Inspector")
    pick_model(page, "lenet5")
    panel = page.locator(".st-key-insp-crosscheck")
    panel.get_by_role("button", name="Run the cross-check").click()
    expect(panel).to_contain_text("Why they differ")
    table = panel.locator("table").first
    for tool in ("cnnlab", "torchinfo", "fvcore", "FlopCounterMode"):
        expect(table).to_contain_text(tool)
    lenet = analyse_zoo("lenet5")
    expect(table).to_contain_text(f"{lenet.totals.params:,}")
    expect(table).to_contain_text(f"{lenet.totals.macs:,}")
    assert_no_exception(page)
    screenshot(page, "inspector_crosscheck")
