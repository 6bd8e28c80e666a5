"""Class board (the teacher's): every run by student, best accuracy per student, what is queued
and running now, a CSV export, and the class limits. Layout only: cnnlab.views.class_board."""

from __future__ import annotations

import streamlit as st

from cnnlab.errors import UserError
from cnnlab.views import class_board as cb
from cnnlab.views.class_ui import classroom_sidebar
from cnnlab.views.ui import open_run_store, page_header

page_header("Class board", "🎓", "Every student's runs, their best accuracy, the queue now, "
            "and the class limits.")  # fmt: skip
store = open_run_store()
if store is None:
    st.stop()
viewer = classroom_sidebar()
if viewer.class_has_teacher and not viewer.teacher:
    st.info("The class board is the teacher's: log in under **🎓 Teacher** in the sidebar.",
            icon="🔒")  # fmt: skip
    st.stop()


@st.fragment(run_every="5s")
def board() -> None:
    view = cb.class_board_view(store)
    if view.problem:
        st.error(view.problem, icon="🚫")
        return
    percent = st.column_config.NumberColumn(format="percent")
    st.subheader("Students")
    with st.container(key="board-students"):
        st.dataframe(view.students, hide_index=True, column_config={"best accuracy": percent})
    st.subheader(f"Queued and running now ({len(view.active)})")
    with st.container(key="board-active"):
        if view.active.empty:
            st.caption("Nothing is queued or running.")
        else:
            st.dataframe(view.active, hide_index=True, column_config={
                "turn": st.column_config.NumberColumn(
                    help="The run's place among its student's entries: every student's 1st "
                    "goes before anyone's 2nd"),
                "created": st.column_config.DatetimeColumn(format="HH:mm:ss"),
            })  # fmt: skip
    st.subheader(f"Every run ({len(view.runs)})")
    with st.container(key="board-runs"):
        st.dataframe(view.runs, hide_index=True, column_config={
            "accuracy": percent,
            "created": st.column_config.DatetimeColumn(format="YYYY-MM-DD HH:mm"),
        })  # fmt: skip
        st.download_button("⬇ Every run (.csv)", data=view.csv, file_name="class-runs.csv",
                           mime="text/csv", on_click="ignore", key="board-csv")  # fmt: skip


board()

st.subheader("Class limits")
if not viewer.class_has_teacher:
    st.caption(
        "No teacher password is set up, so nothing is limited. Set one with "
        "`python -m cnnlab teacher set-password` and restart the app to limit the class."
    )
    st.stop()
try:
    limits, models = cb.current_limits(store), cb.model_choices()
except UserError as err:
    st.error(str(err))
    st.stop()
with st.form("class-limits", border=True), st.container(key="class-limits"):
    allowed = st.multiselect("Allowed models (none picked: every model)", list(models),
                             default=[m for m in (limits.allowed_models or ()) if m in models],
                             key="limit-models")  # fmt: skip
    c1, c2, c3, c4 = st.columns(4)
    epochs = c1.number_input("Max epochs (0: no limit)", 0, 1000, limits.max_epochs or 0,
                             key="limit-epochs")  # fmt: skip
    images = c2.number_input("Max training images per run (0: no limit)", 0, 60_000,
                             limits.max_train_images or 0, step=1000,
                             key="limit-images")  # fmt: skip
    per_student = c3.number_input("Runs per student (queued + running)", 1, 100,
                                  limits.runs_per_student, key="limit-k")  # fmt: skip
    cap = c4.number_input("Queue cap (waiting runs, 0: no limit)", 0, 10_000,
                          limits.queue_cap or 0, key="limit-cap")  # fmt: skip
    if st.form_submit_button("Save limits", type="primary"):
        try:
            new = cb.limits_from_form(allowed, epochs, images, per_student, cap)
        except UserError as err:
            st.error(str(err))
        else:
            problem = cb.save_class_limits(store, new, viewer)
            if problem:
                st.error(problem)
            else:
                st.success("Saved: the limits hold for every new run from now on.", icon="✅")
