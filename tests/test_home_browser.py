"""The home page in a real browser: digit grid, dataset line, links, no exception."""

from __future__ import annotations

import pytest
from browser_helpers import assert_no_exception, open_app, screenshot
from playwright.sync_api import Page, expect

pytestmark = pytest.mark.browser


def test_home_page_shows_digits_and_dataset(page: Page, app_url: str) -> None:
    open_app(page, app_url)
    line = page.locator(".st-key-dataset-line")
    expect(line).to_contain_text("full MNIST")
    expect(line).to_contain_text("60,000 training and 10,000 test digits")
    grid = page.locator(".st-key-digit-grid [data-testid='stImage'] img")
    expect(grid).to_be_visible()
    assert grid.evaluate("img => img.naturalWidth") > 400
    for label in ("Conv Lab", "Model Inspector", "Train", "Runs"):
        expect(page.locator("[data-testid='stPageLink']").get_by_text(label)).to_be_visible()
    assert_no_exception(page)
    screenshot(page, "home")
