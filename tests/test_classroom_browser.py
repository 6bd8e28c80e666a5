"""A class in real browsers: two students and a teacher, each in their own browser context
(their own cookies), on one app with a teacher password configured (no worker: runs stay
queued, which is all ownership needs).

Ada's run is read-only for Bob (disabled buttons that say why; an old ``?run=`` link and a
forced click change nothing in the store), a third run is refused with the limit's message,
identities survive a reload (and a new tab), and the teacher, once logged in, can delete Ada's run.
"""

from __future__ import annotations

import re
import subprocess
from collections.abc import Iterator
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from browser_helpers import assert_no_exception, open_app, toggle_grid_row, wait_idle
from conftest import free_port, stop, streamlit_cmd, wait_http
from playwright.sync_api import Browser, BrowserContext, Page, expect

from cnnlab.classroom import fair_queue
from cnnlab.classroom.identity import Owner
from cnnlab.classroom.teacher import ENV_VAR, hash_password
from cnnlab.training.config import TrainConfig
from cnnlab.training.store import RunStore

pytestmark = pytest.mark.browser
expect.set_options(timeout=30_000)

ROOT = Path(__file__).resolve().parents[1]
PASSWORD = "teach me please"
SMALL = TrainConfig(train_limit=200, device="cpu")


@pytest.fixture(scope="module")
def klass(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Iterator[dict]:
    """The app with a teacher password, on its own home (the other browser tests have none)."""
    home = tmp_path_factory.mktemp("class-home")
    env = {**server_env, "CNNLAB_HOME": str(home), ENV_VAR: hash_password(PASSWORD)}
    port = free_port()
    log = tmp_path_factory.mktemp("logs") / "class-streamlit.log"
    cmd = streamlit_cmd(port)
    with log.open("w") as out:
        proc = subprocess.Popen(cmd, cwd=ROOT, env=env, stdout=out, stderr=subprocess.STDOUT)
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", "ok", 90, proc, log)
        yield {"url": f"http://127.0.0.1:{port}", "store": RunStore(home / "runs.db")}
    finally:
        stop(proc)


@pytest.fixture(scope="module")
def contexts(browser: Browser, browser_context_args: dict) -> Iterator[dict[str, BrowserContext]]:
    made = {who: browser.new_context(**browser_context_args) for who in ("ada", "bob", "teacher")}
    yield made
    for context in made.values():
        context.close()


def sidebar_expander(page: Page, label: str) -> None:
    page.locator("[data-testid='stSidebar'] summary", has_text=label).first.click()


def set_name(page: Page, name: str) -> None:
    sidebar_expander(page, "👤")
    box = page.locator(".st-key-your-name")
    box.get_by_label("Your name").fill(name)
    box.get_by_role("button", name="Save name").click()
    wait_idle(page)
    expect(page.locator("[data-testid='stSidebar'] summary", has_text=f"👤 {name}")).to_be_visible()


def train(page: Page, url: str, *, name: str | None = None) -> None:
    open_app(page, f"{url}/Train")
    if name is not None:
        settled(page)
        set_name(page, name)
    expect(page.locator(".st-key-train-cost")).to_contain_text("Parameters")
    field = page.get_by_role("spinbutton", name="Training images (0 for all)")
    field.fill("200")
    field.press("Enter")
    wait_idle(page)
    page.get_by_role("button", name="🚀 Train").click()
    wait_idle(page)


def run_id_of(page: Page) -> str:
    expect(page).to_have_url(re.compile(r"[?&]run=[0-9a-f]{12}"))
    return parse_qs(urlparse(page.url).query)["run"][0]


def cookie(context: BrowserContext, name: str) -> str | None:
    return next((c["value"] for c in context.cookies() if c["name"] == name), None)


def settled(page: Page) -> None:
    """Wait until a first visit has written its identity cookie (the hidden writer reruns the
    page as it reports back) and the page is idle again."""
    page.wait_for_function("document.cookie.includes('cnnlab_id=')", timeout=30_000)
    page.wait_for_timeout(1500)
    wait_idle(page)


def test_a_class_two_students_and_a_teacher(klass: dict, contexts: dict) -> None:
    url, store = klass["url"], klass["store"]
    ada = contexts["ada"].new_page()
    train(ada, url, name="Ada")
    first = run_id_of(ada)
    run = store.require_run(first)
    assert run.owner_name == "Ada" and run.owner_id == cookie(contexts["ada"], "cnnlab_id")
    # her second run straight into the queue (as her: the same cookie id), to save a page load
    (second,) = fair_queue.submit([SMALL], store, Owner(run.owner_id, "Ada"), limited=False)
    train(ada, url)  # the third: refused with the limit's message, nothing queued
    expect(ada.get_by_text(re.compile("already have 2 run"))).to_be_visible()
    assert len(store.list_runs()) == 2
    assert_no_exception(ada)

    # identity survives a reload and a new tab: Ada may still stop her run
    ada.reload()
    wait_idle(ada)
    expect(ada.locator("[data-testid='stSidebar'] summary", has_text="👤 Ada")).to_be_visible()
    tab = contexts["ada"].new_page()  # a new tab: the same identity
    open_app(tab, f"{url}/Train?run={first}")
    expect(tab.get_by_role("button", name="⏹ Stop")).to_be_enabled()
    expect(tab.locator(".st-key-read-only")).to_have_count(0)
    tab.close()

    # Bob: an old ?run= link to Ada's run is read-only; a forced click changes nothing
    bob = contexts["bob"].new_page()
    open_app(bob, f"{url}/Train?run={first}")
    settled(bob)
    expect(bob.locator(".st-key-read-only")).to_contain_text("belongs to Ada")
    stop_button = bob.get_by_role("button", name="⏹ Stop")
    expect(stop_button).to_be_disabled()
    stop_button.evaluate("b => { b.disabled = false; b.removeAttribute('disabled'); b.click(); }")
    bob.wait_for_timeout(1500)
    wait_idle(bob)
    assert store.require_run(first) == run  # nothing changed
    assert cookie(contexts["bob"], "cnnlab_id") != cookie(contexts["ada"], "cnnlab_id")

    open_app(bob, f"{url}/Runs")
    toggle_grid_row(bob, "runs-table", run.name)
    actions = bob.locator(".st-key-run-actions")
    expect(actions.locator(".st-key-read-only")).to_contain_text("belongs to Ada")
    expect(actions.get_by_role("button", name=re.compile("Stop"))).to_be_disabled()
    expect(actions.get_by_role("button", name="Rename")).to_be_disabled()
    expect(bob.locator(".st-key-compare-metrics")).to_be_visible()  # comparable
    assert_no_exception(bob)

    # the teacher logs in and deletes Ada's run
    boss = contexts["teacher"].new_page()
    open_app(boss, f"{url}/Runs")
    settled(boss)
    sidebar_expander(boss, "🎓 Teacher")
    boss.get_by_label("Teacher password").fill("not the password")
    boss.get_by_role("button", name="Log in").click()
    wait_idle(boss)
    expect(boss.get_by_text("Wrong password.")).to_be_visible()
    if not boss.get_by_label("Teacher password").is_visible():
        sidebar_expander(boss, "🎓 Teacher")
    boss.get_by_label("Teacher password").fill(PASSWORD)
    boss.get_by_role("button", name="Log in").click()
    wait_idle(boss)
    expect(boss.locator(".st-key-teacher-box")).to_contain_text("Teacher mode")
    toggle_grid_row(boss, "runs-table", store.require_run(second).name)
    actions = boss.locator(".st-key-run-actions")
    expect(actions.locator(".st-key-read-only")).to_have_count(0)
    actions.get_by_text("Delete 1 run(s)").click()
    actions.get_by_text(re.compile("Yes, delete")).click()
    wait_idle(boss)
    delete = actions.get_by_role("button", name="Delete", exact=True)
    expect(delete).to_be_enabled()
    delete.click()
    expect(boss.locator(".st-key-undo-bar")).to_contain_text("Moved")
    assert store.get_run(second) is None and store.get_run(second, trashed=True) is not None
    assert_no_exception(boss)
