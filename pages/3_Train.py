"""Train page: pick a model and options, see the cost, launch a background run, follow it live,
read its results and try the trained model on a digit. Layout only: cnnlab.views.train."""

from __future__ import annotations

import contextlib
from pathlib import Path
from typing import Any

import streamlit as st
from streamlit.errors import StreamlitAPIException

from cnnlab.errors import UserError
from cnnlab.format import md_escape
from cnnlab.training.names import FINISHED
from cnnlab.views import live_feed, runview
from cnnlab.views import train as tv
from cnnlab.views.class_ui import classroom_sidebar
from cnnlab.views.ui import (
    cached_checkpoint,
    cached_estimate,
    cached_mnist,
    form_field,
    live_run,
    metric_tiles,
    open_run_store,
    page_header,
    shared_live_charts,
    shared_live_plots,
    user_errors,
    worker_notice,
)

try:
    from streamlit_drawable_canvas import st_canvas
except Exception:  # the component is optional: the other tabs still work
    st_canvas = None

page_header("Train", "🏋️", "Train a CNN from scratch on MNIST in a background worker; "
            "follow it live, then inspect it.")  # fmt: skip
store = open_run_store()
if store is None:
    st.stop()
worker_notice(store)
viewer = classroom_sidebar()
POLLED_TICK = "15s"  # polled live section: a safety net only (the component reports changes)
state = st.session_state
lab_spec = state.get("conv_lab_spec")
for key, value in tv.form_defaults().items():
    state.setdefault(key, value)
labels = tv.model_labels(lab_spec)
if state["tr_model"] not in labels:
    state["tr_model"] = "small-cnn"
run_id = runview.parse_run_id(raw_id := st.query_params.get("run"))


def apply(values: dict[str, Any]) -> None:
    """Put a config into the widgets (a button callback, so before they are drawn)."""
    state.update(values)
    state["new-run"] = True  # show the form it went into


def on_model_change() -> None:
    size, toast = tv.size_for_model(state["tr_model"], state["tr_input_size"], lab_spec)
    state["tr_input_size"] = size
    if toast:
        st.toast(toast)


def draw_form() -> None:
    head, *buttons = st.columns([4, 1.2, 1.2], vertical_alignment="center")
    head.subheader("New run")
    for col, preset in zip(buttons, tv.presets(), strict=True):
        col.button(preset.label, key=preset.key, width="stretch", on_click=apply,
                   args=(preset.state,), help=preset.help)  # fmt: skip
    first, second, more = tv.form_fields(lab_spec)
    for row in (first, second):
        for col, field in zip(st.columns(len(row)), row, strict=True):
            form_field(col, field, on_model_change if field.key == "tr_model" else None)
    with st.expander("More options"):
        for col, field in zip(st.columns(len(more)), more, strict=True):
            form_field(col, field)
    view = tv.train_form_view(state, lab_spec=lab_spec,
                              estimate=lambda c, m: cached_estimate(c.to_dict(), m))  # fmt: skip
    if view.note:
        st.caption(view.note)
    with st.container(key="train-cost"):
        if view.tiles:
            metric_tiles(view.tiles)
        if view.warning:
            st.container(key="cost-warning").warning(view.warning, icon="⏳")
        if view.lighter is not None:
            with st.container(key="lighter"):
                st.caption("Too long for this machine? A version it can finish:")
                state_of = tv.form_state(view.lighter.config, view.lighter.limit)
                st.button(view.lighter.label, key="apply-lighter", icon="🪶", on_click=apply,
                          args=(state_of,))  # fmt: skip
        if view.problem:
            st.container(key="form-error").error(f"Cannot train this: {view.problem}", icon="🚫")
    if note := tv.queue_note(store, viewer):
        st.caption(note)
    if st.button("🚀 Train", type="primary", key="train-button", disabled=not view.can_launch):
        with user_errors("Could not queue the run: "):
            assert view.config is not None
            new_id = tv.launch(store, view.config, viewer)
            st.query_params["run"] = new_id
            state.pop(f"curves:{new_id}", None)
            st.rerun()


if run_id is None:  # the form first; a run opened from a link comes first, the form folded
    with st.container(key="train-form", border=True):
        draw_form()
else:
    with (
        st.expander("New run", icon="➕", key="new-run", on_change="rerun"),
        st.container(key="train-form"),
    ):
        draw_form()
if raw_id is not None and run_id is None:
    st.error(
        "The link's `run` value is not a run id (12 hex digits); pick a run on the Runs page.",
        icon="🚫",
    )  # fmt: skip  (the raw value is not echoed: it is from a link)
if run_id is None:
    st.info("Start a run above, or open one from the **Runs** page.", icon="👆")
    st.stop()
try:
    page_run = store.get_run(run_id)
    missing = tv.missing_run_text(store, run_id) if page_run is None else None
except UserError as err:
    page_run, missing = None, f"The run store cannot be read: {err}"
if page_run is None:
    st.error(missing, icon="🚫")
    st.stop()

header = tv.run_header(page_run)
title, again = st.columns([4, 1], vertical_alignment="bottom")
title.subheader(header.title)
if header.reuse is not None:
    again.button("↺ Use these settings", key="reuse-settings", width="stretch", on_click=apply,
                 args=(header.reuse,), help="Copy its options into the New run form")  # fmt: skip
ownership = tv.run_ownership(page_run, viewer)
st.caption(f"{header.caption} · started by {md_escape(ownership.owner)}")
if ownership.reason:
    st.container(key="read-only").info(ownership.reason, icon="🔒")


@st.fragment(run_every="3s")
def watch(run_id: str, page_status: str) -> None:
    """A run that ended: only whether it is still there (deleted: the whole page says so)."""
    with user_errors("The run store cannot be read: "):
        run = store.get_run(run_id)
        if run is None or run.status != page_status:
            st.rerun()


polled = live_feed.mounted()  # serve.py: the browser polls the feed; else a 1 Hz fragment


@st.fragment(run_every=(POLLED_TICK if polled else "1s") if page_run.active else None)
def live(run_id: str, page_status: str) -> None:
    """Status and Stop, then the live component (progress, curves) while the run is queued or
    running, or the finished curves; reads only the metric rows added since the last run of it.
    Polled, this reruns only when the component reports a new status (and, as a safety net,
    every POLLED_TICK); pushed, every second with the feed as the component's argument."""
    try:
        run = store.get_run(run_id)
        if run is None or (run.status != page_status and run.done):
            st.rerun()  # deleted or just ended: the whole page changes
        assert run is not None
        curves = state.setdefault(f"curves:{run_id}", runview.Curves(run_id))
        smoothing = state.get(f"smooth:{run_id}", 0.6)
        view = tv.live_view(store, run, curves, page_status=page_status, smoothing=smoothing,
                            charts=shared_live_charts,
                            plots=(lambda *_: {}) if polled else shared_live_plots)  # fmt: skip
    except UserError as err:
        st.error(f"The run store cannot be read: {err}", icon="🚫")
        return
    with st.container(key="run-status"):
        left, middle, right = st.columns([4, 2, 1], vertical_alignment="center")
        left.markdown(f"**{view.status_line}**")
        middle.slider("Smoothing", 0.0, 0.95, 0.6, 0.05, key=f"smooth:{run_id}",
                      help="Exponential moving average of the step curves")  # fmt: skip
        if view.active and view.stop_requested:
            right.button("Stopping…", key="stop-button", disabled=True, width="stretch")
        elif view.active and right.button("⏹ Stop", key="stop-button", width="stretch",
                                          disabled=not ownership.may_change,
                                          help=ownership.reason):  # fmt: skip
            problem = tv.stop_run(store, run_id, viewer)
            if problem:
                st.error(problem, icon="🔒")
            else:
                st.rerun(scope="fragment")
    if view.message is not None:
        getattr(st, view.message.kind)(view.message.text, icon=view.message.icon)
    if view.active:  # progress, the three curves and the point count, in one component frame
        with st.container(key="live-run"):
            live_run(run_id, key=f"live-run:{run_id}", smoothing=smoothing, status=view.status,
                     stop_requested=view.stop_requested,
                     feed=None if polled else live_feed.feed_document(run_id, view,
                                                                      curves.last_id))  # fmt: skip
        return
    st.progress(view.fraction, text=view.progress_text)
    places = [*st.columns(2), st.container()]
    for place, (key, fig) in zip(places, view.charts.items(), strict=False):  # ended: Plotly
        place.container(key=key).plotly_chart(fig, width="stretch", key=f"{key}:{run_id}")
    st.container(key="run-points").caption(
        f"{view.points} points recorded",
        help="While it ran, the charts were light canvas charts (uPlot) fed only the new rows; "
        "now they are interactive Plotly charts (hover, zoom, export)",
    )


live(run_id, page_run.status)
if not page_run.active:
    watch(run_id, page_run.status)
if page_run.status != FINISHED:
    st.stop()
try:
    results = tv.results_view(store, page_run)
except UserError as err:
    st.error(f"The run store cannot be read: {err}", icon="🚫")
    st.stop()
if Path(__file__).with_name("5_Inside.py").exists():  # the Inside page: its feature maps
    with contextlib.suppress(StreamlitAPIException):  # the page is not in the navigation yet
        st.page_link("pages/5_Inside.py", label="Look inside this run", icon="🔎",
                     query_params={"run": run_id})  # fmt: skip
st.subheader("Results on the 10,000 test digits")
with st.container(key="final-metrics"):
    metric_tiles(results.tiles)
for col, (key, fig) in zip(st.columns(2), results.charts.items(), strict=False):
    col.container(key=key).plotly_chart(fig, width="stretch")
if results.mistakes:
    with st.container(key="mistakes"):
        st.markdown("**The most confidently wrong test digits**")
        st.image(list(results.mistakes), caption=list(results.mistake_captions), width=96)
        st.caption("Under each digit: its test index: true digit → predicted digit (confidence).")
with st.container(key="downloads"):
    d1, d2, _ = st.columns([1, 1, 3])
    if (ckpt := results.checkpoint) is not None:
        d1.download_button("⬇ Checkpoint (.pt)", data=lambda: Path(ckpt).read_bytes(),
                           file_name=results.checkpoint_name,
                           mime="application/octet-stream", on_click="ignore")  # fmt: skip
    else:
        d1.caption("No checkpoint file.")
    d2.download_button("⬇ Metrics (.csv)", data=results.csv, file_name=results.csv_name,
                       mime="text/csv", on_click="ignore")  # fmt: skip
if ckpt is None:
    st.stop()


def show(digit: Any, label: str) -> None:
    model, cfg = cached_checkpoint(str(ckpt), Path(ckpt).stat().st_mtime)
    seen = tv.prediction_view(model, cfg, digit, label)
    left, right = st.columns([1, 3])
    left.image(seen.picture, caption=seen.label, width=112)
    left.markdown(f"### Prediction: **{seen.digit}**")
    left.caption(seen.sure)
    right.plotly_chart(seen.figure, width="stretch")


st.subheader("Try it")
with st.container(key="try-it"):
    draw_tab, pick_tab, upload_tab = st.tabs(["✏️ Draw a digit", "🔢 Pick a test digit",
                                              "📤 Upload"])  # fmt: skip
    with draw_tab:
        if st_canvas is None:
            st.info("Drawing needs `streamlit-drawable-canvas`; pick or upload a digit instead.")
        else:
            left, right = st.columns([1, 3])
            with left:
                st.space(44)  # room for the canvas's own toolbar, which shows on hover
                canvas = st_canvas(stroke_width=20, stroke_color="#FFFFFF",
                                   background_color="#000000", width=224, height=224,
                                   drawing_mode="freedraw", return_image_data=True,
                                   key=f"digit-canvas-{state.get('canvas-clears', 0)}")  # fmt: skip
                st.button("🗑 Clear", key="clear-canvas", on_click=tv.count_clear, args=(state,))
                st.caption("Draw one digit, white on black. Undo and redo: point at the canvas.")
            with right, user_errors():
                digit = tv.drawn_digit(canvas.image_data)
                if digit is None:
                    st.caption("The prediction appears here once you draw.")
                else:
                    show(digit, "what the model sees")
    with pick_tab, user_errors():
        test = cached_mnist("test")
        index = int(st.number_input(f"Test image (0–{len(test) - 1:,})", 0, len(test) - 1,
                                    value=0, key="try-index"))  # fmt: skip
        show(test.images[index].numpy(), tv.pick_label(index, int(test.labels[index])))
    with upload_tab:
        upload = st.file_uploader("A picture of one digit (PNG or JPEG)", key="try-upload",
                                  type=["png", "jpg", "jpeg", "bmp", "gif", "webp"])  # fmt: skip
        if upload is not None:
            with user_errors():
                show(tv.uploaded_digit(upload.getvalue()), "your digit, MNIST-style")
