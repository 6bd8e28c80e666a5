"""Which pixels drove a prediction: saliency maps from captum (not hand-written gradients).

Three of captum's attribution methods, each returning one [H, W] map over the model's input:
``saliency`` (|∂ score / ∂ pixel|, :class:`captum.attr.Saliency`), ``integrated-gradients``
(:class:`captum.attr.IntegratedGradients` from a black digit, 32 steps; 8 over 64×64) and
``grad-cam`` (:class:`captum.attr.LayerGradCam` on the last conv layer, upsampled to the input).
"""

from __future__ import annotations

from typing import Literal

import numpy as np
import torch
from torch import nn

from cnnlab.errors import UserError

Method = Literal["saliency", "integrated-gradients", "grad-cam"]
METHODS: dict[str, str] = {
    "saliency": "Saliency: how much each pixel's change would move the score (|gradient|)",
    "integrated-gradients": "Integrated gradients: each pixel's share of the score, from black",
    "grad-cam": "Grad-CAM: where the last conv layer's evidence for the class lies",
}
IG_STEPS = 32
IG_STEPS_LARGE = 8  # at an input over 64×64 (VGG-16 at 224 on a CPU: each step is a backward pass)


def _last_conv(model: nn.Module) -> nn.Conv2d:
    convs = [m for m in model.modules() if isinstance(m, nn.Conv2d)]
    if not convs:
        raise UserError("Grad-CAM needs a conv layer, and this model has none")
    return convs[-1]


def saliency_map(
    model: nn.Module, x: torch.Tensor, target: int, method: str, baseline: torch.Tensor
) -> np.ndarray:
    """One [H, W] float32 map for class ``target`` of input ``x`` [1, C, H, W] (``baseline``: the
    normalised black input of the same shape, for integrated gradients)."""
    # lazy: captum (and its matplotlib) only when a saliency map is asked for
    from captum.attr import (  # type: ignore[import-untyped]
        IntegratedGradients,
        LayerAttribution,
        LayerGradCam,
        Saliency,
    )

    if method not in METHODS:
        raise UserError(f"unknown saliency method {method!r}; choose one of {', '.join(METHODS)}")
    if not 0 <= target < 10:
        raise UserError(f"class {target} is not a digit (0 to 9)")
    model.eval()
    device = next(model.parameters()).device
    inputs = x.detach().to(device).float().clone().requires_grad_(True)
    with torch.enable_grad():
        if method == "saliency":
            attr = Saliency(model).attribute(inputs, target=target, abs=True)
        elif method == "integrated-gradients":
            ig = IntegratedGradients(model)
            n_steps = IG_STEPS if max(x.shape[2:]) <= 64 else IG_STEPS_LARGE
            attr = ig.attribute(
                inputs, baselines=baseline.to(device), target=target, n_steps=n_steps
            )
        else:
            cam = LayerGradCam(model, _last_conv(model)).attribute(
                inputs, target=target, relu_attributions=True
            )
            attr = LayerAttribution.interpolate(
                cam, tuple(x.shape[2:]), interpolate_mode="bilinear"
            )
    out = attr.detach().float().cpu()[0]
    flat = out.abs().amax(0) if method != "grad-cam" else out.amax(0)
    return np.nan_to_num(flat.numpy().astype(np.float32), nan=0.0, posinf=0.0, neginf=0.0)
