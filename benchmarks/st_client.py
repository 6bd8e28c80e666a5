"""A Streamlit websocket client for load tests: one browser session without the browser.

It speaks the app's own protocol (Streamlit's ``BackMsg``/``ForwardMsg`` protobufs over
``/_stcore/stream``, via the ``websockets`` library) the way the web frontend does: a rerun
request with the page's name, the query string and the widget values that changed; the server
answers with deltas until ``script_finished``. It sends the browser's cookies in the handshake
(so ``st.context.cookies`` sees them), keeps each widget's id by its label so a test can press a
button or type a number, follows ``?run=`` changes of the query string, and, like the frontend,
reruns a fragment that asked for ``run_every`` at its interval while the "student" stays on the
page. No JavaScript runs: a component (the cookie writer) renders but never answers, as in a
browser that blocks it.

What it cannot see is what a browser does after the deltas arrive (Plotly drawing, images): a
load test with these clients measures the server, not the students' machines.
"""

from __future__ import annotations

import asyncio
import time
from dataclasses import dataclass, field
from typing import Any

import websockets
from streamlit.proto.BackMsg_pb2 import BackMsg
from streamlit.proto.ForwardMsg_pb2 import ForwardMsg
from streamlit.proto.WidgetStates_pb2 import WidgetState

WIDGETS = ("button", "number_input", "text_input", "selectbox", "slider", "checkbox", "radio")


@dataclass
class RunResult:
    """What one script (or fragment) run sent: its seconds, texts, exceptions and widgets."""

    seconds: float
    status: str  # ScriptFinishedStatus name, or "timeout"
    texts: list[str] = field(default_factory=list)
    exceptions: list[str] = field(default_factory=list)
    headings: list[str] = field(default_factory=list)
    exec_s: float | None = None  # the script's own run time, from the server's page profile


class Session:
    """One browser tab's session on a Streamlit server (``async with Session(...) as s``)."""

    def __init__(self, base_url: str, cookies: dict[str, str] | None = None) -> None:
        self.base_url = base_url.rstrip("/")
        self.cookies = dict(cookies or {})
        self.query_string = ""
        self.page = ""
        self.page_hash = ""  # the page's script hash, from the server (sent with every rerun)
        self.widgets: dict[str, tuple[str, str]] = {}  # label → (widget id, element type)
        self.auto_rerun: dict[str, float] = {}  # fragment id → interval (s)
        self._ws: Any = None
        self._pending: list[WidgetState] = []
        self.trace: list[str] | None = None  # every message kind received, when a list

    async def __aenter__(self) -> Session:
        ws_url = self.base_url.replace("http", "ws", 1) + "/_stcore/stream"
        headers = {"Origin": self.base_url}
        if self.cookies:
            headers["Cookie"] = "; ".join(f"{k}={v}" for k, v in self.cookies.items())
        self._ws = await websockets.connect(
            ws_url, subprotocols=["streamlit"], additional_headers=headers, max_size=2**26,
            open_timeout=120, ping_interval=None,
        )  # fmt: skip
        return self

    async def __aexit__(self, *exc: object) -> None:
        if self._ws is not None:
            await self._ws.close()

    # --- requests -------------------------------------------------------------------------------

    async def open(self, page: str, query_string: str = "", timeout_s: float = 120) -> RunResult:
        """Navigate to a page (its URL path, "" for the home page), as a click in the sidebar."""
        self.page, self.query_string, self.page_hash = page, query_string, ""
        self.widgets.clear()
        self.auto_rerun.clear()
        return await self._rerun(timeout_s=timeout_s)

    def set_number(self, label: str, value: int) -> None:
        """Type a whole number into the number input with this label (sent with the next run)."""
        widget_id, _ = self.widgets[label]
        self._pending.append(WidgetState(id=widget_id, int_value=value))

    async def click(self, label: str, timeout_s: float = 120) -> RunResult:
        """Press the button with this label (with any pending widget values)."""
        widget_id, _ = self.widgets[label]
        self._pending.append(WidgetState(id=widget_id, trigger_value=True))
        return await self._rerun(timeout_s=timeout_s)

    async def stay(self, seconds: float, on_tick: Any = None) -> list[RunResult]:
        """Stay on the page for ``seconds``, rerunning its auto-rerun fragments at their interval
        (what the browser does while a live chart is open); returns those fragment runs."""
        runs: list[RunResult] = []
        end = time.monotonic() + seconds
        while (left := end - time.monotonic()) > 0:
            if not self.auto_rerun:
                await asyncio.sleep(left)
                break
            fragment, interval = next(iter(self.auto_rerun.items()))
            await asyncio.sleep(min(interval, left))
            if time.monotonic() >= end:
                break
            run = await self._rerun(fragment_id=fragment, timeout_s=60)
            runs.append(run)
            if on_tick is not None:
                on_tick(run)
        return runs

    async def _rerun(self, fragment_id: str = "", timeout_s: float = 120) -> RunResult:
        msg = BackMsg()
        state = msg.rerun_script
        state.query_string = self.query_string
        state.page_name = self.page
        state.page_script_hash = self.page_hash
        if fragment_id:
            state.fragment_id = fragment_id
            state.is_auto_rerun = True
        state.widget_states.widgets.extend(self._pending)
        self._pending = []
        start = time.monotonic()
        await self._ws.send(msg.SerializeToString())
        result = RunResult(seconds=0.0, status="timeout")
        try:
            await asyncio.wait_for(self._read_until_finished(result), timeout_s)
        except TimeoutError:
            result.status = "timeout"
        result.seconds = time.monotonic() - start
        return result

    # --- answers --------------------------------------------------------------------------------

    async def _read_until_finished(self, result: RunResult) -> None:
        registered: dict[str, float] = {}  # the auto-reruns this run asked for
        while True:
            fwd = ForwardMsg()
            fwd.ParseFromString(await self._ws.recv())
            kind = fwd.WhichOneof("type")
            if self.trace is not None:
                self.trace.append(kind)
            if kind == "navigation":  # the page st.navigation picked: rerun that one
                self.page_hash = fwd.navigation.page_script_hash
            elif kind == "delta":
                self._on_delta(fwd, result)
            elif kind == "page_profile":
                result.exec_s = fwd.page_profile.exec_time / 1000
            elif kind == "page_info_changed":
                self.query_string = fwd.page_info_changed.query_string
            elif kind == "auto_rerun":
                registered[fwd.auto_rerun.fragment_id] = fwd.auto_rerun.interval
            elif kind == "stop_auto_rerun":
                for stopped in fwd.stop_auto_rerun.fragment_ids:
                    registered.pop(stopped, None)
                    self.auto_rerun.pop(stopped, None)
            elif kind == "page_not_found":
                result.exceptions.append(f"page not found: {fwd.page_not_found.page_name}")
            elif kind == "script_finished":
                result.status = ForwardMsg.ScriptFinishedStatus.Name(fwd.script_finished)
                if fwd.script_finished == ForwardMsg.FINISHED_EARLY_FOR_RERUN:
                    continue
                if fwd.script_finished == ForwardMsg.FINISHED_SUCCESSFULLY:
                    self.auto_rerun = registered  # a full run: only what it asked for now
                else:
                    self.auto_rerun.update(registered)
                return

    def _on_delta(self, fwd: ForwardMsg, result: RunResult) -> None:
        delta = fwd.delta
        if delta.WhichOneof("type") != "new_element":
            return
        element = delta.new_element
        kind = element.WhichOneof("type")
        if kind == "exception":
            exc = element.exception
            result.exceptions.append(f"{exc.type}: {exc.message}"[:300])
        elif kind in ("markdown", "alert", "text"):
            result.texts.append(getattr(element, kind).body)
        elif kind == "heading":
            result.headings.append(element.heading.body)
        elif kind in WIDGETS:
            widget = getattr(element, kind)
            self.widgets[widget.label] = (widget.id, kind)
