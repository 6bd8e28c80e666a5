"""Named models: torchvision classifiers, the report's AlexNet, small-cnn, lenet5, a Conv Lab stack.

Build with ``device="meta"`` to count: shapes and parameter counts without real weights
(VGG-16 builds in ~25 ms on meta, ~2 s with real weights on CPU).
"""

from __future__ import annotations

import difflib
import functools
import re
from collections.abc import Callable, Sequence
from dataclasses import replace
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from cnnlab.counting.build import build_stack
from cnnlab.counting.mnist_models import LeNet5, SmallCNN
from cnnlab.counting.probe import ForwardFailed, run_forward
from cnnlab.counting.spec import (
    MAX_CHANNELS,
    MAX_SPATIAL,
    LayerSpec,
    StackSpec,
    check_stack,
)
from cnnlab.errors import UserError
from cnnlab.format import shape_text

ZOO: tuple[str, ...] = (
    "alexnet",
    "alexnet-report",
    "vgg11",
    "vgg11_bn",
    "vgg13",
    "vgg13_bn",
    "vgg16",
    "vgg16_bn",
    "vgg19",
    "vgg19_bn",
    "mobilenet_v2",
    "mobilenet_v3_small",
    "mobilenet_v3_large",
    "resnet18",
    "small-cnn",
    "lenet5",
)
"""The models the Model Inspector offers first; any torchvision classifier works too."""

STACK = "stack"
"""The name under which a Conv Lab spec is built (``build_model("stack", spec=...)``)."""

MNIST_MODELS = ("small-cnn", "lenet5")
"""Models designed for 1×28×28 MNIST input."""

NATIVE_INPUT: dict[str, tuple[int, int, int]] = {"inception_v3": (3, 299, 299)}
"""ImageNet models whose native input is not 3×224×224."""

MNIST_CLASSES = 10


def _torchvision() -> Any:
    """torchvision, imported on first use: ~1.5 s (with torch._dynamo, which its ops pull in)
    that small-cnn, lenet5 and Conv Lab stacks never need (``cnnlab train`` with defaults)."""
    import torchvision  # lazy, see the docstring

    return torchvision


@functools.cache
def _torchvision_names() -> tuple[str, ...]:
    models = _torchvision().models
    return tuple(models.list_models(module=models))


def list_models() -> list[str]:
    """The zoo first, then every other torchvision classification builder, sorted."""
    rest = sorted(n for n in _torchvision_names() if n not in ZOO)
    return [*ZOO, *rest]


def _unknown(name: str) -> UserError:
    names = [*list_models(), STACK]
    close = difflib.get_close_matches(name, names, n=5, cutoff=0.5)
    hint = f"; did you mean {', '.join(close)}?" if close else f"; known models: {', '.join(ZOO)}"
    return UserError(f"unknown model {name!r}{hint}")


MODEL_NOTES: dict[str, str] = {
    "alexnet": "torchvision's AlexNet: classifier 9216→4096→4096→1000",
    "alexnet-report": "the report's AlexNet: torchvision's with classifier 4096→1024→1000",
}
"""What tells two look-alike models apart (the two AlexNets), for the model list."""

_VGG = re.compile(r"vgg\d+(_bn)?")


def student_layer_names(name: str, layers: Sequence[tuple[str, str]]) -> dict[str, str]:
    """The names a course gives AlexNet's and VGG's layers, keyed by module name.

    ``layers`` are (module name, type name) in forward order. AlexNet: conv1…conv5, fc6…fc8;
    VGG: conv<block>_<i> (a block ends at a max-pool: conv1_1…conv5_3 for VGG-16), then fc6…fc8.
    Other models get no names ({}).
    """
    alexnet = name in ("alexnet", "alexnet-report")
    if not alexnet and not _VGG.fullmatch(name):
        return {}
    names: dict[str, str] = {}
    block, in_block, convs, fcs = 1, 0, 0, 0
    for module, kind in layers:
        if kind == "Conv2d":
            convs += 1
            in_block += 1
            names[module] = f"conv{convs}" if alexnet else f"conv{block}_{in_block}"
        elif kind == "MaxPool2d" and in_block:
            block, in_block = block + 1, 0
        elif kind == "Linear":
            fcs += 1
            names[module] = f"fc{(convs if alexnet else block - 1) + fcs}"
    return names


def _alexnet_report(num_classes: int) -> nn.Module:
    """torchvision AlexNet with the report's classifier: 9216 → 4096 → 1024 → classes."""
    model = _torchvision().models.alexnet(weights=None)
    model.classifier[4] = nn.Linear(4096, 1024)
    model.classifier[6] = nn.Linear(1024, num_classes)
    return model


def _builder(name: str) -> Callable[[int], nn.Module]:
    if name == "alexnet-report":
        return _alexnet_report
    if name == "small-cnn":
        return lambda classes: SmallCNN(in_channels=1, num_classes=classes)
    if name == "lenet5":
        return lambda classes: LeNet5(in_channels=1, num_classes=classes)
    if name in _torchvision_names():
        kwargs: dict[str, object] = {}
        # As torchvision's published figures: GoogLeNet without, Inception v3 with its
        # auxiliary classifier (not run in eval: its parameters show as "not run in forward").
        if name == "googlenet":
            kwargs = {"aux_logits": False, "init_weights": False}
        elif name == "inception_v3":
            kwargs = {"init_weights": False}
        return lambda classes: _torchvision().models.get_model(
            name, weights=None, num_classes=classes, **kwargs
        )
    raise _unknown(name)


def _parent_and_attr(model: nn.Module, dotted: str) -> tuple[nn.Module, str]:
    parent_name, _, attr = dotted.rpartition(".")
    return (model.get_submodule(parent_name) if parent_name else model), attr


def _replace_first_conv_input(model: nn.Module, in_channels: int) -> None:
    """Give the first conv ``in_channels`` inputs (same kernel, stride, padding, out)."""
    for name, module in model.named_modules():
        if isinstance(module, nn.Conv2d):
            if module.in_channels == in_channels:
                return
            if module.groups != 1:
                raise UserError(f"cannot adapt {name}: its first conv is grouped")
            new = nn.Conv2d(
                in_channels,
                module.out_channels,
                kernel_size=module.kernel_size,  # type: ignore[arg-type]
                stride=module.stride,  # type: ignore[arg-type]
                padding=module.padding,  # type: ignore[arg-type]
                dilation=module.dilation,  # type: ignore[arg-type]
                bias=module.bias is not None,
                padding_mode=module.padding_mode,
                device=module.weight.device,
            )
            parent, attr = _parent_and_attr(model, name)
            setattr(parent, attr, new)
            return
    raise UserError("cannot adapt to MNIST: the model has no Conv2d")


def _replace_last_classifier(model: nn.Module, num_classes: int) -> None:
    """Give the last Linear (if none, the last Conv2d) ``num_classes`` outputs."""
    last_linear = last_conv = None
    for name, module in model.named_modules():
        if isinstance(module, nn.Linear):
            last_linear = (name, module)
        elif isinstance(module, nn.Conv2d):
            last_conv = (name, module)
    if last_linear is not None:
        name, lin = last_linear
        if lin.out_features == num_classes:
            return
        new: nn.Module = nn.Linear(
            lin.in_features, num_classes, bias=lin.bias is not None, device=lin.weight.device
        )
    elif last_conv is not None:
        name, conv = last_conv
        if conv.out_channels == num_classes or conv.groups != 1:
            return
        new = nn.Conv2d(
            conv.in_channels,
            num_classes,
            kernel_size=conv.kernel_size,  # type: ignore[arg-type]
            stride=conv.stride,  # type: ignore[arg-type]
            padding=conv.padding,  # type: ignore[arg-type]
            bias=conv.bias is not None,
            device=conv.weight.device,
        )
    else:
        return
    parent, attr = _parent_and_attr(model, name)
    setattr(parent, attr, new)


def mnist_stack(spec: StackSpec) -> StackSpec:
    """A stack adapted to MNIST: 1 input channel and a 10-way classifier.

    The last linear layer gets 10 outputs; a stack without one gets a head appended
    (global average pool, flatten, linear → 10) — or just flatten + linear when already flat.
    """
    _, h, w = spec.input
    layers = list(spec.layers)
    linear_at = [i for i, layer in enumerate(layers) if layer.type == "linear"]
    if linear_at:
        i = linear_at[-1]
        layers[i] = replace(layers[i], out_features=MNIST_CLASSES)
        return replace(spec, input=(1, h, w), layers=tuple(layers))
    adapted = replace(spec, input=(1, h, w))
    checks = check_stack(adapted)
    flat = bool(checks) and checks[-1].out_shape is not None and len(checks[-1].out_shape) == 1
    head: list[LayerSpec] = []
    if not flat and checks and checks[-1].out_shape is not None:
        _, hh, ww = checks[-1].out_shape
        if hh == ww and hh > 1:  # global average pool of a square map
            head.append(LayerSpec(type="avgpool", kernel=hh, stride=hh))
    if not flat:
        head.append(LayerSpec(type="flatten"))
    head.append(LayerSpec(type="linear", out_features=MNIST_CLASSES))
    return replace(adapted, layers=tuple(layers + head))


class _TensorsOnDevice(TorchFunctionMode):
    """Like ``with torch.device(d)`` but only for the factories modules use for their tensors.

    A builder that computes its layer widths with tensors (RegNet's ``BlockParams`` calls
    ``.tolist()``) cannot run under ``torch.device("meta")``; here ``arange``/``tensor`` stay on
    the CPU while parameters and buffers (``empty``, ``zeros``, ``ones``…) land on ``device``.
    """

    FACTORIES = frozenset(
        {torch.empty, torch.zeros, torch.ones, torch.full, torch.rand, torch.randn}
    )

    def __init__(self, device: torch.device) -> None:
        super().__init__()
        self.device = device

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = dict(kwargs or {})
        if func in self.FACTORIES and kwargs.get("device") is None:
            kwargs["device"] = self.device
        return func(*args, **kwargs)


def _construct(
    builder: Callable[[int], nn.Module], classes: int, device: torch.device
) -> nn.Module:
    try:
        with torch.device(device):
            return builder(classes)
    except NotImplementedError:
        if device.type != "meta":
            raise
    with _TensorsOnDevice(device):
        return builder(classes)


def build_model(
    name: str,
    *,
    mnist: bool = False,
    num_classes: int | None = None,
    device: str | torch.device = "cpu",
    spec: StackSpec | None = None,
) -> nn.Module:
    """Build a named model (``device="meta"`` for counting without weights).

    ``mnist=True``: first conv → 1 input channel, last classifier → 10 outputs (for a Conv Lab
    stack without a final linear, a global-pool + linear head is appended).
    ``num_classes`` overrides the number of outputs (default 1000, or 10 with ``mnist``).
    """
    if name == STACK:
        if spec is None:
            raise UserError("model 'stack' needs a Conv Lab spec")
        if mnist:
            spec = mnist_stack(spec)
        stack: nn.Module = build_stack(spec, device=device)
        if num_classes is not None:
            _replace_last_classifier(stack, num_classes)
        return stack
    builder = _builder(name)
    if num_classes is not None and (num_classes < 1 or num_classes > 1_048_576):
        raise UserError(f"num_classes must be between 1 and 1,048,576, got {num_classes}")
    native_mnist = name in MNIST_MODELS
    classes = num_classes or (MNIST_CLASSES if (mnist or native_mnist) else 1000)
    model = _construct(builder, classes, torch.device(device))
    with torch.device(device):
        if mnist:
            _replace_first_conv_input(model, 1)
            _replace_last_classifier(model, classes)
    return model


def default_input_shape(
    name: str,
    *,
    mnist: bool = False,
    input_size: int | None = None,
    spec: StackSpec | None = None,
) -> tuple[int, int, int]:
    """The input a model takes by default: 3×224×224 (ImageNet), 1×28×28 (MNIST models).

    With ``mnist`` the input is 1×S×S, S = ``input_size`` or 28; ``input_size`` alone sets the
    spatial size of the native input.
    """
    if input_size is not None and not (1 <= input_size <= MAX_SPATIAL):
        raise UserError(f"input size must be between 1 and {MAX_SPATIAL}, got {input_size}")
    if name == STACK:
        if spec is None:
            raise UserError("model 'stack' needs a Conv Lab spec")
        c, h, w = spec.input
        if mnist:
            c = 1
        if input_size is not None:
            h = w = input_size
        return (c, h, w)
    if name not in ZOO and name not in _torchvision_names():
        raise _unknown(name)
    if mnist or name in MNIST_MODELS:
        size = input_size or 28
        return (1, size, size)
    c, h, w = NATIVE_INPUT.get(name, (3, 224, 224))
    if input_size is not None:
        h = w = input_size
    return (c, h, w)


def parse_shape(text: str) -> tuple[int, int, int]:
    """``"3x224x224"`` (or ``3×224×224``, ``3,224,224``) → (3, 224, 224)."""
    parts = [p for p in re.split(r"[x×,\s]+", text.strip().lower()) if p]
    if len(parts) != 3 or not all(p.isdigit() for p in parts):
        raise UserError(f"input shape must look like 3x224x224 (C×H×W), got {text!r}")
    c, h, w = (int(p) for p in parts)
    if not (1 <= c <= MAX_CHANNELS):
        raise UserError(f"input channels must be between 1 and {MAX_CHANNELS:,}, got {c}")
    if not (1 <= h <= MAX_SPATIAL and 1 <= w <= MAX_SPATIAL):
        raise UserError(f"input height and width must be between 1 and {MAX_SPATIAL}, got {h}×{w}")
    return (c, h, w)


def check_input(
    name: str,
    *,
    mnist: bool = False,
    input_shape: tuple[int, int, int],
    spec: StackSpec | None = None,
) -> None:
    """Raise :class:`UserError` if the model cannot take ``input_shape`` (a meta forward pass).

    The message names the layer and suggests an input that works, e.g.
    ``vgg16 cannot take 1×28×28: spatial size reaches 0 at features.30 (MaxPool2d); use input
    size ≥ 32``.
    """
    model = build_model(name, mnist=mnist, device="meta", spec=spec)
    try:
        run_forward(model, (1, *input_shape))
    except ForwardFailed as err:
        raise UserError(explain_failure(name, model, tuple(input_shape), err)) from None


def _works(model: nn.Module, shape: tuple[int, ...]) -> bool:
    try:
        run_forward(model, shape)
    except ForwardFailed:
        return False
    return True


_LINEAR_SCAN = 16
"""Up to this many candidate sizes are each tried; more are binary-searched."""


def _first_fit(model: nn.Module, channels: int, sizes: Sequence[int]) -> int | None:
    """The smallest square size in ``sizes`` that ``model`` takes (a meta forward pass each).

    A short list is tried size by size. A long one (``range(1, 225)``) is binary-searched on the
    assumption that a model taking a size takes every larger one; the answer is still checked.
    """
    candidates = sorted({int(s) for s in sizes if 1 <= int(s) <= MAX_SPATIAL})
    if len(candidates) <= _LINEAR_SCAN:
        for size in candidates:
            if _works(model, (1, channels, size, size)):
                return size
        return None
    if not candidates or not _works(model, (1, channels, candidates[-1], candidates[-1])):
        return None
    lo, hi = 0, len(candidates) - 1
    while lo < hi:
        mid = (lo + hi) // 2
        if _works(model, (1, channels, candidates[mid], candidates[mid])):
            hi = mid
        else:
            lo = mid + 1
    return candidates[lo]


def fit_input_size(
    name: str, sizes: Sequence[int], *, mnist: bool = True, spec: StackSpec | None = None
) -> int | None:
    """The smallest size in ``sizes`` at which the model builds and runs (meta device), or None.

    The input is C×S×S with the model's own channels (1 with ``mnist``); the Inspector and the
    Train page offer their size choices, :func:`explain_failure` every size up to the native one.
    """
    model = build_model(name, mnist=mnist, device="meta", spec=spec)
    channels = default_input_shape(name, mnist=mnist, spec=spec)[0]
    return _first_fit(model, channels, sizes)


def _first_conv(model: nn.Module) -> tuple[str, nn.modules.conv._ConvNd] | None:
    for name, module in model.named_modules():
        if isinstance(module, nn.modules.conv._ConvNd):
            return name, module
    return None


def explain_failure(
    name: str, model: nn.Module, input_shape: tuple[int, ...], err: Exception
) -> str:
    """One line: why ``model`` cannot take ``input_shape`` and what input would work."""
    where = ""
    reason = str(err)
    if isinstance(err, ForwardFailed):
        reason = err.reason
        where = f" at {err.layer}" if err.layer else ""
    head = f"{name} cannot take {shape_text(input_shape)}: {reason}{where}"
    c, h, w = input_shape[-3:]
    first = _first_conv(model)
    if first is not None and first[1].in_channels != c:
        conv_name, conv = first
        expected = conv.in_channels
        hint = "; use --mnist for a 1-channel model" if expected == 3 and c == 1 else ""
        return (
            f"{name} cannot take {shape_text(input_shape)}: {conv_name} ({type(conv).__name__}) "
            f"expects {expected} input channel{'s' if expected != 1 else ''}{hint}"
        )
    if h != w:
        return head
    # The smallest square size that works, up to the native size (or the size asked for).
    native = max(default_input_shape(name)[1], h) if name != STACK else max(h, 32)
    lo = _first_fit(model, c, range(1, native + 1))
    if lo is not None and lo > h:
        if not _works(model, (1, c, lo + 1, lo + 1)):
            return f"{head}; it takes exactly {lo}×{lo}"
        return f"{head}; use input size ≥ {lo}"
    return head
