"""Helpers for browser tests: wait for Streamlit, screenshots, exception checks."""

from __future__ import annotations

from pathlib import Path

from playwright.sync_api import Page

SCREENSHOTS = Path(__file__).resolve().parents[1] / "artifacts" / "screenshots"


def wait_idle(page: Page, timeout_ms: int = 60_000) -> None:
    """Wait until the Streamlit script run has finished."""
    page.wait_for_selector(
        "[data-testid='stApp'][data-test-script-state='notRunning']", timeout=timeout_ms
    )


def open_app(page: Page, url: str, timeout_ms: int = 90_000) -> None:
    page.goto(url)
    page.wait_for_selector("[data-testid='stApp']", timeout=timeout_ms)
    wait_idle(page, timeout_ms)


def screenshot(page: Page, name: str) -> Path:
    """Save a full-page screenshot under artifacts/screenshots/ (git-ignored)."""
    SCREENSHOTS.mkdir(parents=True, exist_ok=True)
    path = SCREENSHOTS / f"{name}.png"
    page.screenshot(path=str(path), full_page=True)
    return path


def assert_no_exception(page: Page) -> None:
    count = page.locator("[data-testid='stException']").count()
    assert count == 0, page.locator("[data-testid='stException']").first.inner_text()


def toggle_grid_row(page: Page, container_key: str, text: str, column: int = 1) -> None:
    """Click the selection box of the row of ``st.dataframe`` (in ``container_key``) whose
    ``column`` shows ``text`` (the grid's accessible copy; column 0 is the selection box)."""
    from grid_helpers import HEADER_PX, ROW_PX, cell, grid_in  # grid tests' helpers, one copy
    from playwright.sync_api import expect

    grid = grid_in(page, container_key)
    expect(cell(grid, column, 0)).to_be_attached()
    for row in range(40):
        target = cell(grid, column, row)
        if not target.count():
            break
        if target.inner_text().strip() == text:
            box = grid.bounding_box()
            assert box is not None
            page.mouse.click(box["x"] + 18, box["y"] + HEADER_PX + ROW_PX * row + ROW_PX // 2)
            wait_idle(page)
            return
    raise AssertionError(f"no row showing {text!r} in {container_key}")
