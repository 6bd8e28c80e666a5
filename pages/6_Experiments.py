"""Experiments page: test the report's claims on your own training runs.

Launch a family of runs (regular vs separable, model selection, a sweep — or the one-click
Part I preset) with its cost estimated first; follow one experiment's board (``?experiment=ID``):
progress, arms table, scatter plots with the Pareto front, curves, and the verdict table. A small
fragment polls the store's change token and reruns the page only when something changed.
"""

from __future__ import annotations

import streamlit as st

from cnnlab.errors import UserError
from cnnlab.training.store import RunStore
from cnnlab.views import experiments as ev
from cnnlab.views.ui import open_run_store, page_header, worker_notice

REFRESH = "2s"
LAUNCHED = "exp-launched"

page_header(
    "Experiments",
    "🧪",
    "Does separable convolution really train faster, overfit less, lose accuracy? Run the "
    "experiment and read the verdict from your own data.",
)
store = open_run_store()
if store is None:
    st.stop()
worker_notice(store)


def current_owner() -> object | None:
    """The browser's class identity (None where the classroom module is not there)."""
    try:
        from cnnlab.views.class_ui import current_owner as owner_of  # the class's identity
    except ImportError:
        return None
    return owner_of()


@st.fragment(run_every=REFRESH)
def follow_store(store: RunStore, token: str) -> None:
    """Rerun the page when the store changed since it was drawn (one small read otherwise)."""
    try:
        changed = store.change_token() != token
    except UserError:
        changed = False
    if changed:
        st.rerun(scope="app")


@st.cache_resource(show_spinner="Timing the Part I preset on this device…", ttl=3600)
def preset_cost() -> ev.LaunchView:
    return ev.preset_view(measure=True)


def launch(plan: object, cost: object) -> None:
    try:
        experiment_id, _ = ev.launch(store, plan, cost, current_owner())  # type: ignore[arg-type]
    except UserError as err:
        st.error(str(err), icon="🚫")
        return
    st.query_params["experiment"] = experiment_id
    st.rerun()


def back_to_list() -> None:
    if st.button("← All experiments", key="exp-back"):
        st.query_params.clear()
        st.rerun()


def show_board(experiment_id: str) -> None:
    try:
        view = ev.board(store, experiment_id)
        if view.to_measure and not view.active:
            with st.spinner(f"Measuring inference latency of {view.to_measure} arm(s), once…"):
                ev.measure_pending(store, experiment_id)
            view = ev.board(store, experiment_id)
    except UserError as err:
        st.error(str(err), icon="🚫")
        back_to_list()
        return
    follow_store(store, view.token)
    back_to_list()
    with st.container(key="exp-board"):
        st.subheader(view.name)
        c1, c2 = st.columns([5, 1], vertical_alignment="center")
        c1.progress(view.progress, text=view.progress_text)
        if c2.button("⏹ Stop experiment", key="exp-stop", disabled=not view.active):
            ev.stop(store, experiment_id)
            st.rerun()
        for message in view.errors:
            st.error(message, icon="⚠️")
        st.markdown("**Arms** (mean ± spread over seeds)")
        with st.container(key="exp-arms"):
            st.dataframe(view.arms, hide_index=True)
        st.markdown("**Verdicts**: each claim of the report, against your runs")
        with st.container(key="exp-claims"):
            st.table(view.claims.set_index("claim"))
        st.caption(f"How: {view.rule}")
        s1, s2 = st.columns(2)
        s1.plotly_chart(view.charts["params"], width="stretch", key="exp-params")
        s2.plotly_chart(view.charts["latency"], width="stretch", key="exp-latency")
        c1, c2 = st.columns(2)
        c1.plotly_chart(view.charts["accuracy"], width="stretch", key="exp-acc")
        c2.plotly_chart(view.charts["loss"], width="stretch", key="exp-loss")
        d1, d2, _ = st.columns([1, 1, 3])
        d1.download_button("⬇ CSV", view.csv, f"experiment-{experiment_id}.csv", "text/csv")
        d2.download_button(
            "⬇ Markdown", view.markdown, f"experiment-{experiment_id}.md", "text/markdown"
        )
        with st.expander("Runs of this experiment"):
            st.dataframe(
                view.runs,
                hide_index=True,
                column_config={
                    "progress": st.column_config.ProgressColumn("progress", min_value=0.0,
                                                                max_value=1.0),
                    "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
                    "F1": st.column_config.NumberColumn("F1", format="percent"),
                },
            )  # fmt: skip


def launch_form() -> None:
    with st.container(key="exp-preset", border=True):
        st.markdown(f"**Part I in one click**: {ev.PRESET_TEXT}.")
        preset = preset_cost()
        if preset.error:
            st.error(preset.error)
        elif preset.cost is not None:
            st.caption(f"Estimate: {preset.cost.text}")
            if preset.cost.refusal:
                st.error(f"Refused on this device now: {preset.cost.refusal}", icon="🚫")
        if st.button("▶ Run the Part I preset", key="exp-part1", type="primary",
                     disabled=not preset.can_launch):  # fmt: skip
            launch(preset.plan, preset.cost)

    with st.expander("Design your own experiment", expanded=False), st.container(key="exp-form"):
        kind = st.selectbox("Kind", ev.KINDS, format_func=ev.KIND_TITLES.__getitem__,
                            key="exp-kind")  # fmt: skip
        values: dict[str, object] = {"kind": kind}
        c1, c2, c3 = st.columns(3)
        if kind == "separable":
            values["model"] = c1.text_input("Model (zoo)", "small-cnn", key="exp-model")
            values["sizes"] = c2.text_input("Training-set sizes", "1000,10000", key="exp-sizes")
            values["spec_text"] = st.text_area(
                "…or a Conv Lab spec (JSON) instead of the model", "", key="exp-spec"
            )
        elif kind == "models":
            values["models"] = c1.text_input("Models", "vgg11,mobilenet_v2", key="exp-models")
        else:
            values["model"] = c1.text_input("Model (zoo)", "small-cnn", key="exp-model")
            values["option"] = c2.selectbox("Option", ev.FORM_CHOICES["option"], key="exp-opt")
            values["values"] = c3.text_input("Values", "1e-3,3e-3", key="exp-values")
        d1, d2, d3, d4 = st.columns(4)
        values["seeds"] = int(d1.number_input("Seeds", 1, 10, 2, key="exp-seeds"))
        values["epochs"] = int(d2.number_input("Epochs", 1, 50, 1, key="exp-epochs"))
        size = d3.selectbox("Input size", (28, 32, 64), key="exp-input")
        values["input_size"] = int(size)
        limit = d4.number_input("Train limit (0: all)", 0, 60000, 0, step=1000, key="exp-limit")
        values["train_limit"] = int(limit) or None
        values["name"] = st.text_input("Name (optional)", "", key="exp-name")
        if st.button("Estimate the cost", key="exp-estimate"):
            st.session_state["exp-check"] = (values, ev.launch_view(ev.FormValues(**values)))
        checked = st.session_state.get("exp-check")
        if checked and checked[0] == values:
            view: ev.LaunchView = checked[1]
            if view.error:
                st.error(view.error, icon="🚫")
            else:
                assert view.cost is not None
                st.dataframe(view.arms, hide_index=True)
                if view.cost.refusal:
                    st.error(f"Refused: {view.cost.refusal}", icon="🚫")
                else:
                    st.info(f"Estimate: {view.cost.text}", icon="⏱")
                if st.button("▶ Launch", key="exp-launch", disabled=not view.can_launch):
                    launch(view.plan, view.cost)

    listing = ev.list_view(store)
    follow_store(store, listing.token)
    st.subheader("Experiments")
    if listing.table.empty:
        st.info("No experiments yet: run the Part I preset above, or "
                "`python -m cnnlab experiment part1`.")  # fmt: skip
        return
    with st.container(key="exp-list"):
        picked = st.dataframe(listing.table, hide_index=True, on_select="rerun",
                              selection_mode="single-row", key="exp-list-df")  # fmt: skip
    rows = picked.selection.rows if picked is not None else []
    if rows:
        st.query_params["experiment"] = listing.ids[rows[0]]
        st.rerun()


raw = st.query_params.get("experiment")
if raw is not None:
    experiment_id = ev.parse_experiment_id(raw)
    if experiment_id is None:
        st.error("That link names no experiment (an id looks like `x1a2b3c4d5e6`).", icon="🚫")
        back_to_list()
    else:
        show_board(experiment_id)
else:
    launch_form()
