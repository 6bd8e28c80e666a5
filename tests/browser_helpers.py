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
