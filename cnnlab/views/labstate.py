"""Conv Lab state without Streamlit: URL query string ↔ configuration ↔ editor table ↔ spec.

A :class:`LabConfig` is what a shared link restores: input shape, stack name, the global mode
(per layer / all regular / all separable) and the layers *as typed*, even invalid ones, so a
half-finished stack survives a reload. It travels in one query-string value: the compact JSON,
zlib-compressed, base64url without padding (:func:`encode_config` / :func:`decode_config`).

The editor table (one row per layer, columns :data:`COLUMNS`) converts to a
:class:`LabStack`: the spec of the rows that parse, and one message per row that does not.
The analysis itself lives in :mod:`cnnlab.counting.analyse`; :func:`layer_table` joins its per-layer
summaries with the row messages so an invalid row shows its reason and rows above keep their
numbers.
"""

from __future__ import annotations

import base64
import binascii
import json
import math
import zlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, fields
from typing import TYPE_CHECKING, Any

import pandas as pd

from cnnlab.counting.spec import (
    ACTIVATIONS,
    LAYER_KEYS,
    LAYER_TYPES,
    MAX_LAYERS,
    MAX_NAME,
    LayerSpec,
    StackSpec,
    check_input_shape,
    check_stack,
    describe_layer,
    layer_label,
    require_valid_text,
    shape_text,
    with_separable,
)
from cnnlab.errors import UserError

if TYPE_CHECKING:
    from cnnlab.counting.analyse import SpecLayerSummary

QUERY_KEY = "lab"
"""The query-string parameter that holds a Conv Lab configuration."""

MAX_QUERY_CHARS = 6000
"""Longest encoded configuration accepted (browsers and proxies cut URLs near 8 KB)."""

MAX_DECODED_BYTES = 256_000
"""Largest decompressed configuration accepted (guards against a compression bomb)."""

FORMAT_VERSION = 1

MAX_LINK_NUMBER = 2**53
"""Larger numbers in a link's layers are refused (no limit comes near; pandas cannot hold them)."""

MODES: tuple[str, ...] = ("per-layer", "regular", "separable")
MODE_LABELS: dict[str, str] = {
    "per-layer": "per layer",
    "regular": "all regular",
    "separable": "all separable",
}

COLUMNS: tuple[str, ...] = (
    "type",
    "out",
    "kernel",
    "stride",
    "padding",
    "dilation",
    "groups",
    "bias",
    "batchnorm",
    "activation",
    "separable",
    "p",
)
"""Editor columns. ``out`` is ``out_channels`` for a conv and ``out_features`` for a linear."""

INT_COLUMNS = ("out", "kernel", "stride", "padding", "dilation", "groups")

EDITOR_COLUMNS: dict[str, dict[str, Any]] = {
    "type": {"kind": "select", "options": LAYER_TYPES, "required": True, "default": "conv",
             "pinned": True},
    "out": {"kind": "int", "default": 64,
            "help": "output channels (conv) or output features (linear)"},
    "kernel": {"kind": "int", "default": 3},
    "stride": {"kind": "int", "default": 1, "help": "pooling: empty = the kernel"},
    "padding": {"kind": "int", "default": 1},
    "dilation": {"kind": "int", "default": 1},
    "groups": {"kind": "int", "default": 1},
    "bias": {"kind": "bool", "default": True},
    "batchnorm": {"kind": "bool", "label": "BN", "default": False,
                  "help": "batch norm after the conv/linear"},
    "activation": {"kind": "select", "options": ACTIVATIONS, "help": "empty = none"},
    "separable": {"kind": "bool", "default": False,
                  "help": "depthwise k×k + pointwise 1×1; ticked = counted separable. Set the "
                  "form to 'per layer' to tick layers one by one"},
    "p": {"kind": "float", "help": "dropout probability", "step": 0.05, "format": "%.2f"},
}  # fmt: skip
"""How the page's editor shows each column (``kind``: int, float, bool or select; all but
the selects are narrow)."""

MAIN_COLUMNS = ("type", "out", "kernel", "stride", "padding", "separable")
"""The editor's columns on a narrow screen; :data:`EDITOR_ORDER` is the full order."""
EDITOR_ORDER = (*MAIN_COLUMNS, "activation", "batchnorm", "bias", "groups", "dilation", "p")
BOOL_COLUMNS = ("bias", "batchnorm", "separable")

_DEFAULTS: dict[str, Any] = {f.name: f.default for f in fields(LayerSpec)}


# ---------------------------------------------------------------- configuration


@dataclass(frozen=True)
class LabConfig:
    """Everything a Conv Lab link restores. ``layers`` are spec-JSON objects, possibly invalid."""

    input: tuple[int, int, int]
    layers: tuple[Mapping[str, Any], ...] = field(default=())
    mode: str = "per-layer"
    name: str = "stack"

    @classmethod
    def from_spec(cls, spec: StackSpec, mode: str = "per-layer") -> LabConfig:
        return cls(
            input=tuple(spec.input),  # type: ignore[arg-type]
            layers=tuple(compact_layer(layer.to_dict()) for layer in spec.layers),
            mode=mode,
            name=spec.name,
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "v": FORMAT_VERSION,
            "name": self.name,
            "input": list(self.input),
            "mode": self.mode,
            "layers": [dict(layer) for layer in self.layers],
        }


def compact_layer(layer: Mapping[str, Any]) -> dict[str, Any]:
    """Drop keys that are empty or at their default (pooling stride = kernel is a default)."""
    out: dict[str, Any] = {}
    type_ = layer.get("type")
    for key, value in layer.items():
        if value is None and key != "type":
            continue
        if key == "stride":
            default = layer.get("kernel") if type_ in ("maxpool", "avgpool") else 1
            if value == default:
                continue
        elif key in _DEFAULTS and key != "type" and _same(value, _DEFAULTS[key]):
            continue
        out[key] = value
    return out


def _same(a: Any, b: Any) -> bool:
    return (type(a) is type(b) and a == b) or (
        isinstance(a, (int, float)) and not isinstance(a, bool) and not isinstance(b, bool)
        and a == b
    )  # fmt: skip


def encode_config(config: LabConfig) -> str:
    """The configuration as one URL-safe query-string value; raises if it is too long."""
    text = json.dumps(config.to_dict(), separators=(",", ":"), ensure_ascii=False)
    packed = zlib.compress(text.encode("utf-8"), 9)
    value = base64.urlsafe_b64encode(packed).decode("ascii").rstrip("=")
    if len(value) > MAX_QUERY_CHARS:
        raise UserError(
            f"this stack is too large for a link ({len(value):,} characters, the limit is "
            f"{MAX_QUERY_CHARS:,}); download the spec as JSON instead"
        )
    return value


def decode_config(value: str) -> LabConfig:
    """Read :func:`encode_config` output; a bad or garbled value raises one clear line."""
    where = f"the link's {QUERY_KEY}= value"
    if not isinstance(value, str) or not value.strip():
        raise UserError(f"{where} is empty")
    value = value.strip()
    if len(value) > MAX_QUERY_CHARS:
        raise UserError(f"{where} is too long ({len(value):,} characters, at most "
                        f"{MAX_QUERY_CHARS:,})")  # fmt: skip
    try:
        packed = base64.urlsafe_b64decode(value + "=" * (-len(value) % 4))
    except (binascii.Error, ValueError):
        raise UserError(f"{where} is garbled: not base64url text") from None
    try:
        inflater = zlib.decompressobj()
        raw = inflater.decompress(packed, MAX_DECODED_BYTES)
        if inflater.unconsumed_tail:
            raise UserError(f"{where} unpacks to more than {MAX_DECODED_BYTES:,} bytes")
        if not inflater.eof:
            raise zlib.error("truncated")
    except zlib.error:
        raise UserError(f"{where} is garbled or cut off (it does not unpack); "
                        "copy the whole link again") from None  # fmt: skip
    try:
        obj = json.loads(raw.decode("utf-8"))
    except (UnicodeDecodeError, ValueError):
        raise UserError(f"{where} is garbled: it does not hold JSON") from None
    except RecursionError:
        raise UserError(f"{where} is garbled: its JSON is nested too deeply") from None
    require_valid_text(obj, where)
    return config_from_dict(obj)


def config_from_dict(obj: Any) -> LabConfig:
    """Check the outer shape of a decoded configuration; layers are checked per row later."""
    if not isinstance(obj, Mapping):
        raise UserError("a Conv Lab configuration must be a JSON object")
    version = obj.get("v", FORMAT_VERSION)
    if version != FORMAT_VERSION:
        raise UserError(f"this link was made by a different cnnlab version (format {version!r})")
    raw_input = obj.get("input")
    if (
        not isinstance(raw_input, (list, tuple))
        or len(raw_input) != 3
        or any(isinstance(v, bool) or not isinstance(v, int) for v in raw_input)
    ):
        raise UserError("the configuration's input must be three whole numbers [C, H, W]")
    shape = (int(raw_input[0]), int(raw_input[1]), int(raw_input[2]))
    check_input_shape(shape)
    mode = obj.get("mode", "per-layer")
    if mode not in MODES:
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    name = obj.get("name", "stack")
    if not isinstance(name, str) or not name.strip() or len(name) > MAX_NAME:
        raise UserError(f"the stack name must be text of 1 to {MAX_NAME} characters")
    layers = obj.get("layers", [])
    if not isinstance(layers, (list, tuple)):
        raise UserError('the configuration\'s "layers" must be a list')
    if len(layers) > MAX_LAYERS:
        raise UserError(f"a stack may have at most {MAX_LAYERS} layers, got {len(layers)}")
    rows = tuple(dict(layer) if isinstance(layer, Mapping) else {"type": None}
                 for layer in layers)  # fmt: skip
    for i, row in enumerate(rows):  # the editor's columns hold 64-bit numbers at most
        for key, value in row.items():
            if isinstance(value, bool) or not isinstance(value, (int, float)):
                continue
            if (isinstance(value, int) or math.isfinite(value)) and abs(value) > MAX_LINK_NUMBER:
                raise UserError(f"layer {i}: {key} is out of range in this link")
    return LabConfig(input=shape, layers=rows, mode=mode, name=name.strip())


# ---------------------------------------------------------------- layers and rows


@dataclass(frozen=True)
class LabStack:
    """The rows of the editor as far as they make a spec.

    ``spec`` holds the layers before the first row that does not parse (so it can be analysed);
    ``row_errors`` maps a row index to why it does not parse; ``rows`` is the number of rows.
    """

    spec: StackSpec
    row_errors: Mapping[int, str]
    rows: int

    @property
    def first_bad_row(self) -> int | None:
        return min(self.row_errors) if self.row_errors else None

    @property
    def complete(self) -> bool:
        """Every row parsed (shape errors may remain: see :func:`check_stack`)."""
        return not self.row_errors


def _strip_label(message: str, index: int, type_: object) -> str:
    for prefix in (f"{layer_label(index, str(type_))}: ", f"layer {index}: "):
        if message.startswith(prefix):
            return message[len(prefix) :]
    return message


def parse_layer(raw: Mapping[str, Any], index: int) -> tuple[LayerSpec | None, str | None]:
    """One layer object → (layer, None) or (None, why), never raising.

    Keys that do not apply to the row's type are ignored (the editor shows every column);
    empty values take the defaults.
    """
    type_ = raw.get("type")
    if not isinstance(type_, str) or not type_.strip():
        return None, f"choose a layer type ({', '.join(LAYER_TYPES)})"
    type_ = type_.strip().lower()
    if type_ not in LAYER_TYPES:
        return None, f"unknown type {type_!r}; choose one of {', '.join(LAYER_TYPES)}"
    wanted: dict[str, Any] = {"type": type_}
    for key in LAYER_KEYS[type_]:
        value = _clean(raw.get(key))
        if value is not None:
            wanted[key] = value
    try:
        return LayerSpec.from_dict(wanted, index), None
    except UserError as err:
        return None, _strip_label(str(err), index, type_)


def _clean(value: Any) -> Any:
    """Editor cell → plain JSON value: NA/NaN → None, numpy scalars → int/float/bool,
    a whole float → int."""
    if value is None:
        return None
    try:
        if pd.isna(value):
            return None
    except (TypeError, ValueError):
        pass
    if hasattr(value, "item") and not isinstance(value, (str, bytes)):
        value = value.item()
    if isinstance(value, float) and math.isfinite(value) and value.is_integer():
        return int(value)
    if isinstance(value, str) and not value.strip():
        return None
    return value


def parse_rows(
    input_shape: tuple[int, int, int],
    layers: Sequence[Mapping[str, Any]],
    name: str = "stack",
) -> LabStack:
    """Layer objects (from the editor or a link) → the analysable spec plus per-row reasons."""
    check_input_shape(tuple(input_shape))
    if len(layers) > MAX_LAYERS:
        raise UserError(f"a stack may have at most {MAX_LAYERS} layers, got {len(layers)}")
    parsed: list[LayerSpec] = []
    errors: dict[int, str] = {}
    for i, raw in enumerate(layers):
        layer, error = parse_layer(raw, i)
        if error is not None:
            errors[i] = error
        elif not errors:
            assert layer is not None
            parsed.append(layer)
    spec = StackSpec(input=tuple(input_shape), layers=tuple(parsed), name=name)  # type: ignore[arg-type]
    return LabStack(spec=spec, row_errors=errors, rows=len(layers))


def effective_spec(spec: StackSpec, mode: str) -> StackSpec:
    """The spec with the global switch applied: every conv regular, every flippable separable,
    or each layer's own flag (``per-layer``)."""
    if mode == "regular":
        return with_separable(spec, False)
    if mode == "separable":
        return with_separable(spec, True)
    if mode != "per-layer":
        raise UserError(f"unknown mode {mode!r}; choose one of {', '.join(MODES)}")
    return spec


# ---------------------------------------------------------------- the editor table


def _cell(layer: Mapping[str, Any], column: str) -> Any:
    type_ = layer.get("type")
    keys = LAYER_KEYS.get(type_, ()) if isinstance(type_, str) else ()
    if column == "type":
        return type_ if isinstance(type_, str) else None
    if column == "out":
        key = "out_channels" if type_ == "conv" else "out_features" if type_ == "linear" else None
        return _clean(layer.get(key)) if key else None
    if column not in keys:
        return None
    value = _clean(layer.get(column))
    if value is None:
        if column == "stride" and type_ in ("maxpool", "avgpool"):
            return _clean(layer.get("kernel"))
        default = _DEFAULTS.get(column)
        return 1 if column == "stride" else default
    return value


def frame_from_layers(layers: Sequence[Mapping[str, Any]]) -> pd.DataFrame:
    """Editor source frame: one row per layer; cells that do not apply to a type are empty."""
    data: dict[str, list[Any]] = {c: [_cell(layer, c) for layer in layers] for c in COLUMNS}
    frame = pd.DataFrame(data, columns=list(COLUMNS))
    for column in INT_COLUMNS:
        frame[column] = pd.array(
            [v if isinstance(v, int) and not isinstance(v, bool) else None
             for v in data[column]], dtype="Int64",
        )  # fmt: skip
    for column in BOOL_COLUMNS:
        frame[column] = pd.array(
            [v if isinstance(v, bool) else None for v in data[column]], dtype="boolean"
        )
    frame["p"] = pd.array(
        [float(v) if isinstance(v, (int, float)) and not isinstance(v, bool) else None
         for v in data["p"]], dtype="Float64",
    )  # fmt: skip
    for column in ("type", "activation"):
        frame[column] = frame[column].astype("object")
    return frame


def frame_from_spec(spec: StackSpec) -> pd.DataFrame:
    return frame_from_layers([layer.to_dict() for layer in spec.layers])


def layers_from_frame(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Editor frame → layer objects (spec JSON keys; keys not applying to a type left out)."""
    layers: list[dict[str, Any]] = []
    for _, row in frame.iterrows():
        type_ = _clean(row.get("type"))
        layer: dict[str, Any] = {"type": type_}
        keys = LAYER_KEYS.get(type_, ()) if isinstance(type_, str) else ()
        for column in COLUMNS[1:]:
            value = _clean(row.get(column))
            if value is None:
                continue
            if column == "out":
                if type_ == "conv":
                    layer["out_channels"] = value
                elif type_ == "linear":
                    layer["out_features"] = value
            elif column in keys:
                layer[column] = value
        layers.append(layer)
    return layers


def move_layer(layers: Sequence[Mapping[str, Any]], index: int, offset: int) -> list[dict]:
    """The layer list with ``layers[index]`` moved by ``offset`` places (clamped to the ends)."""
    out = [dict(layer) for layer in layers]
    if not 0 <= index < len(out):
        raise UserError(f"there is no layer {index}")
    target = max(0, min(len(out) - 1, index + offset))
    out.insert(target, out.pop(index))
    return out


# ---------------------------------------------------------------- the editor under a mode

OWN_SEPARABLE = "own separable"
"""Hidden editor column: each layer's own *separable* tick while a global form overrides it."""


def shown_separable(layers: Sequence[Mapping[str, Any]], mode: str) -> list[bool | None]:
    """What each row's *separable* box shows under ``mode``: the form the layer is counted in.

    ``per-layer``: the layer's own tick; ``regular``: unticked; ``separable``: ticked for every
    conv that has a separable form (kernel > 1, groups = 1). Rows that are not convs show an
    empty cell; rows that do not parse keep their own tick.
    """
    out: list[bool | None] = []
    for i, raw in enumerate(layers):
        own = _clean(raw.get("separable"))
        own_flag = own if isinstance(own, bool) else None
        layer, _ = parse_layer(raw, i)
        if layer is None:
            out.append(own_flag if raw.get("type") == "conv" else None)
        elif layer.type != "conv":
            out.append(None)
        elif mode == "regular":
            out.append(False)
        elif mode == "separable":
            out.append(layer.flippable or layer.separable)
        else:
            out.append(layer.separable)
    return out


def editor_frame(layers: Sequence[Mapping[str, Any]], mode: str) -> pd.DataFrame:
    """The editor's source frame under ``mode``.

    Under *all regular* / *all separable* the *separable* column shows the effective form
    (:func:`shown_separable`) and the hidden :data:`OWN_SEPARABLE` column keeps each layer's own
    tick, so edits made meanwhile keep it and *per layer* brings it back
    (:func:`layers_from_editor`).
    """
    frame = frame_from_layers(layers)
    if mode != "per-layer":
        frame[OWN_SEPARABLE] = frame["separable"]
        frame["separable"] = pd.array(shown_separable(layers, mode), dtype="boolean")
    return frame


def layers_from_editor(frame: pd.DataFrame) -> list[dict[str, Any]]:
    """Edited :func:`editor_frame` → layer objects with each layer's own *separable* tick.

    A row added while a global form is on has no own tick: it starts regular.
    """
    layers = layers_from_frame(frame)
    if OWN_SEPARABLE not in frame:
        return layers
    for layer, own in zip(layers, frame[OWN_SEPARABLE].tolist(), strict=True):
        layer.pop("separable", None)
        own = _clean(own)
        if layer.get("type") == "conv" and isinstance(own, bool):
            layer["separable"] = own
    return layers


def editor_is_stale(frame: pd.DataFrame, layers: Sequence[Mapping[str, Any]], mode: str) -> bool:
    """True when the edited frame's *separable* boxes no longer show the effective form
    (e.g. a kernel set to 1 under *all separable*): the editor should be rebuilt."""
    if mode == "per-layer" or len(frame) != len(layers):
        return False
    shown = [_clean(v) for v in frame["separable"].tolist()]
    return shown != shown_separable(layers, mode)


# ---------------------------------------------------------------- the results table


def row_messages(stack: LabStack, spec: StackSpec | None = None) -> dict[int, str]:
    """Why each invalid row is invalid: parse errors, else the shape check of the spec.

    Rows below the first invalid one that are fine in themselves read
    ``not analysed: layer N above is invalid``.
    """
    spec = spec or stack.spec
    messages = dict(stack.row_errors)
    first_bad = stack.first_bad_row
    for check in check_stack(spec):
        if check.error is not None and check.index not in messages:
            messages[check.index] = check.error
            if first_bad is None or check.index < first_bad:
                first_bad = check.index
    if first_bad is not None:
        for i in range(first_bad + 1, stack.rows):
            messages.setdefault(i, f"not analysed: layer {first_bad} above is invalid")
    return messages


def layer_table(
    stack: LabStack,
    summaries: Sequence[SpecLayerSummary],
    layers: Sequence[Mapping[str, Any]] | None = None,
    spec: StackSpec | None = None,
) -> pd.DataFrame:
    """One row per editor row: exact numbers for the analysed rows, the reason for the others.

    ``summaries`` come from :func:`cnnlab.counting.analyse.summarise_layers` on the analysed spec;
    ``layers`` (the raw rows) label the rows that did not parse; ``spec`` is the analysed spec
    (default ``stack.spec``).
    """
    by_index = {s.index: s for s in summaries}
    messages = row_messages(stack, spec)
    records = []
    for i in range(stack.rows):
        s = by_index.get(i)
        message = messages.get(i)
        if s is not None and s.error is not None:
            message = s.error
        ok = s is not None and s.error is None and message is None
        if s is not None:
            label = s.label
        elif layers is not None and i < len(layers):
            label = _raw_label(layers[i])
        else:
            label = "?"
        records.append(
            {
                "#": i,
                "Layer": label,
                "Status": "✅" if ok else "⚠️ " + (message or "invalid"),
                "Input": shape_text(s.input_shape) if s is not None and s.input_shape else "",
                "Output": shape_text(s.output_shape) if ok and s is not None else "",
                "Params": s.params if ok and s is not None else None,
                "MACs": s.macs if ok and s is not None else None,
                "FLOPs": s.flops if ok and s is not None else None,
                "Activations (bytes)": s.activation_bytes if ok and s is not None else None,
                "Receptive field": _rf(s) if ok and s is not None else "",
                "Params formula": s.params_formula if ok and s is not None else "",
                "MACs formula": s.macs_formula if ok and s is not None else "",
                "FLOPs formula": s.flops_formula if ok and s is not None else "",
            }
        )
    frame = pd.DataFrame.from_records(records, columns=list(TABLE_COLUMNS))
    for column in ("Params", "MACs", "FLOPs", "Activations (bytes)"):
        if column in frame:
            frame[column] = frame[column].astype("Int64")
    return frame


TABLE_COLUMNS = (
    "#",
    "Layer",
    "Status",
    "Input",
    "Output",
    "Params",
    "MACs",
    "FLOPs",
    "Activations (bytes)",
    "Receptive field",
    "Params formula",
    "MACs formula",
    "FLOPs formula",
)
"""Columns of :func:`layer_table`."""


def _rf(s: SpecLayerSummary) -> str:
    if s.receptive_field is None:
        return "whole input"
    return f"{s.receptive_field}×{s.receptive_field}"


def _raw_label(layer: Mapping[str, Any]) -> str:
    type_ = layer.get("type")
    if not isinstance(type_, str) or type_ not in LAYER_TYPES:
        return str(type_) if type_ else "(no type)"
    try:
        return describe_layer(LayerSpec(type=type_, **{
            k: v for k, v in layer.items() if k in LAYER_KEYS[type_]
        }))  # fmt: skip
    except (TypeError, ValueError):
        return type_
