"""Benchmark: how long a Conv Lab edit and a Model Inspector model switch take in a real browser.

Starts ``streamlit run serve.py`` (as ``make run``) in a fresh ``CNNLAB_HOME`` and drives
Debian's Chromium with Playwright (as the browser tests do):

- ``conv_lab_edit_s``: from committing a kernel edit (3 ↔ 5, first layer) in the Conv Lab's
  layer table to the updated totals on the page (``conv_lab_edit_idle_s``: to the script run's
  end);
- ``inspector_vgg16_s``: from picking VGG-16 (coming from AlexNet) to its table's heading and
  the script run's end; ``inspector_vgg16_first_s`` is the first such switch of the server.

Medians of ``--repeats`` (default 6). Goal (issue 14): half of the figures measured by hand
before (Conv Lab edit 0.6–1.1 s, Inspector AlexNet → VGG-16 1.8–2.3 s).

    python benchmarks/page_latency.py [--json] [--quick]

``--quick``: one repeat each (a smoke run). Needs /usr/bin/chromium (``CNNLAB_CHROMIUM``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
import urllib.request
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from playwright.sync_api import Page, expect, sync_playwright  # noqa: E402

CHROMIUM = os.environ.get("CNNLAB_CHROMIUM", "/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run", "--disable-quic",
]  # fmt: skip
IDLE = "[data-testid='stApp'][data-test-script-state='notRunning']"


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def start_server(home: Path) -> tuple[subprocess.Popen[bytes], str]:
    port = free_port()
    log = (home / "streamlit.log").open("wb")
    proc = subprocess.Popen(
        [
            sys.executable, "-m", "streamlit", "run", "serve.py", "--server.headless", "true",
            "--server.port", str(port), "--browser.gatherUsageStats", "false",
            "--server.fileWatcherType", "none",
        ],
        cwd=ROOT, env={**os.environ, "CNNLAB_HOME": str(home)}, stdout=log, stderr=log,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        try:
            with urllib.request.urlopen(f"{url}/_stcore/health", timeout=2) as r:
                if r.read().decode() == "ok":
                    return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("streamlit did not start")


def open_page(page: Page, url: str) -> None:
    page.goto(url)
    page.wait_for_selector("[data-testid='stApp']", timeout=120_000)
    page.wait_for_selector(IDLE, timeout=120_000)


def conv_lab_edits(page: Page, url: str, repeats: int) -> tuple[list[float], list[float]]:
    """(seconds to the updated totals, seconds to the script run's end) per timed edit."""
    from grid_helpers import column_of, grid_in, select_cell  # the browser tests' grid driver

    open_page(page, f"{url}/Conv_Lab")
    totals = page.locator(".st-key-lab-totals-regular")
    grid = grid_in(page, "lab-editor")
    kernel = column_of(grid, "kernel")
    expected: dict[str, str] = {}
    shown, idle = [], []
    for i in range(repeats + 2):  # the first two edits learn what each kernel shows (untimed)
        value = "5" if i % 2 == 0 else "3"
        select_cell(page, grid, kernel, 0)
        page.keyboard.press("Enter")
        editor = page.locator("#portal input, #portal textarea").first
        expect(editor).to_be_visible()
        editor.fill(value)
        start = time.perf_counter()
        page.keyboard.press("Enter")
        if value in expected:
            expect(totals).to_contain_text(expected[value], timeout=60_000)
            shown.append(time.perf_counter() - start)
        page.wait_for_selector(IDLE, timeout=60_000)
        if value in expected:
            idle.append(time.perf_counter() - start)
        else:
            page.wait_for_timeout(500)  # a late rerun would change the text
            page.wait_for_selector(IDLE, timeout=60_000)
            found = re.search(r"MACs\s+([\d,]+)", totals.inner_text())
            assert found, totals.inner_text()
            expected[value] = found.group(1)
    assert expected["5"] != expected["3"], "the kernel edit did not change the totals"
    return shown, idle


def pick(page: Page, name: str) -> float:
    box = page.locator(".st-key-insp-controls [data-testid='stSelectbox']").first
    box.click()
    page.keyboard.type(name)
    option = page.get_by_role("option", name=re.compile(rf"^{re.escape(name)}( —.*)?$"))
    start = time.perf_counter()
    option.click()
    heading = re.compile(rf"^{re.escape(name)} at ")
    expect(page.get_by_role("heading", name=heading)).to_be_visible(timeout=60_000)
    page.wait_for_selector(IDLE, timeout=60_000)
    return time.perf_counter() - start


def inspector_switches(page: Page, url: str, repeats: int) -> list[float]:
    open_page(page, f"{url}/Model_Inspector")
    times = []
    for _ in range(repeats + 1):
        pick(page, "alexnet")
        times.append(pick(page, "vgg16"))
    return times


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", action="store_true", help="print one JSON object")
    parser.add_argument("--quick", action="store_true", help="smoke run: one repeat each")
    parser.add_argument("--repeats", type=int, default=None)
    args = parser.parse_args(argv)
    repeats = args.repeats or (1 if args.quick else 6)
    if not Path(CHROMIUM).exists():
        raise SystemExit(f"{CHROMIUM} is missing (apt-get install chromium)")

    with tempfile.TemporaryDirectory(prefix="cnnlab-pages-") as tmp:
        proc, url = start_server(Path(tmp))
        try:
            with sync_playwright() as p:
                browser = p.chromium.launch(executable_path=CHROMIUM, args=CHROMIUM_ARGS)
                page = browser.new_page(viewport={"width": 1400, "height": 1000})
                edits, edits_idle = conv_lab_edits(page, url, repeats)
                switches = inspector_switches(page, url, repeats)
                browser.close()
        finally:
            proc.terminate()
            proc.wait(20)

    result = {
        "conv_lab_edit_s": round(statistics.median(edits), 3),
        "conv_lab_edit_idle_s": round(statistics.median(edits_idle), 3),
        "inspector_vgg16_s": round(statistics.median(switches[1:] or switches), 3),
        "inspector_vgg16_first_s": round(switches[0], 3),
        "conv_lab_edit_all_s": [round(t, 3) for t in edits],
        "inspector_vgg16_all_s": [round(t, 3) for t in switches],
        "repeats": repeats,
        "quick": args.quick,
    }
    if args.json:
        print(json.dumps(result, indent=2))
    else:
        for key in ("conv_lab_edit_s", "inspector_vgg16_s", "inspector_vgg16_first_s"):
            print(f"{key}: {result[key]}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
