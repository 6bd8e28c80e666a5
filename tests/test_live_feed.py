"""live_feed: the polled live document carries exactly the store's rows (the same charts the
page would push), answers bad values with 400 and a missing run with 404 without touching
anything, and serves every tab of a process from one refresh per run and smoothing."""

from __future__ import annotations

import json
import os
import threading

import pytest
from test_live_plot import _curves

from cnnlab.errors import UserError
from cnnlab.training.store import RunStore
from cnnlab.views import live_feed, live_plot
from cnnlab.views import train as tv
from cnnlab.views.runview import Curves


class Clock:
    """A hand-moved monotonic clock: freshness is decided by it, not by the test's speed."""

    def __init__(self) -> None:
        self.now = 100.0

    def __call__(self) -> float:
        return self.now


@pytest.fixture
def store(tmp_path) -> RunStore:
    return RunStore(tmp_path / "runs.db")


def running(store: RunStore, epochs: int = 2) -> str:
    run_id = store.create_run({"epochs": epochs, "model": "small-cnn"}, name="r",
                              model="small-cnn", params=None, macs=None)  # fmt: skip
    assert store.mark_running(run_id, os.getpid(), "cpu")
    return run_id


def feeds(store: RunStore, clock: Clock | None = None) -> live_feed.LiveFeeds:
    return live_feed.LiveFeeds(lambda: store, clock=clock or Clock())


def get(feed: live_feed.LiveFeeds, run_id: str, smoothing: str | None = "0.6",
        since: str | None = None) -> tuple[int, dict]:  # fmt: skip
    reply = feed.reply(run_id, smoothing, since)
    return reply.status, json.loads(reply.body)


def test_the_document_holds_the_stores_rows_as_the_pushed_charts(store: RunStore) -> None:
    run_id = running(store)
    curves = _curves(store, run_id)  # 40 steps, two test accuracies
    status, doc = get(feeds(store), run_id)
    assert status == 200
    assert doc["run"] == run_id and doc["status"] == "running" and doc["active"] is True
    assert doc["points"] == 40 and doc["version"] == curves.last_id
    expected = live_plot.live_plots(curves, 2, 0.6)
    assert doc["plots"] == json.loads(json.dumps(expected))  # what the page would push
    assert doc["plots"]["loss-chart"]["data"][0] == list(range(1, 41))
    view = tv.live_view(store, store.require_run(run_id), Curves(run_id),
                        page_status="running", smoothing=0.6)  # fmt: skip
    pushed = live_feed.feed_document(run_id, view, curves.last_id)
    assert {k: v for k, v in doc.items() if k != "progress_text"} == {
        k: v for k, v in json.loads(json.dumps(pushed)).items() if k != "progress_text"
    }


def test_a_poll_that_has_the_version_gets_no_plots_until_new_rows(store: RunStore) -> None:
    run_id = running(store)
    _curves(store, run_id, steps=10)
    clock = Clock()
    feed = feeds(store, clock)
    _, first = get(feed, run_id)
    _, same = get(feed, run_id, since=str(first["version"]))
    assert same["plots"] is None and same["version"] == first["version"]
    store.add_metrics(run_id, [(11, 0.55, "loss", 0.1)])
    clock.now += live_feed.FRESH_S
    _, grown = get(feed, run_id, since=str(first["version"]))
    assert grown["version"] > first["version"] and grown["points"] == 11
    assert grown["plots"]["loss-chart"]["data"][0][-1] == 11


def test_many_tabs_cost_one_refresh_per_run_smoothing_and_fresh_window(store: RunStore) -> None:
    run_id = running(store)
    _curves(store, run_id, steps=20)
    clock = Clock()
    feed = feeds(store, clock)
    bodies = [feed.reply(run_id, "0.6", None).body for _ in range(30)]  # 30 tabs, one instant
    assert feed.refreshes == 1 and len(set(bodies)) == 1
    threads = [threading.Thread(target=feed.reply, args=(run_id, "0.6", None)) for _ in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert feed.refreshes == 1  # concurrent tabs too
    get(feed, run_id, smoothing="0")  # another smoothing is another document
    assert feed.refreshes == 2
    clock.now += live_feed.FRESH_S
    get(feed, run_id)
    assert feed.refreshes == 3


def test_an_ended_run_says_so_and_a_deleted_one_is_404(store: RunStore) -> None:
    run_id = running(store)
    _curves(store, run_id, steps=5)
    clock = Clock()
    feed = feeds(store, clock)
    store.finish_run(run_id, "finished")
    status, doc = get(feed, run_id)
    assert status == 200 and doc["status"] == "finished" and doc["active"] is False
    assert doc["fraction"] == 1.0 and doc["plots"]["loss-chart"]["data"][0] == [1, 2, 3, 4, 5]
    store.delete_run(run_id)
    clock.now += live_feed.FRESH_S
    status, doc = get(feed, run_id)
    assert status == 404 and doc["status"] == "missing" and "not in the run store" in doc["error"]


@pytest.mark.parametrize(
    ("raw_id", "smoothing", "since", "says"),
    [
        ("abc", "0.6", None, "12 hex digits"),
        ("ABCDEF123456/../x", "0.6", None, "12 hex digits"),
        ("<script>", None, None, "12 hex digits"),
        (None, "0.6", None, "12 hex digits"),
        ("0123456789ab", "nan", None, "smoothing"),
        ("0123456789ab", "inf", None, "smoothing"),
        ("0123456789ab", "-0.1", None, "smoothing"),
        ("0123456789ab", "0.96", None, "smoothing"),
        ("0123456789ab", "1e400", None, "smoothing"),
        ("0123456789ab", "lots", None, "smoothing"),
        ("0123456789ab", "0.6", "-1", "since"),
        ("0123456789ab", "0.6", "1.5", "since"),
        ("0123456789ab", "0.6", "9" * 40, "since"),
    ],
)
def test_bad_values_get_400_with_a_message_and_read_nothing(
    store: RunStore, raw_id: str, smoothing: str | None, since: str | None, says: str
) -> None:
    feed = feeds(store)
    reply = feed.reply(raw_id, smoothing, since)  # type: ignore[arg-type]
    doc = json.loads(reply.body)
    assert reply.status == 400 and doc["status"] == "bad-request" and says in doc["error"]
    assert feed.refreshes == 0


def test_an_unknown_run_is_404(store: RunStore) -> None:
    status, doc = get(feeds(store), "0123456789ab")
    assert status == 404 and doc["status"] == "missing"


def test_an_unreadable_store_is_503_and_is_reopened_next_time(store: RunStore) -> None:
    run_id = running(store)
    opened = []

    def open_store() -> RunStore:
        opened.append(1)
        if len(opened) == 1:
            raise UserError("disk on fire")
        return store

    feed = live_feed.LiveFeeds(open_store, clock=Clock())
    reply = feed.reply(run_id, None, None)
    assert reply.status == 503 and "disk on fire" in json.loads(reply.body)["error"]
    assert feed.reply(run_id, None, None).status == 200 and len(opened) == 2


def test_smoothing_and_since_parse_to_their_values() -> None:
    assert live_feed.parse_smoothing(None) == live_feed.parse_smoothing("") == 0.6
    assert live_feed.parse_smoothing("0.25") == 0.25 and live_feed.parse_smoothing("0") == 0
    assert live_feed.parse_since(None) is None and live_feed.parse_since("42") == 42


def test_the_feed_address_follows_the_base_path() -> None:
    assert live_feed.feed_url("0123456789ab") == "/api/runs/0123456789ab/live"
    assert live_feed.feed_url("0123456789ab", "/lab/") == "/lab/api/runs/0123456789ab/live"


def test_old_runs_are_dropped_beyond_the_limit(store: RunStore) -> None:
    feed = live_feed.LiveFeeds(lambda: store, clock=Clock(), max_runs=2)
    ids = [running(store) for _ in range(3)]
    for run_id in ids:
        assert feed.reply(run_id, None, None).status == 200
    assert list(feed._runs) == ids[1:]
