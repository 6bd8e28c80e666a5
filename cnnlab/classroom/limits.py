"""Class limits the teacher sets: which models, how many epochs and training images a run may
use, how many runs each student may have queued or running (K), and how long the queue may grow.

Stored as one JSON setting in the run store (:data:`SETTING_KEY`), so the dashboard, the CLI and
every server process read the same limits. A run launched from the CLI (no owner) is not limited.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, fields, replace
from typing import Any

from cnnlab.errors import UserError
from cnnlab.training.config import MAX_EPOCHS, TrainConfig
from cnnlab.training.store import RunStore

SETTING_KEY = "class_limits"

DEFAULT_RUNS_PER_STUDENT = 2
DEFAULT_QUEUE_CAP = 100
MNIST_TRAIN_IMAGES = 60_000
"""The MNIST training split; a run without a train limit uses all of it
(:data:`cnnlab.training.data.FULL_SIZES`, kept out of here because that module imports torch)."""
MAX_QUEUE_CAP = 10_000
MAX_RUNS_PER_STUDENT = 100


@dataclass(frozen=True)
class ClassLimits:
    """What one student's run may ask for; ``None`` means no limit."""

    allowed_models: tuple[str, ...] | None = None
    max_epochs: int | None = None
    max_train_images: int | None = None
    runs_per_student: int = DEFAULT_RUNS_PER_STUDENT
    """K: a student's queued + running entries (an experiment counts as one)."""
    queue_cap: int | None = DEFAULT_QUEUE_CAP
    """How many runs may wait in the queue for everyone together."""

    def validate(self) -> ClassLimits:
        """Raise :class:`UserError` (one line) for the first bad limit; return ``self``."""
        if self.allowed_models is not None:
            if not isinstance(self.allowed_models, tuple) or not all(
                isinstance(m, str) and m.strip() for m in self.allowed_models
            ):
                raise UserError("allowed models must be a list of model names")
            if not self.allowed_models:
                raise UserError("allow at least one model (or leave the list empty for all)")
        _whole("max epochs", self.max_epochs, 1, MAX_EPOCHS, optional=True)
        _whole("max training images", self.max_train_images, 10, MNIST_TRAIN_IMAGES, optional=True)
        _whole("runs per student", self.runs_per_student, 1, MAX_RUNS_PER_STUDENT)
        _whole("queue cap", self.queue_cap, 1, MAX_QUEUE_CAP, optional=True)
        return self

    def check_config(self, config: TrainConfig) -> None:
        """Raise :class:`UserError` saying which limit ``config`` breaks and how to fit it."""
        if self.allowed_models is not None and config.model not in self.allowed_models:
            raise UserError(
                f"this class allows the models {', '.join(self.allowed_models)};"
                f" {config.model!r} is not one of them"
            )
        if self.max_epochs is not None and config.epochs > self.max_epochs:
            raise UserError(
                f"this class allows at most {self.max_epochs} epoch(s) per run,"
                f" got {config.epochs}: lower the epochs"
            )
        images = config.train_limit if config.train_limit is not None else MNIST_TRAIN_IMAGES
        if self.max_train_images is not None and images > self.max_train_images:
            raise UserError(
                f"this class allows at most {self.max_train_images:,} training images per run,"
                f" this run uses {images:,}: set the train limit to {self.max_train_images:,}"
                " or fewer"
            )

    def to_dict(self) -> dict[str, Any]:
        data = asdict(self)
        if self.allowed_models is not None:
            data["allowed_models"] = list(self.allowed_models)
        return data

    @classmethod
    def from_dict(cls, data: object) -> ClassLimits:
        """Build and validate from a JSON object; unknown keys are a :class:`UserError`."""
        if not isinstance(data, dict):
            raise UserError("class limits must be a JSON object")
        known = {f.name for f in fields(cls)}
        unknown = sorted(set(data) - known)
        if unknown:
            raise UserError(f"unknown class limit(s): {', '.join(map(str, unknown))}")
        values = dict(data)
        models = values.get("allowed_models")
        if isinstance(models, list):
            values["allowed_models"] = tuple(models) if models else None
        elif models is not None:
            raise UserError("allowed models must be a list of model names")
        return replace(cls(), **values).validate()


def _whole(what: str, value: object, low: int, high: int, *, optional: bool = False) -> None:
    if value is None and optional:
        return
    if isinstance(value, bool) or not isinstance(value, int) or not low <= value <= high:
        extra = " (or no limit)" if optional else ""
        raise UserError(f"{what} must be a whole number from {low} to {high:,}{extra}, got {value}")


def load_limits(store: RunStore) -> ClassLimits:
    """The class limits in ``store`` (the defaults when none were saved or the saved ones are
    unreadable: a broken setting must not lock the class out)."""
    raw = store.get_setting(SETTING_KEY)
    if raw is None:
        return ClassLimits()
    try:
        return ClassLimits.from_dict(raw)
    except UserError:
        return ClassLimits()


def save_limits(store: RunStore, limits: ClassLimits) -> ClassLimits:
    """Validate and store ``limits`` for the whole class; return them."""
    limits.validate()
    store.put_setting(SETTING_KEY, limits.to_dict())
    return limits
