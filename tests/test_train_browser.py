"""The Train page in a real browser, with a real worker process training real MNIST subsets:
launch → live chart grows → results and "Try it"; reload and a second tab re-attach mid-run;
Stop ends the run as ``stopped`` within seconds."""

from __future__ import annotations

import contextlib
import json
import re
import subprocess
import time
import urllib.error
import urllib.request
from pathlib import Path
from urllib.parse import parse_qs, urlparse

import pytest
from browser_helpers import assert_no_exception, open_app, screenshot, wait_idle
from conftest import ROOT, free_port, stop, streamlit_cmd, wait_http
from playwright.sync_api import Error as PlaywrightError
from playwright.sync_api import Locator, Page, expect

from cnnlab.training import loop
from cnnlab.training.config import TrainConfig
from cnnlab.training.store import RunStore
from cnnlab.views.runview import downsample_indices, smooth

pytestmark = pytest.mark.browser
expect.set_options(timeout=30_000)

TRAIN_LIMIT = "Training images (0 for all)"


def tall_screenshot(page: Page, name: str, height: int = 2600) -> None:
    """Streamlit scrolls inside its main block, so a full-page shot needs a tall viewport."""
    size = page.viewport_size or {"width": 1400, "height": 1000}
    page.set_viewport_size({"width": size["width"], "height": height})
    page.wait_for_timeout(600)
    screenshot(page, name)
    page.set_viewport_size(size)


def set_number(page: Page, label: str, value: int) -> None:
    field = page.get_by_role("spinbutton", name=label)
    field.fill(str(value))
    field.press("Enter")
    wait_idle(page)
    expect(field).to_have_value(str(value))


def launch(page: Page, app_url: str, limit: int, batch: int) -> str:
    """Fill the form, press Train; returns the run id the page put in the URL."""
    open_app(page, f"{app_url}/Train")
    expect(page.locator(".st-key-train-cost")).to_contain_text("Parameters")
    set_number(page, TRAIN_LIMIT, limit)
    set_number(page, "Batch size", batch)
    page.get_by_role("button", name="🚀 Train").click()
    expect(page).to_have_url(re.compile(r"[?&]run=[0-9a-f]{12}"))
    return parse_qs(urlparse(page.url).query)["run"][0]


LIVE = ".st-key-live-run iframe[data-testid='stCustomComponentV1']"
"""The live section while a run is queued or running: progress, the three uPlot charts and the
point count in one component frame (cnnlab.views.live_feed)."""


def live_state(page: Page) -> dict:
    """What the live component holds now: its mode (poll or push), polls made, the loss chart's
    steps and the point count it shows (empty values until it drew)."""
    return (
        page.frame_locator(LIVE)
        .first.locator("body")
        .evaluate(
            "() => { const s = window.cnnlabLivePlot || {}; const p = s.plot;"
            " return {mode: s.mode, polls: s.polls, steps: p ? Array.from(p.data[0]) : [],"
            " points: document.getElementById('points').textContent}; }"
        )
    )


def points(page: Page) -> int | None:
    """How many loss points the page shows: the live component's count while the run is
    active, the caption under the finished charts after (None while neither shows one)."""
    if page.locator(".st-key-run-points").count():
        return int(page.locator(".st-key-run-points").inner_text().split()[0].replace(",", ""))
    if page.locator(LIVE).count():
        text = live_state(page)["points"]
        return int(text.split()[0].replace(",", "")) if text else None
    return None


def wait_points(page: Page, at_least: int, timeout_s: float = 60) -> int:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.suppress(PlaywrightError):  # the frame can be swapped between reads
            n = points(page)
            if n is not None and n >= at_least:
                return n
        page.wait_for_timeout(250)
    raise AssertionError(f"the live chart never reached {at_least} points")


def logged_losses(server_env: dict[str, str], run_id: str) -> int:
    """How many loss rows the worker recorded for the run (it logs at most five a second)."""
    store = RunStore(Path(server_env["CNNLAB_HOME"]) / "runs.db")
    return len(store.metrics(run_id, keys=["loss"]))


def loss_rows(server_env: dict[str, str], run_id: str) -> tuple[list[int], list[float]]:
    store = RunStore(Path(server_env["CNNLAB_HOME"]) / "runs.db")
    rows = store.metrics(run_id, keys=["loss"])
    return [r.step for r in rows], [r.value for r in rows]


def drawn_loss(page: Page) -> dict[str, list[float]]:
    """The x and y of the loss chart's last trace as Plotly holds them in the browser."""
    plot = page.locator(".st-key-loss-chart .js-plotly-plot").first
    return plot.evaluate(
        "el => { const t = el.data[el.data.length - 1];"
        " return {x: Array.from(t.x), y: Array.from(t.y)}; }"
    )


def draw_one(page: Page, try_it: Locator) -> None:
    """Draw a "1" on the Try-it canvas (strokes start below the canvas toolbar); the canvas is
    measured once visible, since the component loads after the page."""
    canvas = try_it.locator("canvas.upper-canvas")
    expect(canvas).to_be_visible()
    box = canvas.bounding_box()
    assert box is not None
    x, y = box["x"] + box["width"] / 2, box["y"] + 50
    page.mouse.move(x - 15, y + 15)
    page.mouse.down()
    page.mouse.move(x, y, steps=5)
    page.mouse.move(x, y + 150, steps=20)
    page.mouse.up()


def test_launch_stream_results_and_try_it(
    page: Page, app_url: str, worker: None, server_env: dict[str, str]
) -> None:
    run_id = launch(page, app_url, limit=30_000, batch=32)  # ~940 steps: several seconds
    status = page.locator(".st-key-run-status")
    expect(status).to_contain_text(re.compile("queued|running"))
    expect(page.locator(LIVE).first).to_be_visible()
    first = wait_points(page, 1)
    tall_screenshot(page, "train_running")
    grown = wait_points(page, first + 3)
    assert grown > first  # the chart grew without a page reload
    assert run_id in page.url
    expect(page.frame_locator(LIVE).first.locator("canvas").first).to_be_visible()
    live = live_state(page)  # the loss chart holds the store's rows in order: none lost or twice
    assert live["mode"] == "poll" and live["polls"] > 0  # serve.py: it fetches the feed itself
    assert len(live["steps"]) >= first
    assert live["steps"] == loss_rows(server_env, run_id)[0][: len(live["steps"])]

    expect(status).to_contain_text("finished", timeout=120_000)
    wait_idle(page)
    tiles = page.locator(".st-key-final-metrics")
    for label in ("Accuracy", "Precision", "Recall", "F1"):
        expect(tiles).to_contain_text(label)
    accuracy = tiles.locator("[data-testid='stMetricValue']").first.inner_text()
    assert 90 < float(accuracy.rstrip(" %")) <= 100  # far above chance (10 %) on 30,000 digits
    expect(page.locator(".st-key-confusion [data-testid='stPlotlyChart']")).to_be_visible()
    expect(page.locator(".st-key-confusion")).to_contain_text("predicted digit")
    expect(page.locator(".st-key-per-class [data-testid='stPlotlyChart']")).to_be_visible()
    expect(page.locator(".st-key-mistakes [data-testid='stImage'] img").first).to_be_visible()
    expect(page.locator(".st-key-mistakes")).to_contain_text("→")
    assert points(page) == logged_losses(server_env, run_id) > grown  # every row, none twice
    drawn = drawn_loss(page)  # the smoothed line: what the downsampler picks, newest point last
    steps, values = loss_rows(server_env, run_id)
    picked = downsample_indices(steps, smooth(values, 0.6))
    assert drawn["x"] == [steps[i] for i in picked] and drawn["x"][-1] == steps[-1]

    with page.expect_download() as download:
        page.get_by_role("button", name="⬇ Metrics (.csv)").click()
    csv = download.value.path().read_text()
    assert csv.splitlines()[0] == "step,epoch,key,value,time"
    assert ",test_accuracy," in csv
    expect(page.get_by_role("button", name="⬇ Checkpoint (.pt)")).to_be_visible()
    tall_screenshot(page, "train_finished", 3400)

    # Try it: draw a "1" on the canvas (strokes start below the canvas toolbar).
    try_it = page.locator(".st-key-try-it")
    try_it.scroll_into_view_if_needed()
    draw_one(page, try_it)
    expect(try_it).to_contain_text("Prediction:")
    expect(try_it.locator("[data-testid='stPlotlyChart']").first).to_be_visible()
    seen = try_it.locator("[data-testid='stImage'] img").first  # the 28×28 the model got
    expect(seen).to_be_visible()
    page.wait_for_function("img => img.complete && img.naturalWidth > 0", arg=seen.element_handle())
    screenshot(page, "train_try_it_drawn")
    try_it.get_by_role("tab", name=re.compile("Pick a test digit")).click()
    expect(try_it).to_contain_text("true label 7")  # test digit #0 is a 7
    assert_no_exception(page)


def test_reload_and_second_tab_reattach_then_stop(page: Page, app_url: str, worker: None) -> None:
    run_id = launch(page, app_url, limit=60_000, batch=64)  # long enough to still be running
    status = page.locator(".st-key-run-status")
    expect(status).to_contain_text("running", timeout=60_000)
    before = wait_points(page, 2)

    page.reload()  # the run id lives in the URL
    wait_idle(page)
    assert run_id in page.url
    expect(status).to_contain_text("running")
    after = wait_points(page, before + 1)  # still streaming, no gap: all points re-read
    assert after > before

    other = page.context.new_page()  # a second tab (or another user) on the same link
    other.goto(page.url)
    # .first: while a busy server (2 cores, training) first renders a tab, Streamlit can briefly
    # hold the stale and the new chart element side by side until the script run completes.
    expect(other.locator(".st-key-run-status")).to_contain_text("running", timeout=60_000)
    expect(other.locator(LIVE).first).to_be_visible()
    other.close()
    tall_screenshot(page, "train_reloaded_running")

    clicked = time.monotonic()
    page.locator(".st-key-run-status").get_by_role("button", name="⏹ Stop").click()
    expect(status).to_contain_text("stopped", timeout=15_000)
    stopped_after = time.monotonic() - clicked
    assert stopped_after < 6, f"the page showed `stopped` {stopped_after:.1f} s after Stop"
    wait_idle(page)
    expect(page.locator(".st-key-final-metrics")).to_have_count(0)  # no results for a stop
    expect(page.locator(".st-key-loss-chart [data-testid='stPlotlyChart']").first).to_be_visible()
    tall_screenshot(page, "train_stopped")
    assert_no_exception(page)


@pytest.fixture(scope="module")
def plain_app_url(server_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory):
    """``streamlit run app.py`` (no live-feed route) on the same home as ``app_url``."""
    port = free_port()
    log = tmp_path_factory.mktemp("logs") / "plain-streamlit.log"
    with log.open("w") as out:
        proc = subprocess.Popen(streamlit_cmd(port, "app.py"), cwd=ROOT, env=server_env,
                                stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    try:
        wait_http(f"http://127.0.0.1:{port}/_stcore/health", "ok", 90, proc, log)
        yield f"http://127.0.0.1:{port}"
    finally:
        stop(proc)


def feed(app_url: str, run_id: str, query: str = "") -> tuple[int, dict]:
    """GET the run's live feed from serve.py's route: status and JSON body."""
    try:
        with urllib.request.urlopen(f"{app_url}/api/runs/{run_id}/live{query}") as reply:
            return reply.status, json.loads(reply.read())
    except urllib.error.HTTPError as err:
        return err.code, json.loads(err.read())


def test_plain_app_py_pushes_the_feed_that_serve_py_serves(
    page: Page, plain_app_url: str, app_url: str, worker: None, server_env: dict[str, str]
) -> None:
    """Without serve.py's route (``streamlit run app.py``) the fragment pushes the same
    document once a second; the route answers a good poll with the store's rows and a bad one
    with 400 and a message."""
    run_id = launch(page, plain_app_url, limit=30_000, batch=32)
    wait_points(page, 3)
    live = live_state(page)
    assert live["mode"] == "push" and live["polls"] == 0
    steps = loss_rows(server_env, run_id)[0]
    assert len(live["steps"]) >= 3 and live["steps"] == steps[: len(live["steps"])]
    status, doc = feed(app_url, run_id, "?smoothing=0.6")
    assert status == 200 and doc["run"] == run_id and doc["status"] in ("running", "finished")
    served = doc["plots"]["loss-chart"]["data"][0]
    assert served == loss_rows(server_env, run_id)[0][: doc["points"]]
    status, doc = feed(app_url, run_id, "?smoothing=7")
    assert status == 400 and "smoothing" in doc["error"]
    assert feed(app_url, "0123456789ab")[0] == 404
    expect(page.locator(".st-key-run-status")).to_contain_text("finished", timeout=120_000)
    expect(page.locator(".st-key-final-metrics")).to_be_visible()
    assert points(page) == logged_losses(server_env, run_id)
    assert_no_exception(page)


def tiny_finished_run(server_env: dict[str, str], name: str) -> tuple[RunStore, str]:
    """A real 500-digit run trained here, in the app's store."""
    store = RunStore(Path(server_env["CNNLAB_HOME"]) / "runs.db")
    config = TrainConfig(train_limit=500, batch_size=100, name=name)
    run_id = store.create_run(config.to_dict(), name=config.name, model=config.model,
                              params=None, macs=None)  # fmt: skip
    assert loop.train(config, store, run_id).status == "finished"
    return store, run_id


def test_an_open_page_of_a_deleted_run_says_so(
    page: Page, app_url: str, server_env: dict[str, str]
) -> None:
    """Issue 17: a student's open page of a run deleted elsewhere went stale until clicked."""
    store, run_id = tiny_finished_run(server_env, "to be deleted")
    open_app(page, f"{app_url}/Train?run={run_id}")
    expect(page.locator(".st-key-final-metrics")).to_contain_text("Accuracy")
    store.trash_run(run_id)  # as the Runs page (or `cnnlab runs delete`) does it
    expect(page.get_by_text("was deleted")).to_be_visible(timeout=15_000)  # no click, no reload
    expect(page.locator(".st-key-final-metrics")).to_have_count(0)  # no stale results
    assert_no_exception(page)


@pytest.mark.xfail(
    strict=False,
    reason="in clean-clone runs the drawn stroke sometimes misses the canvas (passes alone)",
)
def test_the_canvas_can_be_cleared_and_its_toolbar_has_room(
    page: Page, app_url: str, server_env: dict[str, str]
) -> None:
    """Issue 17: the canvas's toolbar was not visible (it shows only on hover, over the text
    above it). A Clear button is always there; the hover toolbar covers nothing."""
    _, run_id = tiny_finished_run(server_env, "canvas")
    open_app(page, f"{app_url}/Train?run={run_id}")
    try_it = page.locator(".st-key-try-it")
    try_it.scroll_into_view_if_needed()
    clear = try_it.get_by_role("button", name="🗑 Clear")
    expect(clear).to_be_visible()  # without hovering anything
    draw_one(page, try_it)
    drawing = try_it.get_by_role("tabpanel")  # the open tab only (the others are hidden)
    expect(drawing).to_contain_text("Prediction:")
    toolbar = try_it.locator(".dc-toolbar-card")
    expect(toolbar).to_be_visible()  # the mouse is over the canvas
    bar = toolbar.bounding_box()
    assert bar is not None
    for text in try_it.locator("[data-testid='stCaptionContainer']").all():
        other = text.bounding_box()
        if other is None:
            continue
        apart = bar["y"] + bar["height"] <= other["y"] or other["y"] + other["height"] <= bar["y"]
        apart = apart or bar["x"] + bar["width"] <= other["x"]
        assert apart or other["x"] + other["width"] <= bar["x"], "the toolbar covers a caption"
    clear.click()
    expect(drawing).to_contain_text("The prediction appears here once you draw.")
    expect(drawing).not_to_contain_text("Prediction:")
    assert_no_exception(page)
