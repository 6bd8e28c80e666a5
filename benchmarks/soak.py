"""Soak: many runs queued at once on several workers while browser sessions poll the pages.

Starts, on a fresh temporary ``CNNLAB_HOME``, the real app (``streamlit run serve.py``, as
``make run``) and a real consumer (``python -m cnnlab worker --workers W``); queues ``--runs``
small-cnn runs at once (again and again for ``--minutes``); keeps ``--sessions`` browser
sessions (Chromium) on the Train page of running runs and on the Runs page, reloading them in
turn. At the end it audits the run store: every run finished, each logged step holds all its
metric rows (none missing), no (run, step, key) twice (none duplicated), and each Train page
shows as many points as the store holds. Prints one JSON object::

    python benchmarks/soak.py [--runs 4] [--workers 2] [--sessions 3] [--minutes 0] [--json]

``tests/test_concurrency.py`` runs the short version of the same scenario in ``make test``.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import signal
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

CHROMIUM = os.environ.get("CNNLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
STEP_KEYS = ("loss", "train_accuracy", "lr", "images_per_second", "eta_seconds", "progress")
EPOCH_KEYS = ("test_loss", "test_accuracy")
FINAL_KEYS = ("accuracy", "precision", "recall", "f1")


# ------------------------------------------------------------------------------- processes


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@dataclass
class Stack:
    """The app and the consumer on one CNNLAB_HOME."""

    home: Path
    url: str
    env: dict[str, str]
    procs: list[subprocess.Popen[bytes]] = field(default_factory=list)


def _wait_ok(url: str, proc: subprocess.Popen[bytes], log: Path, timeout_s: float = 120) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise RuntimeError(f"the app exited early:\n{log.read_text()[-3000:]}")
        with contextlib.suppress(OSError), urllib.request.urlopen(url, timeout=2) as resp:
            if b"ok" in resp.read():
                return
        time.sleep(0.3)
    raise RuntimeError(f"{url} did not answer in {timeout_s} s")


@contextlib.contextmanager
def stack(workers: int, home: Path | None = None) -> Iterator[Stack]:
    """Start the app and a consumer with ``workers`` process workers; stop both at the end."""
    with contextlib.ExitStack() as exits:
        if home is None:
            home = Path(exits.enter_context(tempfile.TemporaryDirectory(prefix="cnnlab-soak-")))
        env = dict(os.environ, CNNLAB_HOME=str(home), CNNLAB_OFFLINE="1", PYTHONUNBUFFERED="1")
        env.setdefault("CNNLAB_DATA_DIR", str(ROOT.parent / "shared" / "data" / "mnist"))
        port = free_port()
        logs = home / "logs"
        logs.mkdir(exist_ok=True)
        app_log, worker_log = logs / "streamlit.log", logs / "worker.log"
        st = Stack(home=home, url=f"http://127.0.0.1:{port}", env=env)
        commands = (
            ([sys.executable, "-m", "streamlit", "run", "serve.py", "--server.headless", "true",
              "--server.port", str(port), "--server.address", "127.0.0.1",
              "--browser.gatherUsageStats", "false", "--server.fileWatcherType", "none"],
             app_log),
            ([sys.executable, "-m", "cnnlab", "worker", "--workers", str(workers)], worker_log),
        )  # fmt: skip
        try:
            for argv, log in commands:
                with log.open("wb") as out:
                    st.procs.append(subprocess.Popen(argv, cwd=ROOT, env=env, stdout=out,
                                                     stderr=subprocess.STDOUT,
                                                     start_new_session=True))  # fmt: skip
            _wait_ok(f"{st.url}/_stcore/health", st.procs[0], app_log)
            yield st
        finally:
            for proc in st.procs:
                with contextlib.suppress(ProcessLookupError):
                    os.killpg(proc.pid, signal.SIGTERM)
            for proc in st.procs:
                try:
                    proc.wait(timeout=15)
                except subprocess.TimeoutExpired:
                    os.killpg(proc.pid, signal.SIGKILL)
                    proc.wait()


# ------------------------------------------------------------------------------- runs


def queue_runs(st: Stack, n: int, train_limit: int, epochs: int, batch: int) -> list[str]:
    """Queue ``n`` small-cnn runs at once (via ``cnnlab.training.queue.enqueue``, as the page)."""
    os.environ["CNNLAB_HOME"] = str(st.home)
    from cnnlab.training.config import TrainConfig
    from cnnlab.training.queue import enqueue
    from cnnlab.training.store import RunStore

    store = RunStore()
    config = TrainConfig(train_limit=train_limit, epochs=epochs, batch_size=batch, lr=3e-3)
    return [enqueue(config.with_(name=f"soak {i}", seed=i), store) for i in range(n)]


def expected_steps(n_train: int, epochs: int, batch: int) -> tuple[set[int], set[int], int]:
    """(steps that must be logged, epoch-end steps, last step) by the engine's logging rule.

    The engine logs the first step, each epoch's last step, and in between at most every
    ``total // LOG_POINTS`` steps and five times a second (so which middle steps depends on
    the speed); every logged step holds all of :data:`STEP_KEYS`, written in one transaction.
    """
    per_epoch = max(1, n_train // batch)
    total = per_epoch * epochs
    ends = {per_epoch * (e + 1) for e in range(epochs)}
    return {1} | ends, ends, total


def audit(home: Path, run_ids: list[str], train_limit: int, epochs: int, batch: int) -> dict:
    """Count metric rows straight from the SQLite file: missing and duplicated rows."""
    required, ends, last = expected_steps(train_limit, epochs, batch)
    db = sqlite3.connect(f"file:{home / 'runs.db'}?mode=ro", uri=True)
    try:
        statuses = dict(db.execute(
            f"SELECT id, status FROM runs WHERE id IN ({','.join('?' * len(run_ids))})", run_ids
        ).fetchall())  # fmt: skip
        rows = expected = missing = duplicates = 0
        for run_id in run_ids:
            found = db.execute(
                "SELECT step, key, COUNT(*) FROM metrics WHERE run_id = ? GROUP BY step, key",
                (run_id,),
            ).fetchall()
            have = {(step, key) for step, key, _ in found}
            logged = required | {step for step, _ in have}
            if not logged <= set(range(1, last + 1)):
                missing += len(logged - set(range(1, last + 1)))  # a step beyond the end
            duplicates += sum(count - 1 for _, _, count in found)
            rows += sum(count for _, _, count in found)
            want = {(s, k) for s in logged for k in STEP_KEYS}
            want |= {(s, k) for s in ends for k in EPOCH_KEYS}
            want |= {(last, k) for k in FINAL_KEYS}
            missing += len(want - have)
            extra_final = {(s, k) for s, k in have - want if s == last}  # other final scalars
            expected += len(want) + len(extra_final)
            unexpected = have - want - extra_final
            missing += len(unexpected)  # a row at a step that should not exist counts as wrong
        integrity = db.execute("PRAGMA integrity_check").fetchone()[0]
    finally:
        db.close()
    return {
        "runs": len(run_ids),
        "finished": sum(1 for r in run_ids if statuses.get(r) == "finished"),
        "statuses": sorted(set(statuses.values())),
        "metric_rows": rows,
        "expected_rows": expected,
        "missing": missing,
        "duplicates": duplicates,
        "integrity": integrity,
    }


# ------------------------------------------------------------------------------- browsers


class Pollers:
    """``sessions`` browser sessions, each on its own context (cookies, websocket)."""

    def __init__(self, browser: Any, url: str, run_ids: list[str], sessions: int) -> None:
        self.contexts = [browser.new_context(viewport={"width": 1300, "height": 900})
                         for _ in range(sessions)]  # fmt: skip
        self.pages = [c.new_page() for c in self.contexts]
        self.urls = []
        for i, _ in enumerate(self.pages):
            if i == len(self.pages) - 1:
                self.urls.append(f"{url}/Runs")
            else:
                self.urls.append(f"{url}/Train?run={run_ids[i % len(run_ids)]}")
        self.latencies: list[float] = []
        self.errors: list[str] = []
        for page, target in zip(self.pages, self.urls, strict=True):
            self._load(page, target)

    def _load(self, page: Any, target: str) -> None:
        t0 = time.perf_counter()
        page.goto(target)
        page.wait_for_selector("[data-testid='stApp']", timeout=90_000)
        page.wait_for_selector(
            "[data-testid='stApp'][data-test-script-state='notRunning']", timeout=90_000
        )
        self.latencies.append(time.perf_counter() - t0)
        shown = page.locator("[data-testid='stException']")
        if shown.count():
            self.errors.append(shown.first.inner_text()[:300])

    def poll_once(self) -> None:
        """Reload every session in turn, timing each until the script run is done."""
        for page, target in zip(self.pages, self.urls, strict=True):
            self._load(page, target)

    def points(self, index: int) -> int | None:
        """The "N points recorded" count of a Train session: the live component's while the
        run is active, the caption under the finished charts after (None when neither shows)."""
        page = self.pages[index]
        box = page.locator(".st-key-run-points")
        if box.count():
            return int(box.inner_text().split()[0].replace(",", ""))
        if not page.locator(".st-key-live-run iframe").count():
            return None
        text = page.frame_locator(".st-key-live-run iframe").first.locator("#points").inner_text()
        return int(text.split()[0].replace(",", "")) if text.strip() else None

    def close(self) -> None:
        for context in self.contexts:
            context.close()


def wait_done(home: Path, run_ids: list[str], pollers: Pollers | None, timeout_s: float) -> int:
    """Poll the pages until every run is over; returns how many polling rounds ran."""
    db = home / "runs.db"
    rounds = 0
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        with contextlib.closing(sqlite3.connect(f"file:{db}?mode=ro", uri=True)) as con:
            marks = ",".join("?" * len(run_ids))
            active = con.execute(
                f"SELECT COUNT(*) FROM runs WHERE id IN ({marks}) AND status IN"
                " ('queued', 'running')",
                run_ids,
            ).fetchone()[0]
        if not active:
            return rounds
        if pollers is not None:
            pollers.poll_once()
            rounds += 1
        time.sleep(1.0)
    raise TimeoutError(f"runs still active after {timeout_s} s")


def page_points_match(pollers: Pollers, home: Path, run_ids: list[str]) -> bool:
    """Each Train session, reloaded after the end, shows exactly the store's loss rows."""
    pollers.poll_once()
    with contextlib.closing(sqlite3.connect(f"file:{home / 'runs.db'}?mode=ro", uri=True)) as con:
        for i, target in enumerate(pollers.urls):
            if "/Train?run=" not in target:
                continue
            run_id = target.rsplit("=", 1)[1]
            want = con.execute(
                "SELECT COUNT(*) FROM metrics WHERE run_id = ? AND key = 'loss'", (run_id,)
            ).fetchone()[0]
            if pollers.points(i) != want:
                return False
    return True


# ------------------------------------------------------------------------------- main


def soak(browser: Any, *, runs: int, workers: int, sessions: int, minutes: float,
         train_limit: int, epochs: int, batch: int) -> dict[str, Any]:  # fmt: skip
    """The whole scenario; returns the JSON-able counts."""
    t0 = time.perf_counter()
    with stack(workers) as st:
        all_ids: list[str] = []
        rounds = 0
        pollers: Pollers | None = None
        try:
            while True:
                ids = queue_runs(st, runs, train_limit, epochs, batch)
                all_ids += ids
                if pollers is None and browser is not None and sessions:
                    pollers = Pollers(browser, st.url, ids, sessions)
                rounds += wait_done(st.home, ids, pollers, timeout_s=600)
                if time.perf_counter() - t0 >= minutes * 60:
                    break
            matches = page_points_match(pollers, st.home, all_ids) if pollers else None
            counts = audit(st.home, all_ids, train_limit, epochs, batch)
        finally:
            if pollers is not None:
                pollers.close()
    latencies = pollers.latencies if pollers else []
    return {
        **counts,
        "workers": workers,
        "sessions": sessions,
        "poll_rounds": rounds,
        "page_loads": len(latencies),
        "median_page_load_s": round(statistics.median(latencies), 3) if latencies else None,
        "max_page_load_s": round(max(latencies), 3) if latencies else None,
        "page_exceptions": len(pollers.errors) if pollers else 0,
        "page_errors": pollers.errors if pollers else [],
        "page_points_match_store": matches,
        "seconds": round(time.perf_counter() - t0, 1),
    }


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=int, default=4, help="runs queued at once (each round)")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--sessions", type=int, default=3, help="browser sessions polling")
    parser.add_argument("--minutes", type=float, default=0.0, help="keep queueing rounds")
    parser.add_argument("--train-limit", type=int, default=1000)
    parser.add_argument("--epochs", type=int, default=2)
    parser.add_argument("--batch-size", type=int, default=50)
    parser.add_argument("--json", action="store_true", help="(the output is always JSON)")
    args = parser.parse_args(argv)
    from playwright.sync_api import sync_playwright

    with sync_playwright() as pw:
        browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
        try:
            result = soak(browser, runs=args.runs, workers=args.workers, sessions=args.sessions,
                          minutes=args.minutes, train_limit=args.train_limit,
                          epochs=args.epochs, batch=args.batch_size)  # fmt: skip
        finally:
            browser.close()
    print(json.dumps(result))
    ok = (result["finished"] == result["runs"] and not result["missing"]
          and not result["duplicates"] and result["integrity"] == "ok")  # fmt: skip
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
