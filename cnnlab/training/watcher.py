"""The watcher of a running training: a thread that reads the stop flag, beats the heartbeat, and
makes a stop land within about a second and a half whatever one training step costs.

A stop is first asked politely: the watcher sets :attr:`Watcher.stop`, which the loop checks
before every step (and every evaluation batch). A step of VGG-16 at 224×224 on a CPU takes ~12 s,
so when the loop has not ended the run within :data:`STOP_GRACE_S`, the watcher records the run
``stopped`` itself (its metrics so far are already in the store) and calls ``on_abandon`` — the
queue worker and the foreground CLI end their process there; an in-process caller lets the loop
run on to its next step boundary, where it raises :class:`Stopped` and records nothing more.
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterator
from typing import TYPE_CHECKING

from cnnlab.errors import UserError
from cnnlab.training.names import STOPPED

if TYPE_CHECKING:
    from cnnlab.training.store import RunStore

WATCH_INTERVAL_S = 0.25  # how often the watcher reads the stop flag
HEARTBEAT_S = 1.0
STOP_GRACE_S = 1.0  # how long the loop gets to reach a step boundary after a stop request

STOPPED_TEXT = "stopped on request"
STOPPED_MID_STEP_TEXT = "stopped on request (mid-step: the training was ended there)"


class Stopped(Exception):
    """Raised inside the loop when the run's stop flag is set."""


class Watcher:
    """A thread that reads the stop flag every 0.25 s and writes the heartbeat every second.

    The loop only checks ``watcher.stop`` (a :class:`threading.Event`): no SQL per step. Whoever
    records how the run ended does so inside :meth:`ending`, so the loop and the watcher never
    both record an end.
    """

    def __init__(
        self,
        store: RunStore,
        run_id: str,
        *,
        on_abandon: Callable[[], None] | None = None,
        grace_s: float = STOP_GRACE_S,
    ) -> None:
        self.store, self.run_id = store, run_id
        self.on_abandon, self.grace_s = on_abandon, grace_s
        self.stop = threading.Event()
        self.abandoned = False  # the watcher recorded the run stopped (the loop did not end it)
        self._ended = False  # the loop recorded how the run ended
        self._ending = threading.Lock()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"watch-{run_id}", daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    @contextlib.contextmanager
    def ending(self) -> Iterator[bool]:
        """Hold while the loop records how the run ended; yields False when the watcher has
        already recorded it ``stopped`` (then the loop records nothing)."""
        with self._ending:
            if self.abandoned:
                yield False
                return
            self._ended = True
            yield True

    def _watch(self) -> None:
        last_beat = 0.0
        asked: float | None = None  # when the watcher saw the stop request
        while not self._done.wait(WATCH_INTERVAL_S):
            try:
                if asked is None and self.store.stop_requested(self.run_id):
                    self.stop.set()
                    asked = time.monotonic()
                overdue = asked is not None and time.monotonic() - asked >= self.grace_s
                if overdue and self._abandon():
                    return
                if time.monotonic() - last_beat >= HEARTBEAT_S:
                    self.store.heartbeat(self.run_id)
                    last_beat = time.monotonic()
            except UserError:  # a busy or vanished store: try again next tick
                continue

    def _abandon(self) -> bool:
        """Record the run stopped unless the loop is ending it; True when the watcher did."""
        with self._ending:
            if self._ended:
                return False
            self.store.finish_run(self.run_id, STOPPED, STOPPED_MID_STEP_TEXT)
            self.abandoned = True
        if self.on_abandon is not None:
            self.on_abandon()
        return True
