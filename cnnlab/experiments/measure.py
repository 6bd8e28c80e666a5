"""Once per finished arm: inference latency on the training device and the train-set accuracy.

The trained checkpoint is loaded and timed at batch 1 and at a large batch (median of repeated
forward passes after a warm-up), and scored on a fixed subset of the digits it trained on (the
first :data:`TRAIN_SUBSET`), so the train–test accuracy gap needs no change to the training loop.
The result is stored as the run's ``experiment_measure`` artifact and never measured again.

Arms are measured when none of their experiment's runs is training any more (so the timing is
not disturbed by training on the same cores), by whoever looks first: the foreground CLI after
its last arm, ``experiment show``, or the board.
"""

from __future__ import annotations

import contextlib
import fcntl
import statistics
import time
from collections.abc import Iterator
from typing import Any

from cnnlab.training.names import CHECKPOINT, FINISHED
from cnnlab.training.store import Run, RunStore

MEASURE = "experiment_measure"
"""The artifact kind holding an arm's measurement."""
TRAIN_SUBSET = 2000
LARGE_BATCH = 256
BUDGET_S = 0.4
"""Timing budget per batch size (after the warm-up)."""


def needs_measuring(store: RunStore, runs: list[Run]) -> list[Run]:
    """The finished runs without a measurement, once no run of the list is still active."""
    if any(run.active for run in runs):
        return []
    return [r for r in runs if r.status == FINISHED and store.get_artifact(r.id, MEASURE) is None]


@contextlib.contextmanager
def _exclusive(store: RunStore, run_id: str) -> Iterator[bool]:
    """A lock file in the run's folder: True when this process may measure it now."""
    path = store.run_dir(run_id) / "measure.lock"
    with path.open("a") as handle:
        try:
            fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError:
            yield False
            return
        try:
            yield True
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def measure_runs(store: RunStore, runs: list[Run]) -> int:
    """Measure each of ``runs`` that has no measurement yet; how many were measured."""
    done = 0
    for run in runs:
        with _exclusive(store, run.id) as mine:
            if not mine or store.get_artifact(run.id, MEASURE) is not None:
                continue
            store.put_artifact(run.id, MEASURE, measure_run(store, run))
            done += 1
    return done


def _timed(fn: Any, sync: Any, budget_s: float, most: int) -> float:
    """Median seconds of ``fn()`` after two warm-up calls, within about ``budget_s``."""
    fn()
    fn()
    sync()
    times: list[float] = []
    start = time.perf_counter()
    while len(times) < most and (len(times) < 3 or time.perf_counter() - start < budget_s):
        t0 = time.perf_counter()
        fn()
        sync()
        times.append(time.perf_counter() - t0)
    return statistics.median(times)


def measure_run(store: RunStore, run: Run) -> dict[str, Any]:
    """Latency (ms at batch 1 and at :data:`LARGE_BATCH`) and train-subset accuracy of a run."""
    # lazy: torch, the checkpoint and the data only when an arm is measured
    import torch

    # lazy, as above: loaded only when this function runs
    from cnnlab.devices import autocast, cpu_threads, resolve_device
    from cnnlab.training.checkpoints import load_checkpoint
    from cnnlab.training.config import TrainConfig
    from cnnlab.training.data import load_mnist
    from cnnlab.training.recipe import prepare

    artifact = store.get_artifact(run.id, CHECKPOINT)
    if artifact is None or artifact.path is None:
        return {"error": "no checkpoint"}
    model, _ = load_checkpoint(artifact.path)
    config = TrainConfig.from_dict(run.config)
    device = resolve_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    model = model.to(device).eval()

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()

    train = load_mnist("train", limit=config.train_limit, data_dir=config.data_dir)
    n = min(TRAIN_SUBSET, len(train))
    images, labels = train.images[:n].to(device), train.labels[:n].to(device)
    big = min(LARGE_BATCH, n)
    x1 = prepare(images[:1], config.input_size, device)
    xb = prepare(images[:big], config.input_size, device)

    with torch.inference_mode(), autocast(device):
        one = _timed(lambda: model(x1), sync, BUDGET_S, 200)
        many = _timed(lambda: model(xb), sync, BUDGET_S, 20)
        correct = 0
        for start in range(0, n, big):
            x = prepare(images[start : start + big], config.input_size, device)
            correct += int((model(x).float().argmax(1) == labels[start : start + big]).sum())
    return {
        "device": str(device),
        "latency_ms": one * 1000,
        "batch_latency_ms": many * 1000,
        "batch": big,
        "batch_ms_per_image": many * 1000 / big,
        "train_accuracy": correct / n,
        "train_subset": n,
        "measured": time.time(),
    }
