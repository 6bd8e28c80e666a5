"""The teacher role: one password, stored only as a salted scrypt hash, and a login throttle.

The hash comes from ``CNNLAB_TEACHER_PASSWORD_HASH`` or, failing that, from
``[cnnlab] teacher_password_hash`` in ``.streamlit/secrets.toml`` (the working folder's, then the
home folder's, as Streamlit reads them). No hash configured: there is no teacher, and the app
asks nothing. The password itself is never stored, logged or shown.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import hmac
import math
import os
import re
import secrets
import time
import tomllib
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from cnnlab.errors import UserError

ENV_VAR = "CNNLAB_TEACHER_PASSWORD_HASH"
SECRETS_TABLE, SECRETS_KEY = "cnnlab", "teacher_password_hash"
SCHEME = "scrypt"
N, R, P = 2**14, 8, 1  # OWASP's scrypt minimum: ~16 MiB and tens of ms per try
SALT_BYTES, KEY_BYTES = 16, 32
MIN_PASSWORD, MAX_PASSWORD = 8, 1024
HASH_RULE = (
    "a teacher password hash looks like scrypt$16384$8$1$<salt>$<key>:"
    " make one with `cnnlab teacher hash-password`"
)


def secrets_files() -> list[Path]:
    """Where Streamlit reads secrets from: ``./.streamlit/secrets.toml``, then ``~/``'s."""
    return [Path.cwd() / ".streamlit" / "secrets.toml", Path.home() / ".streamlit" / "secrets.toml"]


def check_password(password: object) -> str:
    """``password`` if it can be a teacher password (8 to 1024 characters, no line breaks)."""
    if (
        not isinstance(password, str)
        or not MIN_PASSWORD <= len(password) <= MAX_PASSWORD
        or any(ch in password for ch in "\r\n\x00")
    ):
        raise UserError(
            f"a teacher password must be {MIN_PASSWORD} to {MAX_PASSWORD} characters on one line"
        )
    return password


def _b64(data: bytes) -> str:
    return base64.b64encode(data).decode("ascii")


def hash_password(password: str, *, salt: bytes | None = None) -> str:
    """A salted scrypt hash of ``password``: ``scrypt$N$r$p$<salt b64>$<key b64>``."""
    check_password(password)
    salt = secrets.token_bytes(SALT_BYTES) if salt is None else salt
    key = hashlib.scrypt(password.encode(), salt=salt, n=N, r=R, p=P, dklen=KEY_BYTES)
    return f"{SCHEME}${N}${R}${P}${_b64(salt)}${_b64(key)}"


@dataclass(frozen=True)
class PasswordHash:
    """A parsed hash (bounded parameters: a hand-edited hash cannot make a try take minutes)."""

    n: int
    r: int
    p: int
    salt: bytes
    key: bytes

    @classmethod
    def parse(cls, text: object) -> PasswordHash:
        if not isinstance(text, str):
            raise UserError(HASH_RULE)
        parts = text.strip().split("$")
        if len(parts) != 6 or parts[0] != SCHEME:
            raise UserError(HASH_RULE)
        try:
            n, r, p = (int(x) for x in parts[1:4])
            salt = base64.b64decode(parts[4], validate=True)
            key = base64.b64decode(parts[5], validate=True)
        except (ValueError, binascii.Error):
            raise UserError(HASH_RULE) from None
        if not (2 <= n <= 2**17 and n & (n - 1) == 0 and 1 <= r <= 16 and 1 <= p <= 4) or not (
            8 <= len(salt) <= 64 and 16 <= len(key) <= 64
        ):
            raise UserError(HASH_RULE)
        return cls(n, r, p, salt, key)

    def matches(self, password: str) -> bool:
        """Whether ``password`` gives this key (compared in constant time)."""
        if not isinstance(password, str) or len(password) > MAX_PASSWORD:
            return False
        got = hashlib.scrypt(
            password.encode(),
            salt=self.salt,
            n=self.n,
            r=self.r,
            p=self.p,
            dklen=len(self.key),
            maxmem=256 * 1024 * 1024,
        )
        return hmac.compare_digest(got, self.key)


def verify_password(password: str, hashed: str) -> bool:
    """Whether ``password`` matches ``hashed`` (a malformed hash is a :class:`UserError`)."""
    return PasswordHash.parse(hashed).matches(password)


def configured_hash(
    env: dict[str, str] | None = None, files: list[Path] | None = None
) -> str | None:
    """The teacher's password hash: the environment variable, else the first secrets file that
    has one; None when no teacher is configured. An unreadable secrets file is a UserError."""
    env = dict(os.environ) if env is None else env
    value = (env.get(ENV_VAR) or "").strip()
    if value:
        return value
    for path in secrets_files() if files is None else files:
        if not path.is_file():
            continue
        try:
            data = tomllib.loads(path.read_text(encoding="utf-8"))
        except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
            raise UserError(f"cannot read {path}: {err}") from None
        table = data.get(SECRETS_TABLE)
        found = table.get(SECRETS_KEY) if isinstance(table, dict) else None
        if isinstance(found, str) and found.strip():
            return found.strip()
    return None


_KEY_LINE = re.compile(rf"^\s*{SECRETS_KEY}\s*=.*$", re.MULTILINE)
_TABLE_LINE = re.compile(r"^\s*\[([^\[\]]+)\]\s*(#.*)?$", re.MULTILINE)


def read_secrets(path: Path) -> tuple[str, dict[str, Any]]:
    """The text of a TOML secrets file and what it holds (``""``, ``{}`` when it does not
    exist); :class:`UserError` when it cannot be read or is not TOML."""
    if not path.exists():
        return "", {}
    if path.is_dir():
        raise UserError(f"cannot read {path}: it is a folder, not a secrets file")
    try:
        text = path.read_text(encoding="utf-8")
        return text, tomllib.loads(text)
    except (OSError, UnicodeDecodeError, tomllib.TOMLDecodeError) as err:
        raise UserError(f"cannot read {path}: {err}") from None


def write_hash(path: Path, hashed: str) -> None:
    """Put ``hashed`` under ``[cnnlab] teacher_password_hash`` in the TOML file ``path``, keeping
    everything else in it as it was (made if missing, readable by its owner only)."""
    PasswordHash.parse(hashed)
    text, before = read_secrets(path)
    line = f'{SECRETS_KEY} = "{hashed}"'
    tables = list(_TABLE_LINE.finditer(text))
    mine = next((m for m in tables if m.group(1).strip() == SECRETS_TABLE), None)
    if mine is None:
        text = (text.rstrip("\n") + "\n\n" if text.strip() else "") + f"[{SECRETS_TABLE}]\n{line}\n"
    else:
        after = [m for m in tables if m.start() > mine.start()]
        end = after[0].start() if after else len(text)
        body = text[mine.end() : end]
        if _KEY_LINE.search(body):
            body = _KEY_LINE.sub(lambda _: line, body, count=1)
        else:
            body = "\n" + line + body
        text = text[: mine.end()] + body + text[end:]
    after_data = tomllib.loads(text)  # the edit must leave valid TOML with only our key changed
    expected = {**before, SECRETS_TABLE: {**before.get(SECRETS_TABLE, {}), SECRETS_KEY: hashed}}
    if after_data != expected:
        raise UserError(f"cannot update {path} safely: set {SECRETS_KEY} in it by hand")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        tmp = path.with_name(path.name + ".tmp")
        fd = os.open(tmp, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as out:
            out.write(text)
        os.replace(tmp, path)
    except OSError as err:
        raise UserError(f"cannot write {path}: {err}") from None


@dataclass
class LoginThrottle:
    """At most ``tries`` wrong passwords per ``window_s`` (one per browser session)."""

    tries: int = 3
    window_s: float = 60.0
    clock: Callable[[], float] = time.monotonic
    failures: list[float] = field(default_factory=list)

    def wait_s(self) -> float:
        """Seconds until another try is allowed (0: now)."""
        now = self.clock()
        self.failures = [t for t in self.failures if now - t < self.window_s]
        if len(self.failures) < self.tries:
            return 0.0
        return max(0.0, self.failures[0] + self.window_s - now)

    def attempt(self, password: str, hashed: str) -> bool:
        """Check ``password`` against ``hashed``; a :class:`UserError` when throttled."""
        wait = self.wait_s()
        if wait > 0:
            raise UserError(f"too many wrong passwords: try again in {math.ceil(wait)} s")
        if verify_password(password, hashed):
            self.failures.clear()
            return True
        self.failures.append(self.clock())
        return False
