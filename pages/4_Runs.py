"""Runs page: every run (from this page or the CLI) in one table; compare, stop, rename, delete.

The table follows the store by itself: a small fragment polls the store's change token every
couple of seconds and reruns the page only when a run was added, changed or deleted elsewhere;
the selection is kept by run id, so a new run at the top does not shift it.
"""

from __future__ import annotations

import streamlit as st

from cnnlab.errors import UserError
from cnnlab.format import md_escape
from cnnlab.training.store import RunStore
from cnnlab.views import runs as rv
from cnnlab.views.class_ui import classroom_sidebar
from cnnlab.views.ui import open_run_store, page_header, worker_notice

REFRESH = "2s"
TABLE = "runs-df"

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
viewer = classroom_sidebar()

# The table's selection is kept as run ids: the rows it names are those of the table as drawn.
shown: list[str] = st.session_state.get("runs-shown", [])
state = st.session_state.get(TABLE)
# item access: the widget's state, or the plain dict this page wrote into it below
picked = [shown[i] for i in (state["selection"]["rows"] if state else []) if i < len(shown)]
reselect = st.session_state.pop("runs-reselect", None)  # the runs an Undo brought back
experiment = st.session_state.get("runs-experiment", rv.ALL)
view = rv.runs_view(store, reselect or picked, viewer=viewer, experiment=experiment)
if view.ids != tuple(shown) or reselect:  # rows moved: select the same runs in the new table
    st.session_state[TABLE] = {"selection": {"rows": list(view.selected_rows)}}
st.session_state["runs-shown"] = list(view.ids)


@st.fragment(run_every=REFRESH)
def follow_store(store: RunStore, token: str) -> None:
    """Rerun the page when the store changed since it was drawn (one small read otherwise)."""
    try:
        changed = store.change_token() != token
    except UserError:
        changed = False  # the next full run says what is wrong
    if changed:
        st.rerun(scope="app")


follow_store(store, view.token)
if view.problem:
    st.error(view.problem, icon="🚫")
    st.stop()

in_trash = {r.id for r in view.trash}  # an Undo only for runs still in the trash
undo = [
    (run_id, name) for run_id, name in st.session_state.get("runs-undo") or [] if run_id in in_trash
]
if undo:
    with st.container(key="undo-bar", border=True):
        u1, u2 = st.columns([5, 1], vertical_alignment="center")
        u1.success(
            f"Moved {', '.join(md_escape(name) for _, name in undo)} to the trash "
            f"(kept {rv.TRASH_DAYS} days).",
            icon="🗑",
        )
        if u2.button("↩ Undo", key="undo-delete", width="stretch"):
            problem = rv.restore_runs(store, [run_id for run_id, _ in undo], viewer)
            st.session_state.pop("runs-undo", None)
            if problem:
                st.error(problem)
            else:
                st.session_state["runs-reselect"] = [run_id for run_id, _ in undo]
                st.rerun()

if not view.runs:
    st.info("No runs yet: start one on the **Train** page or with `python -m cnnlab train`.")
    st.page_link("pages/3_Train.py", label="Go to Train", icon="🏋️")
else:
    if len(view.experiments) > 2:  # some runs are arms of experiments: filter by one
        labels = dict(view.experiments)
        st.selectbox("Experiment", list(labels), format_func=labels.__getitem__,
                     key="runs-experiment")  # fmt: skip
    with st.container(key="runs-table"):
        st.dataframe(
            view.table,
            key=TABLE,
            hide_index=True,
            on_select="rerun",
            selection_mode="multi-row",
            column_order=rv.TABLE_ORDER,
            column_config={
                "params": st.column_config.NumberColumn("params", format="localized"),
                "MACs/image": st.column_config.NumberColumn("MACs/image", format="localized"),
                "accuracy": st.column_config.NumberColumn("accuracy", format="percent"),
                "F1": st.column_config.NumberColumn("F1", format="percent"),
                "duration_s": st.column_config.NumberColumn("duration", format="%.0f s"),
                "created": st.column_config.DatetimeColumn("created", format="YYYY-MM-DD HH:mm"),
                "error": st.column_config.TextColumn("error", width="medium"),
                "owner": st.column_config.TextColumn("owner", help="Who started the run"),
                "experiment": st.column_config.LinkColumn(
                    "experiment",
                    display_text=rv.EXPERIMENT_TEXT,
                    help="The experiment the run is an arm of (opens the Experiments page)",
                ),
            },
        )
    if not view.selected:
        st.caption("Select runs (the boxes on the left) to compare them, stop, rename or delete.")

if view.selected:
    with st.container(key="run-actions", border=True):
        for message in view.errors:
            st.error(message)
        if view.locked_text:
            st.container(key="read-only").info(view.locked_text, icon="🔒")
        single = view.single
        cols = st.columns([1, 2, 4] if single else [1, 6], vertical_alignment="bottom")
        stoppable = view.stoppable
        stop = f"⏹ Stop ({len(stoppable)})"
        if cols[0].button(stop, key="stop-selected", disabled=not stoppable,
                          help=view.locked_text if not stoppable else None):  # fmt: skip
            problem = rv.stop_runs(store, [run.id for run in stoppable], viewer)
            if problem:
                st.error(problem)
            else:
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
                locked = view.renamable is None
                new_name = r1.text_input("New name", value=single.name, key=f"rename:{single.id}",
                                         disabled=locked)  # fmt: skip
                if r2.form_submit_button("Rename", disabled=locked,
                                         help=view.locked_text if locked else None):  # fmt: skip
                    problem = rv.rename_run(store, single.id, new_name, viewer)
                    if problem:
                        st.error(problem)
                    else:
                        st.rerun()
        deletable = view.deletable
        label = ", ".join(r.name for r in deletable)
        with st.expander(f"🗑 Delete {len(deletable)} run(s)", expanded=False):
            if not deletable and view.locked_text:
                st.caption(view.locked_text)
            elif not deletable:
                st.caption("Running runs must be stopped before they can be deleted.")
            else:
                st.caption(f"Deleted runs go to the trash for {rv.TRASH_DAYS} days (Undo).")
                sure = st.checkbox(
                    f"Yes, delete {md_escape(label)} with their metrics and checkpoints",
                    key="delete-confirm",
                )
                if st.button("Delete", key="delete-button", type="primary", disabled=not sure):
                    moved, problem = rv.trash_runs(store, deletable, viewer)
                    st.session_state["runs-undo"] = [(r.id, r.name) for r in moved] or None
                    st.session_state.pop("delete-confirm", None)
                    if problem:
                        st.error(problem)
                    else:
                        st.rerun()

    st.subheader(f"Compare {len(view.selected)} run(s)")
    with st.container(key="overlay"):
        k1, k2 = st.columns([2, 3])
        key = k1.selectbox(
            "Curve", list(rv.OVERLAY_KEYS), format_func=rv.OVERLAY_KEYS.__getitem__,
            key="overlay-key",
        )  # fmt: skip
        smoothing = k2.slider(
            "Smoothing", 0.0, 0.95, 0.6, 0.05, key="overlay-smooth",
            disabled=key.startswith("test_"),
        )  # fmt: skip
        st.plotly_chart(view.overlay(key, smoothing), width="stretch", key="overlay-fig")
    with st.container(key="compare-metrics"):
        if view.bars is not None:
            st.plotly_chart(view.bars, width="stretch", key="final-bars")
        st.table(view.compare)

if view.trash:
    with st.expander(f"🗑 Trash ({len(view.trash)})", expanded=False), st.container(key="trash"):
        st.caption(
            f"Deleted runs stay here {rv.TRASH_DAYS} days, then are removed for good "
            "(`python -m cnnlab runs list --trash`, `… runs restore ID`)."
        )
        names = {r.id: f"{r.name} ({r.model}, {r.status})" for r in view.trash}
        chosen = st.multiselect("Runs to restore", list(names), format_func=names.__getitem__)
        if st.button("Restore", key="restore-button", disabled=not chosen):
            problem = rv.restore_runs(store, chosen, viewer)
            if problem:
                st.error(problem)
            else:
                st.session_state.pop("runs-undo", None)
                st.rerun()
