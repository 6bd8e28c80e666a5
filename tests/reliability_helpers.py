"""Shared helpers of the reliability tests: corpus manifests, one-line message checks, CLI runs."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pytest

ROOT = Path(__file__).resolve().parents[1]
CORPUS = Path(__file__).resolve().parent / "corpus"
MAX_MESSAGE = 10_000
"""One clear line, never a dump of a (multi-megabyte) input."""


def load_manifest(name: str) -> list[dict[str, Any]]:
    """The cases of ``tests/corpus/<name>.jsonl`` (blank lines and ``#`` comments skipped).

    Python's json reader accepts ``NaN``, ``Infinity`` and huge integers, which several cases use.
    """
    cases: list[dict[str, Any]] = []
    path = CORPUS / f"{name}.jsonl"
    for number, line in enumerate(path.read_text(encoding="utf-8").splitlines(), 1):
        if not line.strip() or line.lstrip().startswith("#"):
            continue
        try:
            case = json.loads(line)
        except json.JSONDecodeError as err:  # a broken manifest is a test bug: say where
            raise AssertionError(f"{path}:{number}: {err}") from None
        assert "id" in case and "expect" in case, f"{path}:{number}: needs id and expect"
        cases.append(case)
    ids = [c["id"] for c in cases]
    dupes = {i for i in ids if ids.count(i) > 1}
    assert not dupes, f"{path}: duplicate ids {sorted(dupes)}"
    return cases


def params(name: str) -> list[Any]:
    """``pytest.param`` per case, with the case id as the test id."""
    return [pytest.param(case, id=case["id"]) for case in load_manifest(name)]


def assert_user_message(message: str, expect: dict[str, Any], what: str = "message") -> None:
    """One clear line, no traceback, matching the case's ``expect.message`` regex."""
    text = message.strip()
    assert text, f"empty {what}"
    assert "\n" not in text, f"{what} is not one line: {text!r}"
    assert "Traceback" not in text, f"{what} holds a traceback: {text!r}"
    assert len(text) <= MAX_MESSAGE, f"{what} is {len(text)} characters long: {text[:200]!r}…"
    pattern = expect.get("message")
    if pattern:
        assert re.search(pattern, text, re.IGNORECASE), f"{what} {text!r} !~ /{pattern}/"


@dataclass
class CliResult:
    code: int
    out: str
    err: str


def run_cli(argv: Sequence[str], capsys: pytest.CaptureFixture[str]) -> CliResult:
    """``cnnlab.cli.main(argv)`` in this process; argparse's SystemExit becomes the code."""
    from cnnlab.cli import main

    capsys.readouterr()
    try:
        code = main(list(argv))
    except SystemExit as exc:
        code = exc.code if isinstance(exc.code, int) else (0 if exc.code is None else 1)
    captured = capsys.readouterr()
    return CliResult(int(code), captured.out, captured.err)


def run_cli_subprocess(
    argv: Sequence[str | bytes], env: dict[str, str] | None = None, timeout: float = 120
) -> CliResult:
    """``python -m cnnlab argv`` as a user types it."""
    proc = subprocess.run(
        [sys.executable, "-m", "cnnlab", *argv],
        cwd=ROOT,
        env=env or dict(os.environ),
        capture_output=True,
        timeout=timeout,
    )
    return CliResult(
        proc.returncode,
        proc.stdout.decode("utf-8", "replace"),
        proc.stderr.decode("utf-8", "replace"),
    )


def assert_cli_error(result: CliResult, expect: dict[str, Any], *, last_line: bool = False) -> None:
    """Exit code (default 2), one line on stderr starting ``cnnlab…: error:``, no traceback.

    ``last_line``: a command that failed after it started (``train`` prints its estimate and a
    progress bar first) is judged by its last stderr line.
    """
    want = int(expect.get("exit", 2))
    assert result.code == want, f"exit {result.code} (want {want}); stderr: {result.err[-2000:]!r}"
    assert "Traceback" not in result.err and "Traceback" not in result.out, result.err[-2000:]
    err = result.err.strip()
    if last_line:
        err = err.replace("\r", "\n").splitlines()[-1] if err else err
    assert_user_message(err, expect, "stderr")
    assert re.match(r"cnnlab( \w+)*: error: ", err), result.err[-2000:]


def forbid_real_work(monkeypatch: pytest.MonkeyPatch) -> None:
    """A bad input that slipped through must fail fast, not train or serve for minutes."""

    def refuse(*args: Any, **kwargs: Any) -> Any:
        raise AssertionError("bad input was accepted: it reached training or the consumer")

    monkeypatch.setattr("cnnlab.training.loop.train", refuse)
    monkeypatch.setattr("cnnlab.training.queue._Consumer.run", refuse)


def wait_for(what: str, check: Callable[[], bool], timeout: float = 120) -> None:
    """Poll ``check`` every 0.1 s until it holds; fail naming ``what`` after ``timeout`` s."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if check():
            return
        time.sleep(0.1)
    raise AssertionError(f"timed out after {timeout} s waiting for {what}")
