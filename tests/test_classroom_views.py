"""Ownership in the view-models (Runs, Train, class board) and the class board page.

A forged action (another student's run id sent to stop/rename/delete/restore) must change
nothing in the store: the check is in the action functions, not only in a disabled button.
"""

from __future__ import annotations

import csv
import io
from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnnlab.classroom import fair_queue, teacher
from cnnlab.classroom.access import Viewer
from cnnlab.classroom.identity import Owner, new_owner_id
from cnnlab.classroom.limits import ClassLimits, load_limits
from cnnlab.training.config import TrainConfig
from cnnlab.training.names import ACCURACY, FINISHED, QUEUED, STOPPED
from cnnlab.training.store import RunStore
from cnnlab.views import class_board as cb
from cnnlab.views import runs as rv
from cnnlab.views import train as tv
from cnnlab.views.class_ui import decode_name, encode_name

ROOT = Path(__file__).resolve().parents[1]
SMALL = TrainConfig(model="small-cnn", epochs=1, train_limit=200, device="cpu")
PASSWORD = "correct horse"


@pytest.fixture
def klass(monkeypatch: pytest.MonkeyPatch) -> tuple[RunStore, Viewer, Viewer, Viewer]:
    """A class with a teacher: Ada's and Bob's viewers, the teacher's, on one store."""
    monkeypatch.setenv(teacher.ENV_VAR, teacher.hash_password(PASSWORD))
    ada = Viewer(Owner(new_owner_id(), "Ada"), class_has_teacher=True)
    bob = Viewer(Owner(new_owner_id(), '=HYPERLINK("x")'), class_has_teacher=True)
    boss = Viewer(Owner(new_owner_id(), "Ms T"), teacher=True, class_has_teacher=True)
    return RunStore(), ada, bob, boss


def test_anothers_run_is_read_only_and_forged_actions_change_nothing(klass) -> None:
    store, ada, bob, boss = klass
    run_id = tv.launch(store, SMALL, ada)
    before = store.require_run(run_id)
    assert before.owner_name == "Ada" and before.status == QUEUED

    seen_by_bob = rv.runs_view(store, [run_id], viewer=bob)
    assert seen_by_bob.selected[0].id == run_id  # visible and comparable …
    assert seen_by_bob.compare is not None
    assert seen_by_bob.stoppable == () and seen_by_bob.deletable == ()  # … but read-only
    assert seen_by_bob.renamable is None
    assert seen_by_bob.locked_text == (
        "read-only: this run belongs to Ada; only they or the teacher can change it"
    )
    assert list(seen_by_bob.table["owner"]) == ["Ada"]
    # forged clicks: each action refuses and the store is as it was
    assert "belongs to Ada" in (rv.stop_runs(store, [run_id], bob) or "")
    assert "belongs to Ada" in (rv.rename_run(store, run_id, "mine now", bob) or "")
    moved, problem = rv.trash_runs(store, [before], bob)
    assert moved == [] and "belongs to Ada" in (problem or "")
    assert "belongs to Ada" in (tv.stop_run(store, run_id, bob) or "")
    assert store.require_run(run_id) == before

    seen_by_ada = rv.runs_view(store, [run_id], viewer=ada)
    assert seen_by_ada.locked == {} and seen_by_ada.renamable is not None
    assert rv.rename_run(store, run_id, "ada's", ada) is None
    assert tv.run_ownership(store.require_run(run_id), bob).may_change is False

    # the teacher may change it; a trashed run can be restored only by its owner or the teacher
    moved, problem = rv.trash_runs(store, [store.require_run(run_id)], boss)
    assert problem is None and [r.id for r in moved] == [run_id]
    assert rv.runs_view(store, viewer=bob).trash == ()
    assert [r.id for r in rv.runs_view(store, viewer=ada).trash] == [run_id]
    assert "belongs to Ada" in (rv.restore_runs(store, [run_id], bob) or "")
    assert rv.restore_runs(store, [run_id], ada) is None
    assert store.require_run(run_id).status == STOPPED  # trashing cancelled the queued run


def test_the_train_page_launch_goes_through_the_fair_queue(klass) -> None:
    store, ada, _, boss = klass
    tv.launch(store, SMALL, ada)
    assert tv.queue_note(store, ada) == (
        "You have 1 of 2 runs queued or running (the class's limit per student)."
    )
    tv.launch(store, SMALL, ada)
    with pytest.raises(Exception, match="already have 2"):
        tv.launch(store, SMALL, ada)
    for _ in range(3):  # the teacher is not held to the class limits
        tv.launch(store, SMALL, boss)
    assert tv.queue_note(store, boss) is None


def test_runs_filter_and_group_by_experiment(klass) -> None:
    store, ada, bob, _ = klass
    solo = tv.launch(store, SMALL, bob)
    exp = store.create_experiment("sweep", "lr sweep", {}, owner_id=ada.owner_id, owner_name="Ada")
    arms = fair_queue.submit([SMALL, SMALL], store, ada.owner, experiment_id=exp)
    late = tv.launch(store, SMALL, bob)
    view = rv.runs_view(store, viewer=bob)
    assert view.ids == (late, arms[1], arms[0], solo)  # newest first, arms together
    assert dict(view.experiments)[exp] == f"lr sweep ({exp})"
    links = dict(zip(view.table["id"], view.table["experiment"], strict=True))
    assert links[arms[0]] == f"Experiments?experiment={exp}" and links[solo] is None
    assert rv.runs_view(store, viewer=bob, experiment=exp).ids == (arms[1], arms[0])
    assert rv.runs_view(store, viewer=bob, experiment=rv.SINGLE).ids == (late, solo)
    assert rv.runs_view(store, viewer=bob, experiment="x-no-such").experiment == rv.ALL


def test_class_board_counts_best_accuracy_and_exports_safe_csv(klass) -> None:
    store, ada, bob, boss = klass
    a1, a2 = tv.launch(store, SMALL, ada), tv.launch(store, SMALL, ada)
    b1 = tv.launch(store, SMALL, bob)
    for run_id, accuracy in ((a1, 0.97), (b1, 0.91)):
        assert store.mark_running(run_id, 1, "cpu")
        store.add_metrics(run_id, [(10, 1.0, ACCURACY, accuracy)])
        store.finish_run(run_id, FINISHED)
    view = cb.class_board_view(store)
    students = view.students.set_index("student")
    assert students.loc["Ada", "best accuracy"] == pytest.approx(0.97)
    assert students.loc["Ada", "queued"] == 1 and students.loc["Ada", "runs"] == 2
    assert view.students["student"].iloc[0] == "Ada"  # best first
    assert list(view.active["id"]) == [a2]
    rows = list(csv.DictReader(io.StringIO(view.csv.decode())))
    assert {r["id"] for r in rows} == {a1, a2, b1}
    assert {r["student"] for r in rows if r["id"] == b1} == {'\'=HYPERLINK("x")'}  # not a formula

    limits = cb.limits_from_form(["small-cnn"], 2, 1000, 3, 0)
    assert limits == ClassLimits(("small-cnn",), 2, 1000, 3, None)
    assert "only the teacher" in (cb.save_class_limits(store, limits, ada) or "")
    assert load_limits(store) == ClassLimits()
    assert cb.save_class_limits(store, limits, boss) is None
    assert load_limits(store) == limits
    with pytest.raises(Exception, match="runs per student"):
        cb.limits_from_form([], 0, 0, 0, 0)


def test_class_board_page_needs_the_teacher_and_throttles_wrong_passwords(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(teacher.ENV_VAR, teacher.hash_password(PASSWORD))
    monkeypatch.setattr("cnnlab.views.class_ui.WRONG_PASSWORD_DELAY_S", 0.0)
    at = AppTest.from_file(str(ROOT / "pages" / "7_Class_Board.py"), default_timeout=120).run()
    assert not at.exception, [e.value for e in at.exception]
    assert "log in under" in "\n".join(str(i.value) for i in at.info)
    for _ in range(3):
        at.text_input(key="teacher-password").input("wrong password")
        at = at.button(key="FormSubmitter:teacher-login-Log in").click().run()
        assert "Wrong password." in "\n".join(str(e.value) for e in at.error)
    at.text_input(key="teacher-password").input(PASSWORD)
    at = at.button(key="FormSubmitter:teacher-login-Log in").click().run()
    assert "too many wrong passwords" in "\n".join(str(e.value) for e in at.error)
    assert not at.dataframe  # still locked
    shown = [
        e.value for kind in ("error", "info", "markdown", "caption") for e in getattr(at, kind)
    ]
    assert not any(PASSWORD in str(value) for value in shown)  # never echoed


def test_the_teacher_logs_in_sees_the_board_and_sets_limits(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(teacher.ENV_VAR, teacher.hash_password(PASSWORD))
    store = RunStore()
    tv.launch(store, SMALL, Viewer(Owner(new_owner_id(), "Ada"), class_has_teacher=True))
    at = AppTest.from_file(str(ROOT / "pages" / "7_Class_Board.py"), default_timeout=120).run()
    at.text_input(key="teacher-password").input(PASSWORD)
    at = at.button(key="FormSubmitter:teacher-login-Log in").click().run()
    assert not at.exception, [e.value for e in at.exception]
    assert "teacher-password" not in [t.key for t in at.text_input]  # the login form is gone
    assert "Teacher mode" in "\n".join(str(s.value) for s in at.success)
    assert "Ada" in at.dataframe[0].value["student"].tolist()
    at.number_input(key="limit-k").set_value(1)
    at.number_input(key="limit-epochs").set_value(2)
    at = at.button(key="FormSubmitter:class-limits-Save limits").click().run()
    assert "Saved" in "\n".join(str(s.value) for s in at.success)
    limits = load_limits(store)
    assert limits.runs_per_student == 1 and limits.max_epochs == 2


@pytest.mark.parametrize(
    "value", ["", "%%%not base64", "_-8=", "QWRhCg==", encode_name("x" * 41), None, 7]
)  # fmt: skip
def test_a_bad_name_cookie_falls_back_to_the_default_name(value: object) -> None:
    assert decode_name(value) is None


def test_name_cookie_round_trips() -> None:
    for name in ("Ada", "Zoë 李", "**x** <b>", "a=b; c"):
        assert decode_name(encode_name(name)) == name
        assert set(encode_name(name)) <= set(
            "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_="
        )  # no quoting in a cookie
