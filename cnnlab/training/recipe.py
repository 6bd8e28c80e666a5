"""The recipe of a run: batches prepared on the device, model, optimizer, LR schedule, seed."""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from cnnlab.counting import zoo
from cnnlab.counting.transform import separable_model
from cnnlab.devices import channels_last
from cnnlab.training.config import TrainConfig

MEAN, STD = 0.1307, 0.3081  # MNIST training-set pixel statistics (as in cnnlab.training.data)


NUM_CLASSES = 10


def prepare(images: torch.Tensor, size: int, device: torch.device) -> torch.Tensor:
    """uint8 [B, 28, 28] on the device → normalised float [B, 1, size, size] (resized there)."""
    x = images.unsqueeze(1).float().mul_(1.0 / (255.0 * STD)).sub_(MEAN / STD)
    if size != x.shape[-1]:
        x = F.interpolate(x, size=(size, size), mode="bilinear", align_corners=False)
    if channels_last(device):
        x = x.contiguous(memory_format=torch.channels_last)
    return x


def network(config: TrainConfig, device: str | torch.device = "cpu") -> nn.Module:
    """The run's network, on ``device`` (``"meta"``: shapes only): the zoo model adapted to
    MNIST (1 input channel, 10 classes), made depthwise-separable when ``config.separable``.

    The one place a run's model is made: training, the speed warm-up and checkpoint reloads
    all build it here, so they all see the same modules (and the same state-dict keys).
    """
    model = zoo.build_model(config.model, mnist=True, device=device, spec=config.stack_spec())
    if config.separable:
        model = separable_model(model)
    return model


def build(config: TrainConfig, device: torch.device) -> nn.Module:
    """:func:`network` on ``device``, channels-last where that device prefers it."""
    model = network(config, device)
    if channels_last(device):
        model = model.to(memory_format=torch.channels_last)
    return model


def make_optimizer(config: TrainConfig, model: nn.Module) -> torch.optim.Optimizer:
    params = [p for p in model.parameters() if p.requires_grad]
    fused = True if next(model.parameters()).device.type == "cuda" else None
    if config.optimizer == "adam":
        return torch.optim.Adam(params, lr=config.lr, weight_decay=config.weight_decay, fused=fused)
    if config.optimizer == "adamw":
        return torch.optim.AdamW(
            params, lr=config.lr, weight_decay=config.weight_decay, fused=fused
        )
    return torch.optim.SGD(
        params, lr=config.lr, momentum=config.momentum, weight_decay=config.weight_decay
    )


def make_schedule(
    config: TrainConfig, optimizer: torch.optim.Optimizer, total_steps: int
) -> torch.optim.lr_scheduler.LRScheduler | None:
    """``constant`` → None; ``onecycle`` → warm-up to ``lr`` then cosine down; ``cosine``.

    Runs shorter than 10 steps keep a constant rate (one-cycle needs room for its warm-up).
    """
    if config.schedule == "onecycle" and total_steps >= 10:
        return torch.optim.lr_scheduler.OneCycleLR(
            optimizer, max_lr=config.lr, total_steps=total_steps, pct_start=0.25
        )
    if config.schedule == "cosine":
        return torch.optim.lr_scheduler.CosineAnnealingLR(optimizer, T_max=max(1, total_steps))
    return None


def seed_everything(seed: int) -> torch.Generator:
    torch.manual_seed(seed)
    return torch.Generator().manual_seed(seed)
