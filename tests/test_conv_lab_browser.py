"""The Conv Lab page in a real browser: edits change the counts, separable shows the ratio,
a bad row shows its reason, and a shared link restores the stack.

Expected numbers come from the engine (``cnnlab.counting.analyse``) on the same specs.
"""

from __future__ import annotations

import time
from dataclasses import replace
from urllib.parse import parse_qs, urlparse

import pytest
from browser_helpers import assert_no_exception, open_app, screenshot, wait_idle
from grid_helpers import cell, column_of, edit_cell, grid_in, toggle_cell
from playwright.sync_api import Page, expect

from cnnlab.counting.analyse import analyse_spec
from cnnlab.counting.spec import PRESETS, LayerSpec, StackSpec, dumps
from cnnlab.views import labstate as lab

pytestmark = pytest.mark.browser
expect.set_options(timeout=30_000)

VGG = PRESETS["VGG block"]


@pytest.fixture
def page(page: Page) -> Page:
    """A tall window: the whole page fits, so screenshots show it all."""
    page.set_viewport_size({"width": 1400, "height": 2600})
    return page


def with_layer(spec: StackSpec, index: int, **changes: object) -> StackSpec:
    layers = list(spec.layers)
    layers[index] = replace(layers[index], **changes)
    return replace(spec, layers=tuple(layers))


def link_config(page: Page, timeout_s: float = 15) -> lab.LabConfig:
    """The configuration the page's URL holds now (waits for it to appear)."""
    deadline = time.monotonic() + timeout_s
    while True:
        values = parse_qs(urlparse(page.url).query).get(lab.QUERY_KEY)
        if values or time.monotonic() > deadline:
            break
        page.wait_for_timeout(200)
    assert values, f"no {lab.QUERY_KEY}= in {page.url}"
    return lab.decode_config(values[0])


def spec_of(config: lab.LabConfig) -> StackSpec:
    return lab.parse_rows(config.input, config.layers, config.name).spec


def test_kernel_3_to_5_changes_macs_and_link(page: Page, app_url: str) -> None:
    open_app(page, f"{app_url}/Conv_Lab")
    regular = page.locator(".st-key-lab-totals-regular").first
    before = analyse_spec(VGG).totals.macs
    expect(regular).to_contain_text(f"{before:,}")

    grid = grid_in(page, "lab-editor")
    edit_cell(page, grid, column_of(grid, "kernel"), 0, "5")

    changed = with_layer(VGG, 0, kernel=5)
    after = analyse_spec(changed).totals.macs
    assert after != before
    expect(regular).to_contain_text(f"{after:,}")
    expect(page.locator(".st-key-lab-totals-configured").first).to_contain_text(f"{after:,}")
    wait_idle(page)
    assert spec_of(link_config(page)).layers == changed.layers
    assert_no_exception(page)
    screenshot(page, "conv_lab_kernel5")


def test_flip_one_layer_to_separable_shows_ratio(page: Page, app_url: str) -> None:
    open_app(page, f"{app_url}/Conv_Lab")
    ratio = page.locator(".st-key-lab-ratio")
    expect(ratio).to_contain_text("Every conv is regular")
    expect(ratio).not_to_contain_text("MAC ratio")

    grid = grid_in(page, "lab-editor")
    toggle_cell(page, grid, column_of(grid, "separable"), 0)

    flipped = with_layer(VGG, 0, separable=True)
    want = analyse_spec(flipped).totals.macs / analyse_spec(VGG).totals.macs
    expect(ratio).to_contain_text("MAC ratio")
    expect(ratio).to_contain_text(f"{want:.4f}")
    expect(ratio).to_contain_text("1/128 + 1/9")
    expect(page.locator(".st-key-lab-totals-configured").first).to_contain_text(
        f"{analyse_spec(flipped).totals.params:,}"
    )
    expect(page.locator(".st-key-lab-chart-bars [data-testid='stPlotlyChart']")).to_be_visible()
    expect(page.locator(".st-key-lab-chart-theory [data-testid='stPlotlyChart']")).to_be_visible()
    assert_no_exception(page)
    screenshot(page, "conv_lab_separable")


def test_bad_row_shows_reason_and_rows_above_keep_numbers(page: Page, app_url: str) -> None:
    open_app(page, f"{app_url}/Conv_Lab")
    grid = grid_in(page, "lab-editor")
    edit_cell(page, grid, column_of(grid, "kernel"), 1, "200")

    reason = "kernel 200 is larger than the padded input 114×114"
    expect(page.locator(".st-key-lab-errors")).to_contain_text(f"Layer 1: {reason}")
    table = grid_in(page, "lab-table")
    status, params = column_of(table, "Status"), column_of(table, "Params")
    expect(cell(table, status, 1)).to_contain_text(reason)
    expect(cell(table, status, 2)).to_contain_text("not analysed: layer 1 above is invalid")
    expect(cell(table, status, 0)).to_contain_text("✅")
    # the accessible table holds the raw value: 128 × 3 × 3 × 64 + 128 = 73,856
    expect(cell(table, params, 0)).to_have_text("73856")
    assert_no_exception(page)
    screenshot(page, "conv_lab_bad_row")


def test_shared_link_restores_the_stack(page: Page, app_url: str) -> None:
    shared = StackSpec(
        input=(3, 32, 32),
        name="shared stack",
        layers=(
            LayerSpec(type="conv", out_channels=16, kernel=5, padding=2, activation="relu"),
            LayerSpec(type="maxpool", kernel=2),
            LayerSpec(type="conv", out_channels=32, kernel=3, padding=1, separable=True),
            LayerSpec(type="flatten"),
            LayerSpec(type="linear", out_features=10),
        ),
    )
    value = lab.encode_config(lab.LabConfig.from_spec(shared))
    open_app(page, f"{app_url}/Conv_Lab?{lab.QUERY_KEY}={value}")

    expect(page.get_by_label("C", exact=True)).to_have_value("3")
    expect(page.get_by_label("H", exact=True)).to_have_value("32")
    grid = grid_in(page, "lab-editor")
    expect(cell(grid, column_of(grid, "kernel"), 0)).to_have_text("5")
    expect(cell(grid, column_of(grid, "type"), 4)).to_have_text("linear")
    configured = analyse_spec(shared).totals
    expect(page.locator(".st-key-lab-totals-configured").first).to_contain_text(
        f"{configured.macs:,}"
    )
    expect(page.locator(".st-key-lab-ratio")).to_contain_text("MAC ratio")
    assert spec_of(link_config(page)) == shared
    assert_no_exception(page)
    screenshot(page, "conv_lab_link")

    open_app(page, f"{app_url}/Conv_Lab?{lab.QUERY_KEY}=not-a-real-config")
    expect(page.get_by_text("could not be read")).to_be_visible()
    expect(page.locator(".st-key-lab-totals-regular").first).to_contain_text(
        f"{analyse_spec(VGG).totals.macs:,}"
    )
    assert_no_exception(page)
    screenshot(page, "conv_lab_bad_link")


def test_json_upload_loads_a_spec_and_bad_files_show_inline_errors(
    page: Page, app_url: str
) -> None:
    open_app(page, f"{app_url}/Conv_Lab")
    upload = page.locator(".st-key-lab-files input[type='file']")
    table3 = PRESETS["MobileNet v1 Table 3 layer"]
    upload.set_input_files(
        files=[{"name": "table3.json", "mimeType": "application/json",
                "buffer": dumps(table3).encode()}]
    )  # fmt: skip
    expect(page.get_by_label("C", exact=True)).to_have_value("512")
    expect(page.locator(".st-key-lab-totals-regular").first).to_contain_text("462,422,016")
    expect(page.locator(".st-key-lab-totals-regular").first).to_contain_text("2,359,296")
    # the uploader shows the first file once its rerun (and the editor's refresh) is over: a file
    # set while the page is still rerunning can be dropped by the uploader (seen in full runs)
    expect(page.locator(".st-key-lab-files").first).to_contain_text("table3.json")
    wait_idle(page)

    upload.set_input_files(
        files=[{"name": "broken.json", "mimeType": "application/json",
                "buffer": b'{"input": [3, 32, 32], "layers": [{"type": "conv", "kernel": 3}]}'}]
    )  # fmt: skip
    expect(page.locator(".st-key-lab-files").first).to_contain_text(
        "broken.json: layer 0 (conv): 'out_channels' is required"
    )
    expect(page.locator(".st-key-lab-totals-regular").first).to_contain_text("462,422,016")
    assert_no_exception(page)
    screenshot(page, "conv_lab_upload_error")


def test_stack_reaches_the_inspector_and_survives_the_round_trip(page: Page, app_url: str) -> None:
    open_app(page, f"{app_url}/Conv_Lab")
    grid = grid_in(page, "lab-editor")
    edit_cell(page, grid, column_of(grid, "kernel"), 0, "5")
    changed = with_layer(VGG, 0, kernel=5)
    expect(page.locator(".st-key-lab-totals-regular").first).to_contain_text(
        f"{analyse_spec(changed).totals.macs:,}"
    )

    page.get_by_test_id("stSidebarNav").get_by_text("Model Inspector").click()
    wait_idle(page)
    models = page.locator(".st-key-insp-controls [data-testid='stSelectbox']").first
    models.click()
    page.keyboard.type("Conv Lab")
    page.get_by_role("option", name="Conv Lab stack").click()
    expect(page.get_by_role("heading", name="VGG block at 64×112×112")).to_be_visible()
    expect(page.locator(".st-key-insp-totals")).to_contain_text(
        f"{analyse_spec(changed).totals.params:,}"
    )
    share = page.locator(".st-key-insp-chart-share")
    expect(share).to_contain_text("conv (2)")
    expect(share).not_to_contain_text("linear")
    assert_no_exception(page)
    screenshot(page, "inspector_conv_lab_stack")

    page.get_by_test_id("stSidebarNav").get_by_text("Conv Lab").click()
    wait_idle(page)
    grid = grid_in(page, "lab-editor")
    expect(cell(grid, column_of(grid, "kernel"), 0)).to_have_text("5")
    expect(page.locator(".st-key-lab-totals-regular").first).to_contain_text(
        f"{analyse_spec(changed).totals.macs:,}"
    )
    assert_no_exception(page)


def grid_value(grid, column: int, row: int) -> str:  # type: ignore[no-untyped-def]
    return cell(grid, column, row).inner_text().strip()


def editor(page: Page):  # type: ignore[no-untyped-def]
    """The layer editor once a rebuilt one has replaced the old (both show for a moment)."""
    expect(page.locator(".st-key-lab-editor [data-testid='stDataFrame']")).to_have_count(1)
    return grid_in(page, "lab-editor")


def test_edits_survive_a_change_of_convolution_form(page: Page, app_url: str) -> None:
    """Issue 17 bug 1: a kernel edit and a per-layer tick survive "all separable" / "all
    regular" and back, the totals follow, and the separable boxes show the effective form."""
    open_app(page, f"{app_url}/Conv_Lab")
    grid = editor(page)
    separable = column_of(grid, "separable")
    toggle_cell(page, grid, separable, 1)
    edit_cell(page, grid, column_of(grid, "kernel"), 0, "5")
    edited = with_layer(with_layer(VGG, 0, kernel=5), 1, separable=True)
    configured = page.locator(".st-key-lab-totals-configured").first
    expect(configured).to_contain_text(f"{analyse_spec(edited).totals.params:,}")

    controls = page.locator(".st-key-lab-controls")  # Part I's words, beside the switch
    expect(controls).to_contain_text("M = input channels, N = output channels (filters), k =")
    forms = controls.locator("[data-testid='stRadio']")
    for label, mode in (("all separable", "separable"), ("all regular", "regular")):
        want = mode == "separable"
        forms.get_by_text(label, exact=True).click()
        wait_idle(page)
        effective = lab.effective_spec(edited, mode)
        expect(configured).to_contain_text(f"{analyse_spec(effective).totals.params:,}")
        expect(page.locator(".st-key-lab-totals-regular").first).to_contain_text(
            f"{analyse_spec(edited, separable=False).totals.params:,}"  # 352,512, not 221,440
        )
        grid = editor(page)
        expect(cell(grid, column_of(grid, "kernel"), 0)).to_have_text("5")
        for row in (0, 1):  # both convs show the form they are counted in
            assert grid_value(grid, separable, row) == str(want).lower(), (label, row)
        wait_idle(page)
        config = link_config(page)
        assert config.mode == mode
        assert spec_of(config).layers == edited.layers  # each layer's own tick is kept
    forms.get_by_text("per layer", exact=True).click()
    wait_idle(page)
    expect(configured).to_contain_text(f"{analyse_spec(edited).totals.params:,}")
    grid = editor(page)
    assert [grid_value(grid, separable, row) for row in (0, 1)] == ["false", "true"]
    assert_no_exception(page)


def test_out_of_range_channels_say_why_and_hide_stale_results(page: Page, app_url: str) -> None:
    """Issue 17 bug 4: C = 0 or 99,999,999 is reported beside the input, and the results of the
    last valid C are not shown as if current; a valid C brings them back."""
    open_app(page, f"{app_url}/Conv_Lab")
    channels = page.get_by_label("C", exact=True)
    for value, reason in (
        ("0", "input channels must be between 1 and 65,536, got 0"),
        ("99999999", "input channels must be between 1 and 65,536, got 99999999"),
    ):
        channels.fill(value)
        channels.press("Enter")
        wait_idle(page)
        expect(page.locator(".st-key-lab-input-error")).to_contain_text(reason)
        expect(page.locator(".st-key-lab-totals-regular")).to_have_count(0)
        expect(page.locator(".st-key-lab-table")).to_have_count(0)
        expect(page.locator(".st-key-lab-chart-bars")).to_have_count(0)
    channels.fill("32")
    channels.press("Enter")
    wait_idle(page)
    expect(page.locator(".st-key-lab-input-error")).to_have_count(0)
    expect(page.locator(".st-key-lab-totals-regular").first).to_contain_text(
        f"{analyse_spec(replace(VGG, input=(32, 112, 112))).totals.macs:,}"
    )
    assert_no_exception(page)
