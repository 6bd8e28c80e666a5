"""Checkpoints: save a model with its config, load it safely (weights only), predict with it."""

from __future__ import annotations

import os
import shutil
from pathlib import Path

import torch
from torch import nn

from cnnlab.devices import autocast
from cnnlab.errors import UserError, error_text
from cnnlab.training.config import TrainConfig
from cnnlab.training.recipe import network, prepare


def save_checkpoint(model: nn.Module, config: TrainConfig, path: Path) -> Path:
    """``{"state_dict", "config"}`` with CPU tensors, written atomically (loads weights_only)."""
    state = {k: v.detach().to("cpu").contiguous() for k, v in model.state_dict().items()}
    tmp = path.with_suffix(".tmp")
    try:
        torch.save({"state_dict": state, "config": config.to_dict()}, tmp)
        os.replace(tmp, path)
    except Exception as err:  # disk full, read-only, …: leave no half-written file behind
        tmp.unlink(missing_ok=True)
        full = shutil.disk_usage(path.parent).free < 64 * 2**20
        hint = " (the disk is full)" if full else ""
        raise UserError(f"cannot write the checkpoint {path}{hint}: {error_text(err)}") from None
    return path


INITIAL = "initial"
"""The artifact kind (and file stem) of a run's weights before its first step."""
INITIAL_MAX_PARAMS = 2_000_000
"""Initial weights are kept for models up to this size (8 MB of fp32: every MNIST model);
a bigger model (VGG-16: 138 M) keeps only its final checkpoint."""


def save_initial(model: nn.Module, config: TrainConfig, folder: Path) -> Path | None:
    """The untrained weights as ``initial.pt`` (a checkpoint like the final one), or None for a
    model over :data:`INITIAL_MAX_PARAMS` parameters."""
    if sum(p.numel() for p in model.parameters()) > INITIAL_MAX_PARAMS:
        return None
    return save_checkpoint(model, config, folder / f"{INITIAL}.pt")


def load_checkpoint(path: str | Path) -> tuple[nn.Module, TrainConfig]:
    """Rebuild the model of a checkpoint (``torch.load(weights_only=True)``), in eval mode."""
    try:
        blob = torch.load(Path(path), map_location="cpu", weights_only=True)
    except FileNotFoundError:
        raise UserError(f"{path}: no such checkpoint") from None
    except Exception as err:
        raise UserError(f"{path}: not a readable checkpoint ({error_text(err)})") from None
    if not isinstance(blob, dict) or not {"state_dict", "config"} <= set(blob):
        raise UserError(f"{path}: not a cnnlab checkpoint (needs state_dict and config)")
    config = TrainConfig.from_dict(blob["config"]).validate()
    model = network(config)  # the run's own network (separable when the run was)
    try:
        model.load_state_dict(blob["state_dict"])
    except (RuntimeError, TypeError, AttributeError) as err:
        raise UserError(f"{path}: weights do not fit {config.model} ({error_text(err)})") from None
    model.eval()
    return model, config


@torch.inference_mode()
def predict(model: nn.Module, config: TrainConfig, images_uint8: torch.Tensor) -> torch.Tensor:
    """Class probabilities [N, 10] for uint8 digits [N, 28, 28] (white on black, like MNIST)."""
    images = torch.as_tensor(images_uint8)
    if images.ndim == 2:
        images = images.unsqueeze(0)
    if images.ndim != 3 or tuple(images.shape[1:]) != (28, 28):
        raise UserError(f"predict needs uint8 images of 28×28, got shape {tuple(images.shape)}")
    device = next(model.parameters()).device
    model.eval()
    x = prepare(images.to(device=device, dtype=torch.uint8), config.input_size, device)
    with autocast(device):
        return model(x).float().softmax(1).cpu()
