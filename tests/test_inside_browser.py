"""The Inside page in a real browser on a real (tiny) trained run: pick a digit → its feature maps;
the step-by-step count; click a confusion-matrix cell → its digits, and one opens in the maps."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from browser_helpers import assert_no_exception, open_app, screenshot, wait_idle
from playwright.sync_api import Page, expect

from cnnlab.training import loop, names
from cnnlab.training.config import TrainConfig
from cnnlab.training.store import RunStore
from cnnlab.views import inside as iv

pytestmark = pytest.mark.browser
expect.set_options(timeout=90_000)
ROW_PX = 35  # st.dataframe's row (and header) height


@pytest.fixture(scope="module")
def run_id(server_env: dict[str, str]) -> str:
    """A real 500-digit small-cnn run, trained here into the app's store."""
    store = RunStore(Path(server_env["CNNLAB_HOME"]) / "runs.db")
    config = TrainConfig(train_limit=500, batch_size=100, name="inside")
    rid = store.create_run(config.to_dict(), name=config.name, model=config.model,
                           params=None, macs=None)  # fmt: skip
    assert loop.train(config, store, rid).status == "finished"
    return rid


@pytest.fixture(autouse=True)
def _patient(page: Page) -> None:
    """Clicks wait as long as the assertions do (this 2-core machine is shared)."""
    page.set_default_timeout(90_000)


def tall_screenshot(page: Page, name: str, height: int = 2400) -> None:
    size = page.viewport_size or {"width": 1400, "height": 1000}
    page.set_viewport_size({"width": size["width"], "height": height})
    page.wait_for_timeout(800)
    screenshot(page, name)
    page.set_viewport_size(size)


def pick_view(page: Page, name: str) -> None:
    page.locator(".st-key-in-view").get_by_text(name, exact=True).click()
    wait_idle(page)


def test_pick_a_digit_and_its_maps_appear(page: Page, app_url: str, run_id: str) -> None:
    open_app(page, f"{app_url}/Inside?run={run_id}")
    maps = page.locator(".st-key-in-maps")
    expect(maps).to_contain_text("0 · Conv2d · 16 × 28 × 28")
    expect(maps).to_contain_text("7 · MaxPool2d · 32 × 7 × 7")
    expect(maps.locator("img")).to_have_count(4)
    field = page.get_by_role("spinbutton", name="Test digit (0–9,999)")
    field.fill("7")
    field.press("Enter")
    wait_idle(page)
    expect(page.locator(".st-key-in-input-digit")).to_contain_text("test #7, true label 9")
    expect(maps.locator("img")).to_have_count(4)
    tall_screenshot(page, "inside_maps")
    pick_view(page, "One output")
    rule = page.locator(".st-key-in-rule")
    expect(rule).to_contain_text("MACs / output elements = 9 = 9")  # the first conv: 3·3·1
    tall_screenshot(page, "inside_step", 1600)
    pick_view(page, "Filters")
    expect(page.locator(".st-key-in-filters")).to_contain_text("before training")
    assert_no_exception(page)


def test_click_a_confusion_cell_and_its_digits_appear(
    page: Page, app_url: str, run_id: str, server_env: dict[str, str]
) -> None:
    # the run's own confusion matrix (the training loop's, on the same 10,000 test digits)
    store = RunStore(Path(server_env["CNNLAB_HOME"]) / "runs.db")
    matrix = store.get_artifact(run_id, names.CONFUSION_MATRIX).data
    true, pred = max(
        ((i, j) for i in range(10) for j in range(10) if i != j), key=lambda c: matrix[c[0]][c[1]]
    )
    open_app(page, f"{app_url}/Inside?run={run_id}")
    pick_view(page, "Mistakes")
    grid = page.locator(".st-key-in-mistakes [data-testid='stDataFrame']")
    expect(grid).to_be_visible()
    page.wait_for_timeout(500)  # the grid draws its canvas after it appears
    box = grid.bounding_box()
    assert box is not None

    def click_cell(i: int, j: int) -> None:  # the index column, then 10; a header row, then 10
        x = box["x"] + iv.GRID_INDEX_PX + (j + 0.5) * iv.GRID_CELL_PX
        page.mouse.click(x, box["y"] + ROW_PX * (i + 1.5))
        wait_idle(page)

    cell = page.locator(".st-key-in-cell")
    click_cell(4, 4)
    expect(cell).to_contain_text(f"{matrix[4][4]:,} test digits: true 4, predicted 4 (correct)")
    click_cell(true, pred)
    expect(cell).to_contain_text(
        f"{matrix[true][pred]:,} test digits: true {true}, predicted {pred} (mistaken)"
    )
    expect(cell.locator("img")).to_have_count(min(iv.CELL_DIGITS, matrix[true][pred]))
    tall_screenshot(page, "inside_mistakes", 1600)
    cell.get_by_role("button", name=re.compile(r"^#\d+$")).first.click()
    wait_idle(page)
    expect(page.locator(".st-key-in-input-digit")).to_contain_text(f"true label {true}")
    expect(page.locator(".st-key-in-maps img")).to_have_count(4)
    assert_no_exception(page)


def test_a_conv_lab_link_shows_the_separable_stages_apart(page: Page, app_url: str) -> None:
    from cnnlab.counting.spec import StackSpec
    from cnnlab.views.labstate import LabConfig, encode_config

    spec = StackSpec.from_dict(
        {
            "name": "separable demo",
            "input": [1, 28, 28],
            "layers": [
                {"type": "conv", "out_channels": 8, "kernel": 3, "padding": 1},
                {"type": "maxpool", "kernel": 2},
                {"type": "conv", "out_channels": 16, "kernel": 3, "padding": 1, "separable": True},
            ],
        }
    )
    open_app(page, f"{app_url}/Inside?lab={encode_config(LabConfig.from_spec(spec))}")
    maps = page.locator(".st-key-in-maps")
    expect(maps).to_contain_text("2.depthwise · Conv2d — depthwise stage · 8 × 14 × 14")
    expect(maps).to_contain_text("2.pointwise · Conv2d — pointwise stage · 16 × 14 × 14")
    expect(maps).to_contain_text("no mixing of channels")
    expect(page.get_by_text("random weights, seed 0")).to_be_visible()
    tall_screenshot(page, "inside_separable", 2200)
    pick_view(page, "One output")
    layer = page.locator(".st-key-in-step").get_by_role("combobox").first
    layer.click()
    page.get_by_role("option", name="2.depthwise (depthwise) · 8 × 14 × 14").click()
    wait_idle(page)
    expect(page.locator(".st-key-in-rule")).to_contain_text("MACs / output elements = 9 = 9")
    expect(page.locator(".st-key-in-step")).to_contain_text("Separable layer: per output pixel")
    assert_no_exception(page)
