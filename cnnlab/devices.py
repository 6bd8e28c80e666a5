"""Which device to train or measure on, and how to run on it (threads, autocast, memory layout)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch

from cnnlab.errors import UserError


def resolve_device(name: str) -> torch.device:
    """``auto`` → CUDA if present, else MPS, else CPU; an unavailable device is a UserError."""
    if name == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    if name == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda is not available here (no CUDA GPU); use --device cpu")
    if name == "mps" and not _mps_available():
        raise UserError("device mps is not available here (no Apple GPU); use --device cpu")
    if name not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {name!r} (use auto, cpu, cuda or mps)")
    return torch.device(name)


def _mps_available() -> bool:
    backend = getattr(torch.backends, "mps", None)
    return bool(backend is not None and backend.is_available())


def cpu_threads() -> int:
    """Threads per training process: the cores divided among ``CNNLAB_WORKERS`` workers."""
    if os.environ.get("CNNLAB_THREADS"):
        return max(1, int(os.environ["CNNLAB_THREADS"]))
    workers = max(1, int(os.environ.get("CNNLAB_WORKERS") or 1))
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count()
    return max(1, (cores or 1) // workers)


def autocast(device: torch.device) -> contextlib.AbstractContextManager[Any]:
    """bf16 autocast on CUDA; plain fp32 elsewhere (bf16 on this CPU is ~9× slower)."""
    if device.type == "cuda":
        return torch.autocast("cuda", dtype=torch.bfloat16)
    return contextlib.nullcontext()


def channels_last(device: torch.device) -> bool:
    return device.type in ("cuda", "cpu")
