"""Conv Lab spec → a real ``nn.Sequential``, in regular or depthwise-separable form.

The top-level children are named ``"0"``, ``"1"``, … one per spec layer; each is an
``nn.Sequential`` whose leaves say what they are (``conv``/``bn``/``act``, or
``depthwise``/``dw_bn``/``dw_act``/``pointwise``/``pw_bn``/``pw_act``), so a leaf's dotted name
(``"3.pointwise"``) tells which spec layer it belongs to.
"""

from __future__ import annotations

from collections import OrderedDict

import torch
from torch import nn

from cnnlab.counting.spec import LayerSpec, StackSpec, check_stack, with_separable

ACTIVATION_MODULES: dict[str, type[nn.Module]] = {
    "relu": nn.ReLU,
    "relu6": nn.ReLU6,
    "gelu": nn.GELU,
    "silu": nn.SiLU,
    "sigmoid": nn.Sigmoid,
    "tanh": nn.Tanh,
}


def _activation(name: str) -> nn.Module:
    return ACTIVATION_MODULES[name]()


def _conv_layer(layer: LayerSpec, in_channels: int) -> OrderedDict[str, nn.Module]:
    assert layer.kernel is not None and layer.out_channels is not None
    stride = layer.stride or 1
    parts: OrderedDict[str, nn.Module] = OrderedDict()
    if layer.separable:
        parts["depthwise"] = nn.Conv2d(
            in_channels,
            in_channels,
            kernel_size=layer.kernel,
            stride=stride,
            padding=layer.padding,
            dilation=layer.dilation,
            groups=in_channels,
            bias=layer.bias,
        )
        if layer.batchnorm:
            parts["dw_bn"] = nn.BatchNorm2d(in_channels)
        if layer.activation:
            parts["dw_act"] = _activation(layer.activation)
        parts["pointwise"] = nn.Conv2d(in_channels, layer.out_channels, 1, bias=layer.bias)
        if layer.batchnorm:
            parts["pw_bn"] = nn.BatchNorm2d(layer.out_channels)
        if layer.activation:
            parts["pw_act"] = _activation(layer.activation)
        return parts
    parts["conv"] = nn.Conv2d(
        in_channels,
        layer.out_channels,
        kernel_size=layer.kernel,
        stride=stride,
        padding=layer.padding,
        dilation=layer.dilation,
        groups=layer.groups,
        bias=layer.bias,
    )
    if layer.batchnorm:
        parts["bn"] = nn.BatchNorm2d(layer.out_channels)
    if layer.activation:
        parts["act"] = _activation(layer.activation)
    return parts


def _layer_modules(layer: LayerSpec, in_shape: tuple[int, ...]) -> OrderedDict[str, nn.Module]:
    t = layer.type
    if t == "conv":
        return _conv_layer(layer, in_shape[0])
    if t == "maxpool":
        assert layer.kernel is not None
        return OrderedDict(
            pool=nn.MaxPool2d(
                layer.kernel,
                stride=layer.stride,
                padding=layer.padding,
                dilation=layer.dilation,
            )
        )
    if t == "avgpool":
        assert layer.kernel is not None
        return OrderedDict(
            pool=nn.AvgPool2d(layer.kernel, stride=layer.stride, padding=layer.padding)
        )
    if t == "flatten":
        return OrderedDict(flatten=nn.Flatten())
    if t == "linear":
        assert layer.out_features is not None
        parts: OrderedDict[str, nn.Module] = OrderedDict(
            linear=nn.Linear(in_shape[0], layer.out_features, bias=layer.bias)
        )
        if layer.batchnorm:
            parts["bn"] = nn.BatchNorm1d(layer.out_features)
        if layer.activation:
            parts["act"] = _activation(layer.activation)
        return parts
    if t == "dropout":
        return OrderedDict(dropout=nn.Dropout(float(layer.p)))
    raise AssertionError(t)  # pragma: no cover - check_stack refuses unknown types


def build_layer(
    layer: LayerSpec, in_shape: tuple[int, ...], device: str | torch.device = "cpu"
) -> nn.Sequential:
    """One spec layer taking ``in_shape`` ((C, H, W), or (F,) once flattened), as
    :func:`build_stack` builds it (its child ``str(index)``); the layer must be valid there
    (:func:`~cnnlab.counting.spec.check_stack` says so). Lets the analysis cache per layer."""
    with torch.device(device):
        return nn.Sequential(_layer_modules(layer, in_shape))


def build_stack(
    spec: StackSpec,
    separable: bool | None = None,
    device: str | torch.device = "cpu",
) -> nn.Sequential:
    """Build ``spec`` as an ``nn.Sequential`` (``device="meta"`` for counting).

    ``separable``: None keeps each layer's flag, True makes every conv with kernel > 1 and
    groups = 1 separable, False makes every conv regular. Validates the spec first
    (:class:`~cnnlab.errors.UserError` for the first invalid layer), so nothing over the size
    limits is ever allocated.
    """
    if separable is not None:
        spec = with_separable(spec, separable)
    spec.validate()
    checks = check_stack(spec)
    model = nn.Sequential()
    with torch.device(device):
        for check, layer in zip(checks, spec.layers, strict=True):
            assert check.in_shape is not None
            model.add_module(str(check.index), nn.Sequential(_layer_modules(layer, check.in_shape)))
    return model
