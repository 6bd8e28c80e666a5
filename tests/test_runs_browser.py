"""The Runs page in a real browser: runs trained with the CLI on real MNIST subsets are listed
with their numbers, two are overlaid and compared side by side (settings included, bars from 0);
a failed run shows its error text; rename, and delete after a confirmation, then Undo; runs
created by another process appear by themselves while the selection stays."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from pathlib import Path

import pytest
from browser_helpers import assert_no_exception, open_app, screenshot, wait_idle
from grid_helpers import HEADER_PX, ROW_PX, cell, grid_in
from playwright.sync_api import Locator, Page, expect

from cnnlab.training.store import FAILED, RunStore

pytestmark = pytest.mark.browser
expect.set_options(timeout=30_000)

ROOT = Path(__file__).resolve().parents[1]
NAME_COLUMN = 1  # column 0 is the row-selection marker
CLI_RUNS = {
    "cli small-cnn": ["--model", "small-cnn", "--train-limit", "1000", "--batch-size", "50",
                      "--epochs", "2"],
    "cli lenet5": ["--model", "lenet5", "--train-limit", "1000", "--batch-size", "32",
                   "--lr", "3e-3", "--epochs", "2"],
}  # fmt: skip
FAILED_NAME = "broken vgg16"
FAILED_ERROR = "CUDA out of memory. Tried to allocate 2.00 GiB (GPU 0; 8.00 GiB total)"


@pytest.fixture(scope="module")
def cli_runs(server_env: dict[str, str]) -> dict[str, dict]:
    """Two real trainings through ``python -m cnnlab train --json`` (in parallel), and one
    failed run, all in the app's store."""
    procs = {
        name: subprocess.Popen(
            [sys.executable, "-m", "cnnlab", "train", *args, "--name", name, "--json"],
            cwd=ROOT, env=server_env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        for name, args in CLI_RUNS.items()
    }  # fmt: skip
    results = {}
    for name, proc in procs.items():
        out, err = proc.communicate(timeout=300)
        assert proc.returncode == 0, err
        results[name] = json.loads(out.strip().splitlines()[-1])
        assert results[name]["status"] == "finished"
    store = RunStore(Path(server_env["CNNLAB_HOME"]) / "runs.db")
    failed = store.create_run({"model": "vgg16", "input_size": 224, "epochs": 3},
                              name=FAILED_NAME, model="vgg16", params=134_300_362,
                              macs=15_470_264_320)  # fmt: skip
    store.mark_running(failed, pid=os.getpid(), device="cuda")
    store.finish_run(failed, FAILED, FAILED_ERROR)
    results[FAILED_NAME] = {"run_id": failed}
    return results


def row_of(grid: Locator, name: str) -> int:
    """The table row showing run ``name`` (the accessible copy of the canvas grid, which holds
    raw values: 409082, 0.9876)."""
    expect(cell(grid, NAME_COLUMN, 0)).to_be_attached()
    for row in range(40):
        target = cell(grid, NAME_COLUMN, row)
        if not target.count():
            break
        if target.inner_text().strip() == name:
            return row
    raise AssertionError(f"run {name!r} is not in the table")


def toggle_row(page: Page, grid: Locator, name: str) -> None:
    """Click the selection box of a run's row."""
    box = grid.bounding_box()
    assert box is not None
    row = row_of(grid, name)
    page.mouse.click(box["x"] + 18, box["y"] + HEADER_PX + ROW_PX * row + ROW_PX // 2)
    wait_idle(page)


def test_lists_overlays_and_compares_cli_runs(page: Page, app_url: str, cli_runs) -> None:
    open_app(page, f"{app_url}/Runs")
    grid = grid_in(page, "runs-table")
    for name in [*CLI_RUNS, FAILED_NAME]:
        row_of(grid, name)
    row = row_of(grid, "cli small-cnn")
    # the first columns only: the grid draws the columns in sight (owner, experiment: far right)
    texts = [cell(grid, c, row).inner_text() for c in range(1, 8)]
    assert "small-cnn" in texts and "finished" in texts and "409082" in texts
    accuracy = cli_runs["cli small-cnn"]["metrics"]["accuracy"]
    assert any(t and abs(float(t) - accuracy) < 1e-9 for t in texts[5:6])

    for name in CLI_RUNS:
        toggle_row(page, grid, name)
    overlay = page.locator(".st-key-overlay")
    expect(overlay.locator("[data-testid='stPlotlyChart']")).to_be_visible()
    expect(overlay.locator(".legend .traces")).to_have_count(2)
    compare = page.locator(".st-key-compare-metrics")
    for name, result in cli_runs.items():
        if name in CLI_RUNS:
            expect(compare).to_contain_text(name)
            expect(compare).to_contain_text(f"{100 * result['metrics']['accuracy']:.2f} %")
    expect(compare.locator("[data-testid='stPlotlyChart']")).to_be_visible()
    table = compare.locator("[data-testid='stTable']")
    for setting in ("learning rate", "batch size", "optimizer", "schedule", "seed"):
        expect(table.get_by_role("rowheader", name=setting, exact=True)).to_be_visible()
    row = table.get_by_role("row").filter(has=page.get_by_role("rowheader", name="learning rate"))
    expect(row).to_contain_text("0.003")  # lenet5's --lr 3e-3
    expect(compare.locator(".ytick text").first).to_have_text("0")  # the bars start at 0 %

    page.get_by_label("Curve").click()  # the selectbox: switch to test accuracy per epoch
    page.get_by_role("option", name="test accuracy (per epoch)").click()
    wait_idle(page)
    expect(overlay.locator(".legend .traces")).to_have_count(2)
    expect(overlay).to_contain_text("Test accuracy")
    size = page.viewport_size or {"width": 1400, "height": 1000}
    page.set_viewport_size({"width": size["width"], "height": 2400})
    page.wait_for_timeout(600)
    screenshot(page, "runs_overlay")
    page.set_viewport_size(size)
    assert_no_exception(page)


def test_failed_run_error_rename_and_delete(
    page: Page, app_url: str, cli_runs, server_env: dict[str, str]
) -> None:
    open_app(page, f"{app_url}/Runs")
    grid = grid_in(page, "runs-table")
    toggle_row(page, grid, FAILED_NAME)
    actions = page.locator(".st-key-run-actions")
    expect(actions).to_contain_text(FAILED_ERROR)
    wait_idle(page)
    expect(actions.get_by_label("New name")).to_have_value(FAILED_NAME)
    screenshot(page, "runs_failed")

    field = actions.get_by_label("New name")
    field.fill("renamed run")
    actions.get_by_role("button", name="Rename").click()
    wait_idle(page)
    grid = grid_in(page, "runs-table")
    expect(grid.locator("td", has_text="renamed run")).to_have_count(1)
    run_id = cli_runs[FAILED_NAME]["run_id"]
    store = RunStore(Path(server_env["CNNLAB_HOME"]) / "runs.db")
    assert store.get_run(run_id).name == "renamed run"  # type: ignore[union-attr]

    if not page.locator(".st-key-run-actions").count():  # the selection did not survive
        toggle_row(page, grid, "renamed run")
    actions = page.locator(".st-key-run-actions")
    actions.get_by_text("Delete 1 run(s)").click()
    delete = actions.get_by_role("button", name="Delete", exact=True)
    expect(delete).to_be_disabled()  # only after the confirmation box
    actions.get_by_text("Yes, delete renamed run").click()
    wait_idle(page)
    expect(delete).to_be_enabled()
    delete.click()
    wait_idle(page)
    grid = grid_in(page, "runs-table")
    expect(grid.locator("td", has_text="renamed run")).to_have_count(0)
    expect(grid.locator("td", has_text="cli lenet5")).to_have_count(1)
    assert store.get_run(run_id) is None
    assert_no_exception(page)


def test_undo_after_delete(page: Page, app_url: str, cli_runs, server_env: dict[str, str]) -> None:
    store = RunStore(Path(server_env["CNNLAB_HOME"]) / "runs.db")
    run_id = store.create_run({"model": "small-cnn"}, name="undo me", model="small-cnn",
                              params=409_082, macs=1_420_032)  # fmt: skip
    store.cancel(run_id)
    open_app(page, f"{app_url}/Runs")
    grid = grid_in(page, "runs-table")
    toggle_row(page, grid, "undo me")
    actions = page.locator(".st-key-run-actions")
    actions.get_by_text("Delete 1 run(s)").click()
    actions.get_by_text("Yes, delete undo me").click()
    wait_idle(page)
    actions.get_by_role("button", name="Delete", exact=True).click()
    wait_idle(page)
    expect(grid_in(page, "runs-table").locator("td", has_text="undo me")).to_have_count(0)
    assert store.get_run(run_id) is None and store.get_run(run_id, trashed=True) is not None
    bar = page.locator(".st-key-undo-bar")
    expect(bar).to_contain_text("Moved undo me to the trash")
    bar.get_by_role("button", name="Undo").click()
    wait_idle(page)
    expect(grid_in(page, "runs-table").locator("td", has_text="undo me")).to_have_count(1)
    expect(page.locator(".st-key-undo-bar")).to_have_count(0)
    assert store.get_run(run_id) is not None
    expect(page.locator(".st-key-run-actions")).to_be_visible()  # selected again
    expect(page.locator(".st-key-compare-metrics")).to_contain_text("undo me")
    assert_no_exception(page)


def test_runs_from_elsewhere_appear_and_the_selection_stays(
    page: Page, app_url: str, cli_runs, server_env: dict[str, str]
) -> None:
    open_app(page, f"{app_url}/Runs")
    grid = grid_in(page, "runs-table")
    toggle_row(page, grid, "cli lenet5")
    expect(page.get_by_text("Compare 1 run(s)")).to_be_visible()
    # Another process adds runs while the page is open and nothing is training.
    code = (
        "import sys; from cnnlab.training.store import RunStore; s = RunStore(sys.argv[1])\n"
        "for name in ('arrived later', 'arrived later too'):\n"
        "    rid = s.create_run({'model': 'lenet5'}, name=name, model='lenet5', params=1, macs=1)\n"
        "    s.cancel(rid)\n"
    )
    store_path = str(Path(server_env["CNNLAB_HOME"]) / "runs.db")
    subprocess.run([sys.executable, "-c", code, store_path], cwd=ROOT, env=server_env, check=True)
    for name in ("arrived later", "arrived later too"):  # no reload: within a few seconds
        expect(grid.locator("td", has_text=name).first).to_be_attached(timeout=10_000)
    wait_idle(page)
    expect(page.get_by_text("Compare 1 run(s)")).to_be_visible()  # the same run, rows moved
    expect(page.locator(".st-key-compare-metrics")).to_contain_text("cli lenet5")
    expect(page.locator(".st-key-compare-metrics")).not_to_contain_text("arrived later")
    assert_no_exception(page)
