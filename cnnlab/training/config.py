"""What a training run is asked to do: one frozen dataclass, validated with one-line messages.

No torch import here: pages and the CLI build and check a config cheaply; the model/input check
(:meth:`TrainConfig.check_model`) imports the zoo only when called.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from cnnlab.errors import UserError

INPUT_SIZES = (28, 32, 64, 112, 224)
OPTIMIZERS = ("adam", "adamw", "sgd")
SCHEDULES = ("constant", "onecycle", "cosine")
DEVICES = ("auto", "cpu", "cuda", "mps")
STACK = "stack"

MAX_EPOCHS = 1000
MAX_BATCH = 65_536
MAX_NAME = 200


@dataclass(frozen=True)
class TrainConfig:
    """One training run on MNIST (see ``python -m cnnlab train --help`` for each option)."""

    model: str = "small-cnn"
    input_size: int = 28
    epochs: int = 1
    batch_size: int = 64  # with lr 5e-3 (one-cycle peak): ≥ 99.0 % after one epoch of small-cnn
    lr: float = 5e-3
    optimizer: str = "adam"
    weight_decay: float = 0.0
    momentum: float = 0.9
    schedule: str = "onecycle"
    train_limit: int | None = None
    seed: int = 0
    device: str = "auto"
    name: str | None = None
    spec: dict[str, Any] | None = None
    data_dir: str | None = None
    separable: bool = False
    """Train the zoo model with every conv of kernel > 1 (groups 1) made depthwise-separable
    (:func:`cnnlab.counting.transform.separable_model`); a Conv Lab stack sets it per layer."""

    # --- checks -------------------------------------------------------------------------------

    def validate(self) -> TrainConfig:
        """Raise :class:`UserError` (one line) for the first bad option; return ``self``.

        Checks types, ranges and choices only; :meth:`check_model` also asks the zoo whether
        the model exists and can take the input size.
        """
        if not isinstance(self.model, str) or not self.model.strip():
            raise UserError("model must be a non-empty name, e.g. small-cnn")
        _int("input size", self.input_size)
        if self.input_size not in INPUT_SIZES:
            raise UserError(
                f"input size must be one of {', '.join(map(str, INPUT_SIZES))},"
                f" got {self.input_size}"
            )
        _int("epochs", self.epochs, 1, MAX_EPOCHS)
        _int("batch size", self.batch_size, 1, MAX_BATCH)
        _float("learning rate", self.lr, positive=True, high=10.0)
        _choice("optimizer", self.optimizer, OPTIMIZERS)
        _float("weight decay", self.weight_decay, high=1.0)
        _float("momentum", self.momentum, high=0.999999)
        _choice("schedule", self.schedule, SCHEDULES)
        if self.train_limit is not None:
            _int("train limit", self.train_limit, 1, 10_000_000)
            if self.train_limit < 10:
                raise UserError(f"train limit must be at least 10 images, got {self.train_limit}")
        _int("seed", self.seed, 0, 2**32 - 1)
        _choice("device", self.device, DEVICES)
        if self.name is not None and (not isinstance(self.name, str) or len(self.name) > MAX_NAME):
            raise UserError(f"name must be text of at most {MAX_NAME} characters")
        if self.model == STACK and not isinstance(self.spec, dict):
            raise UserError("model 'stack' needs a Conv Lab spec (a JSON object)")
        if self.model != STACK and self.spec is not None:
            raise UserError(f"a Conv Lab spec only goes with model 'stack', not {self.model!r}")
        if self.data_dir is not None and (not isinstance(self.data_dir, str) or not self.data_dir):
            raise UserError("data dir must be a folder path")
        if not isinstance(self.separable, bool):
            raise UserError(f"separable must be true or false, got {repr(self.separable)[:40]}")
        if self.separable and self.model == STACK:
            raise UserError(
                "separable does not go with model 'stack': a Conv Lab spec sets each conv's own"
                " separable flag"
            )
        return self

    def stack_spec(self) -> Any:
        """The Conv Lab :class:`cnnlab.counting.spec.StackSpec` for model ``stack`` (else None)."""
        if self.model != STACK or self.spec is None:
            return None
        from cnnlab.counting.spec import StackSpec  # kept out of a cheap config import

        parse = getattr(StackSpec, "from_dict", None)
        if parse is None:  # pragma: no cover - depends on the spec module's API
            raise UserError("this cnnlab cannot read Conv Lab specs")
        return parse(self.spec)

    def input_shape(self) -> tuple[int, int, int]:
        return (1, self.input_size, self.input_size)

    def check_model(self) -> TrainConfig:
        """:meth:`validate`, then ask the zoo whether the model exists and takes the input."""
        self.validate()
        from cnnlab.counting import zoo  # torch: only when a model is checked

        zoo.check_input(
            self.model, mnist=True, input_shape=self.input_shape(), spec=self.stack_spec()
        )
        if self.separable:
            from cnnlab.counting.transform import flippable  # torch, as above

            net = zoo.build_model(self.model, mnist=True, device="meta")
            if not any(flippable(m) for m in net.modules()):
                raise UserError(
                    f"{self.model} has no conv with kernel > 1 (and groups 1) to make separable"
                )
        return self

    # --- JSON in/out --------------------------------------------------------------------------

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> TrainConfig:
        """Build from a dict (e.g. stored JSON); unknown keys are a :class:`UserError`."""
        if not isinstance(data, dict):
            raise UserError("a training config must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown training option(s): {', '.join(map(repr, unknown))}")
        return cls(**data)

    def with_(self, **changes: Any) -> TrainConfig:
        return replace(self, **changes)

    @property
    def display_name(self) -> str:
        separable = "-separable" if self.separable else ""
        return self.name or f"{self.model}{separable}-{self.input_size}"


REPORT_PRESET = TrainConfig(
    model="vgg16",
    input_size=224,
    epochs=3,
    batch_size=16,
    lr=1e-4,
    optimizer="adam",
    schedule="constant",
    name="report VGG-16",
)
"""The report's setting: VGG-16 (1-channel stem, 10 classes), 224×224, 3 epochs, Adam 1e-4, 16."""


def _int(what: str, value: object, low: int | None = None, high: int | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, int):
        raise UserError(f"{what} must be a whole number, got {value!r}")
    if low is not None and value < low:
        raise UserError(f"{what} must be at least {low}, got {value}")
    if high is not None and value > high:
        raise UserError(f"{what} must be at most {high:,}, got {value:,}")


def _float(what: str, value: object, *, positive: bool = False, high: float | None = None) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise UserError(f"{what} must be a number, got {value!r}")
    if isinstance(value, int) and abs(value) > 2**53:  # also keeps float() from overflowing
        raise UserError(f"{what} is out of range, got a {len(str(abs(value)))}-digit number")
    if not math.isfinite(value):
        raise UserError(f"{what} must be a finite number, got {value}")
    if positive and value <= 0:
        raise UserError(f"{what} must be greater than 0, got {value}")
    if value < 0:
        raise UserError(f"{what} must not be negative, got {value}")
    if high is not None and value > high:
        raise UserError(f"{what} must be at most {high}, got {value}")


def _choice(what: str, value: object, choices: tuple[str, ...]) -> None:
    if value not in choices:
        raise UserError(f"{what} must be one of {', '.join(choices)}, got {value!r}")
