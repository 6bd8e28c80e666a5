"""Model transforms: every regular conv made depthwise-separable (the whole-model what-if)."""

from __future__ import annotations

from torch import nn


def flippable(module: nn.Module) -> bool:
    """A conv that has a depthwise-separable form: a plain ``Conv2d``, kernel > 1, groups = 1."""
    if not isinstance(module, nn.Conv2d) or type(module) is not nn.Conv2d:
        return False
    return module.groups == 1 and max(module.kernel_size) > 1


def separable_model(model: nn.Module) -> nn.Module:
    """Replace (in place) every conv with kernel > 1 and groups = 1 by depthwise + pointwise.

    The depthwise conv keeps kernel, stride, padding and dilation; the pointwise 1×1 conv maps
    to the output channels; each keeps the original's bias setting. Returns ``model``.
    """
    targets = [(name, m) for name, m in model.named_modules() if flippable(m)]
    for name, conv in targets:
        assert isinstance(conv, nn.Conv2d)
        device = conv.weight.device
        bias = conv.bias is not None
        sep = nn.Sequential()
        sep.add_module(
            "depthwise",
            nn.Conv2d(
                conv.in_channels,
                conv.in_channels,
                kernel_size=conv.kernel_size,  # type: ignore[arg-type]
                stride=conv.stride,  # type: ignore[arg-type]
                padding=conv.padding,  # type: ignore[arg-type]
                dilation=conv.dilation,  # type: ignore[arg-type]
                groups=conv.in_channels,
                bias=bias,
                padding_mode=conv.padding_mode,
                device=device,
            ),
        )
        sep.add_module(
            "pointwise",
            nn.Conv2d(conv.in_channels, conv.out_channels, kernel_size=1, bias=bias, device=device),
        )
        if not name:  # the model is itself one conv
            return sep
        parent_name, _, attr = name.rpartition(".")
        parent = model.get_submodule(parent_name) if parent_name else model
        setattr(parent, attr, sep)
    return model
