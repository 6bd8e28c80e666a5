"""The cost of a run before it starts: MACs, training FLOPs, memory and a measured time estimate."""

from __future__ import annotations

import os
import time
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.counting.analyse import analyse_zoo
from cnnlab.devices import autocast, channels_last, cpu_threads, resolve_device
from cnnlab.errors import UserError
from cnnlab.format import eta_text, gigabytes
from cnnlab.training.config import TrainConfig
from cnnlab.training.data import load_mnist
from cnnlab.training.recipe import NUM_CLASSES, make_optimizer, network, prepare
from cnnlab.training.store import RunStore


@dataclass(frozen=True)
class CostEstimate:
    """What a run will cost before it starts (integers exact; format when rendering)."""

    params: int
    macs_per_image: int
    train_flops: int
    images: int
    eta_seconds: float
    eta_text: str
    warning: str | None
    memory_bytes: int
    fits: bool
    available_bytes: int
    device: str
    measured_images_per_second: float | None = None
    refusal: str | None = None

    def raise_if_unfit(self) -> None:
        if not self.fits and self.refusal:
            raise UserError(self.refusal)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def record(
        self,
        store: RunStore,
        config: TrainConfig,
        *,
        owner_id: str | None = None,
        owner_name: str | None = None,
        experiment_id: str | None = None,
    ) -> str:
        """Refuse a run that cannot fit; else create it in ``store`` (queued) and return its id."""
        self.raise_if_unfit()
        return store.create_run(
            config.to_dict(),
            name=config.name,
            model=config.model,
            params=self.params,
            macs=self.macs_per_image,
            owner_id=owner_id,
            owner_name=owner_name,
            experiment_id=experiment_id,
        )


LONG_RUN_S = 30 * 60


def estimate_cost(config: TrainConfig, *, measure: bool = True) -> CostEstimate:
    """Params, MACs/image (analysis engine), training FLOPs (= MACs × images × 3 × 2), memory,
    and an ETA from a short measured warm-up on the chosen device (``measure=False``: skip it and
    guess from FLOPs). Never raises for size: see ``fits``/``refusal``/:meth:`raise_if_unfit`."""
    config.check_model()
    device = resolve_device(config.device)
    analysis = analyse_zoo(  # the network :func:`recipe.network` builds, as `cnnlab profile`
        config.model,
        mnist=True,
        input_size=config.input_size,
        separable=config.separable,
        spec=config.stack_spec(),
    )
    params, macs = analysis.totals.params, analysis.totals.macs
    if config.batch_size == 1 and any("BatchNorm" in row.type for row in analysis.rows):
        raise UserError(
            f"{config.model} has BatchNorm, which cannot train on batches of one"
            " image; use batch size 2 or more"
        )
    n_train = len(load_mnist("train", limit=config.train_limit, data_dir=config.data_dir))
    n_test = len(load_mnist("test", data_dir=config.data_dir))
    images = n_train * config.epochs
    train_flops = macs * images * 3 * 2

    memory = memory_bytes(
        config, params, analysis.totals.activation_bytes, n_train + n_test, device
    )
    available = available_bytes(device)
    fits = memory <= 0.9 * available
    refusal = None
    if not fits:
        refusal = (
            f"{config.model} at {config.input_size}×{config.input_size}, batch"
            f" {config.batch_size}, needs about {gigabytes(memory)} on {device.type} but only"
            f" {gigabytes(available)} is available; use a smaller batch size or input size"
        )

    measured = None
    if fits and measure:
        measured = measure_speed(config, device, macs_per_image=macs)
    if measured:
        seconds = images / measured + n_test * config.epochs / (3 * measured) + 2.0
    else:  # a FLOP-rate guess: ~20 GFLOP/s on a laptop CPU, ~100 TFLOP/s on a GPU
        rate = 20e9 if device.type == "cpu" else 100e12
        seconds = train_flops / rate
    warning = None
    if seconds > LONG_RUN_S:
        hint = " — a CUDA GPU would take minutes" if device.type == "cpu" else ""
        warning = f"this run would take {eta_text(seconds)} on {device.type}{hint}"
    return CostEstimate(
        params=params,
        macs_per_image=macs,
        train_flops=train_flops,
        images=images,
        eta_seconds=seconds,
        eta_text=eta_text(seconds),
        warning=warning,
        memory_bytes=memory,
        fits=fits,
        available_bytes=available,
        device=str(device),
        measured_images_per_second=measured,
        refusal=refusal,
    )


def memory_bytes(
    config: TrainConfig,
    params: int,
    activation_bytes: int,
    resident_images: int,
    device: torch.device,
) -> int:
    """Weights + gradients + optimizer state + activations at the batch size + the data."""
    state_copies = {"adam": 2, "adamw": 2}.get(config.optimizer, 1 if config.momentum else 0)
    weights = params * 4 * (2 + state_copies)
    per_activation = 2 if device.type == "cuda" else 4  # bf16 under autocast
    activations = activation_bytes // 4 * per_activation * config.batch_size
    batch_input = config.batch_size * config.input_size**2 * 4
    data = resident_images * 28 * 28 + resident_images * 8
    return int(weights + activations + batch_input + data)


def available_bytes(device: torch.device) -> int:
    """Free memory on ``device``: CUDA free memory, MPS recommended maximum, CPU MemAvailable."""
    if device.type == "cuda":
        free, _total = torch.cuda.mem_get_info(device)
        return int(free)
    if device.type == "mps":
        return int(torch.mps.recommended_max_memory())
    try:
        for line in Path("/proc/meminfo").read_text().splitlines():
            if line.startswith("MemAvailable:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return int(os.sysconf("SC_AVPHYS_PAGES") * os.sysconf("SC_PAGE_SIZE"))


SURE_FLOPS_PER_S = 2e9
"""A training rate any device here beats (this 2-core CPU trains small-cnn at ~50 GFLOP/s)."""


def measure_speed(
    config: TrainConfig,
    device: torch.device,
    budget_s: float = 1.0,
    macs_per_image: int | None = None,
) -> float:
    """Training images/s on ``device`` from a short warm-up on random digits.

    Times the forward + backward pass and the optimizer step apart: images/s =
    1 / (pass time per image + step time / batch size). The timed batch starts at the largest
    that surely fits in ``budget_s`` (from ``macs_per_image`` at :data:`SURE_FLOPS_PER_S`; else
    the smallest, 1, or 2 with BatchNorm) and doubles while the passes fit, so a small model is
    timed at its real batch in about a second and VGG-16 at 224 on a CPU at one image (a few
    seconds: one warm and one timed pass). Starting small matters for big models only: a busy
    web server (other sessions' Python threads holding the GIL between torch's operators) adds
    about the same few milliseconds to every operator, which at one image made a small model's
    ETA ~50× too long. Weights are allocated without initialisation (constant values): timing
    needs no real model.
    """
    if device.type == "cpu":
        torch.set_num_threads(cpu_threads())
    model = network(config, device="meta")
    has_batchnorm = any(isinstance(m, nn.modules.batchnorm._BatchNorm) for m in model.modules())
    model = model.to_empty(device=device)
    with torch.no_grad():
        for tensor in (*model.parameters(), *model.buffers()):
            tensor.fill_(0.01 if tensor.is_floating_point() else 1)
    if channels_last(device):
        model = model.to(memory_format=torch.channels_last)
    batch = min(config.batch_size, 2 if has_batchnorm else 1)  # BatchNorm needs two images
    if macs_per_image:  # forward + backward ≈ 3 × the forward's 2 FLOPs per MAC
        sure = int(budget_s / 2 * SURE_FLOPS_PER_S / (6 * macs_per_image))
        while batch * 2 <= min(sure, config.batch_size):
            batch *= 2
    model.train(batch > 1 or not has_batchnorm)
    optimizer = make_optimizer(config, model)
    gen = torch.Generator().manual_seed(0)
    digits = torch.randint(0, 256, (config.batch_size, 28, 28), dtype=torch.uint8, generator=gen)
    classes = torch.randint(0, NUM_CLASSES, (config.batch_size,), generator=gen)
    digits, classes = digits.to(device), classes.to(device)

    def sync() -> None:
        if device.type == "cuda":
            torch.cuda.synchronize()
        elif device.type == "mps":
            torch.mps.synchronize()

    def timed_pass(batch: int) -> float:
        sync()
        start = time.perf_counter()
        with autocast(device):
            logits = model(prepare(digits[:batch], config.input_size, device))
            loss = F.cross_entropy(logits, classes[:batch])
        loss.backward()
        sync()
        return time.perf_counter() - start

    # The first pass pays for allocations and kernel selection: it only warms up. Then double
    # the batch while the next pass (about twice the last) still fits in the budget.
    if timed_pass(batch) < budget_s:
        last = spent = timed_pass(batch)
        while batch < config.batch_size and spent + 2 * last <= budget_s:
            batch = min(config.batch_size, batch * 2)
            last = timed_pass(batch)
            spent += last
    passes, start = [timed_pass(batch)], time.perf_counter()
    while len(passes) < 20:  # the fastest of a few: one pass can wait on another thread
        spent = time.perf_counter() - start
        if spent >= budget_s / 2 and (len(passes) >= 3 or passes[-1] >= budget_s / 2):
            break
        passes.append(timed_pass(batch))
    per_image = min(passes) / batch
    optimizer.step()  # the first step allocates the optimizer state
    sync()
    start = time.perf_counter()
    optimizer.step()
    sync()
    per_image += (time.perf_counter() - start) / config.batch_size
    return 1.0 / per_image
