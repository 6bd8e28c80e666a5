"""Concurrency: 4 runs queued at once on 2 worker processes while 3 browser sessions poll the
Train and Runs pages. Every run finishes; metric rows are counted straight from SQLite (none
missing, none duplicated); the pages keep answering and show every point the store holds.

The short version of ``benchmarks/soak.py`` (same code); ``pytest -s`` prints its counts.
"""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path

import pytest

pytestmark = pytest.mark.browser

SOAK = Path(__file__).resolve().parents[1] / "benchmarks" / "soak.py"


def load_soak():  # type: ignore[no-untyped-def]
    spec = importlib.util.spec_from_file_location("cnnlab_soak", SOAK)
    assert spec and spec.loader
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def test_four_runs_two_workers_three_sessions(browser) -> None:  # type: ignore[no-untyped-def]
    soak = load_soak()
    result = soak.soak(
        browser, runs=4, workers=2, sessions=3, minutes=0, train_limit=1000, epochs=2, batch=50
    )
    print("\nCONCURRENCY " + json.dumps(result))
    assert result["runs"] == 4 and result["finished"] == 4, result
    assert result["statuses"] == ["finished"]
    assert result["metric_rows"] == result["expected_rows"] > 4 * (3 * 6 + 2 * 2 + 4), result
    assert result["missing"] == 0 and result["duplicates"] == 0, result
    assert result["integrity"] == "ok"
    assert result["page_exceptions"] == 0
    assert result["page_points_match_store"] is True
    assert result["poll_rounds"] >= 1
    # responsive: a full page load (script run included) while two trainings share the CPU
    assert result["max_page_load_s"] < 30, result


def test_expected_steps_follow_the_engine_rule() -> None:
    soak = load_soak()
    required, ends, last = soak.expected_steps(1000, 2, 50)
    assert last == 40 and ends == {20, 40} and required == {1, 20, 40}
    required, ends, last = soak.expected_steps(60_000, 3, 32)
    assert last == 1875 * 3 and required == {1, 1875, 3750, 5625}
