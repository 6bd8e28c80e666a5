"""Where cnnlab keeps its files: ``CNNLAB_HOME`` (default ``~/.cnnlab``)."""

from __future__ import annotations

import os
from pathlib import Path


def home() -> Path:
    """The cnnlab home folder (created on first use)."""
    root = Path(os.environ.get("CNNLAB_HOME") or Path.home() / ".cnnlab").expanduser()
    root.mkdir(parents=True, exist_ok=True)
    return root
