"""Train page: pick a model and options, see the cost, launch a background run, follow it live,
read its results and try the trained model on a digit."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import streamlit as st
import torch

from cnnlab.counting import zoo
from cnnlab.errors import UserError
from cnnlab.format import duration_text, fmt_si, percent
from cnnlab.training.config import (
    DEVICES,
    INPUT_SIZES,
    OPTIMIZERS,
    REPORT_PRESET,
    SCHEDULES,
    TrainConfig,
)
from cnnlab.training.store import RunStore
from cnnlab.views import run_charts, runview
from cnnlab.views.images import upscale
from cnnlab.views.ui import cached_mnist, open_run_store, page_header, user_errors, worker_notice

LAB_SPEC_KEY = "conv_lab_spec"
STACK_LABEL = "Conv Lab stack"
FIELDS = {  # widget key → TrainConfig field
    "tr_model": "model",
    "tr_input_size": "input_size",
    "tr_epochs": "epochs",
    "tr_batch_size": "batch_size",
    "tr_lr": "lr",
    "tr_optimizer": "optimizer",
    "tr_schedule": "schedule",
    "tr_weight_decay": "weight_decay",
    "tr_momentum": "momentum",
    "tr_seed": "seed",
    "tr_device": "device",
}
MODEL_NOTES = {
    "small-cnn": "2 conv + 2 FC, made for MNIST — a minute or less on a CPU",
    "lenet5": "LeCun 1998 — tiny and fast",
    "vgg16": "the report's model (224×224 there) — needs input ≥ 32, and a GPU at 224",
    "mobilenet_v2": "inverted residuals of depthwise-separable convs — the report tried it too",
    "alexnet-report": "AlexNet with the report's 4096→1024 classifier — needs input ≥ 64",
    "resnet18": "residual blocks, batch norm",
}

page_header(
    "Train",
    "🏋️",
    "Train a CNN from scratch on MNIST in a background worker; follow it live, then inspect it.",
)
store = open_run_store()
if store is None:
    st.stop()
worker_notice(store)


# --- the form ---------------------------------------------------------------------------------


def model_labels() -> dict[str, str]:
    """Model name → what the select box shows (MNIST models first, then the lab's stack)."""
    first = list(zoo.MNIST_MODELS)
    labels = {m: m for m in first}
    spec = st.session_state.get(LAB_SPEC_KEY)
    if isinstance(spec, dict):
        labels[zoo.STACK] = f"{STACK_LABEL}: {spec.get('name') or 'current stack'}"
    labels.update({m: m for m in zoo.ZOO if m not in first})
    return labels


def apply_preset(config: TrainConfig, limit: int) -> None:
    """Put ``config`` into the form widgets (a button callback, so before they are drawn)."""
    for key, field in FIELDS.items():
        st.session_state[key] = getattr(config, field)
    st.session_state["tr_limit"] = limit
    st.session_state["tr_name"] = config.name or ""


def on_model_change() -> None:
    """A Conv Lab stack trains at its own input size (when the engine supports it); a zoo model
    that cannot take the current size moves up to the smallest offered size it takes."""
    model = st.session_state.get("tr_model")
    if model == zoo.STACK:
        spec = st.session_state.get(LAB_SPEC_KEY) or {}
        size = (spec.get("input") or [1, 28, 28])[-1]
        if size in INPUT_SIZES:
            st.session_state["tr_input_size"] = size
        return
    current = st.session_state.get("tr_input_size", 28)
    for size in [s for s in INPUT_SIZES if s >= current]:
        try:
            TrainConfig(model=model, input_size=size).check_model()
        except UserError:
            continue
        if size != current:
            st.session_state["tr_input_size"] = size
            st.toast(f"{model} cannot take {current}×{current}: input size set to {size}×{size}")
        return


for key, value in {
    **{k: getattr(TrainConfig(), f) for k, f in FIELDS.items()},
    "tr_limit": 0,
    "tr_name": "",
}.items():
    st.session_state.setdefault(key, value)
MODEL_LABELS = model_labels()
if st.session_state["tr_model"] not in MODEL_LABELS:
    st.session_state["tr_model"] = "small-cnn"

with st.container(key="train-form", border=True):
    head, b1, b2 = st.columns([4, 1.2, 1.2], vertical_alignment="center")
    head.subheader("New run")
    b1.button(
        "Defaults (small-cnn)",
        key="preset-default",
        width="stretch",
        on_click=apply_preset,
        args=(TrainConfig(), 0),
        help="small-cnn on all 60,000 training digits for 1 epoch",
    )
    b2.button(
        "Report preset (VGG-16)",
        key="preset-report",
        width="stretch",
        on_click=apply_preset,
        args=(REPORT_PRESET, 0),
        help="The report's setting: VGG-16, 224×224, 3 epochs, Adam 1e-4, batch 16",
    )
    c1, c2, c3, c4 = st.columns(4)
    c1.selectbox(
        "Model",
        list(MODEL_LABELS),
        key="tr_model",
        format_func=MODEL_LABELS.__getitem__,
        on_change=on_model_change,
        help="Every model gets a 1-channel first conv and a 10-class head",
    )
    c2.selectbox(
        "Input size",
        INPUT_SIZES,
        key="tr_input_size",
        format_func=lambda s: f"{s}×{s}" + (" (native)" if s == 28 else " (resized)"),
        help="MNIST digits are 28×28; larger sizes are resized on the device",
    )
    c3.number_input("Epochs", key="tr_epochs", step=1)
    c4.number_input("Batch size", key="tr_batch_size", step=16)
    c1, c2, c3, c4 = st.columns(4)
    c1.number_input("Learning rate", key="tr_lr", format="%.0e", step=1e-4)
    c2.selectbox(
        "Optimizer",
        OPTIMIZERS,
        key="tr_optimizer",
        format_func={"adam": "Adam", "adamw": "AdamW", "sgd": "SGD (momentum)"}.__getitem__,
    )
    c3.number_input(
        "Training images (0 for all)",
        key="tr_limit",
        step=1000,
        min_value=0,
        help="A subset of the 60,000 training digits, for quick demos",
    )
    c4.selectbox(
        "Device",
        DEVICES,
        key="tr_device",
        help="auto: CUDA if present, else Apple MPS, else the CPU",
    )
    with st.expander("More options"):
        c1, c2, c3, c4, c5 = st.columns(5)
        c1.selectbox("LR schedule", SCHEDULES, key="tr_schedule")
        c2.number_input("Weight decay", key="tr_weight_decay", format="%.0e", step=1e-5)
        c3.number_input("Momentum (SGD)", key="tr_momentum", step=0.05)
        c4.number_input("Seed", key="tr_seed", step=1)
        c5.text_input("Run name", key="tr_name", placeholder="optional")
    chosen = st.session_state["tr_model"]
    if chosen in MODEL_NOTES:
        st.caption(f"**{chosen}**: {MODEL_NOTES[chosen]}")

    config: TrainConfig | None = None
    problem: str | None = None
    try:
        values = {field: st.session_state[key] for key, field in FIELDS.items()}
        limit = st.session_state["tr_limit"]
        config = TrainConfig(
            **values,
            train_limit=int(limit) if limit else None,
            name=st.session_state["tr_name"].strip() or None,
            spec=st.session_state.get(LAB_SPEC_KEY) if values["model"] == zoo.STACK else None,
        ).validate()
    except UserError as err:
        problem = str(err)


@st.cache_data(show_spinner="Estimating the cost on this device…", max_entries=64, ttl=3600)
def estimate(config_dict: dict, measure: bool):  # type: ignore[no-untyped-def]
    from cnnlab.training.estimate import estimate_cost

    return estimate_cost(TrainConfig.from_dict(config_dict), measure=measure)


cost = None
if config is not None:
    try:
        cost = estimate(config.to_dict(), False)
        if cost.fits and cost.warning is None:  # cheap enough to time a few real steps
            cost = estimate(config.to_dict(), True)
    except UserError as err:
        problem = str(err)

with st.container(key="train-cost"):
    if problem:
        st.container(key="form-error").error(f"Cannot train this: {problem}", icon="🚫")
    elif cost is not None:
        m1, m2, m3, m4 = st.columns(4)
        m1.metric("Parameters", f"{cost.params:,}")
        m2.metric("MACs / image", fmt_si(cost.macs_per_image), help=f"{cost.macs_per_image:,}")
        m3.metric(
            "Training FLOPs",
            fmt_si(cost.train_flops),
            help=f"{cost.train_flops:,} = MACs × {cost.images:,} images × 3 (forward + "
            "backward) × 2 FLOPs per MAC",
        )
        how = "measured warm-up" if cost.measured_images_per_second else "from FLOPs"
        m4.metric(f"Estimated time on {cost.device}", cost.eta_text, help=f"{how}")
        if cost.warning:
            st.container(key="cost-warning").warning(
                f"Long run: {cost.warning}. You can still start it.", icon="⏳"
            )
        if not cost.fits and cost.refusal:
            st.container(key="form-error").error(f"Cannot train this: {cost.refusal}", icon="🚫")

launch = st.button(
    "🚀 Train",
    type="primary",
    key="train-button",
    disabled=config is None or problem is not None or (cost is not None and not cost.fits),
)
if launch and config is not None:
    with user_errors("Could not queue the run: "):
        from cnnlab.training.queue import enqueue

        new_id = enqueue(config)
        st.query_params["run"] = new_id
        st.session_state.pop(f"curves:{new_id}", None)
        st.rerun()


# --- the run in the URL -----------------------------------------------------------------------

raw_id = st.query_params.get("run")
run_id = runview.parse_run_id(raw_id)
if raw_id is not None and run_id is None:
    st.error(  # the raw value is not echoed: it is whatever someone put in a link
        "The link's `run` value is not a run id (12 hex digits); pick a run on the Runs page.",
        icon="🚫",
    )
if run_id is None:
    st.info("Start a run above, or open one from the **Runs** page.", icon="👆")
    st.stop()
try:
    page_run = store.get_run(run_id)
except UserError as err:
    st.error(f"The run store cannot be read: {err}", icon="🚫")
    st.stop()
if page_run is None:
    st.error(f"No run with id `{run_id}` (it may have been deleted).", icon="🚫")
    st.stop()

st.divider()
title, again = st.columns([4, 1], vertical_alignment="bottom")
title.subheader(f"Run “{page_run.name}”")
try:
    run_config = TrainConfig.from_dict(page_run.config)
except (UserError, TypeError):
    run_config = None
if run_config is not None:
    again.button(
        "↺ Use these settings",
        key="reuse-settings",
        width="stretch",
        on_click=apply_preset,
        args=(run_config.with_(name=None), run_config.train_limit or 0),
        help="Copy this run's options into the form above",
    )
st.caption(f"`{page_run.id}` · {runview.config_text(page_run.config)}")


def curves_for(rid: str) -> runview.Curves:
    key = f"curves:{rid}"
    if key not in st.session_state:
        st.session_state[key] = runview.Curves(rid)
    return st.session_state[key]


@st.fragment(run_every="1s" if page_run.active else None)
def live_view(store: RunStore, run_id: str, page_status: str) -> None:
    """Status, progress and curves; reads only the metric rows added since the last tick."""
    try:
        run = store.get_run(run_id)
        curves = curves_for(run_id)
        curves.extend(store.metrics(run_id, after_id=curves.last_id))
    except UserError as err:
        st.error(f"The run store cannot be read: {err}", icon="🚫")
        return
    if run is None:
        st.error("This run was deleted.", icon="🚫")
        return
    if run.status != page_status and run.done:
        st.rerun()  # the results below need a full page run
    progress = runview.progress_of(curves, run.status)
    with st.container(key="run-status"):
        left, right = st.columns([5, 1], vertical_alignment="center")
        left.markdown(f"**{runview.status_line(run)}**")
        if run.active:
            if run.stop_requested:
                right.button("Stopping…", key="stop-button", disabled=True, width="stretch")
            elif right.button("⏹ Stop", key="stop-button", width="stretch"):
                store.request_stop(run_id)
                st.rerun(scope="fragment")
        if run.status == "queued":
            st.info("Queued: waiting for a worker to pick it up.", icon="⏳")
        st.progress(progress.fraction, text=progress.text)
    if run.error and run.status != "finished":
        if run.status in ("failed", "interrupted"):
            st.error(f"{run.status.capitalize()}: {run.error}", icon="❌")
        else:
            st.info(run.error[:1].upper() + run.error[1:], icon="⏹️")
    smoothing = st.columns([1, 2])[0].slider(
        "Smoothing",
        0.0,
        0.95,
        0.6,
        0.05,
        key=f"smooth:{run_id}",
        help="Exponential moving average of the step curves",
    )
    c1, c2 = st.columns(2)
    with c1.container(key="loss-chart"):
        fig = run_charts.step_figure(curves, "loss", smoothing)
        st.plotly_chart(fig, width="stretch", key=f"loss-fig:{run_id}")
    with c2.container(key="acc-chart"):
        fig = run_charts.step_figure(curves, "train_accuracy", smoothing)
        st.plotly_chart(fig, width="stretch", key=f"acc-fig:{run_id}")
    with st.container(key="epoch-chart"):
        fig = run_charts.epoch_figure(curves, run.config.get("epochs"))
        st.plotly_chart(fig, width="stretch", key=f"epoch-fig:{run_id}")
    st.container(key="run-points").caption(
        f"{curves.count('loss')} points recorded",
        help="Live: the page reads only the new metric rows every second",
    )


live_view(store, run_id, page_run.status)

if page_run.status != "finished":
    st.stop()


# --- results ----------------------------------------------------------------------------------

try:
    final = store.final_metrics(run_id)
    matrix = store.get_artifact(run_id, "confusion_matrix")
    per_class = store.get_artifact(run_id, "per_class")
    mistakes = store.get_artifact(run_id, "mistakes")
    checkpoint = store.get_artifact(run_id, "checkpoint")
    rows = store.metrics(run_id)
except UserError as err:
    st.error(f"The run store cannot be read: {err}", icon="🚫")
    st.stop()

st.subheader("Results on the 10,000 test digits")
with st.container(key="final-metrics"):
    cols = st.columns(6)
    tiles = [
        ("accuracy", "Accuracy"),
        ("precision", "Precision"),
        ("recall", "Recall"),
        ("f1", "F1"),
    ]
    for col, (key, label) in zip(cols, tiles, strict=False):
        col.metric(
            label,
            percent(final.get(key)),
            help="macro average over the digits" if key != "accuracy" else None,
        )
    cols[4].metric("Training time", duration_text(final.get("train_seconds")))
    ips = final.get("mean_images_per_second")
    cols[5].metric("Images/s", "—" if ips is None else f"{ips:,.0f}")

c1, c2 = st.columns(2)
if matrix is not None and matrix.data:
    with c1.container(key="confusion"):
        st.plotly_chart(run_charts.confusion_figure(matrix.data), width="stretch")
if per_class is not None and per_class.data:
    with c2.container(key="per-class"):
        st.plotly_chart(run_charts.per_class_figure(per_class.data), width="stretch")

if mistakes is not None and mistakes.data:
    with st.container(key="mistakes"):
        st.markdown("**The most confidently wrong test digits**")
        items = mistakes.data[:16]
        pictures = [upscale(np.asarray(m["pixels"], dtype=np.uint8), 3) for m in items]
        captions = [
            f"#{m['index']}: {m['true']} → {m['pred']} ({m['confidence']:.0%})" for m in items
        ]
        st.image(pictures, caption=captions, width=96)
        st.caption("Under each digit: its test index: true digit → predicted digit (confidence).")

with st.container(key="downloads"):
    d1, d2, _ = st.columns([1, 1, 3])
    ckpt_path = checkpoint.path if checkpoint is not None else None
    if ckpt_path is not None and Path(ckpt_path).is_file():
        d1.download_button(
            "⬇ Checkpoint (.pt)",
            data=lambda: Path(ckpt_path).read_bytes(),
            file_name=f"{page_run.name}-{run_id}.pt",
            mime="application/octet-stream",
            on_click="ignore",
        )
    else:
        d1.caption("No checkpoint file.")
    d2.download_button(
        "⬇ Metrics (.csv)",
        data=runview.metrics_csv(rows),
        file_name=f"{page_run.name}-{run_id}-metrics.csv",
        mime="text/csv",
        on_click="ignore",
    )


# --- try it -----------------------------------------------------------------------------------


@st.cache_resource(max_entries=4, show_spinner="Loading the trained model…")
def trained_model(path: str, mtime: float):  # type: ignore[no-untyped-def]
    from cnnlab.training.checkpoints import load_checkpoint

    return load_checkpoint(path)


def show_prediction(digit: np.ndarray, label: str) -> None:
    from cnnlab.training.checkpoints import predict

    model, cfg = trained_model(str(ckpt_path), Path(ckpt_path).stat().st_mtime)
    probs = predict(model, cfg, torch.from_numpy(digit).unsqueeze(0))[0].tolist()
    best, p = runview.top_prediction(probs)
    left, right = st.columns([1, 3])
    left.image(upscale(digit, 4), caption=label, width=112)
    left.markdown(f"### Prediction: **{best}**")
    left.caption(f"{p:.1%} sure")
    right.plotly_chart(run_charts.probability_figure(probs), width="stretch")


if ckpt_path is None or not Path(ckpt_path).is_file():
    st.stop()
st.subheader("Try it")
with st.container(key="try-it"):
    tab_names = ["✏️ Draw a digit", "🔢 Pick a test digit", "📤 Upload"]
    draw_tab, pick_tab, upload_tab = st.tabs(tab_names)
    with draw_tab:
        try:
            from streamlit_drawable_canvas import st_canvas
        except Exception:  # the component is optional: the other tabs still work
            st_canvas = None
        if st_canvas is None:
            st.info("Drawing needs `streamlit-drawable-canvas`; pick or upload a digit instead.")
        else:
            left, right = st.columns([1, 3])
            with left:
                st.markdown("&nbsp;")  # room for the canvas toolbar, which floats above it
                canvas = st_canvas(
                    stroke_width=20,
                    stroke_color="#FFFFFF",
                    background_color="#000000",
                    width=224,
                    height=224,
                    drawing_mode="freedraw",
                    key="digit-canvas",
                    return_image_data=True,
                )
                st.caption("Draw one digit. Toolbar: undo, redo, clear.")
            with right:
                image = canvas.image_data
                if image is None or image[..., :3].max() < 20:
                    st.caption("The prediction appears here once you draw.")
                else:
                    with user_errors():
                        digit = runview.to_digit(image, invert=False)
                        show_prediction(digit, "what the model sees")
    with pick_tab, user_errors():
        test = cached_mnist("test")
        index = st.number_input(
            f"Test image (0–{len(test) - 1:,})", 0, len(test) - 1, value=0, key="try-index"
        )
        digit = test.images[int(index)].numpy()
        show_prediction(digit, f"test #{int(index)}, true label {int(test.labels[int(index)])}")
    with upload_tab:
        upload = st.file_uploader(
            "A picture of one digit (PNG or JPEG)",
            type=["png", "jpg", "jpeg", "bmp", "gif", "webp"],
            key="try-upload",
        )
        if upload is not None:
            with user_errors():
                digit = runview.to_digit(runview.read_picture(upload.getvalue()))
                show_prediction(digit, "your digit, MNIST-style")
