"""The classroom room: identities, class limits, the fair queue, access rules, the teacher's
password (hash, secrets file, throttle) and the ``cnnlab teacher`` commands.

The queue tests use the real store and the real Huey queue in a temporary ``CNNLAB_HOME`` (no
worker: the queued tasks are read back in the order a worker would take them).
"""

from __future__ import annotations

import io
import subprocess
import sys
import tomllib
from pathlib import Path

import pytest

from cnnlab.classroom import fair_queue, teacher
from cnnlab.classroom.access import MACHINE, Viewer, may_change, require_change, why_not
from cnnlab.classroom.identity import (
    NAME_MAX,
    Owner,
    check_name,
    default_name,
    is_owner_id,
    new_owner_id,
)
from cnnlab.classroom.limits import ClassLimits, load_limits, save_limits
from cnnlab.cli import main
from cnnlab.errors import UserError
from cnnlab.training.config import TrainConfig
from cnnlab.training.names import RUNNING
from cnnlab.training.queue import get_huey
from cnnlab.training.store import RunStore

ROOT = Path(__file__).resolve().parents[1]
SMALL = TrainConfig(model="small-cnn", epochs=1, train_limit=200, device="cpu")


@pytest.fixture(autouse=True)
def _a_class_with_a_teacher(monkeypatch: pytest.MonkeyPatch) -> None:
    """The limits hold once a teacher is configured (each test below that needs none says so)."""
    monkeypatch.setenv(teacher.ENV_VAR, teacher.hash_password("correct horse"))


def owner(name: str) -> Owner:
    return Owner(new_owner_id(), name)


# --- identity ---------------------------------------------------------------------------------


def test_owner_ids_are_random_hex_and_checked() -> None:
    a, b = new_owner_id(), new_owner_id()
    assert a != b and is_owner_id(a) and len(a) == 32
    assert not is_owner_id("A" * 32) and not is_owner_id("../etc") and not is_owner_id(None)
    with pytest.raises(UserError, match="32 hex digits"):
        Owner("not-an-id", "Ada")
    assert default_name(a) == f"student-{a[:4]}"


@pytest.mark.parametrize(
    ("raw", "clean"),
    [("  Ada  Lovelace ", "Ada Lovelace"), ("**bold** <b>x</b>", "**bold** <b>x</b>"),
     ("Zoë 李", "Zoë 李"), ("x" * NAME_MAX, "x" * NAME_MAX)],
)  # fmt: skip
def test_names_are_plain_text_kept_as_typed(raw: str, clean: str) -> None:
    assert check_name(raw) == clean


@pytest.mark.parametrize(
    "raw", ["", "   ", "x" * (NAME_MAX + 1), "a\nb", "tab\there", "bell\x07", "rtl\u202eevil",
            "zero\u200bwidth", 42, None],
)  # fmt: skip
def test_bad_names_get_one_message(raw: object) -> None:
    with pytest.raises(UserError, match=f"plain text of 1 to {NAME_MAX} characters"):
        check_name(raw)


# --- limits -----------------------------------------------------------------------------------


def test_limits_round_trip_through_the_store_and_refuse_bad_values() -> None:
    store = RunStore()
    assert load_limits(store) == ClassLimits()  # nothing saved: the defaults (K = 2)
    assert load_limits(store).runs_per_student == 2
    limits = ClassLimits(("small-cnn", "lenet5"), 2, 5000, 3, 10)
    save_limits(store, limits)
    assert load_limits(RunStore()) == limits
    with pytest.raises(UserError, match="runs per student must be a whole number from 1"):
        save_limits(store, ClassLimits(runs_per_student=0))
    with pytest.raises(UserError, match="unknown class limit"):
        ClassLimits.from_dict({"max_epoch": 3})
    store.put_setting("class_limits", {"runs_per_student": "lots"})  # hand-broken setting
    assert load_limits(store) == ClassLimits()


def test_limits_say_which_rule_a_config_breaks() -> None:
    limits = ClassLimits(("small-cnn",), 2, 5000)
    limits.check_config(TrainConfig(epochs=2, train_limit=5000))
    with pytest.raises(UserError, match="allows the models small-cnn; 'lenet5'"):
        limits.check_config(TrainConfig(model="lenet5"))
    with pytest.raises(UserError, match="at most 2 epoch"):
        limits.check_config(TrainConfig(epochs=3, train_limit=100))
    with pytest.raises(UserError, match=r"at most 5,000 training images.*uses 60,000"):
        limits.check_config(TrainConfig())  # no train limit: the whole 60,000


# --- the fair queue ---------------------------------------------------------------------------


def taken_order(store: RunStore) -> list[str]:
    """The run ids in the order a worker takes their tasks (highest priority first)."""
    huey = get_huey()
    order = []
    while (task := huey.dequeue()) is not None:
        order.append(task.args[0])
    return order


def test_round_robin_everyones_first_run_goes_before_anyones_second() -> None:
    store = RunStore()
    save_limits(store, ClassLimits(runs_per_student=3))
    ada, bob = owner("Ada"), owner("Bob")
    a1, a2, a3 = fair_queue.submit([SMALL, SMALL, SMALL], store, ada)
    (b1,) = fair_queue.submit([SMALL], store, bob)
    (b2,) = fair_queue.submit([SMALL], store, bob)
    assert taken_order(store) == [a1, b1, a2, b2, a3]
    runs = {r.id: r for r in store.list_runs()}
    assert runs[a1].owner_id == ada.id and runs[a1].owner_name == "Ada"
    assert runs[b2].owner_id == bob.id


def test_the_third_run_is_refused_with_when_there_will_be_room() -> None:
    store = RunStore()
    ada = owner("Ada")
    first = fair_queue.submit([SMALL], store, ada) + fair_queue.submit([SMALL], store, ada)
    before = len(store.list_runs())
    with pytest.raises(UserError, match=r"already have 2 .* allows 2 per student: there will be"):
        fair_queue.submit([SMALL], store, ada)
    assert len(store.list_runs()) == before  # nothing queued
    assert fair_queue.standing(store, ada).has_room is False
    store.cancel(first[0])  # one ends: room again
    assert fair_queue.standing(store, ada).has_room is True
    fair_queue.submit([SMALL], store, ada)


def test_a_running_entry_is_named_with_its_time_left() -> None:
    store = RunStore()
    save_limits(store, ClassLimits(runs_per_student=1))
    ada = owner("Ada")
    (run_id,) = fair_queue.submit([SMALL], store, ada)
    assert store.mark_running(run_id, 1, "cpu")
    store.add_metrics(run_id, [(5, 0.1, "eta_seconds", 42.0)])
    with pytest.raises(UserError, match=r"running .*about 42 s left"):
        fair_queue.submit([SMALL], store, ada)
    assert store.get_run(run_id).status == RUNNING  # type: ignore[union-attr]


def test_an_experiments_arms_are_one_entry_and_take_turns() -> None:
    store = RunStore()
    ada, bob = owner("Ada"), owner("Bob")
    exp = store.create_experiment("sweep", "lr sweep", {}, owner_id=ada.id, owner_name="Ada")
    arms = fair_queue.submit([SMALL] * 3, store, ada, experiment_id=exp)
    (solo,) = fair_queue.submit([SMALL], store, ada)  # 2 entries: the experiment + this run
    (b1,) = fair_queue.submit([SMALL], store, bob)
    with pytest.raises(UserError, match="already have 2"):
        fair_queue.submit([SMALL], store, ada)
    more = fair_queue.submit([SMALL], store, ada, experiment_id=exp)  # same entry: allowed
    assert {r.experiment_id for r in store.experiment_runs(exp)} == {exp}
    order = taken_order(store)
    assert order.index(b1) < order.index(arms[1])  # Bob's first before Ada's experiment's 2nd
    assert set(order) == {*arms, solo, b1, *more}


def test_limits_and_queue_cap_refuse_the_whole_submission() -> None:
    store = RunStore()
    save_limits(store, ClassLimits(max_epochs=1, runs_per_student=5, queue_cap=2))
    ada, bob = owner("Ada"), owner("Bob")
    with pytest.raises(UserError, match="at most 1 epoch"):
        fair_queue.submit([SMALL, TrainConfig(epochs=2, train_limit=100)], store, ada)
    assert store.list_runs() == []
    fair_queue.submit([SMALL, SMALL], store, ada)
    with pytest.raises(
        UserError, match=r"class queue is full \(2 run\(s\) waiting, the limit is 2"
    ):
        fair_queue.submit([SMALL], store, bob)
    assert len(store.list_runs()) == 2


def test_without_a_teacher_nothing_is_limited_but_turns_are_kept(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.delenv(teacher.ENV_VAR)
    monkeypatch.setattr(teacher, "secrets_files", list)  # nor a secrets file
    assert not fair_queue.class_is_limited()
    store = RunStore()
    ada, bob = owner("Ada"), owner("Bob")
    a_ids = fair_queue.submit([SMALL, SMALL, TrainConfig(epochs=9, train_limit=100)], store, ada)
    (b1,) = fair_queue.submit([SMALL], store, bob)
    assert taken_order(store) == [a_ids[0], b1, *a_ids[1:]]


def test_the_cli_has_no_limits() -> None:
    store = RunStore()
    save_limits(store, ClassLimits(max_epochs=1, runs_per_student=1, queue_cap=1))
    ids = fair_queue.submit([SMALL, TrainConfig(epochs=3, train_limit=100)], store, None)
    assert [store.get_run(i).owner_id for i in ids] == [None, None]  # type: ignore[union-attr]


def test_a_bad_config_queues_nothing() -> None:
    store = RunStore()
    with pytest.raises(UserError, match=r"unknown model|no model"):
        fair_queue.submit([SMALL, TrainConfig(model="no-such-net")], store, owner("Ada"))
    assert store.list_runs() == []
    with pytest.raises(UserError, match="nothing to queue"):
        fair_queue.submit([], store, owner("Ada"))


# --- access -----------------------------------------------------------------------------------


def test_only_the_owner_or_the_teacher_may_change_a_run() -> None:
    store = RunStore()
    ada, bob = owner("Ada"), owner("Bob")
    (mine,) = fair_queue.submit([SMALL], store, ada)
    (cli,) = fair_queue.submit([SMALL], store, None)
    run, cli_run = store.require_run(mine), store.require_run(cli)
    assert may_change(run, Viewer(ada)) and not may_change(run, Viewer(bob))
    assert may_change(run, Viewer(bob, teacher=True)) and may_change(run, MACHINE)
    assert why_not(run, Viewer(bob)) == (
        "read-only: this run belongs to Ada; only they or the teacher can change it"
    )
    with pytest.raises(UserError, match="belongs to Ada"):
        require_change(run, Viewer(bob, class_has_teacher=True))
    # a CLI run: the machine's owner's; a student may change it only where no teacher is set up
    assert may_change(cli_run, Viewer(bob))
    assert not may_change(cli_run, Viewer(bob, class_has_teacher=True))
    assert "belongs to the teacher" in (why_not(cli_run, Viewer(bob, class_has_teacher=True)) or "")


# --- the teacher's password -------------------------------------------------------------------


def test_hash_is_salted_scrypt_and_verifies() -> None:
    one, two = teacher.hash_password("correct horse"), teacher.hash_password("correct horse")
    assert one != two and one.startswith("scrypt$16384$8$1$")
    assert teacher.verify_password("correct horse", one)
    assert not teacher.verify_password("correct horsE", one)
    assert not teacher.verify_password("x" * 5000, one)
    for bad in ("", "bcrypt$1$2$3$4$5", "scrypt$3$8$1$AAAA$AAAA", "scrypt$16384$8$1$!!$??"):
        with pytest.raises(UserError, match="scrypt\\$16384"):
            teacher.verify_password("correct horse", bad)
    with pytest.raises(UserError, match="8 to 1024 characters"):
        teacher.hash_password("short")


def test_configured_hash_env_first_then_secrets_files(tmp_path: Path) -> None:
    hashed = teacher.hash_password("correct horse")
    assert teacher.configured_hash({}, [tmp_path / "none.toml"]) is None
    secrets = tmp_path / "secrets.toml"
    secrets.write_text(f'[cnnlab]\nteacher_password_hash = "{hashed}"\n')
    assert teacher.configured_hash({}, [secrets]) == hashed
    assert teacher.configured_hash({teacher.ENV_VAR: "scrypt$env"}, [secrets]) == "scrypt$env"
    secrets.write_text("[cnnlab\n")
    with pytest.raises(UserError, match="cannot read"):
        teacher.configured_hash({}, [secrets])


def test_write_hash_keeps_the_rest_of_the_file(tmp_path: Path) -> None:
    secrets = tmp_path / ".streamlit" / "secrets.toml"
    teacher.write_hash(secrets, first := teacher.hash_password("correct horse"))
    assert tomllib.loads(secrets.read_text())["cnnlab"]["teacher_password_hash"] == first
    assert secrets.stat().st_mode & 0o077 == 0
    secrets.write_text(
        '# my keys\napi = "k"\n\n[cnnlab]\nother = 1\nteacher_password_hash = "old"\n'
        '\n[db]\nurl = "sqlite://"\n'
    )
    teacher.write_hash(secrets, second := teacher.hash_password("another pass"))
    text = secrets.read_text()
    assert text.startswith("# my keys\n") and tomllib.loads(text) == {
        "api": "k",
        "cnnlab": {"other": 1, "teacher_password_hash": second},
        "db": {"url": "sqlite://"},
    }
    secrets.write_text('api = "k"\n')
    teacher.write_hash(secrets, second)
    assert tomllib.loads(secrets.read_text())["api"] == "k"


def test_throttle_allows_a_few_tries_a_minute() -> None:
    now = [1000.0]
    throttle = teacher.LoginThrottle(tries=3, window_s=60, clock=lambda: now[0])
    hashed = teacher.hash_password("correct horse")
    for _ in range(3):
        assert not throttle.attempt("wrong password", hashed)
    with pytest.raises(UserError, match="too many wrong passwords: try again in 60 s"):
        throttle.attempt("correct horse", hashed)  # even the right one waits
    now[0] += 61
    assert throttle.attempt("correct horse", hashed)
    assert throttle.wait_s() == 0


def test_teacher_cli_hashes_from_stdin_and_sets_the_file(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse\n"))
    assert main(["teacher", "hash-password"]) == 0
    printed = capsys.readouterr().out.strip()
    assert teacher.verify_password("correct horse", printed) and "correct horse" not in printed
    secrets = tmp_path / "s.toml"
    secrets.write_text('keep = "me"\n')
    monkeypatch.setattr(sys, "stdin", io.StringIO("correct horse\n"))
    assert main(["teacher", "set-password", "--file", str(secrets)]) == 0
    data = tomllib.loads(secrets.read_text())
    assert data["keep"] == "me"
    assert teacher.verify_password("correct horse", data["cnnlab"]["teacher_password_hash"])
    assert "correct horse" not in capsys.readouterr().out


def test_teacher_cli_bad_password_is_one_line_exit_2() -> None:
    done = subprocess.run(
        [sys.executable, "-m", "cnnlab", "teacher", "hash-password"],
        input="short\n", capture_output=True, text=True, cwd=ROOT, timeout=60,
    )  # fmt: skip
    assert done.returncode == 2 and done.stdout == ""
    assert (
        done.stderr
        == "cnnlab: error: a teacher password must be 8 to 1024 characters on one line\n"
    )
