"""Conv Lab: compose conv layers, flip regular ↔ depthwise-separable, live params/MACs/FLOPs."""

from __future__ import annotations

import streamlit as st

from cnnlab.counting.spec import PRESETS
from cnnlab.format import fmt_int, fmt_si
from cnnlab.views import conv_lab as cl
from cnnlab.views import lab_session as session
from cnnlab.views import labstate as lab
from cnnlab.views.ui import cached_view, page_header, user_errors

# plotly's toolbar only on hover, without the logo: on a phone it must not sit on the titles
CHART_CONFIG = {"displayModeBar": "hover", "displaylogo": False}

page_header(
    "Conv Lab",
    "🔬",
    "Stack conv layers, flip them between regular and depthwise-separable, and watch the "
    "parameters, MACs and FLOPs change. The whole configuration lives in the page's link.",
)
ss = st.session_state
phone = "Mobi" in st.context.headers.get("User-Agent", "")  # MDN's hint for a mobile browser
session.start(ss, st.query_params.get(lab.QUERY_KEY), narrow=phone)
if session.link_problem(ss):
    st.error(session.link_problem(ss), icon="🔗")

# ---------------------------------------------------------------- controls

with st.container(key="lab-controls"):
    left, right = st.columns([3, 2])
    with left:
        st.markdown("**Input** (channels × height × width)")
        c_col, h_col, w_col = st.columns(3)
        # no min/max here: an out-of-range value reaches the check and is explained below
        c_col.number_input("C", step=1, key="lab_c")
        h_col.number_input("H", step=1, key="lab_h")
        w_col.number_input("W", step=1, key="lab_w")
        input_note = st.empty()
    with right:
        st.markdown("**Start from a preset**")
        p_col, b_col = st.columns([3, 1], vertical_alignment="bottom")
        p_col.selectbox("Preset", list(PRESETS), key="lab_preset", label_visibility="collapsed")
        b_col.button("Load", on_click=session.load_preset, args=(ss,), key="lab_load_preset",
                     width="stretch")  # fmt: skip
    st.radio("Convolution form", lab.MODES, format_func=lab.MODE_LABELS.get, horizontal=True,
             key="lab_mode", on_change=session.refresh, args=(ss,), help=cl.FORM_HELP)  # fmt: skip
    st.markdown(cl.TERMS)

per_layer = ss["lab_mode"] == "per-layer"
st.markdown(cl.STACK_HELP)
compact = st.toggle("Main columns only (narrow screens)", key="lab_compact",
                    on_change=session.refresh, args=(ss,))  # fmt: skip


def editor_columns(per_layer: bool) -> dict:
    cc = st.column_config
    make = {"select": cc.SelectboxColumn, "bool": cc.CheckboxColumn, "float": cc.NumberColumn,
            "int": lambda label, **o: cc.NumberColumn(label, step=1, format="%d", **o)}  # fmt: skip
    columns: dict = {lab.OWN_SEPARABLE: None}  # hidden: each layer's own tick under a global form
    for name, spec in lab.EDITOR_COLUMNS.items():
        opts = {"width": None if spec["kind"] == "select" else "small"}
        opts.update((k, v) for k, v in spec.items() if k not in ("kind", "label"))
        columns[name] = make[spec["kind"]](spec.get("label", name), **opts)
    columns["separable"]["disabled"] = not per_layer
    return columns


with st.container(key="lab-editor"):
    edited = st.data_editor(
        ss["lab_source"],
        key=f"lab_editor_{ss['lab_version']}",
        num_rows="dynamic",
        width="stretch",
        placeholder="",
        column_order=lab.MAIN_COLUMNS if compact else lab.EDITOR_ORDER,
        column_config=editor_columns(per_layer),
    )
layers = lab.layers_from_editor(edited)
ss["lab_layers"] = layers
if session.refresh_if_stale(ss, edited):  # e.g. a kernel set to 1 under "all separable"
    st.rerun()

if len(layers) > 1:
    m_text, m_sel, m_up, m_down = st.columns([2, 1, 1, 1], vertical_alignment="bottom")
    m_text.caption("Reorder: pick a layer and move it.")
    if ss.get("lab_move_index", 0) >= len(layers):
        ss["lab_move_index"] = len(layers) - 1
    m_sel.selectbox("Layer", range(len(layers)), key="lab_move_index")
    m_up.button("↑ Up", on_click=session.move, args=(ss, -1), key="lab_up", width="stretch")
    m_down.button("↓ Down", on_click=session.move, args=(ss, 1), key="lab_down", width="stretch")

# ---------------------------------------------------------------- the one view-model call

config = session.current_config(ss, layers)
ss["lab_config"] = config
view = cached_view(cl.conv_lab_view, config)
if view.input_error:
    input_note.container(key="lab-input-error").error(view.input_error, icon="⚠️")
    st.info(cl.NO_RESULTS)
elif view.stack_error:
    st.error(f"Cannot analyse this stack: {view.stack_error}")
if view.valid and view.spec is not None:
    ss["conv_lab_spec"] = view.spec.to_dict()

if not view.ok or view.table is None:
    st.stop()

# ---------------------------------------------------------------- table, totals, ratio

st.subheader("Per-layer costs")
with st.container(key="lab-errors"):
    for message in view.errors:
        st.error(message, icon="⚠️")
with st.container(key="lab-table"):
    numbers = {c: st.column_config.NumberColumn(c, format="localized", help=h)
               for c, h in cl.COUNT_COLUMNS.items()}  # fmt: skip
    st.dataframe(
        view.styled_table(), hide_index=True, width="stretch", placeholder="",
        column_config={**numbers, "#": st.column_config.NumberColumn("#", pinned=True),
                       "Layer": st.column_config.TextColumn(width="medium"),
                       "Status": st.column_config.TextColumn(width=view.status_width)},
    )  # fmt: skip
    if view.messages:
        st.caption("Totals and charts below cover the rows above the first invalid one.")

st.subheader("Totals: regular vs separable")
t_reg, t_sep, t_ratio = st.columns(3)
for column, key, box in ((t_reg, "regular", view.regular), (t_sep, "configured", view.configured)):
    assert box is not None
    with column, st.container(key=f"lab-totals-{key}", border=True):
        st.markdown(f"**{box.title}**")
        st.metric("Params", fmt_int(box.totals.params))
        st.metric("MACs", fmt_int(box.totals.macs), help=fmt_si(box.totals.macs, "MACs"))
        st.metric("FLOPs", fmt_int(box.totals.flops), help=fmt_si(box.totals.flops, "FLOPs"))
        st.caption(box.caption)
with t_ratio, st.container(key="lab-ratio", border=True):
    st.markdown("**Ratio (as configured ÷ regular)**")
    if view.ratio.mac_ratio is not None:
        st.metric("MAC ratio", f"{view.ratio.mac_ratio:.4f}", help="separable MACs ÷ regular MACs")
        st.metric("Param ratio", f"{view.ratio.param_ratio:.4f}")
        st.caption(view.ratio.summary)
        for line in view.ratio.lines:
            st.caption(line)
    else:
        st.info(view.ratio.info)

if view.bars is not None and view.theory is not None:
    st.subheader("Charts")
    charts = {"bars": view.bars, "theory": view.theory}
    for column, (key, fig) in zip(st.columns(2), charts.items(), strict=True):
        with column, st.container(key=f"lab-chart-{key}"):
            st.plotly_chart(fig, width="stretch", config=CHART_CONFIG)

# ---------------------------------------------------------------- latency

st.subheader("Measure latency")
with st.container(key="lab-latency", border=True):
    lat_col, note_col = st.columns([2, 3])
    device = cl.latency_device()
    refusal = cl.latency_refusal(view, device)
    with lat_col:
        if st.button("Measure latency", key="lab_measure", disabled=refusal is not None,
                     help=cl.LATENCY_HELP):  # fmt: skip
            with st.spinner("Timing real forward passes…"), user_errors("Latency: "):
                ss["lab_latency"] = (view.spec_key, cl.measure_latency_view(view, device))
        if refusal:
            st.caption(refusal)
        measured = ss.get("lab_latency")
        if measured is not None and measured[0] == view.spec_key and view.valid:
            lat: cl.LatencyView = measured[1]
            for pair in (lat.metrics[:2], lat.metrics[2:]):  # a phone reads them in this order
                for column, (label, value, tip) in zip(st.columns(2), pair, strict=True):
                    column.metric(label, value, help=tip)
            st.dataframe(lat.table, hide_index=True, width="stretch")
            if lat.warning:
                st.warning(lat.warning, icon="📶")
            st.caption(lat.caption)
    note_col.markdown(cl.WHY_NOT_FASTER)

with st.expander("Pros and cons: regular vs depthwise-separable convolution", expanded=False):
    reg_col, sep_col = st.columns(2)
    reg_col.markdown(cl.PROS_CONS_REGULAR)
    sep_col.markdown(cl.PROS_CONS_SEPARABLE)
    if view.pros_cons_caption:
        st.caption(view.pros_cons_caption)

# ---------------------------------------------------------------- share, save, load

st.subheader("Share and save")
share_col, file_col = st.columns(2)
with share_col, st.container(key="lab-share"):
    if view.link_value is None:
        st.warning(view.link_error or "no link")
    else:
        if st.query_params.get(lab.QUERY_KEY) != view.link_value:
            st.query_params[lab.QUERY_KEY] = view.link_value
        st.markdown("The address bar holds this whole configuration. Link to share:")
        st.code(f"{st.context.url}?{lab.QUERY_KEY}={view.link_value}", language=None,
                wrap_lines=True)  # fmt: skip
with file_col, st.container(key="lab-files"):
    st.download_button(
        "Download spec (JSON)", view.download_json, file_name=view.file_name,
        mime="application/json", key="lab_download", disabled=not view.can_download,
        help=None if view.can_download else "fix the rows that do not parse first",
    )  # fmt: skip
    st.file_uploader("Load a spec (JSON, at most 200 kB)", type=["json"], key="lab_upload",
                     on_change=session.load_upload, args=(ss,), max_upload_size=1)  # fmt: skip
    if ss.get("lab_upload_error"):
        st.error(f"Could not load the spec: {ss['lab_upload_error']}")
