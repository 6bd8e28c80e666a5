"""Model Inspector: per-layer params and MACs with their formulas, cross-checked against tools."""

from __future__ import annotations

import json

import pandas as pd
import streamlit as st

from cnnlab.counting import zoo
from cnnlab.counting.analyse import Analysis, analyse_zoo
from cnnlab.counting.check import check_user_params
from cnnlab.counting.crosscheck import ToolReport, crosscheck
from cnnlab.counting.rules import CONVENTIONS_MARKDOWN
from cnnlab.counting.spec import StackSpec
from cnnlab.errors import UserError
from cnnlab.format import shape_text
from cnnlab.views.charts import kind_share_bars, lesson, model_layer_bars
from cnnlab.views.tables import (
    crosscheck_markdown,
    fmt_int,
    fmt_si,
    rows_frame,
    to_csv,
    to_markdown,
)
from cnnlab.views.ui import page_header

CONV_LAB = "Conv Lab stack"
MNIST_SIZES = (28, 32, 64, 224)
CROSSCHECK_MAX_PARAMS = 200_000_000

page_header(
    "Model Inspector",
    "🧮",
    "Every layer's parameters and MACs with the formula behind them — AlexNet, VGG-16 and any "
    "torchvision classifier — checked against torchinfo, fvcore and PyTorch's FLOP counter.",
)
ss = st.session_state


@st.cache_data(max_entries=64, show_spinner=False)
def cached_analysis(
    name: str, shape: tuple[int, int, int], mnist: bool, spec_json: str | None, separable: bool
) -> Analysis:
    spec = StackSpec.from_dict(json.loads(spec_json), validate=False) if spec_json else None
    return analyse_zoo(name, input_shape=shape, mnist=mnist, spec=spec, separable=separable)


@st.cache_data(max_entries=16, show_spinner=False)
def cached_crosscheck(
    name: str, shape: tuple[int, int, int], mnist: bool, spec_json: str | None
) -> list[ToolReport]:
    spec = StackSpec.from_dict(json.loads(spec_json), validate=False) if spec_json else None
    return crosscheck(name, input_shape=shape, mnist=mnist, spec=spec)


# ---------------------------------------------------------------- model and input

lab_spec = ss.get("conv_lab_spec")
names = list(zoo.ZOO)
if lab_spec:
    names.append(CONV_LAB)
names += [n for n in zoo.list_models() if n not in zoo.ZOO]

with st.container(key="insp-controls"):
    m_col, x_col, s_col = st.columns([2, 1, 1], vertical_alignment="bottom")
    last = ss.get("insp_last_model", "alexnet")
    choice = m_col.selectbox(
        "Model",
        names,
        index=names.index(last) if last in names else names.index("alexnet"),
        key="insp_model",
        help=f"The zoo first{', then your Conv Lab stack' if lab_spec else ''}, "
        "then every other torchvision classifier.",
    )
    mnist = x_col.toggle(
        "MNIST adaptation",
        key="insp_mnist",
        help="First conv takes 1 channel, last classifier layer gives 10 outputs.",
    )
    size = s_col.selectbox(
        "MNIST input size", MNIST_SIZES, key="insp_size", disabled=not mnist,
        help="28 is native MNIST; larger sizes are resized digits.",
    )  # fmt: skip

ss["insp_last_model"] = choice
name = zoo.STACK if choice == CONV_LAB else choice
spec_json = json.dumps(lab_spec, sort_keys=True) if choice == CONV_LAB else None
spec = StackSpec.from_dict(lab_spec, validate=False) if spec_json else None

if mnist:
    shape = (1, int(size), int(size))
    st.caption(f"Input: {shape_text(shape)} (MNIST digits, batch 1)")
else:
    default = zoo.default_input_shape(name, spec=spec)
    if ss.get("insp_shape_for") != (choice, spec_json):  # a new model: its native input
        ss["insp_c"], ss["insp_h"], ss["insp_w"] = default
        ss["insp_shape_for"] = (choice, spec_json)
    elif "insp_c" not in ss:  # back from another page: Streamlit dropped the widget state
        ss["insp_c"], ss["insp_h"], ss["insp_w"] = ss.get("insp_shape_saved", default)
    c_col, h_col, w_col, _ = st.columns([1, 1, 1, 3])
    c_col.number_input("Channels", min_value=1, max_value=65_536, step=1, key="insp_c")
    h_col.number_input("Height", min_value=1, max_value=4096, step=1, key="insp_h")
    w_col.number_input("Width", min_value=1, max_value=4096, step=1, key="insp_w")
    shape = (int(ss["insp_c"]), int(ss["insp_h"]), int(ss["insp_w"]))
    ss["insp_shape_saved"] = shape

try:
    with st.spinner("Counting…"):
        analysis = cached_analysis(name, shape, mnist, spec_json, False)
        what_if = cached_analysis(name, shape, mnist, spec_json, True)
except UserError as err:
    with st.container(key="insp-error"):
        st.error(str(err), icon="🚫")
    st.stop()

key_base = f"{choice}|{shape}|{mnist}|{spec_json}"


# ---------------------------------------------------------------- table, totals, footer

st.subheader(f"{analysis.model} at {shape_text(shape)}")
only_costly = st.toggle("Only layers with parameters or MACs", value=True, key="insp_only")
frame = rows_frame(analysis)
if only_costly:
    frame = frame[(frame["Params"] > 0) | (frame["MACs"] > 0)]
with st.container(key="insp-table"):
    st.dataframe(
        frame,
        hide_index=True,
        width="stretch",
        column_config={
            "Output": st.column_config.TextColumn("Output", width="medium"),
            "Params": st.column_config.NumberColumn("Params", format="localized"),
            "MACs": st.column_config.NumberColumn("MACs", format="localized", width="medium"),
            "FLOPs": st.column_config.NumberColumn("FLOPs", format="localized", width="medium"),
            "Activations (bytes)": st.column_config.NumberColumn(
                "Activations (bytes)", format="localized", help="fp32 output, batch 1"
            ),
        },
    )
    st.caption(
        f"{len(frame)} of {len(analysis.rows)} layers shown. MACs: conv and linear "
        "multiply-accumulates, bias excluded (torchvision's convention); FLOPs add bias, "
        "normalisation, activation and pooling work."
    )

t = analysis.totals
w = what_if.totals
tot_col, foot_col = st.columns([1, 1])
with tot_col, st.container(key="insp-totals", border=True):
    st.markdown("**Totals** — original vs every conv with kernel > 1 made depthwise-separable")
    lines = [
        "| | original | separable what-if | ratio |",
        "|---|--:|--:|--:|",
    ]
    for label, ours, theirs in (
        ("params", t.params, w.params),
        ("trainable params", t.trainable_params, w.trainable_params),
        ("MACs", t.macs, w.macs),
        ("FLOPs", t.flops, w.flops),
    ):
        ratio = f"{theirs / ours:.3f}" if ours else "—"
        lines.append(f"| {label} | {fmt_int(ours)} | {fmt_int(theirs)} | {ratio} |")
    st.markdown("\n".join(lines))
    st.caption(
        f"MACs {fmt_si(t.macs, 'MACs')} → {fmt_si(w.macs, 'MACs')}; "
        f"params {fmt_si(t.params)} → {fmt_si(w.params)}."
    )
with foot_col, st.container(key="insp-footer", border=True):
    f = analysis.footer
    st.markdown("**torchinfo-style summary**")
    st.code(
        "\n".join(
            [
                f"Total params: {fmt_int(t.params)}",
                f"Trainable params: {fmt_int(t.trainable_params)}",
                f"Non-trainable params: {fmt_int(t.params - t.trainable_params)}",
                f"Total mult-adds (MACs): {fmt_si(t.macs)}",
                f"Input size (MB): {f.input_mb:.2f}",
                f"Forward/backward pass size (MB): {f.forward_backward_mb:.2f}",
                f"Params size (MB): {f.params_mb:.2f}",
                f"Estimated Total Size (MB): {f.total_mb:.2f}",
            ]
        ),
        language=None,
    )
    st.caption("MB = 10⁶ bytes; fp32; the pass size counts every layer's output twice.")


# ---------------------------------------------------------------- charts

st.subheader("Where the parameters and the MACs are")
with st.container(key="insp-lesson"):
    st.info(lesson(analysis))
with st.container(key="insp-chart-layers"):
    st.plotly_chart(model_layer_bars(analysis), width="stretch")
with st.container(key="insp-chart-share"):
    st.plotly_chart(kind_share_bars(analysis), width="stretch")


# ---------------------------------------------------------------- cross-check

st.subheader("Cross-check with other tools")
cc_key = f"insp_cc|{key_base}"
with st.container(key="insp-crosscheck", border=True):
    st.markdown(
        "torchinfo, fvcore and `torch.utils.flop_counter.FlopCounterMode` run a real forward "
        "pass with real (random) weights, so this takes a few seconds; results are cached per "
        "model and input."
    )
    too_big = t.params > CROSSCHECK_MAX_PARAMS
    if st.button("Run the cross-check", key="insp_cc_run", disabled=too_big):
        with st.spinner("Running torchinfo, fvcore and FlopCounterMode on real weights…"):
            try:
                ss[cc_key] = cached_crosscheck(name, shape, mnist, spec_json)
            except UserError as err:
                st.error(f"Cross-check failed: {err}")
    if too_big:
        st.caption(
            f"{fmt_si(t.params)} parameters is too large to build with real weights here "
            f"(limit {fmt_si(CROSSCHECK_MAX_PARAMS)})."
        )
    reports: list[ToolReport] | None = ss.get(cc_key)
    if reports:
        st.markdown(crosscheck_markdown(reports))
        st.markdown(
            "**Why they differ:** every tool counts the same parameters, but not the same "
            "operations — torchinfo adds the bias to its mult-adds, fvcore counts one fused "
            "multiply-add as one \"flop\" and adds batch norm but skips max-pooling, and "
            "FlopCounterMode counts 2 FLOPs per multiply-add for conv and matmul only. The "
            "numbers differ by convention, not by error."
        )
    with st.expander("Counting conventions (cnnlab's rule table)"):
        st.markdown(CONVENTIONS_MARKDOWN)


# ---------------------------------------------------------------- check my calculation

st.subheader("Check my calculation")
st.markdown(
    "Type your own parameter count for each layer (commas are fine), or paste a column of "
    "numbers in table order. Wrong cells are flagged with the correct formula and value."
)
param_rows = [row for row in analysis.rows if row.params > 0]
source_key = f"insp_check_source|{key_base}"
if source_key not in ss:
    ss[source_key] = pd.DataFrame(
        {
            "Layer": [row.name for row in param_rows],
            "Type": [row.type for row in param_rows],
            "Your params": pd.Series([None] * len(param_rows), dtype="object"),
        }
    )
ed_col, paste_col = st.columns([3, 2])
with ed_col, st.container(key="insp-check-editor"):
    edited = st.data_editor(
        ss[source_key],
        key=f"insp_check_editor|{key_base}",
        hide_index=True,
        width="stretch",
        placeholder="",
        disabled=["Layer", "Type"],
        column_config={"Your params": st.column_config.TextColumn("Your params")},
    )
with paste_col:
    pasted = st.text_area(
        "…or paste a column",
        key=f"insp_check_paste|{key_base}",
        height=200,
        placeholder="23296\n307392\n663936\n…",
    )
user: dict[str, str | None] = {
    str(layer): (None if value is None or pd.isna(value) else str(value))
    for layer, value in zip(edited["Layer"], edited["Your params"], strict=True)
}
if pasted.strip():
    lines = [line.strip() for line in pasted.splitlines() if line.strip()]
    if len(lines) > len(param_rows):
        st.warning(
            f"You pasted {len(lines)} numbers for {len(param_rows)} layers with parameters; "
            f"the first {len(param_rows)} are checked."
        )
    for row, line in zip(param_rows, lines, strict=False):
        user[row.name] = line
checks = check_user_params(analysis, user)
with st.container(key="insp-check-results"):
    if checks:
        wrong = [c for c in checks if not c.ok]
        if wrong:
            st.error(f"{len(wrong)} of {len(checks)} checked layers are wrong.")
        else:
            st.success(f"All {len(checks)} checked layers are right.")
        st.dataframe(
            pd.DataFrame(
                {
                    "": ["✅" if c.ok else "❌" for c in checks],
                    "Layer": [c.name for c in checks],
                    "You wrote": [
                        fmt_int(c.user_value) if c.user_value is not None else "?"
                        for c in checks
                    ],
                    "Correct": [c.correct for c in checks],
                    "Formula": [c.formula for c in checks],
                    "Message": [c.message for c in checks],
                }
            ),
            hide_index=True,
            width="stretch",
            column_config={"Correct": st.column_config.NumberColumn(format="localized")},
        )
    else:
        st.caption("Nothing entered yet.")


# ---------------------------------------------------------------- export

st.subheader("Export")
stem = f"{choice.replace(' ', '_')}_{shape_text(shape)}{'_mnist' if mnist else ''}"
e1, e2, _ = st.columns([1, 1, 3])
e1.download_button(
    "Table as CSV", to_csv(analysis), file_name=f"{stem}.csv", mime="text/csv", key="insp_csv"
)
e2.download_button(
    "Markdown report",
    to_markdown(analysis, crosscheck=reports or None),
    file_name=f"{stem}.md",
    mime="text/markdown",
    key="insp_md",
    help="Formulas, totals, memory footer, the cross-check (when run) and the conventions.",
)
