"""A class on one machine: N simulated students browse the app for S seconds while some of them
launch small runs through the Train page (the fair queue, K = 2 each) and watch them live; a
teacher password is set, so the class limits hold as in a real class.

Each student is, by default, a Streamlit websocket client (``benchmarks/st_client.py``: the
app's own protocol, its own cookie, so its own identity): it opens pages as the sidebar does
(now and then reloading: a new session), stays on each a few seconds, rerunning the live
fragments as a browser does, opens classmates' runs, and a launcher types the training images
and presses 🚀 Train. In a classroom the students' browsers run on their own machines, so this
measures the server, which is what one machine must carry. ``--clients chromium`` drives real
Chromium contexts instead (the browsers then share this machine's cores with the server).

Reports page times (open → the script run finished, p50/p95; after one untimed warm-up visit of
each page, which imports torch in the server) and live-fragment times, exceptions shown on a
page or met by a student (must be 0), runs launched and refused by the limit, the Streamlit
server's CPU (cores, over the browsing), and, for the runs that finished, metric rows lost
(must be 0; counted in SQLite by ``soak.audit``). Prints JSON.

    python benchmarks/classroom.py --sessions 10 --seconds 120 --json
    python benchmarks/classroom.py --sessions 30 --seconds 180 --launchers 10 --json
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import importlib.util
import json
import os
import random
import re
import statistics
import sys
import time
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
if str(ROOT) not in sys.path:
    sys.path.insert(0, str(ROOT))

PAGES = ("", "Runs", "Train", "Experiments", "Inside")
TICKS = os.sysconf("SC_CLK_TCK")
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
REFUSED = re.compile(r"already have \d+ run|class queue is full")
BATCH = 64


def _soak() -> Any:
    """benchmarks/soak.py: its app + worker stack, Chromium flags and metric-row audit."""
    if "soak" in sys.modules:
        return sys.modules["soak"]
    spec = importlib.util.spec_from_file_location("soak", ROOT / "benchmarks" / "soak.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules["soak"] = module  # its dataclasses look their module up
    spec.loader.exec_module(module)
    return module


def percentile(values: list[float], q: float) -> float | None:
    if not values:
        return None
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def cpu_seconds(pid: int) -> float:
    """utime + stime of a process (from /proc)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


class Tally:
    """What one student measured and met: page and fragment times, exceptions, runs."""

    def __init__(self, index: int) -> None:
        self.times: list[float] = []
        self.by_page: dict[str, list[float]] = {}
        self.fragment_times: list[float] = []
        self.exceptions: list[str] = []
        self.launched: list[str] = []
        self.refused = 0
        self.rng = random.Random(index)


class WsStudent(Tally):
    """One student as a Streamlit websocket client: pages, reloads, watching runs, launching."""

    def __init__(self, index: int, url: str, launcher: bool, train_limit: int, runs: list[str]):
        self.index, self.url, self.launcher, self.train_limit = index, url, launcher, train_limit
        self.cookies = {"cnnlab_id": f"{index:032x}"}  # a returning browser: its own identity
        self.runs = runs  # every run launched so far (shared): students open classmates' runs
        super().__init__(index)

    def _check(self, what: str, result: Any) -> None:
        for exc in result.exceptions:
            self.exceptions.append(f"{what}: {exc}")
        if result.status == "timeout":
            self.exceptions.append(f"{what}: no answer in time")

    async def visit(self, session: Any, path: str, query: str = "") -> Any:
        result = await session.open(path, query)
        self.times.append(result.seconds)
        name = (path or "Home") + ("?run" if query else "")
        self.by_page.setdefault(name, []).append(result.seconds)
        self._check(path or "Home", result)
        return result

    async def stay(self, session: Any, seconds: float) -> None:
        def tick(run: Any) -> None:
            self.fragment_times.append(run.seconds)
            self._check(f"{session.page} fragment", run)

        await session.stay(seconds, tick)

    async def launch(self, session: Any) -> None:
        await self.visit(session, "Train")
        session.set_number("Training images (0 for all)", self.train_limit)
        result = await session.click("🚀 Train")
        self._check("Train click", result)
        if match := re.search(r"run=([0-9a-f]{12})", session.query_string):
            self.launched.append(match.group(1))
            self.runs.append(match.group(1))
        elif any(REFUSED.search(text) for text in result.texts):
            self.refused += 1
        else:
            said = " | ".join(t[:120] for t in result.texts)
            self.exceptions.append(f"the Train button led to neither a run nor a refusal {said}")

    async def browse(self, deadline: float) -> None:
        from st_client import Session

        session = None
        try:
            while time.monotonic() < deadline:
                if session is None or self.rng.random() < 0.15:  # a reload: a new session
                    if session is not None:
                        await session.__aexit__(None, None, None)
                    session = await Session(self.url, self.cookies).__aenter__()
                try:
                    first = not self.launched and not self.refused
                    if self.launcher and (first or self.rng.random() < 0.3):
                        await self.launch(session)
                    elif self.runs and self.rng.random() < 0.3:  # a classmate's run (read-only)
                        await self.visit(session, "Train", f"run={self.rng.choice(self.runs)}")
                    else:
                        await self.visit(session, self.rng.choice(PAGES))
                    await self.stay(session, self.rng.uniform(2, 8))
                except Exception as err:  # counted; the student reloads and goes on
                    self.exceptions.append(f"{type(err).__name__}: {str(err)[:200]}")
                    with contextlib.suppress(Exception):
                        await session.__aexit__(None, None, None)
                    session = None
        finally:
            if session is not None:
                with contextlib.suppress(Exception):
                    await session.__aexit__(None, None, None)


class Student(Tally):
    """One browser context: visits pages, launches a run when it is a launcher and has room."""

    def __init__(self, index: int, context: Any, url: str, launcher: bool, train_limit: int):
        self.index, self.context, self.url = index, context, url
        self.launcher, self.train_limit = launcher, train_limit
        super().__init__(index)

    async def visit(self, page: Any, path: str) -> None:
        start = time.monotonic()
        await page.goto(f"{self.url}/{path}")
        await page.wait_for_selector("[data-testid='stApp']", timeout=120_000)
        await page.wait_for_selector("h1", timeout=120_000)
        await page.wait_for_selector(IDLE, timeout=120_000)
        self.times.append(time.monotonic() - start)
        self.by_page.setdefault(path or "Home", []).append(self.times[-1])
        shown = page.locator("[data-testid='stException']")
        if await shown.count():
            self.exceptions.append(f"{path}: {(await shown.first.inner_text())[:300]}")

    async def launch(self, page: Any) -> None:
        await self.visit(page, "Train")
        await page.locator(".st-key-train-cost").get_by_text("Parameters").wait_for()
        field = page.get_by_role("spinbutton", name="Training images (0 for all)")
        await field.fill(str(self.train_limit))
        await field.press("Enter")
        await page.wait_for_selector(IDLE)
        await page.get_by_role("button", name="🚀 Train").click()
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:  # the run's id in the address, or the refusal
            if match := re.search(r"[?&]run=([0-9a-f]{12})", page.url):
                self.launched.append(match.group(1))
                return
            if await page.get_by_text(REFUSED).count():
                self.refused += 1
                return
            await page.wait_for_timeout(250)
        raise TimeoutError("the Train button led to neither a run nor a refusal in 120 s")

    async def browse(self, deadline: float) -> None:
        page = await self.context.new_page()
        page.on("pageerror", lambda err: self.exceptions.append(f"pageerror: {err}"))
        while time.monotonic() < deadline:
            try:
                first = not self.launched and not self.refused  # a launcher starts by launching
                if self.launcher and (first or self.rng.random() < 0.4):
                    await self.launch(page)
                else:
                    await self.visit(page, self.rng.choice(PAGES))
                await page.wait_for_timeout(self.rng.uniform(500, 2500))
            except Exception as err:  # a timeout under load: counted, the student goes on
                self.exceptions.append(f"{type(err).__name__}: {str(err).splitlines()[0][:200]}")


async def simulate_ws(args: argparse.Namespace, url: str) -> list[WsStudent]:
    from st_client import Session

    async with Session(url, {"cnnlab_id": "f" * 32}) as warm:  # torch imports: not timed
        for path in PAGES:
            await warm.open(path, timeout_s=300)
    runs: list[str] = []
    students = [
        WsStudent(i, url, i < args.launchers, args.train_limit, runs) for i in range(args.sessions)
    ]
    deadline = time.monotonic() + args.seconds
    await asyncio.gather(*(s.browse(deadline) for s in students))
    return students


async def simulate(args: argparse.Namespace, url: str) -> list[Student]:
    from playwright.async_api import async_playwright  # only the benchmark needs it

    soak = _soak()
    async with async_playwright() as pw:
        browser = await pw.chromium.launch(executable_path=soak.CHROMIUM, args=soak.CHROMIUM_ARGS)
        warm = await browser.new_context()  # the server's first runs import torch: not timed
        page = await warm.new_page()
        for path in PAGES:
            await page.goto(f"{url}/{path}")
            await page.wait_for_selector("h1", timeout=180_000)
            await page.wait_for_selector(IDLE, timeout=180_000)
        await warm.close()
        students = []
        for i in range(args.sessions):
            context = await browser.new_context(viewport={"width": 1300, "height": 900})
            students.append(Student(i, context, url, i < args.launchers, args.train_limit))
        deadline = time.monotonic() + args.seconds
        await asyncio.gather(*(s.browse(deadline) for s in students))
        await browser.close()
    return students


def wait_runs(store: Any, run_ids: list[str], timeout_s: float) -> None:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        runs = [store.get_run(r) for r in run_ids]
        if all(r is None or r.done for r in runs):
            return
        time.sleep(1)
    for run_id in run_ids:  # past the drain time: stop what is left (not audited)
        store.request_stop(run_id)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sessions", type=int, default=10, help="simulated students")
    parser.add_argument("--seconds", type=float, default=150, help="how long they browse")
    parser.add_argument("--launchers", type=int, default=None,
                        help="how many of them launch runs (default: a third)")  # fmt: skip
    parser.add_argument("--train-limit", type=int, default=500, help="digits per run")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--clients", choices=("websocket", "chromium"), default="websocket",
                        help="students: Streamlit websocket clients or Chromium")  # fmt: skip
    parser.add_argument("--drain-s", type=float, default=120,
                        help="after browsing, how long to wait for the runs to end")  # fmt: skip
    parser.add_argument("--json", action="store_true", help="print JSON only")
    args = parser.parse_args(argv)
    if args.sessions < 1 or args.seconds <= 0:
        parser.error("--sessions must be at least 1 and --seconds positive")
    if args.launchers is None:
        args.launchers = max(1, args.sessions // 3)
    args.launchers = min(args.launchers, args.sessions)

    from cnnlab.classroom.teacher import ENV_VAR, hash_password
    from cnnlab.training.store import RunStore

    os.environ[ENV_VAR] = hash_password("benchmark teacher")  # a class: the limits hold
    soak = _soak()
    began = time.monotonic()
    sys.path.insert(0, str(ROOT / "benchmarks"))  # st_client
    with soak.stack(args.workers) as st:
        server = st.procs[0].pid
        simulation = simulate_ws if args.clients == "websocket" else simulate
        cpu_before, clock = cpu_seconds(server), time.monotonic()
        students: list[Any] = asyncio.run(simulation(args, st.url))  # type: ignore[operator]
        server_cores = (cpu_seconds(server) - cpu_before) / (time.monotonic() - clock)
        store = RunStore(st.home / "runs.db")
        launched = [r.id for r in store.list_runs()]  # every run came from a student's click
        wait_runs(store, launched, args.drain_s)
        finished = [r for r in launched if (run := store.get_run(r)) and run.status == "finished"]
        audit = soak.audit(st.home, finished, args.train_limit, 1, BATCH) if finished else {}
    times = [t for s in students for t in s.times]
    fragments = [t for s in students for t in s.fragment_times]
    by_page: dict[str, list[float]] = {}
    for student in students:
        for name, values in student.by_page.items():
            by_page.setdefault(name, []).extend(values)
    result = {
        "clients": args.clients,
        "sessions": args.sessions,
        "launchers": args.launchers,
        "seconds": args.seconds,
        "page_loads": len(times),
        "p50_page_s": round(statistics.median(times), 3) if times else None,
        "p95_page_s": round(percentile(times, 0.95) or 0, 3) if times else None,
        "max_page_s": round(max(times), 3) if times else None,
        "pages": {
            name: {
                "loads": len(v),
                "p50_s": round(statistics.median(v), 3),
                "p95_s": round(percentile(v, 0.95) or 0, 3),
            }
            for name, v in sorted(by_page.items())
        },
        "fragment_runs": len(fragments),
        "p50_fragment_s": round(statistics.median(fragments), 3) if fragments else None,
        "p95_fragment_s": round(percentile(fragments, 0.95) or 0, 3) if fragments else None,
        "server_cpu_cores": round(server_cores, 2),
        "exceptions": sum(len(s.exceptions) for s in students),
        "exception_samples": [e for s in students for e in s.exceptions][:5],
        "runs_launched": len(launched),
        "runs_refused_by_limit": sum(s.refused for s in students),
        "runs_finished": len(finished),
        "metric_rows": audit.get("metric_rows", 0),
        "metric_rows_lost": audit.get("missing", 0),
        "metric_rows_duplicated": audit.get("duplicates", 0),
        "wall_s": round(time.monotonic() - began, 1),
    }
    if args.json:
        print(json.dumps(result))
    else:
        print(json.dumps(result, indent=2))
    ok = result["exceptions"] == 0 and result["metric_rows_lost"] == 0
    return 0 if ok else 1


if __name__ == "__main__":
    raise SystemExit(main())
