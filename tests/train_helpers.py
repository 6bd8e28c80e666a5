"""A training run whose every step takes several seconds on a CPU (for stop tests)."""

from __future__ import annotations

import time

from cnnlab.training.config import TrainConfig
from cnnlab.training.names import RUNNING, STAGE, TRAINING
from cnnlab.training.store import RunStore

SLOW_SPEC = {
    "name": "slow steps",
    "input": [1, 224, 224],
    "layers": [
        {"type": "conv", "out_channels": 32, "kernel": 3, "padding": 1, "activation": "relu"},
        {"type": "conv", "out_channels": 32, "kernel": 7, "padding": 3, "activation": "relu"},
        {"type": "maxpool", "kernel": 8},
        {"type": "flatten"},
        {"type": "linear", "out_features": 10},
    ],
}
"""Two convolutions at 224×224 (~2.5 GMACs per image): one step of 32 images takes ~7 s on a
2-core CPU, with little memory (about 1 GB)."""

SLOW = TrainConfig(
    model="stack",
    spec=SLOW_SPEC,
    input_size=224,
    batch_size=32,
    train_limit=640,
    device="cpu",
    schedule="constant",
    name="slow steps",
)


def wait_training(store: RunStore, run_id: str, timeout_s: float = 180) -> None:
    """Until the run's stage says it is training (its first step under way)."""
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        stage = store.get_artifact(run_id, STAGE)
        if stage is not None and stage.data and stage.data.get("stage") == TRAINING:
            return
        time.sleep(0.05)
    raise AssertionError(f"run {run_id} never started training")


def time_to_stop(store: RunStore, run_id: str, limit_s: float = 30) -> float:
    """Ask the run to stop; seconds until the store says it is no longer running."""
    asked = time.monotonic()
    assert store.request_stop(run_id)
    while store.get_run(run_id).status == RUNNING and time.monotonic() - asked < limit_s:
        time.sleep(0.02)
    return time.monotonic() - asked
