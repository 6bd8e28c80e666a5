"""What an experiment is asked to do: its kind, its arms (one training config each), checked.

Three kinds, each a family of :class:`~cnnlab.training.config.TrainConfig` that share seed, data
and recipe and differ only in the factors named:

- ``separable`` — the same network in its regular form and with every conv (kernel > 1) made
  depthwise-separable (:mod:`cnnlab.experiments.forms`: a zoo model trains with
  ``separable=True``, a Conv Lab stack with its convs flipped); optional factor: training-set
  sizes;
- ``models`` — two or more zoo models on the same budget (the report's Part III);
- ``sweep`` — one training option over a list of values.

Every kind repeats each arm over ``seeds`` (the spread between seeds is the noise the verdicts
are decided against). Bad requests raise :class:`~cnnlab.errors.UserError` with one line, before
anything is recorded or queued.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from typing import Any

from cnnlab.errors import UserError
from cnnlab.training.config import STACK, TrainConfig

KINDS = ("separable", "models", "sweep")
MAX_RUNS = 24
"""The most runs (arms × seeds) one experiment may queue."""
MAX_SEEDS = 10
DEFAULT_TARGET = 0.97
"""The test accuracy whose first epoch is reported as "epochs to target"."""

SWEEP_OPTIONS: dict[str, type] = {
    "lr": float,
    "batch_size": int,
    "optimizer": str,
    "epochs": int,
    "weight_decay": float,
    "momentum": float,
    "schedule": str,
    "input_size": int,
    "train_limit": int,
}
"""The training options a sweep can vary, with the type of their values."""

_ALIASES = {"learning_rate": "lr", "batch": "batch_size", "batch-size": "batch_size",
            "weight-decay": "weight_decay", "input-size": "input_size",
            "train-limit": "train_limit", "train_images": "train_limit"}  # fmt: skip


@dataclass(frozen=True)
class Arm:
    """One run of an experiment: its factor values, its seed and the config it trains."""

    label: str
    """The factors in words, e.g. ``separable · 1,000 digits`` (the same for every seed)."""
    factors: dict[str, Any]
    seed: int
    config: TrainConfig

    def to_dict(self) -> dict[str, Any]:
        return {
            "label": self.label,
            "factors": dict(self.factors),
            "seed": self.seed,
            "config": self.config.to_dict(),
        }

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Arm:
        return cls(
            label=str(data["label"]),
            factors=dict(data["factors"]),
            seed=int(data["seed"]),
            config=TrainConfig.from_dict(data["config"]),
        )


@dataclass(frozen=True)
class Plan:
    """A checked experiment: what the store records as its ``spec`` and the arms to run."""

    kind: str
    name: str
    factor_names: tuple[str, ...]
    arms: tuple[Arm, ...]
    target_accuracy: float = DEFAULT_TARGET
    base_model: str = ""
    """What the experiment is about in words (``small-cnn``, ``vgg11, mobilenet_v2``, …)."""
    seeds: tuple[int, ...] = field(default=(0,))

    @property
    def labels(self) -> list[str]:
        """The arms' labels (one per factor combination), in plan order."""
        return list(dict.fromkeys(arm.label for arm in self.arms))

    def to_spec(self) -> dict[str, Any]:
        return {
            "kind": self.kind,
            "name": self.name,
            "factor_names": list(self.factor_names),
            "target_accuracy": self.target_accuracy,
            "base_model": self.base_model,
            "seeds": list(self.seeds),
            "arms": [arm.to_dict() for arm in self.arms],
        }

    @classmethod
    def from_spec(cls, spec: dict[str, Any]) -> Plan:
        """The plan an experiment was launched with (its stored ``spec``)."""
        try:
            return cls(
                kind=str(spec["kind"]),
                name=str(spec.get("name", "")),
                factor_names=tuple(spec.get("factor_names", ())),
                arms=tuple(Arm.from_dict(a) for a in spec.get("arms", ())),
                target_accuracy=float(spec.get("target_accuracy", DEFAULT_TARGET)),
                base_model=str(spec.get("base_model", "")),
                seeds=tuple(int(s) for s in spec.get("seeds", (0,))),
            )
        except (KeyError, TypeError, ValueError) as err:
            raise UserError(f"this experiment's stored plan cannot be read ({err})") from None


# --- parsing helpers (CLI and form share them) -------------------------------------------------


def parse_list(text: str, what: str) -> list[str]:
    """``"1e-3, 3e-3"`` → ``["1e-3", "3e-3"]``; an empty list is an error."""
    items = [part.strip() for part in str(text).split(",") if part.strip()]
    if not items:
        raise UserError(f"{what}: give at least one value, comma-separated")
    return items


def parse_sizes(text: str | Sequence[int] | None) -> list[int]:
    """Training-set sizes: ``"1000,10000"`` (``1k``, ``10_000`` and ``60,000``-free forms)."""
    if text is None:
        return []
    raw = parse_list(text, "sizes") if isinstance(text, str) else list(text)
    sizes = []
    for item in raw:
        word = str(item).strip().lower().replace("_", "")
        scale = 1000 if word.endswith("k") else 1
        word = word[:-1] if scale > 1 else word
        try:
            value = float(word) * scale
        except ValueError:
            raise UserError(f"sizes: {item!r} is not a number of training images") from None
        if value != int(value) or value < 10:
            raise UserError(f"sizes: each size must be a whole number ≥ 10 images, got {item!r}")
        sizes.append(int(value))
    if len(set(sizes)) != len(sizes):
        raise UserError("sizes: each size may appear only once")
    return sizes


def seed_list(seeds: int) -> tuple[int, ...]:
    if isinstance(seeds, bool) or not isinstance(seeds, int) or not 1 <= seeds <= MAX_SEEDS:
        raise UserError(f"seeds must be a whole number from 1 to {MAX_SEEDS}, got {seeds!r}")
    return tuple(range(seeds))


def _check_target(target: float) -> float:
    if isinstance(target, bool) or not isinstance(target, (int, float)) or not 0 < target <= 1:
        raise UserError(f"target accuracy must be a fraction in (0, 1], got {target!r}")
    return float(target)


def train_images_available(base: TrainConfig) -> int:
    """How many training digits the data folder holds (60,000 for the full MNIST)."""
    # lazy: torch and the data files only when a plan is checked against the data
    from cnnlab.training.data import load_mnist

    return len(load_mnist("train", data_dir=base.data_dir))


def _check_sizes(sizes: Sequence[int], base: TrainConfig) -> None:
    if not sizes:
        return
    have = train_images_available(base)
    too_big = [s for s in sizes if s > have]
    if too_big:
        raise UserError(
            f"sizes: {', '.join(f'{s:,}' for s in too_big)} training images asked for, but the "
            f"data has only {have:,}"
        )


def _check_runs(arms: Sequence[Arm]) -> None:
    if len(arms) > MAX_RUNS:
        raise UserError(
            f"this experiment would queue {len(arms)} runs; the limit is {MAX_RUNS} (fewer "
            "values, sizes or seeds)"
        )
    if len(arms) < 2:
        raise UserError("an experiment needs at least two runs to compare")


def _size_label(size: int | None) -> str:
    return "all digits" if size is None else f"{size:,} digits"


def _named(config: TrainConfig, name: str, label: str, seed: int) -> TrainConfig:
    return config.with_(name=f"{name}: {label} · seed {seed}"[:200], seed=seed)


# --- the three kinds ---------------------------------------------------------------------------


def plan_separable(
    base: TrainConfig,
    *,
    spec: dict[str, Any] | None = None,
    sizes: Sequence[int] = (),
    seeds: int = 2,
    name: str = "",
    target: float = DEFAULT_TARGET,
) -> Plan:
    """Regular vs separable: ``base.model`` (a zoo model, trained with ``separable`` off and on,
    or ``stack`` with a Conv Lab ``spec``, flipped per layer) in both forms × ``sizes`` (none:
    ``base.train_limit``) × seeds."""
    # lazy: the spec parser and the zoo (torch) only when a plan is made
    from cnnlab.counting.spec import StackSpec
    from cnnlab.experiments.forms import FORMS, form_of, has_flippable_conv, zoo_form

    base.validate()
    target = _check_target(target)
    stack: StackSpec | None = None
    if spec is not None or base.model == STACK:
        raw = spec if spec is not None else base.spec
        if not isinstance(raw, dict):
            raise UserError("a separable experiment on a stack needs a Conv Lab spec (--spec)")
        stack = StackSpec.from_dict(raw)
        stack = replace(stack, input=(1, base.input_size, base.input_size))
        about = stack.name
        if not has_flippable_conv(stack):
            raise UserError(f"{about} has no conv with kernel > 1 to make separable")
    else:
        about = base.model
        # unknown model, input too small, nothing to flip: one line, before anything else
        zoo_form(base, "separable").check_model()
    _check_sizes(sizes, base)
    seed_values = seed_list(seeds)
    size_values: list[int | None] = list(sizes) or [base.train_limit]
    name = name.strip() or f"regular vs separable: {about}"
    arms = []
    for size in size_values:
        for form in FORMS:
            if stack is None:
                config = zoo_form(base, form).with_(train_limit=size)
            else:
                shaped = form_of(stack, form).to_dict()
                config = base.with_(model=STACK, spec=shaped, separable=False, train_limit=size)
            label = form if len(size_values) == 1 else f"{form} · {_size_label(size)}"
            for seed in seed_values:
                factors = {"form": form, "train_images": size}
                arms.append(Arm(label, factors, seed, _named(config, name, label, seed)))
    _check_runs(arms)
    for arm in arms[:: len(seed_values)]:
        arm.config.check_model()
    return Plan("separable", name, ("form", "train_images"), tuple(arms), target, about,
                seed_values)  # fmt: skip


def plan_models(
    base: TrainConfig,
    models: Sequence[str],
    *,
    seeds: int = 1,
    name: str = "",
    target: float = DEFAULT_TARGET,
) -> Plan:
    """Model selection: each of ``models`` trained with ``base``'s budget × seeds."""
    base.validate()
    target = _check_target(target)
    models = [m.strip() for m in models if m.strip()]
    if len(models) < 2:
        raise UserError("models: name at least two zoo models, e.g. vgg11,mobilenet_v2")
    if len(set(models)) != len(models):
        raise UserError("models: each model may appear only once")
    if STACK in models:
        raise UserError("models: compare zoo models by name (a Conv Lab stack goes in `separable`)")
    seed_values = seed_list(seeds)
    _check_sizes([base.train_limit] if base.train_limit else [], base)
    name = name.strip() or f"models: {', '.join(models)}"
    arms = []
    for model in models:
        config = base.with_(model=model, spec=None)
        config.check_model()  # unknown model, input too small: one line naming it
        for seed in seed_values:
            arms.append(
                Arm(model, {"model": model, "train_images": base.train_limit}, seed,
                    _named(config, name, model, seed))
            )  # fmt: skip
    _check_runs(arms)
    return Plan("models", name, ("model",), tuple(arms), target, ", ".join(models), seed_values)


def sweep_option(option: str) -> str:
    """The TrainConfig field a sweep option names (``lr``, ``batch-size``, …)."""
    key = _ALIASES.get(option.strip().lower(), option.strip().lower().replace("-", "_"))
    if key not in SWEEP_OPTIONS:
        raise UserError(
            f"sweep: unknown option {option!r}; choose one of {', '.join(SWEEP_OPTIONS)}"
        )
    return key


def _sweep_value(key: str, text: str) -> Any:
    kind = SWEEP_OPTIONS[key]
    if kind is str:
        return text.strip().lower()
    try:
        number = float(text)
    except ValueError:
        raise UserError(f"sweep {key}: {text!r} is not a number") from None
    if kind is int:
        if number != int(number):
            raise UserError(f"sweep {key}: {text!r} is not a whole number")
        return int(number)
    return number


def plan_sweep(
    base: TrainConfig,
    option: str,
    values: Sequence[str] | str,
    *,
    seeds: int = 1,
    name: str = "",
    target: float = DEFAULT_TARGET,
) -> Plan:
    """A sweep: ``base`` with ``option`` set to each of ``values`` × seeds."""
    base.validate()
    target = _check_target(target)
    key = sweep_option(option)
    raw = parse_list(values, "values") if isinstance(values, str) else [str(v) for v in values]
    parsed = [_sweep_value(key, v) for v in raw]
    if len(set(map(repr, parsed))) != len(parsed):
        raise UserError("values: each value may appear only once")
    if len(parsed) < 2:
        raise UserError("values: a sweep needs at least two values")
    seed_values = seed_list(seeds)
    if key == "train_limit":
        _check_sizes(parsed, base)
    name = name.strip() or f"sweep {key}: {', '.join(raw)}"
    arms = []
    for text, value in zip(raw, parsed, strict=True):
        try:
            config = base.with_(**{key: value}).validate()
        except UserError as err:
            raise UserError(f"sweep {key}={text}: {err}") from None
        if key == "input_size":
            config.check_model()
        label = f"{key} = {text}"
        for seed in seed_values:
            arms.append(Arm(label, {key: value}, seed, _named(config, name, label, seed)))
    _check_runs(arms)
    arms[0].config.check_model()
    return Plan("sweep", name, (key,), tuple(arms), target, base.model, seed_values)


# --- the one-click preset ----------------------------------------------------------------------


@dataclass(frozen=True)
class Preset:
    """A one-click regular-vs-separable experiment."""

    model: str
    sizes: tuple[int, ...]
    seeds: int
    epochs: int
    name: str


PART_ONE = Preset(
    model="small-cnn",
    sizes=(1000, 10000),
    seeds=2,
    epochs=3,
    name="Part I: regular vs separable (small-cnn)",
)
"""The "Part I" preset: small-cnn regular vs separable on 1,000 and 10,000 digits, 2 seeds,
3 epochs — eight runs, about five minutes on a 2-core CPU."""


def part_one(data_dir: str | None = None, device: str = "auto") -> Plan:
    """The Part I preset as a plan (see :data:`PART_ONE`)."""
    base = TrainConfig(
        model=PART_ONE.model, epochs=PART_ONE.epochs, data_dir=data_dir, device=device
    )
    return plan_separable(base, sizes=PART_ONE.sizes, seeds=PART_ONE.seeds, name=PART_ONE.name)
