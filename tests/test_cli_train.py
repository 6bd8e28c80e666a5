"""``python -m cnnlab train`` and ``runs``: a real 1-epoch run on 2,000 digits, and bad options."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from train_helpers import SLOW_SPEC, time_to_stop, wait_training

from cnnlab.cli import main
from cnnlab.training.store import FINISHED, STOPPED, RunStore

ROOT = Path(__file__).resolve().parents[1]


def cnnlab(*args: str, timeout: float = 300) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cnnlab", *args],
        cwd=ROOT,
        env=dict(os.environ),
        capture_output=True,
        text=True,
        timeout=timeout,
    )


def test_train_json_records_the_run_then_runs_commands(capsys: pytest.CaptureFixture[str]):
    done = cnnlab(
        "train", "--model", "small-cnn", "--epochs", "1", "--train-limit", "2000", "--json"
    )
    assert done.returncode == 0, done.stderr
    out = json.loads(done.stdout)
    assert set(out) == {
        "run_id",
        "status",
        "metrics",
        "confusion_matrix",
        "train_seconds",
        "images_per_second",
    }
    assert out["status"] == FINISHED
    assert set(out["metrics"]) == {"accuracy", "precision", "recall", "f1"}
    assert out["metrics"]["accuracy"] > 0.6  # chance is 0.10
    matrix = out["confusion_matrix"]
    assert len(matrix) == 10 and sum(map(sum, matrix)) == 10_000
    assert out["train_seconds"] > 0 and out["images_per_second"] > 0
    assert "estimated time" in done.stderr and "Traceback" not in done.stderr

    # The same run is in the store, with every metric and artifact.
    store = RunStore()
    run = store.get_run(out["run_id"])
    assert run.status == FINISHED and run.params == 409_082 and run.macs == 1_420_032
    final = store.final_metrics(run.id)
    for key in ("accuracy", "precision", "recall", "f1"):
        assert final[key] == pytest.approx(out["metrics"][key])
    assert store.get_artifact(run.id, "confusion_matrix").data == matrix
    assert {a.kind for a in store.artifacts(run.id)} >= {
        "checkpoint",
        "confusion_matrix",
        "per_class",
        "mistakes",
        "summary",
    }
    checkpoint = store.get_artifact(run.id, "checkpoint").path
    assert checkpoint.is_file()

    # runs list / show / rename / delete, in-process (same CLI entry point).
    assert main(["runs", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert [r["id"] for r in listed] == [run.id]
    assert listed[0]["metrics"]["accuracy"] == pytest.approx(out["metrics"]["accuracy"])
    assert main(["runs", "list"]) == 0
    table = capsys.readouterr().out
    assert run.id in table and "409,082" in table and "finished" in table
    assert main(["runs", "show", run.id, "--json"]) == 0
    shown = json.loads(capsys.readouterr().out)
    assert shown["confusion_matrix"] == matrix and len(shown["per_class"]) == 10
    assert main(["runs", "show", run.id]) == 0
    assert "confusion matrix" in capsys.readouterr().out
    assert main(["runs", "rename", run.id, "first try"]) == 0
    assert store.get_run(run.id).name == "first try"
    assert main(["runs", "stop", run.id]) == 0
    assert "already finished" in capsys.readouterr().out
    assert main(["runs", "delete", run.id]) == 0
    assert store.get_run(run.id) is None and not checkpoint.exists()


@pytest.mark.parametrize(
    ("args", "message"),
    [
        (["train", "--epochs", "-1"], "epochs must be at least 1"),
        (["train", "--epochs", "0"], "epochs must be at least 1"),
        (["train", "--batch-size", "0"], "batch size must be at least 1"),
        (["train", "--model", "resnet9000"], "unknown model"),
        (["train", "--model", "vgg16", "--input-size", "28"], "cannot take 1×28×28"),
        (["train", "--input-size", "30"], "input size must be one of"),
        (["train", "--lr", "0"], "learning rate must be greater than 0"),
        (["train", "--lr", "abc"], "invalid float value"),
        (["train", "--optimizer", "rmsprop"], "optimizer must be one of"),
        (["train", "--schedule", "step"], "schedule must be one of"),
        (["train", "--device", "tpu"], "device must be one of"),
        (["train", "--train-limit", "0"], "train limit must be at least 1"),
        (["train", "--spec", "x.json"], "--spec goes with --model stack"),
        (["train", "--separable", "--model", "vgg11"], "vgg11 cannot take 1×28×28"),
        (["train", "--separable", "--model", "nosuchnet"], "nosuchnet"),
        (
            ["train", "--data-dir", "/nonexistent/mnist", "--train-limit", "100"],
            "no such data directory",
        ),
        (["runs", "show", "nope"], "no run with id 'nope'"),
        (["runs", "delete", "nope"], "no run with id 'nope'"),
        (["runs", "rename", "nope", "x"], "no run with id 'nope'"),
        (["runs", "stop", "nope"], "no run with id 'nope'"),
        (["worker", "--workers", "0"], "workers must be between 1 and"),
    ],
)
def test_bad_options_exit_2_with_one_line(
    args: list[str], message: str, capsys: pytest.CaptureFixture[str]
):
    with pytest.raises(SystemExit) as exc:  # argparse errors exit from inside parse_args
        raise SystemExit(main(args))
    assert exc.value.code == 2
    err = capsys.readouterr().err
    assert message in err and "Traceback" not in err
    assert len(err.strip().splitlines()) == 1, err


def test_cuda_unavailable_is_a_clear_error(capsys: pytest.CaptureFixture[str]):
    import torch

    if torch.cuda.is_available():
        pytest.skip("this machine has CUDA")
    assert main(["train", "--device", "cuda", "--train-limit", "100"]) == 2
    assert "cuda is not available" in capsys.readouterr().err


def test_estimate_says_how_long_the_report_setting_takes(capsys: pytest.CaptureFixture[str]):
    code = main(
        [
            "train",
            "--model",
            "vgg16",
            "--input-size",
            "224",
            "--epochs",
            "3",
            "--batch-size",
            "16",
            "--lr",
            "1e-4",
            "--device",
            "cpu",
            "--estimate",
            "--json",
        ]
    )
    estimate = json.loads(capsys.readouterr().out)
    assert code == (0 if estimate["fits"] else 2)
    assert estimate["images"] == 180_000 and estimate["macs_per_image"] > 15_000_000_000
    assert estimate["eta_seconds"] > 3600 and "would take" in estimate["warning"]


def test_stop_of_a_foreground_run_mid_step_exits_within_seconds(tmp_path: Path):
    """Issue 17: ``cnnlab runs stop`` (or the page) on a foreground run whose steps take
    several seconds: the run is recorded ``stopped`` and the CLI exits at once, cleanly."""
    spec = tmp_path / "slow.json"
    spec.write_text(json.dumps(SLOW_SPEC))
    args = ["train", "--model", "stack", "--spec", str(spec), "--input-size", "224",
            "--batch-size", "32", "--train-limit", "640", "--device", "cpu", "--json"]  # fmt: skip
    proc = subprocess.Popen(
        [sys.executable, "-m", "cnnlab", *args],
        cwd=ROOT,
        env=dict(os.environ),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        store = RunStore()
        deadline = time.monotonic() + 180
        while not store.list_runs() and time.monotonic() < deadline and proc.poll() is None:
            time.sleep(0.1)
        (run,) = store.list_runs()
        wait_training(store, run.id)
        asked = time.monotonic()
        landed = time_to_stop(store, run.id)
        proc.wait(timeout=30)
        exited = time.monotonic() - asked
    finally:
        if proc.poll() is None:
            proc.kill()
    out, err = proc.communicate()
    assert landed <= 2.5 and store.get_run(run.id).status == STOPPED, (landed, err)
    assert proc.returncode == 1 and "Traceback" not in err, err
    assert json.loads(out)["status"] == STOPPED
    assert f"run {run.id}: stopped" in err
    assert exited <= 4.0, f"the CLI exited {exited:.1f} s after the stop request"


HEAVY_MODULES = ("torch", "torchvision", "pandas", "sklearn", "streamlit")


@pytest.mark.parametrize("args", [["runs", "list"], ["runs", "list", "--json", "--trash"]])
def test_runs_list_imports_no_torch(args: list[str]):
    """`cnnlab runs list` answers from SQLite alone (≤ 1 s: benchmarks/cli_start.py)."""
    RunStore().create_run(
        {"model": "small-cnn"}, name="listed", model="small-cnn", params=None, macs=None
    )
    code = (
        "import sys\n"
        "from cnnlab.cli import main\n"
        f"code = main({args!r})\n"
        f"heavy = sorted(m for m in {HEAVY_MODULES!r} if m in sys.modules)\n"
        "print('HEAVY:' + ','.join(heavy))\n"
        "raise SystemExit(code)\n"
    )
    done = subprocess.run(
        [sys.executable, "-c", code], cwd=ROOT, env=dict(os.environ),
        capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert done.returncode == 0, done.stderr
    heavy = done.stdout.strip().splitlines()[-1]
    assert heavy == "HEAVY:", f"`cnnlab {' '.join(args)}` imports {heavy.removeprefix('HEAVY:')}"
    if "--trash" not in args:
        assert "listed" in done.stdout


WAIT_POLICY_PROBE = """
import os, runpy, sys
sys.argv = ["cnnlab", "worker", "--help"]
try:
    runpy.run_module("cnnlab", run_name="__main__")
except SystemExit:
    pass
print(os.environ.get("OMP_WAIT_POLICY"), os.environ.get("GOMP_SPINCOUNT"), file=sys.stderr)
"""


@pytest.mark.parametrize(
    ("given", "seen"),
    [
        ({}, "None 10000"),  # sharing the CPU with the app: a short spin, then sleep
        ({"OMP_WAIT_POLICY": "PASSIVE"}, "PASSIVE None"),  # an explicit policy wins
        ({"GOMP_SPINCOUNT": "300000"}, "None 300000"),  # … and an explicit spin count
    ],
)
def test_worker_sets_the_openmp_wait_policy_unless_told(given: dict[str, str], seen: str):
    env = {k: v for k, v in os.environ.items() if k not in ("OMP_WAIT_POLICY", "GOMP_SPINCOUNT")}
    done = subprocess.run(
        [sys.executable, "-c", WAIT_POLICY_PROBE],
        cwd=ROOT,
        env={**env, **given},
        capture_output=True,
        text=True,
        timeout=60,
    )
    assert done.returncode == 0, done.stderr
    assert done.stderr.strip().splitlines()[-1] == seen
