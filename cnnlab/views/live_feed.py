"""The live part of a running run's Train page as one JSON document: progress, the three live
charts (:mod:`cnnlab.views.live_plot`) and the point count, for the browser's live component.

Two ways it reaches the browser, one document and one drawing script either way:

- **polled** (``make run`` serves ``serve.py``, which mounts :data:`FEED_PATH`): the component
  fetches ``/api/runs/<id>/live`` itself, twice a second, and the page's fragment does not rerun
  per tick (it reruns only when the component says the run's status changed). On a bare page
  that cost 0.03-0.04 Chromium cores per tab against 0.13 for a 1 Hz fragment (README,
  Performance). :class:`LiveFeeds` serves every tab of a server process from one refresh per
  run (and smoothing) at most every :data:`FRESH_S`: N watchers cost one store read, not N.
- **pushed** (``streamlit run app.py``, Streamlit's AppTest): no route, so the fragment reruns
  once a second and hands the same document to the component as an argument.
"""

from __future__ import annotations

import json
import math
import threading
import time
from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

from cnnlab.errors import UserError
from cnnlab.training.store import Run, RunStore
from cnnlab.views import live_plot, runview
from cnnlab.views import train as tv

FEED_PATH = "/api/runs/{run_id}/live"
"""The route :func:`cnnlab.views.live_routes.routes` mounts (``?smoothing=0.6&since=<version>``)."""
FRESH_S = 0.25
"""A run's document is rebuilt at most this often per smoothing; every tab in between gets it."""
POLL_MS = 500
"""How often the component fetches the document (the worker records up to five rows a second)."""
MAX_SMOOTHING = 0.95  # the page's slider: 0 to 0.95 in steps of 0.05
MAX_RUNS = 64  # runs kept warm per server process (least recently watched dropped first)

_mounted = False  # set once the route is mounted in this process (serve.py)


def mark_mounted() -> None:
    """Record that this server process serves :data:`FEED_PATH` (called by the route setup)."""
    global _mounted
    _mounted = True


def mounted() -> bool:
    """Whether the component can poll :data:`FEED_PATH` here (else the page pushes the feed)."""
    return _mounted


def feed_url(run_id: str, base_path: str = "") -> str:
    """The document's address for ``run_id`` (``base_path``: Streamlit's ``server.baseUrlPath``)."""
    base = base_path.strip("/")
    return (f"/{base}" if base else "") + FEED_PATH.format(run_id=run_id)


def feed_document(run_id: str, view: tv.LiveView, version: int) -> dict[str, Any]:
    """What the component draws: ``version`` (the newest metric row's id) changes exactly when
    the curves do, so a poll that already has it gets ``plots: null`` and redraws nothing."""
    return {
        "run": run_id,
        "status": view.status,
        "stop_requested": view.stop_requested,
        "active": view.active,
        "fraction": view.fraction,
        "progress_text": view.progress_text,
        "points": view.points,
        "version": version,
        "plots": view.plots or None,
    }


def parse_smoothing(raw: str | None) -> float:
    """The ``smoothing`` query value: 0 to 0.95 (two decimals), 0.6 when absent."""
    if raw is None or raw == "":
        return 0.6
    try:
        value = float(raw)
    except ValueError:
        raise UserError("smoothing must be a number from 0 to 0.95") from None
    if not math.isfinite(value) or not 0 <= value <= MAX_SMOOTHING:
        raise UserError("smoothing must be a number from 0 to 0.95")
    return round(value, 2)


def parse_since(raw: str | None) -> int | None:
    """The ``since`` query value: the version the browser already drew (a whole number ≥ 0)."""
    if raw is None or raw == "":
        return None
    if not raw.isdigit() or len(raw) > 18:
        raise UserError("since must be a whole number (the version the chart already has)")
    return int(raw)


@dataclass
class _Watched:
    """One run's state shared by every tab that watches it."""

    curves: runview.Curves
    lock: threading.Lock = field(default_factory=threading.Lock)
    built: dict[float, tuple[float, dict[str, Any], bytes]] = field(default_factory=dict)
    """smoothing → (when built, the document without its plots, the plots as JSON)."""
    plots: dict[float, tuple[int, bytes]] = field(default_factory=dict)
    """smoothing → (the newest row's id, the three charts as JSON)."""


@dataclass(frozen=True)
class Reply:
    """An HTTP reply: status code and JSON body."""

    status: int
    body: bytes


def _no_charts(*_: Any) -> dict[str, Any]:
    """The live view's chart builders here: the feed draws its charts once per new row."""
    return {}


def _error(status: int, message: str, state: str) -> Reply:
    return Reply(status, json.dumps({"error": message, "status": state}).encode())


class LiveFeeds:
    """The polled documents of one server process (thread-safe: the route runs in a pool)."""

    def __init__(
        self,
        open_store: Callable[[], RunStore] = RunStore,
        *,
        fresh_s: float = FRESH_S,
        max_runs: int = MAX_RUNS,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self._open_store = open_store
        self._store: RunStore | None = None
        self._fresh_s = fresh_s
        self._max_runs = max_runs
        self._clock = clock
        self._runs: OrderedDict[str, _Watched] = OrderedDict()
        self._lock = threading.Lock()
        self.refreshes = 0  # store reads made (one per run, smoothing and FRESH_S at most)

    def _watched(self, run_id: str) -> _Watched:
        with self._lock:
            watched = self._runs.get(run_id)
            if watched is None:
                watched = self._runs[run_id] = _Watched(runview.Curves(run_id))
                while len(self._runs) > self._max_runs:
                    self._runs.popitem(last=False)
            self._runs.move_to_end(run_id)
            return watched

    def store(self) -> RunStore:
        with self._lock:
            if self._store is None:
                self._store = self._open_store()
            return self._store

    def reply(self, raw_id: str, raw_smoothing: str | None, raw_since: str | None) -> Reply:
        """The document for ``GET /api/runs/<raw_id>/live?smoothing=…&since=…``: 200 with it;
        400 for a bad value, 404 for a run that is not there, 503 when the store is unreadable
        (each with ``{"error", "status"}``)."""
        run_id = runview.parse_run_id(raw_id)
        if run_id is None:
            return _error(400, "the run id must be 12 hex digits", "bad-request")
        try:
            smoothing, since = parse_smoothing(raw_smoothing), parse_since(raw_since)
        except UserError as err:
            return _error(400, str(err), "bad-request")
        watched = self._watched(run_id)
        with watched.lock:
            built = watched.built.get(smoothing)
            if built is None or self._clock() - built[0] >= self._fresh_s:
                try:
                    built = self._refresh(watched, smoothing)
                except UserError as err:
                    self._store = None  # reopened next time (a file that came back, a server)
                    return _error(503, f"The run store cannot be read: {err}", "unreadable")
                if built is None:
                    with self._lock:
                        self._runs.pop(run_id, None)
                    return _error(404, "This run is not in the run store (deleted?).", "missing")
        _, head, plots = built
        fresh = since is None or since != head["version"]
        text = json.dumps(head, allow_nan=False).encode()
        return Reply(200, b'{"plots":' + (plots if fresh else b"null") + b"," + text[1:])

    def _refresh(
        self, watched: _Watched, smoothing: float
    ) -> tuple[float, dict[str, Any], bytes] | None:
        store = self.store()
        run: Run | None = store.get_run(watched.curves.run_id)
        if run is None:
            return None
        self.refreshes += 1
        curves = watched.curves
        view = tv.live_view(store, run, curves, page_status=run.status, smoothing=smoothing,
                            plots=_no_charts, charts=_no_charts)  # fmt: skip
        cached = watched.plots.get(smoothing)
        if cached is None or cached[0] != curves.last_id:  # new rows: draw them, once
            drawn = live_plot.live_plots(curves, run.config.get("epochs"), smoothing)
            cached = (curves.last_id, json.dumps(drawn, allow_nan=False).encode())
            watched.plots[smoothing] = cached
        document = feed_document(run.id, view, curves.last_id)
        document.pop("plots")
        built = (self._clock(), document, cached[1])
        watched.built[smoothing] = built
        return built
