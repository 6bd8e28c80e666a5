"""Model Inspector: per-layer params and MACs with their formulas, cross-checked against tools."""

from __future__ import annotations

import streamlit as st

from cnnlab.counting.crosscheck import ToolReport
from cnnlab.counting.rules import CONVENTIONS_MARKDOWN
from cnnlab.counting.spec import StackSpec
from cnnlab.errors import UserError
from cnnlab.format import shape_text
from cnnlab.views import inspector
from cnnlab.views.tables import crosscheck_markdown
from cnnlab.views.ui import cached_view, page_header

page_header(
    "Model Inspector",
    "🧮",
    "Every layer's parameters and MACs with the formula behind them — AlexNet, VGG-16 and any "
    "torchvision classifier — checked against torchinfo, fvcore and PyTorch's FLOP counter.",
)
ss = st.session_state
PLOTLY_CONFIG = {"displaylogo": False, "modeBarButtonsToRemove": ["select2d", "lasso2d"]}
NUMBER = st.column_config.NumberColumn
TEXT = st.column_config.TextColumn
TABLE_COLUMNS = {
    "Layer": TEXT("Layer", pinned=True),
    "Name": TEXT("Name", pinned=True, width="small", help="The name a course uses (conv1 … fc8)"),
    "Params": NUMBER("Params", format="localized"),
    "Params formula": TEXT("Params formula", width=250),
    "MACs": NUMBER("MACs", format="localized", width=110),
    "MACs formula": TEXT("MACs formula", width="large"),
    "FLOPs": NUMBER("FLOPs", format="localized"),
    "Activations (bytes)": NUMBER("Activations (bytes)", format="localized", help="fp32, batch 1"),
}

# ---------------------------------------------------------------- model and input

lab_spec = ss.get("conv_lab_spec")
names = inspector.model_choices(bool(lab_spec))
with st.container(key="insp-controls"):
    m_col, x_col, s_col = st.columns([2, 1, 1], vertical_alignment="bottom")
    last = ss.get("insp_last_model", "alexnet")
    choice = m_col.selectbox(
        "Model",
        names,
        index=names.index(last) if last in names else names.index("alexnet"),
        key="insp_model",
        format_func=inspector.model_label,
        help=f"The zoo first{', then your Conv Lab stack' if lab_spec else ''}, "
        "then every other torchvision classifier.",
    )
    mnist = x_col.toggle(
        "MNIST adaptation",
        key="insp_mnist",
        help="First conv takes 1 channel, last classifier layer gives 10 outputs.",
    )
    spec = StackSpec.from_dict(lab_spec, validate=False) if choice == inspector.CONV_LAB else None
    if mnist:  # a size the model cannot take moves to the smallest offered one it takes
        size, moved = inspector.settle_mnist_size(choice, int(ss.get("insp_size", 28)), spec)
        if moved:
            ss["insp_size"], ss["insp_size_note"] = size, (choice, size, moved)
    size = s_col.selectbox(
        "MNIST input size", inspector.MNIST_SIZES, key="insp_size", disabled=not mnist,
        help="28 is native MNIST; larger sizes are resized digits.",
    )  # fmt: skip
    if note := inspector.model_note(choice):
        st.caption(f"**{choice}**: {note}.")
    moved_note = ss.get("insp_size_note")
    if mnist and moved_note and moved_note[:2] == (choice, size):
        st.container(key="insp-size-note").info(moved_note[2], icon="↕️")

ss["insp_last_model"] = choice
if mnist:
    shape = (1, int(size), int(size))
    st.caption(f"Input: {shape_text(shape)} (MNIST digits, batch 1)")
else:
    default = inspector.native_input(choice, spec)
    if ss.get("insp_shape_for") != (choice, spec):  # a new model: its native input
        ss["insp_c"], ss["insp_h"], ss["insp_w"] = default
        ss["insp_shape_for"] = (choice, spec)
    elif "insp_c" not in ss:  # back from another page: Streamlit dropped the widget state
        ss["insp_c"], ss["insp_h"], ss["insp_w"] = ss.get("insp_shape_saved", default)
    c_col, h_col, w_col, _ = st.columns([1, 1, 1, 3])
    c_col.number_input("Channels", step=1, key="insp_c")
    h_col.number_input("Height", step=1, key="insp_h")
    w_col.number_input("Width", step=1, key="insp_w")
    shape = (int(ss["insp_c"]), int(ss["insp_h"]), int(ss["insp_w"]))
    ss["insp_shape_saved"] = shape

with st.spinner("Counting…"):
    view = cached_view(inspector.inspector_view, choice, input_shape=shape, mnist=mnist, spec=spec)
if view.input_error:  # say what is wrong next to the input; show no stale numbers
    st.container(key="insp-input-error").error(
        f"{view.input_error}. Nothing is counted until the input is valid.", icon="🚫"
    )
    st.stop()
if view.error:
    st.container(key="insp-error").error(view.error, icon="🚫")
    st.stop()
key_base = f"{choice}|{shape}|{mnist}|{hash(spec)}"

# ---------------------------------------------------------------- table, totals, footer

st.subheader(view.title)
o_col, d_col = st.columns(2)
only_costly = o_col.toggle("Only layers with parameters or MACs", value=True, key="insp_only")
details = d_col.toggle("Output, type, FLOPs and memory columns", key="insp_details")
frame = view.layer_table(only_costly=only_costly, details=details)
with st.container(key="insp-table"):
    st.dataframe(frame, hide_index=True, width="stretch", column_config=TABLE_COLUMNS)
    st.caption(view.table_caption(len(frame)))

tot_col, foot_col = st.columns([1, 1])
with tot_col, st.container(key="insp-totals", border=True):
    st.markdown("**Totals** — original vs every conv with kernel > 1 made depthwise-separable")
    st.markdown(view.totals_markdown)
    st.caption(view.totals_caption)
with foot_col, st.container(key="insp-footer", border=True):
    st.markdown("**torchinfo-style summary**")
    st.code(view.footer, language=None)
    st.caption("MB = 10⁶ bytes; fp32; the pass size counts every layer's output twice.")

# ---------------------------------------------------------------- charts

st.subheader("Where the parameters and the MACs are")
with st.container(key="insp-lesson"):
    st.info(view.lesson)
for chart, key in zip(view.charts, ("insp-chart-layers", "insp-chart-share"), strict=True):
    with st.container(key=key):
        st.markdown(f"**{chart.title}**")
        st.plotly_chart(chart.figure, width="stretch", config=PLOTLY_CONFIG)

# ---------------------------------------------------------------- cross-check

st.subheader("Cross-check with other tools")
cc_key = f"insp_cc|{key_base}"
with st.container(key="insp-crosscheck", border=True):
    st.markdown(inspector.CROSSCHECK_INTRO)
    if st.button("Run the cross-check", key="insp_cc_run", disabled=bool(view.crosscheck_refusal)):
        with st.spinner("Running torchinfo, fvcore and FlopCounterMode on real weights…"):
            try:
                ss[cc_key] = view.run_crosscheck()
            except UserError as err:
                st.error(f"Cross-check failed: {err}")
    if view.crosscheck_refusal:
        st.caption(view.crosscheck_refusal)
    reports: list[ToolReport] | None = ss.get(cc_key)
    if reports:
        st.markdown(crosscheck_markdown(reports))
        st.markdown(inspector.WHY_THEY_DIFFER)
    with st.expander("Counting conventions (cnnlab's rule table)"):
        st.markdown(CONVENTIONS_MARKDOWN)

# ---------------------------------------------------------------- check my calculation

st.subheader("Check my calculation")
st.markdown(inspector.CHECK_INTRO)
fill_key, note_key = f"insp_check_filled|{key_base}", f"insp_check_note|{key_base}"
version_key, paste_key = f"insp_check_version|{key_base}", f"insp_check_paste|{key_base}"
editor_key = f"insp_check_editor|{key_base}|{ss.get(version_key, 0)}"


def put_column_in_table(rows: int) -> None:
    cells = inspector.entered_cells(ss.get(fill_key, {}), ss.get(editor_key))
    ss[fill_key], ss[note_key] = inspector.fill_from_column(cells, ss.get(paste_key, ""), rows)
    ss[version_key], ss[paste_key] = ss.get(version_key, 0) + 1, ""  # a fresh editor shows them


source = view.check_source(ss.get(fill_key))
ed_col, paste_col = st.columns([3, 2])
with ed_col, st.container(key="insp-check-editor"):
    st.data_editor(
        source, key=editor_key, hide_index=True, width="stretch", placeholder="",
        disabled=[c for c in source.columns if c != inspector.CHECK_COLUMN],
        column_config={inspector.CHECK_COLUMN: TEXT(inspector.CHECK_COLUMN)},
    )  # fmt: skip
with paste_col:
    st.text_area("…or paste a column", key=paste_key, height=160, placeholder="23296\n307392\n…")
    st.button("Put the column in the table", key="insp_check_fill",
              on_click=put_column_in_table, args=(len(view.check_layers),))  # fmt: skip
    if ss.get(note_key):
        st.caption(ss[note_key])
check = view.check(inspector.entered_cells(ss.get(fill_key, {}), ss.get(editor_key)))
with st.container(key="insp-check-results"):
    if check.frame is None:
        st.caption(check.summary)
    else:
        {"error": st.error, "warning": st.warning, "success": st.success}[check.tone](check.summary)
        st.dataframe(check.frame, hide_index=True, width="stretch",
                     column_config={"Correct": NUMBER(format="localized")})  # fmt: skip

# ---------------------------------------------------------------- export

st.subheader("Export")
e1, e2, _ = st.columns([1, 1, 3])
e1.download_button("Table as CSV", view.csv(), file_name=f"{view.file_stem}.csv",
                   mime="text/csv", key="insp_csv")  # fmt: skip
e2.download_button(
    "Markdown report",
    view.markdown(reports, check),
    file_name=f"{view.file_stem}.md",
    mime="text/markdown",
    key="insp_md",
    help="Formulas, totals, memory footer, the cross-check (when run), your checked cells "
    "and the conventions.",
)
