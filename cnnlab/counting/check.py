""" "Check my calculation": read a student's per-layer counts and compare them with the rules."""

from __future__ import annotations

import math
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

from cnnlab.counting.analyse import Analysis

CheckStatus = Literal["right", "wrong", "unreadable", "unknown layer"]
"""``right``/``wrong``: a number compared with the rule; ``unreadable``: not a whole number
(counted apart, never as wrong); ``unknown layer``: no such layer in the model."""


@dataclass(frozen=True)
class ParamCheck:
    """One "check my calculation" cell: the user's value against the rule's."""

    name: str
    user_value: int | None
    correct: int
    ok: bool
    formula: str
    message: str
    status: CheckStatus = "wrong"


def parse_count(value: int | str | float | None) -> int | None:
    """A user's number: ``23296``, ``"23,296"``, ``"23 296"``, ``"23_296"`` → 23296; else None."""
    if value is None or isinstance(value, bool):
        return None
    if isinstance(value, int):
        return value
    if isinstance(value, float):
        return int(value) if math.isfinite(value) and value.is_integer() else None
    text = re.sub(r"[\s,_'\u00a0\u202f]", "", str(value))
    if len(text) > 40:  # no layer has 10³⁹ parameters; int() refuses 4,300+ digits outright
        return None
    if re.fullmatch(r"[+-]?\d+", text):
        return int(text)
    m = re.fullmatch(r"[+-]?\d+\.0*", text)
    return int(float(text)) if m else None


def check_user_params(
    analysis: Analysis, user: Mapping[str, int | str | float | None]
) -> list[ParamCheck]:
    """Compare the user's per-layer parameter counts with cnnlab's; never raises on bad cells.

    Keys are layer names (``features.0``); blank cells are skipped; an unreadable cell
    (status ``unreadable``) or an unknown layer name is a failed check with a message.
    """
    rows = {r.name: r for r in analysis.rows}
    checks = []
    order = [n for n in rows if n in user] + [n for n in user if n not in rows]
    for name in order:
        raw = user[name]
        if raw is None or (isinstance(raw, str) and not raw.strip()):
            continue
        if isinstance(raw, float) and math.isnan(raw):
            continue
        row = rows.get(name)
        if row is None:
            checks.append(
                ParamCheck(name, None, 0, False, "", f"no layer named {name!r}", "unknown layer")
            )
            continue
        value = parse_count(raw)
        if value is None:
            checks.append(
                ParamCheck(
                    name,
                    None,
                    row.params,
                    False,
                    row.params_formula,
                    f"{name}: could not read {raw!r} as a whole number",
                    "unreadable",
                )
            )
            continue
        ok = value == row.params
        message = (
            f"{name}: {value:,} is right"
            if ok
            else f"{name}: you wrote {value:,}; correct is {row.params_formula}"
        )
        checks.append(
            ParamCheck(
                name, value, row.params, ok, row.params_formula, message, "right" if ok else "wrong"
            )
        )
    return checks
