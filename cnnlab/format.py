"""The one formatter set: exact integers, SI prefixes, bytes, shapes, percentages and durations.

Numbers stay exact integers everywhere else; these functions turn them into text for a page, a
table, the CLI or a message. Missing values (None, NaN, ∞) print as ``—``.
"""

from __future__ import annotations

import datetime as dt
import math
from collections.abc import Iterable, Sequence
from typing import TypeGuard

MISSING = "—"
_SI = ((1e18, "E"), (1e15, "P"), (1e12, "T"), (1e9, "G"), (1e6, "M"), (1e3, "k"))


def _present(value: float | int | None) -> TypeGuard[float | int]:
    """Not missing: neither None nor NaN nor ±∞."""
    return value is not None and not (isinstance(value, float) and not math.isfinite(value))


def fmt_int(n: int | None) -> str:
    """23296 → ``23,296``; None → ``—``."""
    return f"{int(n):,}" if _present(n) else MISSING


def fmt_si(value: float | int | None, unit: str = "") -> str:
    """15_470_264_320 → ``15.47 G`` (``15.47 GMACs`` with ``unit="MACs"``); 12 → ``12``."""
    if not _present(value):
        return MISSING
    for scale, prefix in _SI:
        if abs(value) >= scale:
            return f"{value / scale:.2f} {prefix}{unit}"
    text = f"{int(value)}" if float(value).is_integer() else f"{value:.2f}"
    return f"{text} {unit}".rstrip()


def fmt_bytes(n: float) -> str:
    """Bytes in decimal units: 4_000_000 → ``4.00 MB``."""
    for scale, prefix in ((10**12, "TB"), (10**9, "GB"), (10**6, "MB"), (10**3, "kB")):
        if abs(n) >= scale:
            return f"{n / scale:.2f} {prefix}"
    return f"{int(n)} B"


def gigabytes(n: int) -> str:
    """Bytes as ``1.2 GB`` (memory figures in refusals and warnings)."""
    return f"{n / 1e9:.1f} GB"


def shape_text(shape: Iterable[int] | None) -> str:
    """(64, 55, 55) → ``64×55×55``; an empty or missing shape → ``—``."""
    dims = list(shape or ())
    return "×".join(str(d) for d in dims) if dims else MISSING


def tensor_shape_text(shape: Sequence[int] | None, drop_batch: bool = True) -> str:
    """(1, 64, 55, 55) → ``64×55×55`` (a batch of one dropped); empty or missing → ``—``."""
    dims = list(shape or ())
    if drop_batch and len(dims) > 1 and dims[0] == 1:
        dims = dims[1:]
    return shape_text(dims)


def percent(value: float | None, digits: int = 2) -> str:
    """0.98891 → ``98.89 %``; None → ``—``."""
    return f"{100 * value:.{digits}f} %" if _present(value) else MISSING


def duration_text(seconds: float | None) -> str:
    """A measured duration: ``3725`` → ``1 h 2 min``; ``42.4`` → ``42 s``; None → ``—``."""
    if not _present(seconds):
        return MISSING
    seconds = max(0.0, float(seconds))
    if seconds < 60:
        return f"{seconds:.0f} s" if seconds >= 10 else f"{seconds:.1f} s"
    minutes = seconds / 60
    if minutes < 60:
        whole, rest = divmod(round(seconds), 60)
        return f"{whole} min {rest} s" if rest else f"{whole} min"
    hours = int(minutes // 60)
    if hours < 48:
        return f"{hours} h {int(minutes - 60 * hours)} min"
    return f"{seconds / 86400:.1f} days"


def timestamp_text(seconds: float | None) -> str:
    """Unix seconds as local time: ``2026-03-01 14:05:09``; None → ``—``."""
    if not _present(seconds):
        return MISSING
    return dt.datetime.fromtimestamp(float(seconds)).strftime("%Y-%m-%d %H:%M:%S")


def eta_text(seconds: float) -> str:
    """An estimate, rounded as one: ``about 25 s``, ``about 4 min``, ``about 2.5 h``, ``… days``."""
    if not math.isfinite(seconds):
        return "unknown"
    if seconds < 90:
        return f"about {max(1, round(seconds))} s"
    if seconds < 90 * 60:
        return f"about {round(seconds / 60)} min"
    if seconds < 48 * 3600:
        return f"about {seconds / 3600:.1f} h"
    return f"about {seconds / 86400:.1f} days"


_MARKDOWN_SPECIAL = set("\\`*_{}[]()<>#+-.!|~$:")


def md_escape(text: object) -> str:
    """User text (a run name, an error) made safe inside Streamlit Markdown: every character
    Markdown or HTML could act on is backslash-escaped, so ``[x](http://evil)`` shows as
    typed instead of as a link; newlines become spaces."""
    plain = " ".join(str(text).splitlines())
    return "".join("\\" + c if c in _MARKDOWN_SPECIAL else c for c in plain)
