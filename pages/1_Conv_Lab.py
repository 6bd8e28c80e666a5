"""Conv Lab: compose conv layers, flip regular ↔ depthwise-separable, live params/MACs/FLOPs."""

from __future__ import annotations

import json

import streamlit as st

from cnnlab.counting.analyse import analyse_spec, compare_separable, summarise_layers
from cnnlab.counting.spec import ACTIVATIONS, LAYER_TYPES, PRESETS, dumps, loads
from cnnlab.errors import UserError
from cnnlab.format import fmt_int, fmt_si
from cnnlab.views import labstate as lab
from cnnlab.views.charts import separable_bars, theory_curve
from cnnlab.views.ui import page_header, user_errors

DEFAULT_PRESET = "VGG block"
MAX_UPLOAD_BYTES = 200_000
LATENCY_MAX_MACS_CPU = 20 * 10**9

page_header(
    "Conv Lab",
    "🔬",
    "Stack conv layers, flip them between regular and depthwise-separable, and watch the "
    "parameters, MACs and FLOPs change. The whole configuration lives in the page's link.",
)
ss = st.session_state


# ---------------------------------------------------------------- state: link, preset, upload


def load_config(config: lab.LabConfig) -> None:
    """Make ``config`` the editor's source (a new editor key, so old edits are dropped)."""
    ss["lab_config"] = config
    ss["lab_source"] = lab.frame_from_layers(config.layers)
    ss["lab_name"] = config.name
    ss["lab_c"], ss["lab_h"], ss["lab_w"] = config.input
    ss["lab_mode"] = config.mode
    ss["lab_version"] = ss.get("lab_version", 0) + 1


def load_preset() -> None:
    load_config(lab.LabConfig.from_spec(PRESETS[ss["lab_preset"]]))
    ss.pop("lab_upload_error", None)
    ss.pop("lab_link_error", None)


def load_upload() -> None:
    file = ss.get("lab_upload")
    ss.pop("lab_upload_error", None)
    if file is None:
        return
    try:
        if file.size > MAX_UPLOAD_BYTES:
            raise UserError(f"{file.name} is {file.size:,} bytes; the limit is "
                            f"{MAX_UPLOAD_BYTES:,}")  # fmt: skip
        spec = loads(file.getvalue(), validate=False)
    except UserError as err:
        ss["lab_upload_error"] = f"{file.name}: {err}"
        return
    load_config(lab.LabConfig.from_spec(spec, mode="per-layer"))
    ss.pop("lab_link_error", None)


def move(offset: int) -> None:
    layers = ss.get("lab_layers", [])
    index = ss.get("lab_move_index", 0)
    if 0 <= index < len(layers):
        config = current_config(lab.move_layer(layers, index, offset))
        load_config(config)
        ss["lab_move_index"] = max(0, min(len(layers) - 1, index + offset))


def current_config(layers: list[dict]) -> lab.LabConfig:
    return lab.LabConfig(
        input=(int(ss["lab_c"]), int(ss["lab_h"]), int(ss["lab_w"])),
        layers=tuple(layers),
        mode=ss["lab_mode"],
        name=ss.get("lab_name", "stack"),
    )


if "lab_config" not in ss:  # first visit in this session: the link, else the default preset
    start = lab.LabConfig.from_spec(PRESETS[DEFAULT_PRESET])
    link_value = st.query_params.get(lab.QUERY_KEY)
    if link_value:
        try:
            start = lab.decode_config(link_value)
        except UserError as err:
            ss["lab_link_error"] = str(err)
    load_config(start)
elif "lab_c" not in ss:  # back from another page: Streamlit dropped this page's widget state
    load_config(ss["lab_config"])

if ss.get("lab_link_error"):
    st.error(
        f"This link's Conv Lab configuration could not be read: {ss['lab_link_error']}. "
        f"Showing the {DEFAULT_PRESET} preset instead.",
        icon="🔗",
    )


# ---------------------------------------------------------------- controls

with st.container(key="lab-controls"):
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Input** (channels × height × width)")
        c_col, h_col, w_col = st.columns(3)
        c_col.number_input("C", min_value=1, max_value=65_536, step=1, key="lab_c")
        h_col.number_input("H", min_value=1, max_value=4096, step=1, key="lab_h")
        w_col.number_input("W", min_value=1, max_value=4096, step=1, key="lab_w")
    with right:
        st.markdown("**Start from a preset**")
        p_col, b_col = st.columns([3, 1], vertical_alignment="bottom")
        p_col.selectbox("Preset", list(PRESETS), key="lab_preset", label_visibility="collapsed")
        b_col.button("Load", on_click=load_preset, key="lab_load_preset", width="stretch")
    st.radio(
        "Convolution form",
        lab.MODES,
        format_func=lambda m: lab.MODE_LABELS[m],
        horizontal=True,
        key="lab_mode",
        help="All regular / all separable override the per-layer *separable* column "
        "(only convs with kernel > 1 and groups = 1 have a separable form).",
    )

per_layer = ss["lab_mode"] == "per-layer"
st.markdown(
    "**The stack** — one row per layer; add rows at the bottom, select rows to delete them. "
    "`out` is output channels (conv) or features (linear). Empty cells take the defaults."
)


def editor_columns(per_layer: bool) -> dict:
    number = st.column_config.NumberColumn
    small = {"width": "small", "step": 1, "format": "%d"}
    return {
        "type": st.column_config.SelectboxColumn(
            "type", options=list(LAYER_TYPES), required=True, default="conv"
        ),
        "out": number("out", help="output channels (conv) or output features (linear)",
                      default=64, **small),
        "kernel": number("kernel", default=3, **small),
        "stride": number("stride", default=1, help="pooling: empty = the kernel", **small),
        "padding": number("padding", default=1, **small),
        "dilation": number("dilation", default=1, **small),
        "groups": number("groups", default=1, **small),
        "bias": st.column_config.CheckboxColumn("bias", width="small", default=True),
        "batchnorm": st.column_config.CheckboxColumn("BN", width="small", default=False,
                                                     help="batch norm after the conv/linear"),
        "activation": st.column_config.SelectboxColumn(
            "activation", options=list(ACTIVATIONS), help="empty = none"
        ),
        "separable": st.column_config.CheckboxColumn(
            "separable",
            width="small",
            default=False,
            disabled=not per_layer,
            help="depthwise k×k + pointwise 1×1 (set the form to 'per layer' to edit)",
        ),
        "p": number("p", width="small", help="dropout probability", step=0.05, format="%.2f"),
    }


with st.container(key="lab-editor"):
    edited = st.data_editor(
        ss["lab_source"],
        key=f"lab_editor_{ss['lab_version']}",
        num_rows="dynamic",
        width="stretch",
        placeholder="",
        column_config=editor_columns(per_layer),
    )
layers = lab.layers_from_frame(edited)
ss["lab_layers"] = layers

if len(layers) > 1:
    m_text, m_sel, m_up, m_down = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    m_text.caption("Reorder: pick a layer and move it.")
    if ss.get("lab_move_index", 0) >= len(layers):
        ss["lab_move_index"] = len(layers) - 1
    m_sel.selectbox("Layer", range(len(layers)), key="lab_move_index")
    m_up.button("↑ Up", on_click=move, args=(-1,), key="lab_up", width="stretch")
    m_down.button("↓ Down", on_click=move, args=(1,), key="lab_down", width="stretch")


# ---------------------------------------------------------------- analysis

config = current_config(layers)
ss["lab_config"] = config
try:
    stack = lab.parse_rows(config.input, layers, config.name)
    spec = lab.effective_spec(stack.spec, config.mode)
    analysis = analyse_spec(spec)
    regular = analyse_spec(stack.spec, separable=False)
    summaries = summarise_layers(spec, analysis)
    messages = lab.row_messages(stack, spec)
    comparisons = compare_separable(spec)
except UserError as err:
    st.error(f"Cannot analyse this stack: {err}")
    st.stop()
valid = not messages and bool(layers)
if valid:
    ss["conv_lab_spec"] = spec.to_dict()

st.subheader("Per-layer costs")
with st.container(key="lab-errors"):
    for index, message in sorted(messages.items()):
        if not message.startswith("not analysed"):
            st.error(f"Layer {index}: {message}", icon="⚠️")
table = lab.layer_table(stack, summaries, layers, spec)
with st.container(key="lab-table"):
    st.dataframe(
        table.style.apply(
            lambda row: ["background-color: rgba(255, 75, 75, 0.15)"
                         if not str(row["Status"]).startswith("✅") else "" for _ in row],
            axis=1,
        ),
        hide_index=True,
        width="stretch",
        placeholder="",
        column_config={
            "#": st.column_config.NumberColumn("#", width="small"),
            "Layer": st.column_config.TextColumn("Layer", width="medium"),
            "Status": st.column_config.TextColumn("Status", width="large" if messages else "small"),
            "Params": st.column_config.NumberColumn("Params", format="localized"),
            "MACs": st.column_config.NumberColumn("MACs", format="localized"),
            "FLOPs": st.column_config.NumberColumn("FLOPs", format="localized"),
            "Activations (bytes)": st.column_config.NumberColumn(
                "Activations (bytes)", format="localized",
                help="fp32 output of the layer, batch 1",
            ),
        },
    )
    if messages:
        st.caption("Totals and charts below cover the rows above the first invalid one.")


# ---------------------------------------------------------------- totals, ratio


def totals_block(title: str, totals, caption: str) -> None:  # type: ignore[no-untyped-def]
    st.markdown(f"**{title}**")
    st.metric("Params", fmt_int(totals.params))
    st.metric("MACs", fmt_int(totals.macs), help=fmt_si(totals.macs, "MACs"))
    st.metric("FLOPs", fmt_int(totals.flops), help=fmt_si(totals.flops, "FLOPs"))
    st.caption(caption)


def fewer(ratio: float) -> str:
    """0.12 → ``8.4× fewer``; 0.95 → ``5.0 % fewer``; 1.1 → ``10.0 % more``."""
    if ratio <= 0:
        return "all"
    if ratio > 1:
        return f"{(ratio - 1) * 100:.1f} % more"
    return f"{1 / ratio:.1f}× fewer" if ratio <= 2 / 3 else f"{(1 - ratio) * 100:.1f} % fewer"


n_sep = sum(1 for layer in spec.layers if layer.type == "conv" and layer.separable)
n_flippable = sum(1 for layer in stack.spec.layers if layer.flippable)
st.subheader("Totals: regular vs separable")
t_reg, t_sep, t_ratio = st.columns(3)
with t_reg, st.container(key="lab-totals-regular", border=True):
    totals_block("Regular", regular.totals, "every conv as a regular k×k conv")
with t_sep, st.container(key="lab-totals-configured", border=True):
    totals_block(
        "As configured",
        analysis.totals,
        f"{n_sep} of {n_flippable} flippable conv layers separable",
    )
with t_ratio, st.container(key="lab-ratio", border=True):
    st.markdown("**Ratio (as configured ÷ regular)**")
    if n_sep and regular.totals.macs:
        mac_ratio = analysis.totals.macs / regular.totals.macs
        param_ratio = analysis.totals.params / regular.totals.params if regular.totals.params else 0
        st.metric("MAC ratio", f"{mac_ratio:.4f}", help="separable MACs ÷ regular MACs")
        st.metric("Param ratio", f"{param_ratio:.4f}")
        st.caption(f"{fewer(mac_ratio)} MACs, {fewer(param_ratio)} parameters")
        for c in comparisons[:6]:
            st.caption(
                f"Layer {c.index}: {c.ratio:.4f} measured vs 1/N + 1/k² = "
                f"1/{c.out_channels} + 1/{c.kernel * c.kernel} = {c.theory:.4f}"
            )
        if len(comparisons) > 6:
            st.caption(f"… and {len(comparisons) - 6} more conv layers (see the theory chart).")
    elif not n_flippable:
        st.info("No conv with kernel > 1 and groups = 1 here: nothing to make separable.")
    else:
        st.info(
            "Every conv is regular. Tick a layer's **separable** box (form: per layer) or "
            "choose **all separable** to see the ratio."
        )


# ---------------------------------------------------------------- charts

if comparisons:
    st.subheader("Charts")
    ch_left, ch_right = st.columns(2)
    with ch_left, st.container(key="lab-chart-bars"):
        st.plotly_chart(separable_bars(comparisons), width="stretch")
    with ch_right, st.container(key="lab-chart-theory"):
        st.plotly_chart(theory_curve(comparisons), width="stretch")


# ---------------------------------------------------------------- latency

st.subheader("Measure latency")
with st.container(key="lab-latency", border=True):
    spec_key = json.dumps(stack.spec.to_dict(), sort_keys=True)
    too_big = regular.totals.macs > LATENCY_MAX_MACS_CPU
    lat_col, note_col = st.columns([2, 3])
    with lat_col:
        clicked = st.button(
            "Measure latency",
            key="lab_measure",
            disabled=not valid or not n_flippable,
            help="Real forward passes of the regular and the separable stack, median of "
            "10 runs after 3 warm-up runs, on this machine (GPU when present).",
        )
        if not valid:
            st.caption("Fix the invalid rows first.")
        elif not n_flippable:
            st.caption("Add a conv with kernel > 1 to compare.")
    if clicked:
        import torch

        from cnnlab.counting.latency import compare_latency

        device = "cuda" if torch.cuda.is_available() else "cpu"
        if device == "cpu" and too_big:
            st.warning(
                f"This stack needs {fmt_si(regular.totals.macs, 'MACs')} per pass; timing it on "
                "this CPU would take too long. Reduce the input size or channels."
            )
        else:
            with st.spinner("Timing real forward passes…"), user_errors("Latency: "):
                ss["lab_latency"] = (spec_key, compare_latency(spec, device=device))
    measured = ss.get("lab_latency")
    if measured is not None and measured[0] == spec_key and valid:
        reg_lat, sep_lat = measured[1]
        sep_spec = lab.effective_spec(stack.spec, "separable")
        sep_macs = analyse_spec(sep_spec).totals.macs
        mac_ratio_all = sep_macs / regular.totals.macs if regular.totals.macs else 0.0
        speedup = reg_lat.median_ms / sep_lat.median_ms if sep_lat.median_ms else 0.0
        with lat_col:
            a, b = st.columns(2)
            a.metric("Regular", f"{reg_lat.median_ms:.2f} ms")
            b.metric("Separable", f"{sep_lat.median_ms:.2f} ms")
            a.metric("MAC ratio", f"{mac_ratio_all:.3f}",
                     help="all-separable MACs ÷ regular MACs")  # fmt: skip
            b.metric("Time ratio", f"{sep_lat.median_ms / reg_lat.median_ms:.3f}",
                     help="separable ms ÷ regular ms")  # fmt: skip
            if speedup >= 1:
                pace = f"but only {speedup:.1f}× faster"
            else:
                pace = f"yet {1 / max(speedup, 1e-9):.1f}× slower"
            st.caption(
                f"Median of {reg_lat.runs} runs on {reg_lat.device}, regular vs all separable: "
                f"{fewer(mac_ratio_all)} MACs, {pace}."
            )
    with note_col:
        st.markdown(
            "**Why fewer MACs is not proportionally faster.** A depthwise conv does very "
            "little arithmetic per byte it reads, so it waits on memory instead of computing; "
            "the separable form runs two kernels instead of one and writes, then reads back, "
            "an extra activation map between them; and the libraries (oneDNN, cuDNN) are "
            "tuned hardest for dense k×k convs. At batch 1 fixed per-layer overheads weigh "
            "in too. MACs count arithmetic, not time."
        )


# ---------------------------------------------------------------- pros and cons

with st.expander("Pros and cons: regular vs depthwise-separable convolution", expanded=False):
    reg_col, sep_col = st.columns(2)
    with reg_col:
        st.markdown(
            """
**Regular convolution**

Pros
- Extracts more features: every filter mixes all input channels over k×k, with many more
  parameters to learn from.
- Simple and intuitive to use; one layer, one kernel.
- Suits smaller datasets and complex features, where it may perform better.

Cons
- Heavy computation: k·k·M·N·H·W multiply-adds grow quickly with channels and resolution.
- Many parameters (k·k·M·N per layer).
- Higher risk of overfitting, from the extra parameters and capacity.
"""
        )
    with sep_col:
        st.markdown(
            """
**Depthwise-separable convolution** (depthwise k×k, then pointwise 1×1)

Pros
- Far fewer parameters: k·k·M + M·N instead of k·k·M·N.
- Far fewer MACs: the ratio is 1/N + 1/k², about 8–9× fewer for 3×3 kernels.
- Faster training and inference, and less memory — though not by the full MAC ratio
  (measure it above).

Cons
- Extracts fewer features: each depthwise filter sees one channel; channels mix only
  through the 1×1 conv.
- More complex to implement (two layers, each with its own norm and activation).
- Accuracy may drop somewhat (MobileNet v1: about 1 % on ImageNet for 8–9× fewer MACs).
"""
        )
    if n_sep and regular.totals.params and regular.totals.macs:
        st.caption(
            f"For this stack: {regular.totals.params / max(analysis.totals.params, 1):.1f}× "
            f"fewer parameters and {regular.totals.macs / max(analysis.totals.macs, 1):.1f}× "
            "fewer MACs as configured."
        )


# ---------------------------------------------------------------- share, save, load

st.subheader("Share and save")
share_col, file_col = st.columns(2)
with share_col, st.container(key="lab-share"):
    try:
        value = lab.encode_config(config)
    except UserError as err:
        st.warning(str(err))
    else:
        if st.query_params.get(lab.QUERY_KEY) != value:
            st.query_params[lab.QUERY_KEY] = value
        st.markdown("The address bar holds this whole configuration. Link to share:")
        st.code(f"{st.context.url}?{lab.QUERY_KEY}={value}", language=None, wrap_lines=True)
with file_col, st.container(key="lab-files"):
    st.download_button(
        "Download spec (JSON)",
        dumps(spec),
        file_name=f"{config.name.replace(' ', '_') or 'stack'}.json",
        mime="application/json",
        key="lab_download",
        disabled=not stack.complete,
        help=None if stack.complete else "fix the rows that do not parse first",
    )
    st.file_uploader(
        "Load a spec (JSON, at most 200 kB)",
        type=["json"],
        key="lab_upload",
        on_change=load_upload,
        max_upload_size=1,
    )
    if ss.get("lab_upload_error"):
        st.error(f"Could not load the spec: {ss['lab_upload_error']}")
