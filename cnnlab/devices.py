"""Which device to train or measure on, and how to run on it (threads, autocast, memory layout)."""

from __future__ import annotations

import contextlib
import os
from typing import Any

import torch

from cnnlab.errors import UserError


def resolve_device(name: str | torch.device = "auto") -> torch.device:
    """The one device rule, for training and for latency timing alike.

    ``auto`` → CUDA if present, else MPS (Apple), else CPU. An explicit ``cpu``, ``cuda``,
    ``cuda:N``, ``mps`` (or a ``torch.device``) is used as given if this machine has it; an
    unavailable or unknown device is a :class:`UserError`, never a silent fallback.
    """
    text = str(name).strip().lower()
    if text == "auto":
        if torch.cuda.is_available():
            return torch.device("cuda")
        if _mps_available():
            return torch.device("mps")
        return torch.device("cpu")
    try:
        device = torch.device(text)
    except (RuntimeError, ValueError):
        raise UserError(f"unknown device {str(name)!r} (use auto, cpu, cuda or mps)") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise UserError("device cuda is not available here (no GPU with CUDA); use cpu")
    if device.type == "mps" and not _mps_available():
        raise UserError("device mps is not available here (no Apple GPU); use cpu")
    if device.type not in ("cpu", "cuda", "mps"):
        raise UserError(f"unknown device {str(name)!r} (use auto, cpu, cuda or mps)")
    return device


def synchronize(device: torch.device) -> None:
    """Wait for the device's queued kernels (a no-op on CPU): timings then cover the work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


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
