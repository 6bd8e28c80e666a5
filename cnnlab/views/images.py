"""Digits as pictures: grids and single images for display (uint8 in, uint8 out)."""

from __future__ import annotations

import numpy as np
import torch
from torchvision.utils import make_grid


def digit_grid(images: torch.Tensor, columns: int = 16, padding: int = 2) -> np.ndarray:
    """Tile uint8 digits [N, 28, 28] into one white-on-black uint8 picture [H, W]."""
    if images.ndim != 3 or images.dtype != torch.uint8:
        raise ValueError("expected uint8 images shaped [N, H, W]")
    grid = make_grid(images.unsqueeze(1), nrow=columns, padding=padding, pad_value=64)
    return grid[0].numpy()


def upscale(image: np.ndarray, factor: int = 4) -> np.ndarray:
    """Nearest-neighbour enlargement so 28×28 digits stay crisp in a browser."""
    return np.kron(image, np.ones((factor, factor), dtype=image.dtype))
