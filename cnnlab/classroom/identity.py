"""Who launched a run: an anonymous browser identity (a random id kept in a cookie) and the
display name that browser typed once.

The id is a random token, never shown or put in a URL; the name is plain text (rendered as text,
never Markdown or HTML) of at most :data:`NAME_MAX` characters.
"""

from __future__ import annotations

import re
import secrets
import unicodedata
from dataclasses import dataclass

from cnnlab.errors import UserError

NAME_MAX = 40
"""The longest display name, in characters."""

ID_PATTERN = re.compile(r"[0-9a-f]{32}")
"""What an identity id looks like: 32 lower-case hex digits (128 random bits)."""

NAME_RULE = (
    f"a display name is plain text of 1 to {NAME_MAX} characters"
    " (letters, digits, spaces, punctuation; no control characters)"
)


_NOT_TEXT = frozenset({"Cc", "Cf", "Cs", "Co", "Cn", "Zl", "Zp"})
"""Unicode categories a name may not hold: controls (tab and newline too), format characters
(bidi overrides, zero-width), surrogates, private use, unassigned, line/paragraph separators."""


@dataclass(frozen=True)
class Owner:
    """One person in the class: ``id`` the browser's anonymous id, ``name`` its display name."""

    id: str
    name: str

    def __post_init__(self) -> None:
        check_owner_id(self.id)
        check_name(self.name)


def new_owner_id() -> str:
    """A fresh anonymous id (128 random bits as hex)."""
    return secrets.token_hex(16)


def is_owner_id(text: object) -> bool:
    """Whether ``text`` looks like an id :func:`new_owner_id` made (cookies can be edited)."""
    return isinstance(text, str) and ID_PATTERN.fullmatch(text) is not None


def check_owner_id(text: object) -> str:
    """``text`` if it is a well-formed owner id, else :class:`UserError`."""
    if not is_owner_id(text):
        raise UserError("an owner id is 32 hex digits")
    return str(text)


def check_name(text: object) -> str:
    """The display name cleaned (outer spaces removed, inner runs of spaces made one), or a
    :class:`UserError` with :data:`NAME_RULE` when it is empty, too long or holds control,
    format (bidi override, zero-width) or unassigned characters."""
    if not isinstance(text, str):
        raise UserError(NAME_RULE)
    text = unicodedata.normalize("NFC", text)
    if any(unicodedata.category(ch) in _NOT_TEXT for ch in text):
        raise UserError(NAME_RULE)
    name = " ".join(text.split())
    if not name or len(name) > NAME_MAX:
        raise UserError(NAME_RULE)
    return name


def default_name(owner_id: str) -> str:
    """The name shown for an identity that typed none: ``student-`` and 4 hex digits of its id."""
    return f"student-{owner_id[:4]}"
