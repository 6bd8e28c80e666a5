"""What an experiment will cost on this device before it starts, and a refusal when too big.

Each distinct network (arm configs that differ only in seed, data size or epochs) is timed once
(:func:`time_steps`: a few real training steps at the run's own batch size, on random digits —
timing from batch 1 up, as the single-run estimator does, misjudges a small CNN on a busy CPU by
an order of magnitude); every run's time is then its training images at that speed, its test
evaluations (forward only, at three times the training speed) and a fixed start/finish overhead
per run.
"""

from __future__ import annotations

import os
import time
from dataclasses import dataclass

from cnnlab.errors import UserError
from cnnlab.experiments.plan import Plan
from cnnlab.format import eta_text
from cnnlab.training.config import TrainConfig

RUN_OVERHEAD_S = 3.0
"""Start (data, model), the final summary and the checkpoint of one run, on a CPU."""
MEASURE_S = 1.5
"""The one-off inference timing of a finished arm (:mod:`cnnlab.experiments.measure`)."""
MAX_EXPERIMENT_S = 2 * 3600.0
"""The longest experiment cnnlab queues (``CNNLAB_MAX_EXPERIMENT_S`` overrides)."""


@dataclass(frozen=True)
class PlanCost:
    """Seconds per run (plan order), their total on ``device``, and a refusal when too big."""

    run_seconds: tuple[float, ...]
    total_seconds: float
    device: str
    images: int
    images_per_second: dict[str, float]
    """Measured training speed per distinct network (label → images/s)."""
    refusal: str | None = None

    @property
    def text(self) -> str:
        runs = len(self.run_seconds)
        return (
            f"{runs} runs, {self.images:,} training images in all, "
            f"{eta_text(self.total_seconds)} on {self.device} (one worker)"
        )

    def raise_if_refused(self) -> None:
        if self.refusal:
            raise UserError(self.refusal)


def limit_seconds() -> float:
    raw = os.environ.get("CNNLAB_MAX_EXPERIMENT_S")
    if not raw:
        return MAX_EXPERIMENT_S
    try:
        return max(1.0, float(raw))
    except ValueError:
        raise UserError(f"CNNLAB_MAX_EXPERIMENT_S must be a number, got {raw!r}") from None


def _network_key(config: TrainConfig) -> str:
    same = config.with_(seed=0, train_limit=None, epochs=1, name=None)
    return repr(sorted(same.to_dict().items()))


def estimate_plan(plan: Plan, *, measure: bool = True) -> PlanCost:
    """The cost of every run of ``plan`` (``measure=False``: a FLOP-rate guess, no timing)."""
    # lazy: torch, the analysis engine and the data only when a plan is priced
    from cnnlab.training.data import load_mnist
    from cnnlab.training.estimate import estimate_cost

    speeds: dict[str, float] = {}
    named: dict[str, float] = {}
    seconds: list[float] = []
    images = 0
    device = "cpu"
    n_test = len(load_mnist("test", data_dir=plan.arms[0].config.data_dir))
    for arm in plan.arms:
        config = arm.config
        key = _network_key(config)
        estimate = estimate_cost(config, measure=False)  # counts on the meta device, checks fit
        estimate.raise_if_unfit()
        device = estimate.device
        n_images = estimate.images
        images += n_images
        if key not in speeds:
            if measure:
                speeds[key] = time_steps(config)
            else:
                speeds[key] = max(estimate.images / max(estimate.eta_seconds, 1e-9), 1.0)
            named[arm.label] = speeds[key]
        rate = speeds[key]
        seconds.append(
            n_images / rate + n_test * config.epochs / (3 * rate) + RUN_OVERHEAD_S + MEASURE_S
        )
    total = sum(seconds)
    refusal = None
    limit = limit_seconds()
    if total > limit:
        slowest = max(range(len(seconds)), key=seconds.__getitem__)
        refusal = (
            f"this experiment would take {eta_text(total)} on {device} ({len(seconds)} runs, "
            f"the longest {plan.arms[slowest].label} {eta_text(seconds[slowest])}); the limit "
            f"is {eta_text(limit)}: fewer sizes, seeds or epochs, or a smaller input"
        )
    return PlanCost(tuple(seconds), total, device, images, named, refusal)


STEP_BUDGET_S = 1.0


def time_steps(config: TrainConfig, budget_s: float = STEP_BUDGET_S) -> float:
    """Training images/s of ``config`` on its device: the median of a few real steps (forward,
    backward, optimizer) at its batch size on random digits, after one warm-up step."""
    # lazy: torch and the recipe only when a plan is timed
    import torch
    import torch.nn.functional as F

    # lazy, as above: loaded only when this function runs
    from cnnlab.devices import autocast, cpu_threads, resolve_device
    from cnnlab.training.recipe import NUM_CLASSES, build, make_optimizer, prepare

    device = resolve_device(config.device)
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    model = build(config, device)
    optimizer = make_optimizer(config, model)
    gen = torch.Generator().manual_seed(0)
    bs = config.batch_size
    digits = torch.randint(0, 256, (bs, 28, 28), dtype=torch.uint8, generator=gen).to(device)
    classes = torch.randint(0, NUM_CLASSES, (bs,), generator=gen).to(device)

    def step() -> float:
        if device.type == "cuda":
            torch.cuda.synchronize()
        start = time.perf_counter()
        with autocast(device):
            loss = F.cross_entropy(model(prepare(digits, config.input_size, device)), classes)
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        if device.type == "cuda":
            torch.cuda.synchronize()
        return time.perf_counter() - start

    first = step()
    times: list[float] = []
    begin = time.perf_counter()
    while len(times) < 7 and (not times or time.perf_counter() - begin + first < budget_s):
        times.append(step())
    times.sort()
    return bs / max(times[len(times) // 2], 1e-9)
