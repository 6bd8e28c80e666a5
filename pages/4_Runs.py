"""Runs page: every run (from this page or the CLI) in one table; compare, stop, rename, delete."""

from __future__ import annotations

import streamlit as st

from cnnlab.errors import UserError
from cnnlab.training.store import Run, RunStore
from cnnlab.views import run_charts, runview
from cnnlab.views.ui import open_run_store, page_header, worker_notice

OVERLAY_KEYS = {
    "loss": "training loss",
    "train_accuracy": "training accuracy (running)",
    "test_accuracy": "test accuracy (per epoch)",
    "test_loss": "test loss (per epoch)",
}

page_header(
    "Runs",
    "📊",
    "Every training run, started here or with `python -m cnnlab train`: compare, stop, rename, "
    "delete.",
)
store = open_run_store()
if store is None:
    st.stop()
worker_notice(store)


def load(store: RunStore) -> tuple[list[Run], dict[str, dict[str, float]]]:
    runs = store.list_runs()
    return runs, {r.id: store.final_metrics(r.id) for r in runs}


try:
    all_runs = store.list_runs()  # the table's own read (with final metrics) is in the fragment
except UserError as err:
    st.error(f"The run store cannot be read: {err}", icon="🚫")
    st.stop()
if not all_runs:
    st.info("No runs yet: start one on the **Train** page or with `python -m cnnlab train`.")
    st.page_link("pages/3_Train.py", label="Go to Train", icon="🏋️")
    st.stop()


@st.fragment(run_every="2s" if any(r.active for r in all_runs) else None)
def runs_view(store: RunStore) -> None:
    try:
        runs, finals = load(store)
    except UserError as err:
        st.error(f"The run store cannot be read: {err}", icon="🚫")
        return
    frame = runview.runs_frame(runs, finals)
    frame["error"] = [r.error or "" for r in runs]
    with st.container(key="runs-table"):
        event = st.dataframe(
            frame,
            key="runs-df",
            hide_index=True,
            on_select="rerun",
            selection_mode="multi-row",
            column_order=[
                "name",
                "model",
                "status",
                "params",
                "MACs/image",
                "accuracy",
                "F1",
                "duration_s",
                "device",
                "created",
                "error",
                "id",
            ],
            column_config={
                "params": st.column_config.NumberColumn("params", format="localized"),
                "MACs/image": st.column_config.NumberColumn("MACs/image", format="localized"),
                "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
                "F1": st.column_config.NumberColumn("F1", format="percent"),
                "duration_s": st.column_config.NumberColumn("duration", format="%.0f s"),
                "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
                "error": st.column_config.TextColumn("error", width="medium"),
            },
        )
    rows = sorted(event.selection.rows) if event is not None else []
    chosen = [runs[i] for i in rows if i < len(runs)]
    if not chosen:
        st.caption("Select runs (the boxes on the left) to compare them, stop, rename or delete.")
        return
    actions(store, chosen)
    compare(store, chosen, finals)


def actions(store: RunStore, chosen: list[Run]) -> None:
    with st.container(key="run-actions", border=True):
        for run in chosen:
            if run.status in ("failed", "interrupted") and run.error:
                st.error(f"**{run.name}** {run.status}: {run.error}")
        single = chosen[0] if len(chosen) == 1 else None
        active = [r for r in chosen if r.active]
        cols = st.columns([1, 2, 4] if single else [1, 6], vertical_alignment="bottom")
        if cols[0].button(f"⏹ Stop ({len(active)})", key="stop-selected", disabled=not active):
            for run in active:
                store.request_stop(run.id)
            st.rerun()
        if single is not None:
            cols[1].page_link(
                "pages/3_Train.py",
                label="Open on the Train page",
                icon="🏋️",
                query_params={"run": single.id},
            )
            with cols[2].form("rename-form", border=False):
                r1, r2 = st.columns([3, 1], vertical_alignment="bottom")
                new_name = r1.text_input("New name", value=single.name, key=f"rename:{single.id}")
                if r2.form_submit_button("Rename"):
                    try:
                        store.rename(single.id, new_name)
                    except UserError as err:
                        st.error(str(err))
                    else:
                        st.rerun()
        deletable = [r for r in chosen if r.status != "running"]
        label = ", ".join(r.name for r in deletable)
        with st.expander(f"🗑 Delete {len(deletable)} run(s)", expanded=False):
            if not deletable:
                st.caption("Running runs must be stopped before they can be deleted.")
            else:
                sure = st.checkbox(
                    f"Yes, delete {label} with their metrics and checkpoints", key="delete-confirm"
                )
                if st.button("Delete", key="delete-button", type="primary", disabled=not sure):
                    try:
                        for run in deletable:
                            store.delete_run(run.id)
                    except UserError as err:
                        st.error(str(err))
                    else:
                        st.session_state.pop("delete-confirm", None)
                        st.rerun(scope="app")


def compare(store: RunStore, chosen: list[Run], finals: dict[str, dict[str, float]]) -> None:
    labels = runview.run_labels(chosen)
    curves: dict[str, runview.Curves] = {}
    for run in chosen:
        c = runview.Curves(run.id)
        c.extend(store.metrics(run.id, keys=list(OVERLAY_KEYS)))
        curves[labels[run.id]] = c
    st.subheader(f"Compare {len(chosen)} run(s)")
    with st.container(key="overlay"):
        k1, k2 = st.columns([2, 3])
        key = k1.selectbox(
            "Curve", list(OVERLAY_KEYS), format_func=OVERLAY_KEYS.__getitem__, key="overlay-key"
        )
        smoothing = k2.slider(
            "Smoothing",
            0.0,
            0.95,
            0.6,
            0.05,
            key="overlay-smooth",
            disabled=key.startswith("test_"),
        )
        fig = run_charts.overlay_figure(curves, key, smoothing)
        st.plotly_chart(fig, width="stretch", key="overlay-fig")
    done = {labels[r.id]: finals.get(r.id, {}) for r in chosen if finals.get(r.id, {})}
    with st.container(key="compare-metrics"):
        if any("accuracy" in f for f in done.values()):
            st.plotly_chart(run_charts.final_bars(done), width="stretch", key="final-bars")
        st.table(runview.compare_frame(chosen, finals))


runs_view(store)
