"""Inside the network: what every conv and pooling layer of a finished run (or of the Conv Lab
stack) makes of one digit; filters; one output step by step; mistakes; saliency.
Layout only: cnnlab.views.inside."""

from __future__ import annotations

from typing import Any

import pandas as pd
import streamlit as st

from cnnlab.errors import UserError
from cnnlab.inside.pictures import digit_from_bytes
from cnnlab.inside.saliency import METHODS
from cnnlab.views import inside as iv
from cnnlab.views import runview
from cnnlab.views import train as tv
from cnnlab.views.labstate import QUERY_KEY
from cnnlab.views.ui import cached_mnist, cached_view, open_run_store, page_header, user_errors

try:
    from streamlit_drawable_canvas import st_canvas
except Exception:  # the component is optional: the other inputs still work
    st_canvas = None

page_header(
    "Inside the network",
    "🔍",
    "What each convolution does to a digit: feature maps, "
    "filters, one output step by step, and the mistakes explained.",
)
state = st.session_state
SOURCES = {"run": "A finished run", "lab": "The Conv Lab stack (random weights)"}
INPUTS = ["🔢 Test digit", "✏️ Draw", "📤 Upload"]
VIEWS = ["Feature maps", "Filters", "One output", "Mistakes", "Saliency"]
link_run, link_lab = st.query_params.get("run"), st.query_params.get(QUERY_KEY)
state.setdefault("in-source", "lab" if link_lab and not link_run else "run")
state.setdefault("in-input", INPUTS[0])
state.setdefault("in-view", VIEWS[0])


def open_digit(index: int) -> None:
    """A digit of a confusion-matrix cell → the test-digit input, the feature maps."""
    state.update({"in-input": INPUTS[0], "in-index": index, "in-view": VIEWS[0]})


# --- the source -------------------------------------------------------------------------------
store = open_run_store()
if store is None:
    st.stop()
left, right = st.columns([1, 2])
kind = left.radio("Source", list(SOURCES), format_func=SOURCES.get, key="in-source")
key, loaded = None, None
with right, user_errors():
    if kind == "run":
        runs = dict(iv.finished_runs(store))
        wanted = runview.parse_run_id(link_run) if link_run else None
        if link_run and wanted is None:
            st.error("The link's `run` value is not a run id (12 hex digits): pick a run below.")
        options = list(runs) + ([wanted] if wanted and wanted not in runs else [])
        if not options:
            st.info("No finished run yet: train one on the **Train** page.", icon="👈")
            st.stop()
        if wanted and state.get("in-run") is None:
            state["in-run"] = wanted
        run_id = st.selectbox("Run", options, format_func=lambda r: runs.get(r, r), key="in-run")
        if st.query_params.get("run") != run_id:
            st.query_params["run"] = run_id
        key = run_id
    else:
        spec = iv.lab_spec(link_lab, state.get("conv_lab_spec"))
        seed = int(st.number_input("Seed of the random weights", 0, 10**6, 0, key="in-seed"))
        key = iv.lab_key(spec, seed)
    loaded = iv.load_source(kind, key)  # the run may be gone, failed or without a checkpoint
    st.caption(loaded.title)
if key is None or loaded is None:
    st.stop()

# --- the digit --------------------------------------------------------------------------------
digit: Any = None
label = ""
with st.container(key="in-digit", border=True):
    how = st.segmented_control("Input", INPUTS, key="in-input", label_visibility="collapsed")
    with user_errors():
        if how == INPUTS[1]:
            if st_canvas is None:
                st.info("Drawing needs `streamlit-drawable-canvas`; pick or upload a digit.")
            else:
                canvas = st_canvas(
                    stroke_width=20,
                    stroke_color="#FFFFFF",
                    background_color="#000000",
                    width=224,
                    height=224,
                    drawing_mode="freedraw",
                    return_image_data=True,
                    key="in-canvas",
                )
                digit = tv.drawn_digit(canvas.image_data)
                label = "your drawing, MNIST-style"
                if digit is None:
                    st.caption("Draw one digit, white on black: the views below follow it.")
        elif how == INPUTS[2]:
            upload = st.file_uploader(
                "A picture of one digit",
                key="in-upload",
                type=["png", "jpg", "jpeg", "bmp", "gif", "webp"],
            )
            if upload is not None:
                digit, label = digit_from_bytes(upload.getvalue()), "your picture, MNIST-style"
        else:
            test = cached_mnist("test")
            link_digit = st.query_params.get("digit")
            if link_digit is not None and "in-index" not in state:
                try:
                    iv.test_digit(test, int(link_digit))
                    state["in-index"] = int(link_digit)
                except (ValueError, UserError):
                    st.error(f"The link's digit must be a test index from 0 to {len(test) - 1:,}.")
            state.setdefault("in-index", 0)
            index = st.number_input(
                f"Test digit (0–{len(test) - 1:,})", 0, len(test) - 1, key="in-index"
            )
            digit, label = iv.test_digit(test, int(index))
if digit is None:
    st.stop()

view = st.segmented_control("View", VIEWS, key="in-view") or VIEWS[0]

# --- feature maps -----------------------------------------------------------------------------
if view == "Feature maps":
    with user_errors():
        pages = {
            name.removeprefix("in-page:"): int(v) - 1
            for name, v in state.items()
            if isinstance(name, str) and name.startswith("in-page:")
        }
        maps = cached_view(iv.maps_view, kind, key, digit, label, iv.page_pairs(pages))
        head, probs = st.columns([1, 3])
        with head.container(key="in-input-digit"):
            st.image(maps.picture, caption=maps.label, width=112)
            best, p = maps.top[0]
            st.markdown(f"### Prediction: **{best}**")
            st.caption(" · ".join(f"{d}: {q:.1%}" for d, q in maps.top))
        probs.plotly_chart(maps.figure, width="stretch", key="in-probs")
        with st.container(key="in-maps"):
            for layer in maps.layers:
                with st.container(border=True, key=f"in-layer-{layer.index}"):
                    st.markdown(f"**{layer.title}**")
                    st.caption(layer.sentence)
                    if layer.pages > 1:
                        st.number_input(
                            f"Channel page (1–{layer.pages}, {iv.PAGE_CHANNELS} each)",
                            1,
                            layer.pages,
                            key=f"in-page:{layer.name}",
                        )
                    st.image(
                        layer.picture,
                        width=min(max(layer.picture.shape[1], 320), 720),
                        caption=f"{layer.drawn_text}; values {layer.min:.3g} to {layer.max:.3g}",
                    )

# --- filters ----------------------------------------------------------------------------------
elif view == "Filters":
    with user_errors(), st.container(key="in-filters"):
        filters = cached_view(iv.filters_view, kind, key)
        if filters.note:
            st.info(f"No “before training” picture: {filters.note}.", icon="ℹ️")
        for panel in filters.panels:
            with st.container(border=True):
                st.markdown(f"**{panel.name}** · {panel.kind} · weight {panel.shape_text}")
                st.caption(panel.drawn_text)
                cols = st.columns(2)
                if panel.before is not None:
                    cols[0].image(
                        panel.before,
                        caption="before training",
                        width=min(panel.before.shape[1] * 2, 360),
                    )
                cols[1].image(
                    panel.after,
                    caption="after training" if panel.before is not None else "now",
                    width=min(panel.after.shape[1] * 2, 360),
                )

# --- one output, step by step -----------------------------------------------------------------
elif view == "One output":
    with user_errors(), st.container(key="in-step"):
        convs = cached_view(iv.conv_layers, kind, key, digit)
        labels = {i: text for i, text, _ in convs}
        shapes = {i: shape for i, _, shape in convs}
        a, b, c, d = st.columns(4)
        layer = a.selectbox("Layer", list(labels), format_func=labels.get, key="in-step-layer")
        ch, h, w = shapes[layer]
        channel = b.number_input(f"Output channel (0–{ch - 1})", 0, ch - 1, 0, key="in-step-c")
        y = c.number_input(f"Row (0–{h - 1})", 0, h - 1, min(h - 1, h // 2), key="in-step-y")
        x = d.number_input(f"Column (0–{w - 1})", 0, w - 1, min(w - 1, w // 2), key="in-step-x")
        step = cached_view(iv.step_view, kind, key, digit, layer, int(channel), int(y), int(x))
        left, right = st.columns(2)
        left.plotly_chart(step.field_figure, width="stretch", key="in-field")
        right.plotly_chart(step.animation, width="stretch", key="in-slide")
        st.markdown(f"**{step.count_text}**")
        st.code("\n".join(step.lines), language=None)
        st.markdown(step.sum_text)
        st.container(key="in-rule").info(step.rule_text, icon="🧮")
        if step.pair_text:
            st.caption(step.pair_text)

# --- mistakes ---------------------------------------------------------------------------------
elif view == "Mistakes":
    with user_errors(), st.container(key="in-mistakes"):
        if kind != "run":
            raise UserError("mistakes need a trained model: pick a finished run as the source")
        mistakes = cached_view(iv.mistakes_view, key)
        if mistakes.note:
            st.caption(mistakes.note)
        st.markdown("**Confusion matrix** (rows: true digit, columns: predicted): click a cell.")
        frame = pd.DataFrame(
            mistakes.matrix,
            index=[f"true {i}" for i in range(10)],
            columns=[str(j) for j in range(10)],
        )
        styled = frame.style.background_gradient(
            cmap="Reds", axis=None, gmap=mistakes.off_diagonal, vmin=0, vmax=mistakes.worst
        ).apply(lambda _: iv.DIAGONAL_CSS, axis=None)
        widths = {"_index": st.column_config.TextColumn(width=iv.GRID_INDEX_PX)}
        widths.update({str(j): st.column_config.NumberColumn(width=iv.GRID_CELL_PX)
                       for j in range(10)})  # fmt: skip
        event = st.dataframe(styled, key="in-confusion", on_select="rerun", width="content",
                             selection_mode="single-cell", column_config=widths)  # fmt: skip
        cells = event.selection.get("cells", []) if event else []
        if cells:
            row, column = cells[0]
            cell = cached_view(iv.cell_view, key, int(row), int(column))
            with st.container(key="in-cell"):
                st.markdown(f"**{cell.caption}**")
                cols = st.columns(8)
                for n, (index, picture) in enumerate(zip(cell.indices, cell.pictures, strict=True)):
                    with cols[n % 8]:
                        st.image(picture, width=56)
                        st.button(
                            f"#{index}",
                            key=f"in-open-{index}",
                            on_click=open_digit,
                            args=(index,),
                            help="Open this digit in the views above",
                        )
        else:
            st.caption("The test digits of a cell appear here.")

# --- saliency ---------------------------------------------------------------------------------
else:
    with user_errors(), st.container(key="in-saliency"):
        method = st.radio(
            "Method",
            list(METHODS),
            format_func=lambda m: METHODS[m].split(":")[0],
            horizontal=True,
            key="in-saliency-method",
        )
        sal = cached_view(iv.saliency_view, kind, key, digit, method)
        st.image(sal.picture, caption=sal.text, width=280)
        st.caption("Computed with captum: red–yellow where the pixels drove the score most.")
