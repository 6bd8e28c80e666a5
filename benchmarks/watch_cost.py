"""What watching a run costs: the same small run in the foreground CLI, through the worker with
nobody watching, and with 1 and 3 real Chromium tabs on its Train page (``/Train?run=ID``).

The app is served the way a user serves it (``scripts/serve.sh``: the worker and Streamlit
together) in a fresh ``CNNLAB_HOME``; runs are queued with ``cnnlab train --background``. For each
case it reports the run's own ``train_seconds`` (training only, evaluation excluded), and over the
run (queue → finished) the CPU seconds of the Streamlit server process and of Chromium (from
``/proc/PID/stat``, utime + stime), and the chart lag: every watching tab records (polling
every 50 ms) when the "N points recorded" count of the live section changes; a loss
row's lag is the first time a tab showed it minus the row's ``time`` in the store (same clock).
``chart_lag`` is the same for the live loss chart itself (the points its uPlot canvas holds, read
from its component frame every 50 ms): the time to the chart having drawn the row.

The tabs open while a long "gate" run keeps the worker busy and settle ``--settle`` seconds
(default 3: their component frames load and draw once) before the run starts; what the run then
pays is watching, not loading a page.

Prints JSON; ratios are within one run, so a busy machine moves them less than the seconds.
``--root``/``--python`` measure another checkout (e.g. an older commit with its own venv).

    python benchmarks/watch_cost.py --json            # 30,000 digits, 1 epoch, 0/1/3 tabs
    python benchmarks/watch_cost.py --quick --json    # 5,000 digits, 1 tab, no CLI run
    python benchmarks/watch_cost.py --tab-cost 15     # where one tab's Chromium CPU goes

``--tab-cost S``: instead of timing runs, one Chromium tab on a live run's Train page for S
seconds at a time — as it is, with its charts hidden (CSS), with CSS animations off — and on a
finished run's page; prints Chromium cores (CPU seconds per second) for each.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
CHROMIUM = os.environ.get("CNNLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
DONE = ("finished", "failed", "stopped", "interrupted")
TICKS = os.sysconf("SC_CLK_TCK")
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"
OBSERVER = """() => {
  window.__points = [];
  window.__drawn = [];
  let last = null, lastDrawn = null;
  const count = (el) => {
    const n = el ? parseInt(el.textContent.replace(/,/g, ''), 10) : null;
    return n === null || Number.isNaN(n) ? null : n;
  };
  setInterval(() => {
    // the live section: one component frame (progress, charts, "N points recorded"); older
    // checkouts: the caption under the charts, the loss chart in its own frame
    const frame = document.querySelector('.st-key-live-run iframe')
      || document.querySelector('.st-key-loss-chart iframe');
    const inner = frame && frame.contentDocument;
    const shown = count(document.querySelector('.st-key-run-points'))
      ?? count(inner && inner.getElementById('points'));
    if (shown !== null && shown !== last) {
      last = shown;
      window.__points.push([Date.now() / 1000, shown]);
    }
    const plot = frame && frame.contentWindow && frame.contentWindow.cnnlabLivePlot;
    const n = plot && plot.plot ? plot.plot.data[0].length : null;
    if (n !== null && n !== lastDrawn) {
      lastDrawn = n;
      window.__drawn.push([Date.now() / 1000, n]);
    }
  }, 50);
}"""


def cpu_seconds(pid: int) -> float:
    """utime + stime of one process (s)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def processes() -> dict[int, tuple[int, str]]:
    """pid → (parent pid, command line) of every process we can read."""
    out = {}
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
            cmd = (entry / "cmdline").read_bytes().replace(b"\0", b" ").decode(errors="replace")
        except (OSError, ValueError, IndexError):
            continue
        out[int(entry.name)] = (ppid, cmd)
    return out


def descendants(root: int) -> dict[int, str]:
    """pid → command line of every process below ``root``."""
    table = processes()
    found: dict[int, str] = {}
    todo = [root]
    while todo:
        parent = todo.pop()
        for pid, (ppid, cmd) in table.items():
            if ppid == parent and pid not in found:
                found[pid] = cmd
                todo.append(pid)
    return found


def chromium_cpu() -> float:
    total = 0.0
    for pid, cmd in descendants(os.getpid()).items():
        if "chrom" in cmd.split(" ", 1)[0]:
            with contextlib.suppress(OSError):
                total += cpu_seconds(pid)
    return total


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def wait_health(url: str, proc: subprocess.Popen[bytes], log: Path, timeout: float = 120) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            raise SystemExit(f"serve.sh exited early:\n{log.read_text()[-3000:]}")
        try:
            with urllib.request.urlopen(url, timeout=2) as reply:
                if reply.read().decode().strip() == "ok":
                    return
        except OSError:
            pass
        time.sleep(0.3)
    raise SystemExit(f"the app did not answer {url}:\n{log.read_text()[-3000:]}")


class Bench:
    def __init__(self, args: argparse.Namespace, home: Path) -> None:
        self.args = args
        self.root = Path(args.root).resolve()
        self.python = args.python
        self.env = {
            **os.environ,
            "CNNLAB_HOME": str(home),
            "CNNLAB_OFFLINE": os.environ.get("CNNLAB_OFFLINE", "1"),
            "STREAMLIT_SERVER_ADDRESS": "127.0.0.1",
            "STREAMLIT_SERVER_HEADLESS": "true",
            "STREAMLIT_BROWSER_GATHER_USAGE_STATS": "false",
            "STREAMLIT_SERVER_FILE_WATCHER_TYPE": "none",
        }
        self.db = home / "runs.db"
        self.train_args = [
            "--train-limit", str(args.train_limit), "--epochs", str(args.epochs),
            "--model", args.model,
        ]  # fmt: skip

    def cnnlab(self, *argv: str) -> str:
        out = subprocess.run(
            [self.python, "-m", "cnnlab", *argv], cwd=self.root, env=self.env,
            capture_output=True, text=True, timeout=1800,
        )  # fmt: skip
        if out.returncode != 0:
            raise SystemExit(f"cnnlab {' '.join(argv)} failed:\n{out.stderr[-3000:]}")
        return out.stdout

    def foreground(self) -> float:
        result = json.loads(self.cnnlab("train", *self.train_args, "--name", "cli", "--json"))
        return float(result["train_seconds"])

    def query(self, sql: str, *params: Any) -> list[tuple[Any, ...]]:
        with sqlite3.connect(f"file:{self.db}?mode=ro", uri=True, timeout=10) as db:
            return db.execute(sql, params).fetchall()

    def status(self, run_id: str) -> str:
        rows = self.query("SELECT status FROM runs WHERE id = ?", run_id)
        return str(rows[0][0]) if rows else "missing"

    def warm_up(self) -> None:
        self.wait_status(self.queue("--train-limit", "500", "--name", "warm-up"), DONE)

    def queue(self, *argv: str) -> str:
        out = self.cnnlab("train", *argv, "--background", "--json")
        return str(json.loads(out)["run_id"])

    def wait_status(self, run_id: str, statuses: tuple[str, ...]) -> str:
        deadline = time.monotonic() + 1800
        while (status := self.status(run_id)) not in statuses:
            if time.monotonic() > deadline:
                raise SystemExit(f"run {run_id} never reached {statuses}")
            time.sleep(0.2)
        return status

    def watched(self, browser: Any, server_pid: int, base: str, tabs: int) -> dict[str, Any]:
        """One run watched by ``tabs`` tabs from its first step to its last.

        A long "gate" run keeps the worker busy while the run is queued and its tabs open; the
        gate is then stopped, and the clocks start: the tabs see the whole run.
        """
        gate = self.queue("--train-limit", "60000", "--epochs", "20", "--name", "gate")
        self.wait_status(gate, ("running", *DONE))
        run_id = self.queue(*self.train_args, "--name", f"tabs-{tabs}")
        pages = []
        for _ in range(tabs):
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(f"{base}/Train?run={run_id}", timeout=180_000)
            page.wait_for_selector(IDLE, timeout=180_000)
            page.evaluate(OBSERVER)
            pages.append(page)
        if pages:  # a tab's first draws (its frames, scripts) are its page load, not watching
            pages[0].wait_for_timeout(self.args.settle * 1000)
        server0, chrome0, wall0 = cpu_seconds(server_pid), chromium_cpu(), time.monotonic()
        self.cnnlab("runs", "stop", gate)
        deadline = time.monotonic() + 1800
        while (status := self.status(run_id)) not in DONE:
            if time.monotonic() > deadline:
                raise SystemExit(f"run {run_id} did not end")
            (pages[0].wait_for_timeout(250) if pages else time.sleep(0.25))
        wall = time.monotonic() - wall0
        server_cpu, chrome_cpu = cpu_seconds(server_pid) - server0, chromium_cpu() - chrome0
        if pages:
            pages[0].wait_for_timeout(1500)  # the last rows reach the pages
        seen = [page.evaluate("window.__points") for page in pages]
        drawn = [page.evaluate("window.__drawn") for page in pages]
        for page in pages:
            page.close()
        if status != "finished":
            raise SystemExit(f"run {run_id} ended {status}")
        train_s = self.query(
            "SELECT value FROM metrics WHERE run_id = ? AND key = 'train_seconds'", run_id
        )[0][0]
        rows = [t for (t,) in self.query(
            "SELECT time FROM metrics WHERE run_id = ? AND key = 'loss' ORDER BY step", run_id
        )]  # fmt: skip
        return {
            "run_id": run_id,
            "tabs": tabs,
            "train_seconds": round(float(train_s), 3),
            "wall_seconds": round(wall, 2),
            "server_cpu_s": round(server_cpu, 2),
            "server_cores": round(server_cpu / wall, 3),
            "chromium_cpu_s": round(chrome_cpu, 2),
            "loss_rows": len(rows),
            "lag": lag(rows, seen),
            "chart_lag": lag(rows, drawn),
            "observed": [log[-1] if log else None for log in seen],
        }

    def tab_cost(self, browser: Any, base: str, seconds: float) -> dict[str, float]:
        """Chromium cores of one tab: a live run's page as is, charts hidden, animations off;
        a finished run's page."""
        variants = {
            "live": None,
            "live_charts_hidden": ".stPlotlyChart, [data-testid='stCustomComponentV1']"
            " { display: none !important; }",
            "live_no_animations": "* { animation: none !important; transition: none !important; }",
        }

        def cores(url: str, css: str | None) -> float:
            page = browser.new_page(viewport={"width": 1400, "height": 1000})
            page.goto(url, timeout=180_000)
            page.wait_for_selector(IDLE, timeout=180_000)
            if css:
                page.add_style_tag(content=css)
            page.wait_for_timeout(3000)  # settled: first draws done
            cpu0, wall0 = chromium_cpu(), time.monotonic()
            page.wait_for_timeout(seconds * 1000)
            used = (chromium_cpu() - cpu0) / (time.monotonic() - wall0)
            page.close()
            return round(used, 3)

        done = self.queue("--train-limit", "500", "--name", "finished")
        self.wait_status(done, DONE)
        result = {"finished": cores(f"{base}/Train?run={done}", None)}
        gate = self.queue("--train-limit", "60000", "--epochs", "50", "--name", "live")
        self.wait_status(gate, ("running",))
        try:
            for name, css in variants.items():
                result[name] = cores(f"{base}/Train?run={gate}", css)
        finally:
            self.cnnlab("runs", "stop", gate)
        return result


def lag(rows: list[float], seen: list[list[list[float]]]) -> dict[str, Any] | None:
    """Per loss row written while a tab watched: first time a tab showed it − row time."""
    lags = []
    for log in seen:
        if not log:
            continue
        opened = log[0][0]
        for i, written in enumerate(rows, start=1):
            if written < opened:
                continue
            shown = next((t for t, n in log if n >= i), None)
            if shown is not None:
                lags.append(max(0.0, shown - written))
    if not lags:
        return None
    lags.sort()
    return {
        "rows": len(lags),
        "median_s": round(statistics.median(lags), 3),
        "p95_s": round(lags[min(len(lags) - 1, int(0.95 * len(lags)))], 3),
        "max_s": round(lags[-1], 3),
        "last_shown": max(log[-1][1] for log in seen if log),
    }


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--train-limit", type=int, default=30_000)
    parser.add_argument("--epochs", type=int, default=1)
    parser.add_argument("--model", default="small-cnn")
    parser.add_argument("--tabs", default="0,1,3", help="comma-separated tab counts, in order")
    parser.add_argument("--no-cli", action="store_true", help="skip the foreground CLI run")
    parser.add_argument("--root", default=str(ROOT), help="the checkout to serve")
    parser.add_argument("--python", default=sys.executable, help="its venv's python")
    parser.add_argument("--quick", action="store_true", help="5,000 digits, 1 tab, no CLI")
    parser.add_argument("--json", action="store_true", help="(always JSON; kept for make bench)")
    parser.add_argument("--tab-cost", type=float, metavar="S", help="one tab's CPU, S s a case")
    parser.add_argument(
        "--worker-spin",
        type=int,
        metavar="N",
        help="GOMP_SPINCOUNT for the served worker (default: its own choice, 10000)",
    )
    parser.add_argument(
        "--worker-passive",
        action="store_true",
        help="OMP_WAIT_POLICY=PASSIVE for the served worker (its default before 2026-12-04)",
    )
    parser.add_argument("--settle", type=float, default=3.0, help="s the tabs settle first")
    args = parser.parse_args()
    if args.quick:
        args.train_limit, args.tabs, args.no_cli = 5_000, "1", True
    if args.tab_cost:
        args.no_cli = True
    tab_counts = [int(t) for t in args.tabs.split(",") if t.strip()]
    # lazy: only this benchmark needs Playwright
    from playwright.sync_api import sync_playwright

    with tempfile.TemporaryDirectory(prefix="watch-cost-") as tmp:
        home = Path(tmp)
        bench = Bench(args, home)
        result: dict[str, Any] = {
            "model": args.model, "train_limit": args.train_limit, "epochs": args.epochs,
            "root": str(bench.root), "load_before": os.getloadavg()[0],
        }  # fmt: skip
        result["cli_train_seconds"] = None if args.no_cli else round(bench.foreground(), 3)
        port = free_port()
        log = home / "serve.log"
        env = {**bench.env, "PY": args.python, "PORT": str(port)}
        if args.worker_spin is not None:  # the served worker only (the CLI run keeps its own)
            env["GOMP_SPINCOUNT"] = str(args.worker_spin)
        if args.worker_passive:
            env["OMP_WAIT_POLICY"] = "PASSIVE"
        with log.open("w") as out:
            serve = subprocess.Popen(
                ["bash", str(bench.root / "scripts" / "serve.sh")], cwd=bench.root, env=env,
                stdout=out, stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        cases = []
        try:
            base = f"http://127.0.0.1:{port}"
            wait_health(f"{base}/_stcore/health", serve, log)
            server_pid = next(
                pid for pid, cmd in descendants(serve.pid).items() if "streamlit" in cmd
            )
            result["worker_spin"] = args.worker_spin
            result["worker_passive"] = args.worker_passive
            result["server_nice"] = int(
                Path(f"/proc/{server_pid}/stat").read_text().rsplit(")", 1)[1].split()[16]
            )
            with sync_playwright() as pw:
                browser = pw.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                warm = browser.new_page()  # the server's first Train page imports torch
                warm.goto(f"{base}/Train")
                warm.wait_for_selector(IDLE, timeout=180_000)
                warm.close()
                if not args.quick:  # one run first: the worker imports torch and reads MNIST
                    bench.warm_up()
                if args.tab_cost:
                    result["tab_chromium_cores"] = bench.tab_cost(browser, base, args.tab_cost)
                    tab_counts = []
                for tabs in tab_counts:
                    cases.append(bench.watched(browser, server_pid, base, tabs))
                browser.close()
        finally:
            os.killpg(serve.pid, 15)
            try:
                serve.wait(timeout=20)
            except subprocess.TimeoutExpired:
                os.killpg(serve.pid, 9)
    by_tabs = {c["tabs"]: c for c in cases}
    for tabs in (1, 3):
        result[f"ratio_{tabs}_tab"] = None
    unwatched = by_tabs.get(0, {}).get("train_seconds")
    cli = result["cli_train_seconds"]
    fastest = min(x for x in (unwatched, cli) if x is not None) if (unwatched or cli) else None
    result["cases"] = cases
    result["unwatched_train_seconds"] = unwatched
    for tabs, case in by_tabs.items():
        if tabs and fastest:
            result[f"ratio_{tabs}_tab"] = round(fastest / case["train_seconds"], 3)
    result["ratio_worker_vs_cli"] = round(cli / unwatched, 3) if cli and unwatched else None
    base_cores = by_tabs[0]["server_cores"] if 0 in by_tabs else 0.0
    per_tab = [(c["server_cores"] - base_cores) / c["tabs"] for c in cases if c["tabs"]]
    result["server_cores_per_tab"] = round(max(per_tab), 3) if per_tab else None
    lags = [c["lag"] for c in cases if c["lag"]]
    result["chart_lag_p95_s"] = max(x["p95_s"] for x in lags) if lags else None
    result["chart_lag_max_s"] = max(x["max_s"] for x in lags) if lags else None
    drawn = [c["chart_lag"] for c in cases if c["chart_lag"]]
    result["drawn_lag_p95_s"] = max(x["p95_s"] for x in drawn) if drawn else None
    result["settle_s"] = args.settle
    result["load_after"] = os.getloadavg()[0]
    print(json.dumps(result, indent=None if args.quick else 2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
