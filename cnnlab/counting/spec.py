"""Conv Lab layer stacks: dataclasses, JSON in/out, validation with one precise line per error.

No torch here, and no counting: a spec is checked by shape arithmetic (output shapes, receptive
fields, size limits) before anything is built, so a bad or huge spec is refused before memory is
allocated. Every params/MACs figure cnnlab shows comes from the one rule table
(:mod:`cnnlab.counting.rules`, via :func:`cnnlab.counting.analyse.analyse_spec`); the size guard
here only bounds the weight tensors a stack would allocate.

JSON shape (omitted keys take the defaults; pooling stride defaults to the kernel)::

    {"input": [3, 32, 32], "name": "my stack", "layers": [
      {"type": "conv", "out_channels": 64, "kernel": 3, "stride": 1, "padding": 1, "dilation": 1,
       "groups": 1, "bias": true, "separable": false, "batchnorm": false, "activation": "relu"},
      {"type": "maxpool", "kernel": 2, "stride": 2},
      {"type": "flatten"},
      {"type": "linear", "out_features": 10, "bias": true, "activation": null},
      {"type": "dropout", "p": 0.5}]}

Layers are numbered from 0, as the children of the built ``nn.Sequential``.
"""

from __future__ import annotations

import json
import math
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, fields, replace
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError
from cnnlab.format import shape_text

LAYER_TYPES = ("conv", "maxpool", "avgpool", "flatten", "linear", "dropout")
ACTIVATIONS = ("relu", "relu6", "gelu", "silu", "sigmoid", "tanh")

# Which keys each layer type takes (besides "type"), and which of them are required.
LAYER_KEYS: dict[str, tuple[str, ...]] = {
    "conv": (
        "out_channels",
        "kernel",
        "stride",
        "padding",
        "dilation",
        "groups",
        "bias",
        "separable",
        "batchnorm",
        "activation",
    ),
    "maxpool": ("kernel", "stride", "padding", "dilation"),
    "avgpool": ("kernel", "stride", "padding"),
    "flatten": (),
    "linear": ("out_features", "bias", "batchnorm", "activation"),
    "dropout": ("p",),
}
REQUIRED_KEYS: dict[str, tuple[str, ...]] = {
    "conv": ("out_channels", "kernel"),
    "maxpool": ("kernel",),
    "avgpool": ("kernel",),
    "linear": ("out_features",),
}
STACK_KEYS = ("input", "layers", "name")

# Limits, checked by arithmetic before anything is allocated.
MAX_TEXT_BYTES = 1_000_000
MAX_DEPTH = 10
MAX_LAYERS = 200
MAX_CHANNELS = 65_536
MAX_FEATURES = 1_048_576
MAX_SPATIAL = 4096
MAX_ACTIVATION = 2**28  # values in one layer's output (1 GiB in fp32)
MAX_PARAMS = 500_000_000  # weight elements (conv kernels, linear matrices) of a whole stack
MAX_MACS = 10**12  # multiply-accumulates those weights do for one input
MAX_NAME = 100

_INT_FIELDS = ("out_channels", "kernel", "stride", "padding", "dilation", "groups", "out_features")
_BOOL_FIELDS = ("bias", "separable", "batchnorm")


def layer_label(index: int, type_: str) -> str:
    """``layer 3 (conv)`` — how messages name a layer."""
    return f"layer {index} ({type_})"


@dataclass(frozen=True)
class LayerSpec:
    """One layer of a stack. Fields that do not apply to ``type`` are reset to their defaults.

    ``stride`` None means 1 for a conv and the kernel for pooling; it is resolved on creation.
    ``separable`` (conv): depthwise k×k conv then pointwise 1×1; ``bias``, ``batchnorm`` and
    ``activation`` apply to each of the two.
    """

    type: str
    out_channels: int | None = None
    kernel: int | None = None
    stride: int | None = None
    padding: int = 0
    dilation: int = 1
    groups: int = 1
    bias: bool = True
    separable: bool = False
    batchnorm: bool = False
    activation: str | None = None
    out_features: int | None = None
    p: float = 0.5

    def __post_init__(self) -> None:
        keys = LAYER_KEYS.get(self.type)
        if keys is not None:  # canonical form: keys that do not apply take their defaults
            for f in fields(self):
                if f.name != "type" and f.name not in keys:
                    object.__setattr__(self, f.name, f.default)
        if isinstance(self.activation, str) and self.activation.strip().lower() in ("", "none"):
            object.__setattr__(self, "activation", None)
        if self.stride is None:
            if self.type == "conv":
                object.__setattr__(self, "stride", 1)
            elif self.type in ("maxpool", "avgpool") and self.kernel is not None:
                object.__setattr__(self, "stride", self.kernel)

    @classmethod
    def from_dict(cls, d: Any, index: int = 0) -> LayerSpec:
        """Parse one layer object; raises :class:`UserError` naming the layer and the key."""
        if not isinstance(d, Mapping):
            raise UserError(f"layer {index}: must be an object, got {_json_type(d)}")
        type_ = d.get("type")
        if not isinstance(type_, str):
            raise UserError(f'layer {index}: needs a "type": one of {", ".join(LAYER_TYPES)}')
        if type_ not in LAYER_TYPES:
            raise UserError(
                f"layer {index}: unknown type {type_!r}; choose one of {', '.join(LAYER_TYPES)}"
            )
        where = layer_label(index, type_)
        allowed = LAYER_KEYS[type_]
        defaults = {f.name: f.default for f in fields(cls)}
        kwargs: dict[str, Any] = {}
        for key, value in d.items():
            if key == "type":
                continue
            if key not in allowed:
                # A key of another layer type left at its default (e.g. from a table) is fine.
                if key in defaults and (value is None or _same(value, defaults[key])):
                    continue
                listed = ", ".join(("type", *allowed))
                what = "does not apply to" if key in defaults else "is not a key of"
                raise UserError(f"{where}: {key!r} {what} {type_}; allowed keys: {listed}")
            kwargs[key] = _parse_value(where, key, value)
        for key in REQUIRED_KEYS.get(type_, ()):
            if kwargs.get(key) is None:
                raise UserError(f"{where}: {key!r} is required")
        return cls(type=type_, **kwargs)

    def to_dict(self) -> dict[str, Any]:
        """Every key that applies to the type, explicitly (``from_dict(to_dict())`` is equal)."""
        out: dict[str, Any] = {"type": self.type}
        for key in LAYER_KEYS.get(self.type, ()):
            out[key] = getattr(self, key)
        return out

    @property
    def flippable(self) -> bool:
        """A conv that has a depthwise-separable form: kernel > 1 and groups = 1."""
        return self.type == "conv" and (self.kernel or 0) > 1 and self.groups == 1


def _same(a: Any, b: Any) -> bool:
    return (type(a) is type(b) and a == b) or (
        isinstance(a, (int, float)) and not isinstance(a, bool) and a == b
    )


def _json_type(value: Any) -> str:
    if value is None:
        return "null"
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, (int, float)):
        return repr(value)
    if isinstance(value, str):
        return "a string"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, (list, tuple)):
        return "a list"
    return type(value).__name__


def _parse_value(where: str, key: str, value: Any) -> Any:
    if key in _INT_FIELDS:
        if value is None and key not in ("padding", "dilation", "groups"):
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            raise UserError(f"{where}: {key} must be a whole number, got {_json_type(value)}")
        return value
    if key in _BOOL_FIELDS:
        if not isinstance(value, bool):
            raise UserError(f"{where}: {key} must be true or false, got {_json_type(value)}")
        return value
    if key == "activation":
        if value is None:
            return None
        if not isinstance(value, str):
            raise UserError(
                f"{where}: activation must be a string or null, got {_json_type(value)}"
            )
        name = value.strip().lower()
        if name in ("", "none"):
            return None
        if name not in ACTIVATIONS:
            raise UserError(
                f"{where}: unknown activation {value!r}; choose one of "
                f"{', '.join(ACTIVATIONS)} or null"
            )
        return name
    if key == "p":
        if isinstance(value, bool) or not isinstance(value, (int, float)):
            raise UserError(f"{where}: p must be a number, got {_json_type(value)}")
        if isinstance(value, int) and not 0 <= value <= 1:  # a huge int would overflow float
            raise UserError(f"{where}: p must be between 0 and 1, got {value}")
        if not math.isfinite(value):
            raise UserError(f"{where}: p must be a finite number, got {value}")
        return float(value)
    raise AssertionError(key)  # pragma: no cover


@dataclass(frozen=True)
class StackSpec:
    """An input shape (C, H, W) and a tuple of layers."""

    input: tuple[int, int, int]
    layers: tuple[LayerSpec, ...] = field(default=())
    name: str = "stack"

    def __post_init__(self) -> None:
        object.__setattr__(self, "input", tuple(self.input))
        object.__setattr__(self, "layers", tuple(self.layers))

    @classmethod
    def from_dict(cls, obj: Any, *, validate: bool = True) -> StackSpec:
        """Parse a spec object. ``validate`` (default) also checks shapes and limits
        (:meth:`validate`); pass False to keep a spec whose later layers are invalid."""
        if not isinstance(obj, Mapping):
            raise UserError(f"a spec must be a JSON object, got {_json_type(obj)}")
        for key in obj:
            if key not in STACK_KEYS:
                raise UserError(f"unknown spec key {key!r}; allowed keys: {', '.join(STACK_KEYS)}")
        if "input" not in obj:
            raise UserError('a spec needs "input": [C, H, W]')
        raw_input = obj["input"]
        if (
            not isinstance(raw_input, (list, tuple))
            or len(raw_input) != 3
            or any(isinstance(v, bool) or not isinstance(v, int) for v in raw_input)
        ):
            raise UserError(
                f'"input" must be three whole numbers [C, H, W], got {json.dumps(raw_input)}'
                if _jsonable(raw_input)
                else '"input" must be three whole numbers [C, H, W]'
            )
        input_shape = (int(raw_input[0]), int(raw_input[1]), int(raw_input[2]))
        check_input_shape(input_shape)
        raw_layers = obj.get("layers", [])
        if not isinstance(raw_layers, (list, tuple)):
            raise UserError(f'"layers" must be a list, got {_json_type(raw_layers)}')
        if len(raw_layers) > MAX_LAYERS:
            raise UserError(f"a spec may have at most {MAX_LAYERS} layers, got {len(raw_layers)}")
        name = obj.get("name", "stack")
        if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
            raise UserError(f'"name" must be a non-empty string of at most {MAX_NAME} characters')
        layers = tuple(LayerSpec.from_dict(d, i) for i, d in enumerate(raw_layers))
        spec = cls(input=input_shape, layers=layers, name=name.strip())
        if validate:
            spec.validate()
        return spec

    def to_dict(self) -> dict[str, Any]:
        return {
            "name": self.name,
            "input": list(self.input),
            "layers": [layer.to_dict() for layer in self.layers],
        }

    def validate(self) -> StackSpec:
        """Raise :class:`UserError` for the first invalid layer; return the spec otherwise."""
        for check in check_stack(self):
            if check.error is not None:
                layer = self.layers[check.index]
                raise UserError(f"{layer_label(check.index, layer.type)}: {check.error}")
        return self


def _jsonable(value: Any) -> bool:
    try:
        json.dumps(value)
    except (TypeError, ValueError):
        return False
    return True


def check_input_shape(
    shape: Sequence[int], *, max_values: int | None = MAX_ACTIVATION
) -> tuple[int, int, int]:
    """``shape`` as a (C, H, W) tuple; :class:`UserError` unless it is within the limits.

    THE check of an input shape: channels 1…:data:`MAX_CHANNELS`, height and width
    1…:data:`MAX_SPATIAL`, and (unless ``max_values`` is None) at most ``max_values`` values —
    a Conv Lab stack keeps every activation under :data:`MAX_ACTIVATION`; a zoo model, analysed
    on the meta device, passes ``max_values=None``.
    """
    shape = tuple(shape)
    if len(shape) != 3 or any(isinstance(s, bool) or not isinstance(s, int) for s in shape):
        raise UserError(f"input must be three whole numbers C×H×W, got {shape}")
    c, h, w = shape
    if not 1 <= c <= MAX_CHANNELS:
        raise UserError(f"input channels must be between 1 and {MAX_CHANNELS:,}, got {c}")
    if not (1 <= h <= MAX_SPATIAL and 1 <= w <= MAX_SPATIAL):
        raise UserError(f"input height and width must be between 1 and {MAX_SPATIAL}, got {h}×{w}")
    if max_values is not None and c * h * w > max_values:
        raise UserError(f"input {c}×{h}×{w} has more than {max_values:,} values")
    return (c, h, w)


# ---------------------------------------------------------------- JSON text and files


def _depth(text: str) -> int:
    """Deepest nesting of [ and { outside strings."""
    stripped = re.sub(r'"(?:[^"\\]|\\.)*"', '""', text)
    depth = best = 0
    for ch in re.findall(r"[\[\]{}]", stripped):
        if ch in "[{":
            depth += 1
            best = max(best, depth)
        else:
            depth -= 1
    return best


def _reject_constant(name: str) -> Any:
    raise UserError(f"spec contains {name}; numbers must be finite")


def _parse_float(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):
        raise UserError(f"spec contains the number {text}, which is out of range")
    return value


def _parse_int(text: str) -> int:
    # Python refuses int() of more than 4,300 digits with a bare ValueError; no limit needs 20.
    if len(text.lstrip("-")) > 20:
        raise UserError(f"spec contains a {len(text)}-digit number, which is out of range")
    return int(text)


def loads(text: str | bytes, *, validate: bool = True) -> StackSpec:
    """Parse spec JSON text (at most 1 MB); raises :class:`UserError` with one clear line."""
    if isinstance(text, bytes):
        if len(text) > MAX_TEXT_BYTES:
            raise UserError(f"spec is larger than {MAX_TEXT_BYTES // 1_000_000} MB")
        try:
            text = text.decode("utf-8")
        except UnicodeDecodeError:
            raise UserError("spec is not UTF-8 text") from None
    if len(text) > MAX_TEXT_BYTES or len(text.encode("utf-8", "replace")) > MAX_TEXT_BYTES:
        raise UserError(f"spec is larger than {MAX_TEXT_BYTES // 1_000_000} MB")
    if _depth(text) > MAX_DEPTH:
        raise UserError(f"spec JSON is nested more than {MAX_DEPTH} levels deep")
    try:
        obj = json.loads(
            text, parse_constant=_reject_constant, parse_float=_parse_float, parse_int=_parse_int
        )
    except json.JSONDecodeError as err:
        raise UserError(
            f"spec is not valid JSON: {err.msg} at line {err.lineno} column {err.colno}"
        ) from None
    except RecursionError:
        raise UserError(f"spec JSON is nested more than {MAX_DEPTH} levels deep") from None
    require_valid_text(obj, "spec")
    return StackSpec.from_dict(obj, validate=validate)


def require_valid_text(obj: Any, where: str) -> None:
    """Refuse decoded JSON whose strings are not valid Unicode (``"\\ud800"`` escapes decode
    to lone surrogates, which no UTF-8 writer — a table, a page, a file — can show)."""
    try:
        json.dumps(obj, ensure_ascii=False).encode("utf-8")
    except UnicodeEncodeError:
        raise UserError(
            f"{where} holds text that is not valid Unicode (a lone surrogate such as \\ud800)"
        ) from None


def dumps(spec: StackSpec) -> str:
    """The spec as indented JSON text (every applicable key written out)."""
    return json.dumps(spec.to_dict(), indent=2) + "\n"


def load(path: str | Path, *, validate: bool = True) -> StackSpec:
    """Read a spec file; a missing ``name`` takes the file's stem."""
    path = Path(path)
    try:
        size = path.stat().st_size
    except OSError:
        raise UserError(f"spec file not found: {path}") from None
    if not path.is_file():
        raise UserError(f"spec path is not a file: {path}")
    if size > MAX_TEXT_BYTES:
        raise UserError(f"spec file {path.name} is larger than {MAX_TEXT_BYTES // 1_000_000} MB")
    try:
        data = path.read_bytes()
    except OSError as err:
        raise UserError(f"cannot read spec file {path}: {err.strerror}") from None
    spec = loads(data, validate=validate)
    if spec.name == "stack":
        try:
            named = json.loads(data).get("name")
        except (ValueError, AttributeError):  # pragma: no cover - already parsed above
            named = None
        if named is None and path.stem:
            spec = replace(spec, name=path.stem[:MAX_NAME])
    return spec


# ---------------------------------------------------------------- shape arithmetic


@dataclass(frozen=True)
class LayerCheck:
    """One layer's shapes by arithmetic, or why it is invalid.

    ``in_shape``/``out_shape`` are (C, H, W), or (F,) once flattened. ``receptive_field`` is the
    side of the input square one output value sees (None once flattened: every input).
    No counts: a layer's params and MACs come from the rule table (``analyse_spec``).
    """

    index: int
    in_shape: tuple[int, ...] | None
    out_shape: tuple[int, ...] | None
    error: str | None
    receptive_field: int | None


class _Invalid(Exception):
    pass


def _need_int(layer: LayerSpec, key: str, lo: int, hi: int) -> int:
    value = getattr(layer, key)
    if value is None:
        raise _Invalid(f"{key} is required")
    if isinstance(value, bool) or not isinstance(value, int):
        raise _Invalid(f"{key} must be a whole number, got {value!r}")
    if value < lo:
        raise _Invalid(f"{key} must be at least {lo}, got {value}")
    if value > hi:
        raise _Invalid(f"{key} must be at most {hi:,}, got {value:,}")
    return value


def _check_activation(layer: LayerSpec) -> None:
    if layer.activation is not None and layer.activation not in ACTIVATIONS:
        raise _Invalid(
            f"unknown activation {layer.activation!r}; choose one of {', '.join(ACTIVATIONS)}"
        )


def _need_map(layer: LayerSpec, shape: tuple[int, ...]) -> tuple[int, int, int]:
    if len(shape) != 3:
        raise _Invalid(
            f"needs a C×H×W input, but the input here is flat ({shape[0]:,} features); "
            "move it above the flatten"
        )
    c, h, w = shape
    return c, h, w


def _window(
    layer: LayerSpec, h: int, w: int, kernel: int, stride: int, padding: int, dilation: int
) -> tuple[int, int]:
    eff = dilation * (kernel - 1) + 1
    ph, pw = h + 2 * padding, w + 2 * padding
    if eff > ph or eff > pw:
        what = (
            f"kernel {kernel}"
            if dilation == 1
            else f"dilated kernel {eff} ({kernel}, dilation {dilation})"
        )
        padded = "padded input" if padding else "input"
        raise _Invalid(f"{what} is larger than the {padded} {ph}×{pw}")
    return (ph - eff) // stride + 1, (pw - eff) // stride + 1


def _step(
    layer: LayerSpec, shape: tuple[int, ...], rf: int | None, jump: int
) -> tuple[tuple[int, ...], int | None, int, int]:
    """(out shape, receptive field, jump, weight elements) of one layer, or raise _Invalid.

    Weight elements are the sizes of the conv kernels and linear matrices the layer allocates
    (no bias, no batch norm): the size guard of :func:`check_stack`, not a count to show.
    """
    t = layer.type
    if t not in LAYER_TYPES:
        raise _Invalid(f"unknown type {t!r}; choose one of {', '.join(LAYER_TYPES)}")
    if t == "conv":
        c, h, w = _need_map(layer, shape)
        out = _need_int(layer, "out_channels", 1, MAX_CHANNELS)
        k = _need_int(layer, "kernel", 1, MAX_SPATIAL)
        s = _need_int(layer, "stride", 1, MAX_SPATIAL)
        p = _need_int(layer, "padding", 0, MAX_SPATIAL)
        d = _need_int(layer, "dilation", 1, MAX_SPATIAL)
        g = _need_int(layer, "groups", 1, MAX_CHANNELS)
        _check_activation(layer)
        if layer.separable and g != 1:
            raise _Invalid(f"a separable conv needs groups 1 (it sets its own), got groups {g}")
        if c % g:
            raise _Invalid(f"groups {g} does not divide the {c} input channels")
        if out % g:
            raise _Invalid(f"groups {g} does not divide the {out} output channels")
        ho, wo = _window(layer, h, w, k, s, p, d)
        # separable: a k×k depthwise kernel per input channel, then a 1×1 pointwise matrix
        weights = k * k * c + c * out if layer.separable else (c // g) * k * k * out
        new_rf = None if rf is None else rf + (d * (k - 1)) * jump
        return (out, ho, wo), new_rf, jump * s, weights
    if t in ("maxpool", "avgpool"):
        c, h, w = _need_map(layer, shape)
        k = _need_int(layer, "kernel", 1, MAX_SPATIAL)
        s = _need_int(layer, "stride", 1, MAX_SPATIAL)
        p = _need_int(layer, "padding", 0, MAX_SPATIAL)
        d = _need_int(layer, "dilation", 1, MAX_SPATIAL) if t == "maxpool" else 1
        if p > k // 2:
            raise _Invalid(f"padding {p} must be at most half the kernel ({k} // 2 = {k // 2})")
        ho, wo = _window(layer, h, w, k, s, p, d)
        new_rf = None if rf is None else rf + (d * (k - 1)) * jump
        return (c, ho, wo), new_rf, jump * s, 0
    if t == "flatten":
        return (math.prod(shape),), None, jump, 0
    if t == "linear":
        if len(shape) != 1:
            raise _Invalid(
                f"needs a flat input, but the input here is {shape_text(shape)}; "
                "add a flatten layer before it"
            )
        f_in = shape[0]
        out = _need_int(layer, "out_features", 1, MAX_FEATURES)
        _check_activation(layer)
        return (out,), None, jump, f_in * out
    # dropout
    p_drop = layer.p
    if isinstance(p_drop, bool) or not isinstance(p_drop, (int, float)):
        raise _Invalid(f"p must be a number, got {p_drop!r}")
    if not (math.isfinite(p_drop) and 0 <= p_drop <= 1):
        raise _Invalid(f"p must be between 0 and 1, got {p_drop}")
    return shape, rf, jump, 0


def check_stack(spec: StackSpec) -> list[LayerCheck]:
    """Shapes and receptive fields by arithmetic, one :class:`LayerCheck` per layer.

    The first invalid layer carries its reason; later layers carry
    ``"not analysed: layer N above is invalid"``. Size limits (output values per layer, the
    stack's weight elements and the MACs they do) are checked here, before anything is built.
    An invalid input shape raises.
    """
    check_input_shape(spec.input)
    if len(spec.layers) > MAX_LAYERS:
        raise UserError(f"a spec may have at most {MAX_LAYERS} layers, got {len(spec.layers)}")
    shape: tuple[int, ...] = tuple(spec.input)
    rf: int | None = 1
    jump = 1
    total_weights = total_macs = 0
    failed: int | None = None
    checks: list[LayerCheck] = []
    for i, layer in enumerate(spec.layers):
        if failed is not None:
            checks.append(
                LayerCheck(i, None, None, f"not analysed: layer {failed} above is invalid", None)
            )
            continue
        try:
            out, new_rf, new_jump, weights = _step(layer, shape, rf, jump)
            if math.prod(out) > MAX_ACTIVATION:
                raise _Invalid(
                    f"output {shape_text(out)} has more than {MAX_ACTIVATION:,} values (the limit)"
                )
            total_weights += weights
            # each weight of a conv is used once per output position; of a linear, once
            total_macs += weights * (out[1] * out[2] if len(out) == 3 else 1)
            if total_weights > MAX_PARAMS:
                raise _Invalid(
                    f"the stack's weights alone would hold {total_weights:,} parameters; "
                    f"the limit is {MAX_PARAMS:,}"
                )
            if total_macs > MAX_MACS:
                raise _Invalid(
                    f"the stack would need {total_macs:,} MACs; the limit is {MAX_MACS:,}"
                )
        except _Invalid as err:
            failed = i
            checks.append(LayerCheck(i, shape, None, str(err), None))
            continue
        checks.append(LayerCheck(i, shape, out, None, new_rf))
        shape, rf, jump = out, new_rf, new_jump
    return checks


def with_separable(spec: StackSpec, flag: bool, indices: Iterable[int] | None = None) -> StackSpec:
    """Flip convs to separable (``flag`` True: only kernel > 1 and groups = 1) or regular.

    ``indices`` None means every layer.
    """
    chosen = set(range(len(spec.layers))) if indices is None else set(indices)
    layers = []
    for i, layer in enumerate(spec.layers):
        if i in chosen and layer.type == "conv":
            if flag and layer.flippable:
                layer = replace(layer, separable=True)
            elif not flag:
                layer = replace(layer, separable=False)
        layers.append(layer)
    return replace(spec, layers=tuple(layers))


def describe_layer(layer: LayerSpec, in_size: int | None = None) -> str:
    """A short label: ``conv 3×3 64→128 s2, bn, relu (separable)``, ``maxpool 2×2 s2``."""
    t = layer.type
    arrow_in = f"{in_size:,}→" if in_size is not None else "→"
    if t == "conv":
        k = layer.kernel
        text = f"conv {k}×{k} {arrow_in}{layer.out_channels}"
        if layer.stride not in (None, 1):
            text += f" s{layer.stride}"
        if layer.padding:
            text += f" p{layer.padding}"
        if layer.dilation != 1:
            text += f" d{layer.dilation}"
        if layer.groups != 1:
            text += f" g{layer.groups}"
    elif t in ("maxpool", "avgpool"):
        text = f"{t} {layer.kernel}×{layer.kernel}"
        if layer.stride != layer.kernel:
            text += f" s{layer.stride}"
        if layer.padding:
            text += f" p{layer.padding}"
    elif t == "linear":
        out_f = layer.out_features
        text = f"linear {arrow_in}{out_f:,}" if isinstance(out_f, int) else "linear"
    elif t == "dropout":
        text = f"dropout p={layer.p:g}" if isinstance(layer.p, (int, float)) else "dropout"
    # (labels are also drawn for invalid layers: never format a value of the wrong type)
    else:
        text = t
    if layer.batchnorm and t in ("conv", "linear"):
        text += ", bn"
    if layer.activation and t in ("conv", "linear"):
        text += f", {layer.activation}"
    if t == "conv" and layer.separable:
        text += " (separable)"
    return text


# ---------------------------------------------------------------- presets


def _conv(out: int, k: int = 3, **kw: Any) -> LayerSpec:
    kw.setdefault("padding", k // 2)
    return LayerSpec(type="conv", out_channels=out, kernel=k, **kw)


PRESETS: dict[str, StackSpec] = {
    "VGG block": StackSpec(
        input=(64, 112, 112),
        name="VGG block",
        layers=(
            _conv(128, activation="relu"),
            _conv(128, activation="relu"),
            LayerSpec(type="maxpool", kernel=2, stride=2),
        ),
    ),
    "MobileNet v1 block": StackSpec(
        input=(32, 112, 112),
        name="MobileNet v1 block",
        layers=(
            _conv(64, separable=True, bias=False, batchnorm=True, activation="relu"),
            _conv(128, stride=2, separable=True, bias=False, batchnorm=True, activation="relu"),
            _conv(128, separable=True, bias=False, batchnorm=True, activation="relu"),
        ),
    ),
    "MobileNet v1 Table 3 layer": StackSpec(
        input=(512, 14, 14),
        name="MobileNet v1 Table 3 layer",
        layers=(_conv(512, bias=False),),
    ),
    "MNIST CNN": StackSpec(
        input=(1, 28, 28),
        name="MNIST CNN",
        layers=(
            _conv(32, activation="relu"),
            LayerSpec(type="maxpool", kernel=2),
            _conv(64, activation="relu"),
            LayerSpec(type="maxpool", kernel=2),
            LayerSpec(type="flatten"),
            LayerSpec(type="linear", out_features=128, activation="relu"),
            LayerSpec(type="dropout", p=0.25),
            LayerSpec(type="linear", out_features=10),
        ),
    ),
}
"""Starting stacks for the Conv Lab."""
