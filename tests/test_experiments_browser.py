"""The Experiments board in Chromium: an experiment queued for the worker appears on
``?experiment=ID``, fills in as the worker finishes its runs (progress, verdicts, charts), and a
bad launch form shows one inline error, never a traceback.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from browser_helpers import assert_no_exception, screenshot, wait_idle
from playwright.sync_api import Page, expect
from test_experiments import write_mini_mnist

pytestmark = pytest.mark.browser
expect.set_options(timeout=30_000)


@pytest.fixture(scope="module")
def experiments_url(app_url: str) -> str:
    """The Experiments page of the session's app server (tests/conftest.py)."""
    return app_url + "/Experiments"


@pytest.fixture(scope="module")
def queued_experiment(
    server_env: dict[str, str], mnist_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> dict:
    """Regular vs separable small-cnn, one seed, 200 real digits: queued for the worker (as
    ``experiment separable … --background`` does, in this process, without the cost timing)."""
    from cnnlab.experiments.launch import queue_plan
    from cnnlab.experiments.plan import plan_separable
    from cnnlab.training.config import TrainConfig
    from cnnlab.training.store import RunStore

    mini = write_mini_mnist(mnist_path, tmp_path_factory.mktemp("mini-mnist"))
    base = TrainConfig(train_limit=200, data_dir=str(mini))
    plan = plan_separable(base, seeds=1, name="browser: regular vs separable")
    with pytest.MonkeyPatch.context() as mp:
        mp.setenv("CNNLAB_HOME", server_env["CNNLAB_HOME"])
        experiment_id, run_ids = queue_plan(RunStore(), plan)
    return {"experiment_id": experiment_id, "run_ids": run_ids}


def _open(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("[data-testid='stApp']", timeout=90_000)
    wait_idle(page, 120_000)


def test_board_appears_and_fills_as_runs_finish(
    page: Page, experiments_url: str, worker: None, queued_experiment: dict
) -> None:
    experiment_id = queued_experiment["experiment_id"]
    sep = "&" if "?" in experiments_url else "?"
    _open(page, f"{experiments_url}{sep}experiment={experiment_id}")
    board = page.locator(".st-key-exp-board")
    expect(board).to_contain_text("browser: regular vs separable")
    expect(board).to_contain_text("of 2 runs done")
    claims = page.locator(".st-key-exp-claims")
    expect(claims).to_contain_text("Separable convolution cuts the number of parameters")
    assert_no_exception(page)

    # the live fragment reruns the page as the worker finishes the two runs
    expect(board).to_contain_text("2 of 2 runs done", timeout=300_000)
    expect(claims).to_contain_text("holds", timeout=60_000)
    expect(claims).not_to_contain_text("not measured yet", timeout=60_000)  # latency measured
    expect(page.locator("[data-testid='stPlotlyChart']")).to_have_count(4)
    expect(page.get_by_role("button", name="⏹ Stop experiment")).to_be_disabled()
    assert_no_exception(page)
    screenshot(page, "experiments-board")


def test_launch_form_refuses_a_bad_value_in_one_line(page: Page, experiments_url: str) -> None:
    _open(page, experiments_url)
    expect(page.locator(".st-key-exp-preset")).to_contain_text("Part I in one click")
    expect(page.locator(".st-key-exp-preset")).to_contain_text("Estimate:", timeout=120_000)
    page.get_by_text("Design your own experiment").click()
    form = page.locator(".st-key-exp-form")
    form.get_by_label("Kind").click()
    page.get_by_role("option", name="Sweep one option").click()
    wait_idle(page)
    values = form.get_by_label("Values")
    values.fill("1e-3,-1")
    values.press("Enter")
    wait_idle(page)
    form.get_by_role("button", name="Estimate the cost").click()
    wait_idle(page)
    expect(form.locator("[data-testid='stAlert']")).to_contain_text(
        "sweep lr=-1: learning rate must be greater than 0"
    )
    assert_no_exception(page)
    screenshot(page, "experiments-form-error")
