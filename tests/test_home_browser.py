"""The home page in a real browser: digit grid, dataset line, links, no exception; the titled
navigation and the old page addresses; an unknown address says so; the theme follows the
system and can be switched."""

from __future__ import annotations

import subprocess
from pathlib import Path

import pytest
from browser_helpers import assert_no_exception, open_app, screenshot
from conftest import ROOT, free_port, stop, streamlit_cmd, wait_http
from playwright.sync_api import Browser, Page, expect

pytestmark = pytest.mark.browser

PAGES = (
    "Home", "Conv Lab", "Model Inspector", "Train", "Runs", "Inside the network", "Experiments",
    "Class board",
)  # fmt: skip


def test_home_page_shows_digits_and_dataset(page: Page, app_url: str) -> None:
    open_app(page, app_url)
    line = page.locator(".st-key-dataset-line")
    expect(line).to_contain_text("full MNIST")
    expect(line).to_contain_text("60,000 training and 10,000 test digits")
    grid = page.locator(".st-key-digit-grid [data-testid='stImage'] img")
    expect(grid).to_be_visible()
    assert grid.evaluate("img => img.naturalWidth") > 400
    for label in PAGES[1:]:
        expect(page.locator("[data-testid='stPageLink']").get_by_text(label)).to_be_visible()
    assert_no_exception(page)
    screenshot(page, "home")


def test_titled_navigation_and_old_addresses(page: Page, app_url: str) -> None:
    open_app(page, app_url)
    nav = page.locator("[data-testid='stSidebarNav']")
    expect(nav.locator("a")).to_have_count(len(PAGES))
    for title in PAGES:
        expect(nav.get_by_text(title, exact=True)).to_be_visible()
    expect(nav.get_by_text("app", exact=True)).to_have_count(0)  # the file name is no title
    expect(page.locator(".st-key-unknown-page")).to_have_count(0)
    for path, heading in (
        ("/Conv_Lab", "Conv Lab"),
        ("/Model_Inspector", "Model Inspector"),
        ("/Runs", "Runs"),
        ("/Train?run=abcdef123456", "Train"),
    ):
        open_app(page, app_url + path)
        expect(page.locator("h1").first).to_contain_text(heading)
        expect(page.locator(".st-key-unknown-page")).to_have_count(0)
        assert_no_exception(page)
    assert "run=abcdef123456" in page.url  # the run id reached the Train page
    expect(page.get_by_text("No run with id abcdef123456")).to_be_visible()


def test_unknown_page_says_so(page: Page, app_url: str) -> None:
    open_app(page, f"{app_url}/No_Such_Page")
    notice = page.locator(".st-key-unknown-page")
    expect(notice).to_contain_text("There is no page named No_Such_Page")
    links = notice.locator("[data-testid='stPageLink']")
    expect(links).to_have_count(len(PAGES))
    expect(page.locator(".st-key-dataset-line")).to_contain_text("full MNIST")  # home below it
    page.keyboard.press("Escape")  # Streamlit's own transient "Page not found" dialog
    links.get_by_text("Runs").click()
    expect(page.locator("h1").first).to_contain_text("Runs")
    expect(page.locator(".st-key-unknown-page")).to_have_count(0)
    assert page.url.endswith("/Runs")
    assert_no_exception(page)


@pytest.mark.parametrize(("scheme", "dark"), [("dark", True), ("light", False)])
def test_theme_follows_the_system_and_can_be_switched(
    browser: Browser, app_url: str, scheme: str, dark: bool
) -> None:
    context = browser.new_context(viewport={"width": 1400, "height": 900}, color_scheme=scheme)
    try:
        page = context.new_page()
        open_app(page, app_url)
        background = "getComputedStyle(document.querySelector('[data-testid=stApp]'))"
        luminance = page.evaluate(
            f"() => {{ const [r, g, b] = {background}.backgroundColor.match(/\\d+/g).map(Number);"
            " return (r + g + b) / 3; }"
        )
        assert (luminance < 80) == dark, luminance
        page.locator("[data-testid='stMainMenu']").click()  # the ⋮ menu: theme choice
        theme = page.get_by_role("menu", name="Main menu").get_by_role("group", name="Theme")
        expect(theme.get_by_role("menuitemradio", name="System")).to_be_checked()
        theme.get_by_role("menuitemradio", name="Light" if dark else "Dark").click()
        expect(page.locator("[data-testid='stApp']")).to_have_css(
            "background-color", "rgb(255, 255, 255)" if dark else "rgb(23, 22, 20)"
        )
    finally:
        context.close()


@pytest.mark.parametrize("entry", ["serve.py", "app.py"])
def test_a_fresh_server_opened_on_a_page_keeps_the_titled_navigation(
    page: Page, server_env: dict[str, str], tmp_path: Path, entry: str
) -> None:
    """The very first visitor of a new server opens /Runs, not /: Streamlit would run the page
    straight from pages/ (file names in the sidebar, "app" first) and stay so until someone
    opens / — the page must still come up under app.py's titled navigation, at its address.
    Both entries: ``make run``'s serve.py and a plain ``streamlit run app.py``."""
    port = free_port()
    log = tmp_path / "streamlit.log"
    cmd = streamlit_cmd(port, entry)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=server_env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", "ok", 90, proc, log)
        open_app(page, f"http://127.0.0.1:{port}/Runs")
        nav = page.locator("[data-testid='stSidebarNav']")
        expect(nav.get_by_text("Home", exact=True)).to_be_visible()
        expect(nav.get_by_text("app", exact=True)).to_have_count(0)
        expect(page.get_by_role("heading", name="Runs")).to_be_visible()
        assert page.url.rstrip("/").endswith("/Runs")
        assert_no_exception(page)
    finally:
        stop(proc)
