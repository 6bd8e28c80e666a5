"""The watcher of a running training: a thread that reads the stop flag and beats the heartbeat."""

from __future__ import annotations

import threading
import time

from cnnlab.errors import UserError
from cnnlab.training.store import RunStore

WATCH_INTERVAL_S = 0.25  # how often the watcher reads the stop flag


HEARTBEAT_S = 1.0


class Stopped(Exception):
    """Raised inside the loop when the run's stop flag is set."""


class Watcher:
    """A thread that reads the stop flag every 0.25 s and writes the heartbeat every second.

    The loop only checks ``watcher.stop`` (a :class:`threading.Event`): no SQL per step.
    """

    def __init__(self, store: RunStore, run_id: str) -> None:
        self.store, self.run_id = store, run_id
        self.stop = threading.Event()
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._watch, name=f"watch-{run_id}", daemon=True)

    def __enter__(self) -> Watcher:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join(timeout=5)

    def _watch(self) -> None:
        last_beat = 0.0
        while not self._done.wait(WATCH_INTERVAL_S):
            try:
                if self.store.stop_requested(self.run_id):
                    self.stop.set()
                if time.monotonic() - last_beat >= HEARTBEAT_S:
                    self.store.heartbeat(self.run_id)
                    last_beat = time.monotonic()
            except UserError:  # a busy or vanished store: try again next tick
                continue
