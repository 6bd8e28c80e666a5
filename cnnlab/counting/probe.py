"""The probe: a forward pass on the ``meta`` device (shapes only), hooks on every leaf module."""

from __future__ import annotations

import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from cnnlab.counting.rules import ACTIVATION_TYPES, IDENTITY_AT_INFERENCE, is_atomic
from cnnlab.errors import UserError


class ForwardFailed(UserError):
    """The forward pass failed at ``layer`` (``"features.30 (MaxPool2d)"``) for ``reason``."""

    def __init__(self, reason: str, layer: str | None, kind: str) -> None:
        self.reason = reason
        self.layer = layer
        self.kind = kind  # "size", "channels", "features" or "other"
        super().__init__(f"{reason} at {layer}" if layer else reason)


@dataclass(frozen=True)
class _Record:
    name: str
    module: nn.Module
    in_shape: tuple[int, ...]
    out_shape: tuple[int, ...]


def _first_tensor(value: Any) -> torch.Tensor | None:
    if isinstance(value, torch.Tensor):
        return value
    if isinstance(value, (tuple, list)):
        for item in value:
            found = _first_tensor(item)
            if found is not None:
                return found
    if isinstance(value, Mapping):
        for item in value.values():
            found = _first_tensor(item)
            if found is not None:
                return found
    return None


def _shape_of(value: Any) -> tuple[int, ...]:
    tensor = _first_tensor(value)
    return tuple(int(s) for s in tensor.shape) if tensor is not None else ()


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """(dotted name, module) of every counting unit, in definition order.

    A unit is a module without children, or an *atomic* one (its rule covers its children,
    e.g. ``MultiheadAttention``), whose children are then not units themselves.
    """
    leaves = []
    inside: str | None = None  # dotted prefix of the atomic unit being skipped
    for name, module in model.named_modules():
        if inside is not None and (name == inside or name.startswith(inside + ".")):
            continue
        inside = None
        if is_atomic(module):
            leaves.append((name or type(model).__name__, module))
            inside = name
            if not name:  # the whole model is one unit
                break
        elif next(iter(module.children()), None) is None:
            leaves.append((name or type(model).__name__, module))
    return leaves


def _model_device(model: nn.Module) -> torch.device:
    for tensor in (*model.parameters(), *model.buffers()):
        return tensor.device
    return torch.device("meta")


_SIZE_PATTERNS = (
    "too small",
    "can't be greater than actual input size",
    "non-positive",
    "should be non-negative",
    "must be greater than",
    "pad should be",
)


def _explain(exc: BaseException) -> tuple[str, str]:
    """(kind, one-line reason) for an exception raised inside a forward pass."""
    text = " ".join(str(exc).split())
    m = re.search(r"expected input\[[^\]]*\] to have (\d+) channels, but got (\d+)", text)
    if m:
        return "channels", f"expects {m.group(1)} input channels, got {m.group(2)}"
    m = re.search(
        r"mat1 and mat2 shapes cannot be multiplied \((\d+)x(\d+) and (\d+)x(\d+)\)", text
    )
    if m:
        return "features", f"expects {int(m.group(3)):,} input features, got {int(m.group(2)):,}"
    if any(p in text.lower() for p in _SIZE_PATTERNS):
        return "size", "spatial size reaches 0"
    first = text[:200] + ("…" if len(text) > 200 else "")
    return "other", first or type(exc).__name__


SHAPE_PRESERVING: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._BatchNorm,
    nn.LayerNorm,
    nn.GroupNorm,
    *ACTIVATION_TYPES,
    *IDENTITY_AT_INFERENCE,
)


def _passthrough(x: torch.Tensor, *args: Any, **kwargs: Any) -> torch.Tensor:
    return x


def run_forward(model: nn.Module, input_shape: Sequence[int]) -> list[_Record]:
    """One eval-mode forward pass of an input of ``input_shape``; a record per leaf call.

    The input lives where the model's tensors do (``meta`` for a model without any).
    Raises :class:`ForwardFailed` naming the leaf being run when the pass fails.
    Hooks are per call: do not analyse the same module object from two threads at once.
    """
    records: list[_Record] = []
    state: dict[str, str | None] = {"current": None, "last": None}
    handles = []

    def pre_hook(label: str) -> Any:
        def hook(module: nn.Module, args: Any) -> None:
            state["current"] = label

        return hook

    def post_hook(name: str, label: str) -> Any:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            records.append(_Record(name, module, _shape_of(args), _shape_of(output)))
            state["current"] = None
            state["last"] = label

        return hook

    device = _model_device(model)
    shortcut: list[nn.Module] = []
    for name, module in leaf_modules(model):
        label = f"{name} ({type(module).__name__})"
        handles.append(module.register_forward_pre_hook(pre_hook(label)))
        handles.append(module.register_forward_hook(post_hook(name, label)))
        is_free = device.type == "meta" and isinstance(module, SHAPE_PRESERVING)
        if is_free and "forward" not in module.__dict__:
            module.forward = _passthrough
            shortcut.append(module)
    was_training = model.training
    try:
        model.eval()
        x = torch.empty(tuple(input_shape), device=device)
        with torch.no_grad():
            model(x)
    except (RuntimeError, ValueError, AssertionError, IndexError, TypeError) as exc:
        kind, reason = _explain(exc)
        layer = state["current"]
        if layer is None and state["last"] is not None:
            layer = f"after {state['last']}"
        raise ForwardFailed(reason, layer, kind) from None
    finally:
        for handle in handles:
            handle.remove()
        for module in shortcut:
            del module.forward
        model.train(was_training)
    return records
