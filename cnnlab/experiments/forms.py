"""A network's regular and depthwise-separable forms, as the training configs of two arms.

A zoo model (``small-cnn``, ``vgg11``, ``mobilenet_v2``, …) trains as itself in both arms, the
separable arm with ``separable=True``: the run builds the zoo model and then makes every conv
with kernel > 1 and groups 1 depthwise k×k + pointwise 1×1
(:func:`cnnlab.counting.transform.separable_model`: the two halves back to back in the conv's
place, the conv's own batch norm and activation after the pair), exactly what ``cnnlab profile
--separable`` counts. A Conv Lab stack carries a separable flag per conv, so its two arms
are the spec with every flippable conv regular, and with every one separable (MobileNet's
block: depthwise, then pointwise, each followed by the conv's batch norm and activation).
"""

from __future__ import annotations

from cnnlab.counting.spec import StackSpec, with_separable
from cnnlab.errors import UserError
from cnnlab.training.config import STACK, TrainConfig

FORMS = ("regular", "separable")


def _check_form(form: str) -> None:
    if form not in FORMS:
        raise UserError(f"form must be one of {', '.join(FORMS)}, got {form!r}")


def zoo_form(base: TrainConfig, form: str) -> TrainConfig:
    """``base`` (a zoo model) in ``form``: the same config with ``separable`` set to match."""
    _check_form(form)
    if base.model == STACK:
        raise UserError("a Conv Lab stack takes its forms from its spec (see form_of)")
    return base.with_(spec=None, separable=form == "separable")


def form_of(spec: StackSpec, form: str) -> StackSpec:
    """``spec`` in ``form``: ``regular`` (every conv regular) or ``separable`` (every conv with
    kernel > 1 and groups 1 made depthwise-separable)."""
    _check_form(form)
    flipped = with_separable(spec, form == "separable")
    return StackSpec(input=flipped.input, layers=flipped.layers, name=f"{spec.name} ({form})")


def has_flippable_conv(spec: StackSpec) -> bool:
    return any(layer.flippable for layer in spec.layers)
