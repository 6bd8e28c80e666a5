"""The Model Inspector in a real browser: VGG-16's table and charts, "check my calculation"
flagging a wrong cell, a clear error for an input the model cannot take, and the cross-check.

Expected numbers come from the engine (``cnnlab.counting.analyse``) on the same models.
"""

from __future__ import annotations

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
    page.get_by_role("option", name=name, exact=True).click()
    expect(page.get_by_role("heading", name=f"{name} at", exact=False)).to_be_visible()
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
    assert_no_exception(page)
    screenshot(page, "inspector_vgg16_check")

    # A pasted column overrides the typed cells, in table order.
    paste = page.get_by_label("…or paste a column")
    paste.fill("1792\n36 928")
    paste.press("Control+Enter")
    expect(results).to_contain_text("All 2 checked layers are right")
    assert_no_exception(page)

    with page.expect_download() as info:
        page.get_by_role("button", name="Markdown report").click()
    report = Path(info.value.path()).read_text()
    assert report.startswith("# vgg16: parameters and MACs by layer")
    assert "| features.0 | Conv2d | 64×224×224 | 1,792 | 3 × 3 × 3 × 64 + 64 = 1,792 |" in report
    assert "| params | 138,357,544 |" in report
    with page.expect_download() as info:
        page.get_by_role("button", name="Table as CSV").click()
    csv = Path(info.value.path()).read_text().splitlines()
    assert csv[0].startswith("name,type,group,input_shape,output_shape,params")
    assert len(csv) == 1 + len(vgg.rows)


def test_vgg16_on_28x28_mnist_is_a_clear_error(page: Page, app_url: str) -> None:
    open_app(page, f"{app_url}/Model_Inspector")
    pick_model(page, "vgg16")
    page.locator(".st-key-insp-controls").get_by_text("MNIST adaptation").click()

    error = page.locator(".st-key-insp-error")
    expect(error).to_contain_text("vgg16 cannot take 1×28×28")
    expect(error).to_contain_text("use input size ≥ 32")
    assert_no_exception(page)
    screenshot(page, "inspector_vgg16_mnist28_error")

    sizes = page.locator(".st-key-insp-controls [data-testid='stSelectbox']").nth(1)
    sizes.click()
    page.get_by_role("option", name="32", exact=True).click()
    expect(error).to_have_count(0)
    mnist32 = analyse_zoo("vgg16", mnist=True, input_shape=(1, 32, 32))
    expect(page.locator(".st-key-insp-totals")).to_contain_text(f"{mnist32.totals.params:,}")
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
