"""Train and Runs pages under Streamlit's AppTest: form validation, presets, session state, the
run id in the URL, messages instead of tracebacks, and a real finished run's results."""

from __future__ import annotations

from pathlib import Path

import pytest
from streamlit.testing.v1 import AppTest

from cnnlab.counting.spec import PRESETS
from cnnlab.training import loop
from cnnlab.training.config import TrainConfig
from cnnlab.training.store import RunStore

APP = str(Path(__file__).resolve().parents[1] / "app.py")
TRAIN = "pages/3_Train.py"
RUNS = "pages/4_Runs.py"
TIMEOUT = 120  # the first run imports torch and the zoo


def run_page(path: str, **query: str) -> AppTest:
    at = AppTest.from_file(APP, default_timeout=TIMEOUT)
    at.switch_page(path)  # run the page inside the multipage app, so page links resolve
    for key, value in query.items():
        at.query_params[key] = value
    return at.run()


def texts(at: AppTest, kind: str) -> str:
    return "\n".join(str(e.value) for e in getattr(at, kind))


def no_exception(at: AppTest) -> None:
    assert not at.exception, [e.value for e in at.exception]


def test_defaults_show_cost_and_no_worker_warning() -> None:
    at = run_page(TRAIN)
    no_exception(at)
    assert at.selectbox(key="tr_model").value == "small-cnn"
    assert at.number_input(key="tr_epochs").value == 1
    assert at.number_input(key="tr_limit").value == 0  # all training images
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] == "409,082"
    assert metrics["MACs / image"].endswith("M")
    assert any(label.startswith("Estimated time on") for label in metrics)
    assert not at.button(key="train-button").disabled
    assert "No training worker is running" in texts(at, "warning")
    assert "python -m cnnlab worker" in texts(at, "warning")
    assert "Start a run above" in texts(at, "info")


@pytest.mark.parametrize(
    ("key", "value", "message"),
    [
        ("tr_epochs", 0, "epochs must be at least 1"),
        ("tr_batch_size", 0, "batch size must be at least 1"),
        ("tr_lr", 0.0, "learning rate must be greater than 0"),
        ("tr_limit", 5, "train limit must be at least 10"),
    ],
)
def test_invalid_values_block_launch_with_one_line(key: str, value: object, message: str) -> None:
    at = run_page(TRAIN)
    at.number_input(key=key).set_value(value).run()
    no_exception(at)
    assert message in texts(at, "error")
    assert at.button(key="train-button").disabled


def test_model_that_cannot_take_28_moves_up_or_says_which_size_works() -> None:
    at = run_page(TRAIN)
    at.selectbox(key="tr_model").set_value("vgg16").run()
    no_exception(at)
    assert at.selectbox(key="tr_input_size").value == 32  # the smallest size VGG-16 takes
    assert not at.error and not at.button(key="train-button").disabled
    at.selectbox(key="tr_input_size").set_value(28).run()  # chosen by hand: explained
    errors = texts(at, "error")
    assert "vgg16 cannot take 1×28×28" in errors and "input size ≥ 32" in errors
    assert at.button(key="train-button").disabled
    at.selectbox(key="tr_model").set_value("alexnet-report").run()
    assert at.selectbox(key="tr_input_size").value == 64


def test_report_preset_fills_the_form_and_warns_without_blocking() -> None:
    at = run_page(TRAIN)
    at.button(key="preset-report").click().run()
    no_exception(at)
    assert at.selectbox(key="tr_model").value == "vgg16"
    assert at.selectbox(key="tr_input_size").value == 224
    assert at.number_input(key="tr_epochs").value == 3
    assert at.number_input(key="tr_batch_size").value == 16
    assert at.number_input(key="tr_lr").value == pytest.approx(1e-4)
    assert at.selectbox(key="tr_optimizer").value == "adam"
    metrics = {m.label: m.value for m in at.metric}
    assert metrics["Parameters"] == "134,300,362"  # VGG-16, 1-channel stem, 10 classes
    if "cpu" in "".join(metrics):
        assert "Long run" in texts(at, "warning")
    assert not at.button(key="train-button").disabled  # a warning, not a block
    at.button(key="preset-default").click().run()
    assert at.selectbox(key="tr_model").value == "small-cnn"
    assert at.number_input(key="tr_epochs").value == 1


def test_conv_lab_stack_is_offered_only_when_the_lab_has_one() -> None:
    at = run_page(TRAIN)
    assert not any("Conv Lab" in o for o in at.selectbox(key="tr_model").options)
    spec = next(iter(PRESETS.values())).to_dict()
    at.session_state["conv_lab_spec"] = spec
    at.run()
    assert f"Conv Lab stack: {spec['name']}" in at.selectbox(key="tr_model").options
    at.selectbox(key="tr_model").set_value("stack").run()
    no_exception(at)
    size = spec["input"][-1]
    if size in (28, 32, 64, 112, 224):
        assert at.selectbox(key="tr_input_size").value == size


def test_train_queues_the_run_and_puts_its_id_in_the_url() -> None:
    at = run_page(TRAIN)
    at.number_input(key="tr_limit").set_value(500).run()
    at.button(key="train-button").click().run()
    no_exception(at)
    run_id = at.query_params["run"]
    run_id = run_id[-1] if isinstance(run_id, list) else run_id
    run = RunStore().get_run(run_id)
    assert run is not None and run.status == "queued"
    assert run.config["train_limit"] == 500 and run.params == 409_082
    assert "Queued" in texts(at, "info")
    assert at.button(key="stop-button").label == "⏹ Stop"
    at.button(key="stop-button").click().run()  # a queued run is cancelled at once
    assert RunStore().get_run(run_id).status == "stopped"  # type: ignore[union-attr]


def test_bad_or_unknown_run_ids_are_messages() -> None:
    at = run_page(TRAIN, run="../../etc")
    no_exception(at)
    assert "is not a run id" in texts(at, "error")
    at = run_page(TRAIN, run="0123456789ab")
    no_exception(at)
    assert "No run with id `0123456789ab`" in texts(at, "error")


def test_unreadable_store_is_a_message(tmp_path, monkeypatch) -> None:
    broken = tmp_path / "home"
    broken.mkdir()
    (broken / "runs.db").write_bytes(b"this is not a database" * 100)
    monkeypatch.setenv("CNNLAB_HOME", str(broken))
    for page in (TRAIN, RUNS):
        at = run_page(page)
        no_exception(at)
        assert "The run store cannot be read" in texts(at, "error")


@pytest.fixture
def finished_run() -> str:
    """A real (tiny) training run, recorded in this test's store."""
    store = RunStore()
    config = TrainConfig(train_limit=1000, batch_size=50, name="tiny small-cnn")
    run_id = store.create_run(
        config.to_dict(), name=config.name, model="small-cnn", params=409_082, macs=1_420_032
    )
    result = loop.train(config, store, run_id)
    assert result.status == "finished", result.error
    return run_id


def test_finished_run_shows_results_and_runs_table(finished_run: str) -> None:
    at = run_page(TRAIN, run=finished_run)
    no_exception(at)
    metrics = {m.label: m.value for m in at.metric}
    for label in ("Accuracy", "Precision", "Recall", "F1"):
        assert metrics[label].endswith(" %")
    final = RunStore().final_metrics(finished_run)
    assert metrics["Accuracy"] == f"{100 * final['accuracy']:.2f} %"
    assert final["accuracy"] > 0.5  # far above chance after 1,000 digits
    assert "finished" in at.markdown[0].value or any("finished" in m.value for m in at.markdown)
    # "Try it" with a test digit: the page's prediction comes from the saved checkpoint.
    assert any("Prediction:" in m.value for m in at.markdown)
    at.button(key="reuse-settings").click().run()  # the run's options back into the form
    assert at.number_input(key="tr_limit").value == 1000
    assert at.number_input(key="tr_batch_size").value == 50
    assert at.text_input(key="tr_name").value == ""
    at = run_page(RUNS)
    no_exception(at)
    frame = at.dataframe[0].value
    assert list(frame["name"]) == ["tiny small-cnn"]
    assert frame["params"].iloc[0] == 409_082 and frame["status"].iloc[0] == "finished"
    assert frame["accuracy"].iloc[0] == pytest.approx(final["accuracy"])


def test_runs_page_without_runs_points_to_train() -> None:
    at = run_page(RUNS)
    no_exception(at)
    assert "No runs yet" in texts(at, "info")


def test_report_preset_offers_a_run_this_machine_can_finish() -> None:
    """Issue 17: "about 9.6 days on cpu" offered no way forward. A lighter version (smallest
    input, 1 epoch, fewer digits) comes with its estimate, one click away."""
    at = run_page(TRAIN)
    at.button(key="preset-report").click().run()
    no_exception(at)
    if "Long run" not in texts(at, "warning"):
        pytest.skip("this machine trains the report preset in under half an hour")
    if not any(b.key == "apply-lighter" for b in at.button):  # measured: too busy right now
        pytest.skip("this machine is too loaded now to finish even the lighter run in ~10 min")
    lighter = at.button(key="apply-lighter")
    assert lighter.label.startswith("Try vgg16 at 32×32, 1 epoch on ") and "about" in lighter.label
    lighter.click().run()
    no_exception(at)
    assert at.selectbox(key="tr_model").value == "vgg16"
    assert at.selectbox(key="tr_input_size").value == 32
    assert at.number_input(key="tr_epochs").value == 1
    assert at.number_input(key="tr_limit").value in (10_000, 5_000, 2_000, 1_000)
    assert at.number_input(key="tr_lr").value == pytest.approx(1e-4)  # the rest is kept
    assert "Long run" not in texts(at, "warning")
    eta = next(m.value for m in at.metric if m.label.startswith("Estimated time on"))
    assert eta in lighter.label and not at.button(key="train-button").disabled


def test_a_run_link_shows_the_run_first_with_the_form_folded(finished_run: str) -> None:
    """Issue 17: on a 390 px phone a shared run's results sat several screens below the form."""
    at = run_page(TRAIN, run=finished_run)
    no_exception(at)
    folded = [e for e in at.expander if e.label == "New run"]
    assert len(folded) == 1 and not folded[0].proto.expanded
    assert folded[0].button(key="train-button")  # the whole form is inside
    at.button(key="reuse-settings").click().run()  # copying settings opens the form
    assert next(e for e in at.expander if e.label == "New run").proto.expanded
    fresh = run_page(TRAIN)
    assert not [e for e in fresh.expander if e.label == "New run"]  # no run: the form, open
