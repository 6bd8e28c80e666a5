"""Experiments: plans and their refusals, the verdict rule on fixed numbers, params/MACs equal to
``cnnlab profile``, a failed arm, and a real tiny experiment end to end through the CLI.

The end-to-end runs train on real MNIST digits: the first 600 training and 300 test digits of
``CNNLAB_DATA_DIR`` copied into a small IDX folder (so each run's test pass is short).
"""

from __future__ import annotations

import gzip
import json
import statistics
import struct
from pathlib import Path
from typing import Any

import pytest

from cnnlab.cli import main
from cnnlab.errors import UserError
from cnnlab.experiments import plan as plans
from cnnlab.experiments.results import gather, pareto
from cnnlab.experiments.verdicts import (
    DOES_NOT_HOLD,
    HOLDS,
    NOT_YET,
    WITHIN_NOISE,
    decide,
    decide_difference,
)
from cnnlab.training.config import TrainConfig
from cnnlab.training.store import RunStore

MINI = {"train": 600, "test": 300}
STEMS = {
    "train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
    "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte"),
}
ISSUE_ARM_KEYS = {
    "train_images", "seed", "run_id", "status", "params", "macs", "accuracy", "f1",
    "train_seconds", "latency_ms", "gap",
}  # fmt: skip


def write_mini_mnist(source: Path, target: Path) -> Path:
    """The first real digits of each split of ``source`` as an IDX folder at ``target``."""
    target.mkdir(parents=True, exist_ok=True)
    for split, (images, labels) in STEMS.items():
        n = MINI[split]
        with gzip.open(source / f"{images}.gz") as fh:
            raw = fh.read(16 + n * 784)[16:]
        (target / images).write_bytes(struct.pack(">iiii", 2051, n, 28, 28) + raw)
        with gzip.open(source / f"{labels}.gz") as fh:
            raw = fh.read(8 + n)[8:]
        (target / labels).write_bytes(struct.pack(">ii", 2049, n) + raw)
    return target


@pytest.fixture(scope="module")
def mini_mnist(mnist_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mini_mnist(mnist_path, tmp_path_factory.mktemp("mini-mnist"))


# --- plans --------------------------------------------------------------------------------------


def test_separable_plan_has_both_forms_per_size_and_seed() -> None:
    plan = plans.plan_separable(TrainConfig(), sizes=[1000, 10000], seeds=2)
    assert len(plan.arms) == 8
    assert plan.labels == [
        "regular · 1,000 digits", "separable · 1,000 digits",
        "regular · 10,000 digits", "separable · 10,000 digits",
    ]  # fmt: skip
    regular, separable = plan.arms[0].config, plan.arms[2].config
    # both arms train the zoo model itself (class limits see its real name), one separable
    assert regular.model == separable.model == "small-cnn"
    assert (regular.separable, separable.separable) == (False, True)
    assert regular.spec is separable.spec is None
    # everything but the form and the seed is shared
    same = {k: v for k, v in regular.to_dict().items() if k not in ("separable", "name")}
    assert same == {k: v for k, v in separable.to_dict().items() if k not in ("separable", "name")}
    assert [a.seed for a in plan.arms[:2]] == [0, 1]


@pytest.mark.parametrize(
    ("make", "message"),
    [
        (lambda: plans.plan_separable(TrainConfig(model="vgg11", input_size=28)),
         "vgg11 cannot take 1×28×28"),
        (lambda: plans.plan_separable(TrainConfig(model="vgg11", input_size=32), seeds=5,
                                      sizes=[1000, 2000, 3000]),
         "would queue 30 runs; the limit is 24"),
        (lambda: plans.plan_separable(TrainConfig(model="no-such-net")), "unknown model"),
        (lambda: plans.plan_separable(TrainConfig(), sizes=[1000, 70000]),
         "70,000 training images asked for, but the data has only 60,000"),
        (lambda: plans.plan_separable(TrainConfig(), sizes=plans.parse_sizes("1k,2k,3k"),
                                      seeds=5), "would queue 30 runs; the limit is 24"),
        (lambda: plans.plan_separable(TrainConfig(), seeds=0), "seeds must be"),
        (lambda: plans.parse_sizes("1000,abc"), "not a number of training images"),
        (lambda: plans.plan_models(TrainConfig(), ["small-cnn"]), "at least two"),
        (lambda: plans.plan_models(TrainConfig(), ["small-cnn", "nosuchnet"]), "unknown model"),
        (lambda: plans.plan_sweep(TrainConfig(), "colour", "1,2"), "unknown option 'colour'"),
        (lambda: plans.plan_sweep(TrainConfig(), "lr", "1e-3,-1"),
         "sweep lr=-1: learning rate must be greater than 0"),
        (lambda: plans.plan_sweep(TrainConfig(), "optimizer", "adam,rmsprop"),
         "optimizer must be one of"),
        (lambda: plans.plan_sweep(TrainConfig(), "batch_size", "32,6.5"), "not a whole number"),
        (lambda: plans.plan_sweep(TrainConfig(), "lr", "1e-3"), "at least two values"),
    ],
)  # fmt: skip
def test_bad_plans_are_refused_in_one_line(make: Any, message: str) -> None:
    with pytest.raises(UserError) as info:
        make()
    text = str(info.value)
    assert message in text and "\n" not in text


def test_part_one_preset_is_eight_small_runs() -> None:
    plan = plans.part_one()
    assert len(plan.arms) == 8 and plan.kind == "separable"
    assert {a.config.train_limit for a in plan.arms} == {1000, 10000}
    assert {a.config.epochs for a in plan.arms} == {3}


# --- verdicts on fixed numbers ------------------------------------------------------------------


def test_verdict_holds_when_the_difference_beats_twice_its_standard_error() -> None:
    d = decide([0.99, 0.98], [0.95, 0.96], a_greater=True)
    assert d.verdict == HOLDS
    assert d.diff == pytest.approx(0.03)
    s = statistics.stdev([0.99, 0.98])  # the spread between seeds of each side
    assert d.threshold == pytest.approx(2 * (s**2 / 2 + s**2 / 2) ** 0.5)


def test_verdict_does_not_hold_when_the_other_side_wins_beyond_noise() -> None:
    assert decide([0.90, 0.91], [0.97, 0.98], a_greater=True).verdict == DOES_NOT_HOLD


def test_verdict_within_noise_when_seeds_spread_more_than_the_difference() -> None:
    assert decide([0.97, 0.99], [0.975, 0.98], a_greater=True).verdict == WITHIN_NOISE


def test_exact_counts_need_no_seeds_and_one_seed_decides_by_sign() -> None:
    assert decide([405_045], [409_082], a_greater=False, exact=True).verdict == HOLDS
    assert decide([409_082], [409_082], a_greater=False, exact=True).verdict == DOES_NOT_HOLD
    one = decide([0.91], [0.90], a_greater=True)
    assert one.verdict == HOLDS and not one.seeds_known
    assert decide([3.0], [3.0], a_greater=True).verdict == WITHIN_NOISE  # a measured tie
    assert decide([], [0.9], a_greater=True).verdict == NOT_YET


def test_a_lead_that_shrinks_with_more_data() -> None:
    small = ([0.90, 0.91], [0.80, 0.81])  # regular leads by 10 pt on few digits
    large = ([0.98, 0.981], [0.978, 0.979])  # by 0.2 pt on many
    assert decide_difference(small, large).verdict == HOLDS
    assert decide_difference(large, small).verdict == DOES_NOT_HOLD
    noisy = ([0.90, 0.70], [0.80, 0.79])
    assert decide_difference(noisy, large).verdict == WITHIN_NOISE


def test_pareto_front() -> None:
    # (cost, accuracy): the second is cheaper and better than the first; the third is cheapest
    assert pareto([(10, 0.95), (5, 0.97), (1, 0.90), (6, 0.96)]) == [False, True, True, False]


# --- params and MACs equal `cnnlab profile` ---------------------------------------------------


def _profile(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    assert main(["profile", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["totals"]


@pytest.mark.parametrize(("model", "size"), [("small-cnn", 28), ("lenet5", 28), ("vgg11", 32)])
def test_arm_params_and_macs_equal_cnnlab_profile(
    model: str, size: int, capsys: pytest.CaptureFixture[str]
) -> None:
    """Each arm's counts (what the store records) are `cnnlab profile MODEL --mnist` and
    `... --separable` (vgg11: the plan only, nothing trained)."""
    from cnnlab.training.estimate import estimate_cost

    plan = plans.plan_separable(TrainConfig(model=model, input_size=size), seeds=1)
    regular, separable = (estimate_cost(a.config, measure=False) for a in plan.arms)
    flags = ["--mnist", "--input-size", str(size)]
    zoo = _profile([model, *flags], capsys)
    flipped = _profile([model, *flags, "--separable"], capsys)
    assert (regular.params, regular.macs_per_image) == (zoo["params"], zoo["macs"])
    assert (separable.params, separable.macs_per_image) == (flipped["params"], flipped["macs"])
    assert separable.macs_per_image < regular.macs_per_image
    assert separable.params < regular.params


# --- a failed arm -------------------------------------------------------------------------------


def test_a_failed_run_marks_its_arm_failed_and_the_others_go_on() -> None:
    from cnnlab.experiments.launch import record

    store = RunStore()
    plan = plans.plan_separable(TrainConfig(train_limit=100), seeds=1)
    experiment_id = record(store, plan)
    ok = store.create_run(plan.arms[0].config.to_dict(), name=None, model="stack", params=1,
                          macs=1, experiment_id=experiment_id)  # fmt: skip
    bad = store.create_run(plan.arms[1].config.to_dict(), name=None, model="stack", params=1,
                           macs=1, experiment_id=experiment_id)  # fmt: skip
    store.mark_running(ok, 1, "cpu")
    store.add_metrics(ok, [(1, 1.0, "accuracy", 0.9), (1, 1.0, "f1", 0.89)])
    store.finish_run(ok, "finished")
    store.mark_running(bad, 1, "cpu")
    store.finish_run(bad, "failed", "RuntimeError: out of memory")
    results = gather(store, store.get_experiment(experiment_id))  # type: ignore[arg-type]
    assert [a.status for a in results.arms] == ["finished", "failed"]
    assert results.done == 2 and results.failed == 1
    assert results.arms[0].stat("accuracy").mean == pytest.approx(0.9)

    # the board says so, and draws what there is
    from cnnlab.views.experiments import board

    view = board(store, experiment_id)
    assert view.progress_text == "2 of 2 runs done (1 failed)"
    assert view.errors == ("separable · seed 0: failed — RuntimeError: out of memory",)
    assert list(view.arms["runs"]) == ["finished (1/1)", "failed (0/1)"]
    assert set(view.charts) == {"params", "latency", "accuracy", "loss"}
    assert view.csv.count("\n") == 3 and "| claim | verdict | evidence |" in view.markdown


def test_launch_form_view_prices_a_plan_or_says_why_not() -> None:
    from cnnlab.views.experiments import FormValues, launch_view

    ok = launch_view(FormValues(kind="sweep", option="lr", values="1e-3,3e-3", seeds=1,
                                train_limit=500))  # fmt: skip
    assert ok.error is None and ok.can_launch and len(ok.arms) == 2
    assert ok.cost is not None and ok.cost.total_seconds > 0 and ok.cost.images == 1000
    bad = launch_view(FormValues(kind="sweep", option="lr", values="1e-3,abc"))
    assert bad.error == "sweep lr: 'abc' is not a number" and not bad.can_launch


# --- the CLI end to end -------------------------------------------------------------------------


def test_tiny_experiment_end_to_end(mini_mnist: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Two arms (regular, separable) on 200 real digits, trained in the foreground."""
    argv = ["experiment", "separable", "--model", "small-cnn", "--train-limit", "200",
            "--seeds", "1", "--epochs", "1", "--data-dir", str(mini_mnist), "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert set(out) == {"experiment_id", "kind", "arms", "claims"}
    assert out["kind"] == "separable"
    arms = out["arms"]
    assert [a["form"] for a in arms] == ["regular", "separable"]
    for arm in arms:
        assert set(arm) == ISSUE_ARM_KEYS | {"form"}
        assert arm["status"] == "finished" and arm["train_images"] == 200
        assert 0.0 <= arm["accuracy"] <= 1.0 and 0.0 <= arm["f1"] <= 1.0
        assert arm["latency_ms"] > 0 and arm["train_seconds"] > 0
        assert -1.0 <= arm["gap"] <= 1.0
    assert (arms[0]["params"], arms[0]["macs"]) == (409_082, 1_420_032)
    assert arms[1]["params"] < arms[0]["params"] and arms[1]["macs"] < arms[0]["macs"]
    verdicts = {c["claim"]: c["verdict"] for c in out["claims"]}
    assert verdicts["Separable convolution cuts the number of parameters"] == HOLDS
    assert all(v in (HOLDS, DOES_NOT_HOLD, WITHIN_NOISE) for v in verdicts.values())

    # measured once: showing it again reads the stored measurement
    store = RunStore()
    measured = [store.get_artifact(a["run_id"], "experiment_measure") for a in arms]
    assert all(m is not None for m in measured)
    assert main(["experiment", "show", out["experiment_id"], "--csv"]) == 0
    csv_text = capsys.readouterr().out
    assert len(csv_text.strip().splitlines()) == 3
    assert [store.get_artifact(a["run_id"], "experiment_measure") for a in arms] == measured
    assert main(["experiment", "show", out["experiment_id"]]) == 0
    markdown = capsys.readouterr().out
    assert "| claim | verdict | evidence |" in markdown and "**holds**" in markdown
    assert main(["experiment", "list", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed[0]["done"] == listed[0]["total"] == 2


def test_bad_input_exits_2_and_queues_nothing(
    mini_mnist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["experiment", "sweep", "--option", "lr", "--values", "1e-3,-5", "--background",
            "--data-dir", str(mini_mnist)]  # fmt: skip
    assert main(argv) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab: error: sweep lr=-5") and "\n" not in err
    store = RunStore()
    assert store.list_experiments() == [] and store.list_runs() == []


def test_background_queues_every_arm_under_one_experiment_and_stop_stops_them(
    mini_mnist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    argv = ["experiment", "sweep", "--option", "lr", "--values", "1e-3,3e-3", "--train-limit",
            "100", "--data-dir", str(mini_mnist), "--background", "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    store = RunStore()
    runs = store.experiment_runs(out["experiment_id"])
    assert [r.id for r in runs] == out["run_ids"] and all(r.status == "queued" for r in runs)
    assert [r.config["lr"] for r in runs] == [1e-3, 3e-3]
    assert main(["experiment", "stop", out["experiment_id"]]) == 0
    assert "2 active run(s) stopped" in capsys.readouterr().out
    assert {r.status for r in store.experiment_runs(out["experiment_id"])} == {"stopped"}
    assert store.get_experiment(out["experiment_id"]).stop_requested  # type: ignore[union-attr]


# --- the claims of each kind on fixed numbers ---------------------------------------------------


def _results(plan: plans.Plan, numbers: list[dict[str, Any]]) -> Any:
    """ExperimentResults of ``plan`` whose runs have the given numbers (all finished)."""
    from cnnlab.experiments.results import ArmSummary, ExperimentResults, RunResult
    from cnnlab.training.store import Experiment

    runs = tuple(
        RunResult(arm, f"r{i}", "finished", **values)
        for i, (arm, values) in enumerate(zip(plan.arms, numbers, strict=True))
    )
    arms = tuple(
        ArmSummary(label, dict(next(r.arm.factors for r in runs if r.arm.label == label)),
                   tuple(r for r in runs if r.arm.label == label))
        for label in plan.labels
    )  # fmt: skip
    experiment = Experiment("x1", plan.kind, plan.name, plan.to_spec(), 0.0, None, None, False)
    return ExperimentResults(experiment, plan, runs, arms, 0.0)


def test_part_three_claims_from_fixed_numbers() -> None:
    from cnnlab.experiments.verdicts import claims_for

    base = TrainConfig(input_size=32, epochs=3, train_limit=1000)
    plan = plans.plan_models(base, ["vgg11", "mobilenet_v2"], seeds=2)
    # vgg11 seeds 0, 1, then mobilenet_v2 seeds 0, 1
    numbers = [
        {"images_per_second": 40.0, "epochs_to_target": 1, "accuracy": 0.985},
        {"images_per_second": 42.0, "epochs_to_target": 1, "accuracy": 0.986},
        {"images_per_second": 160.0, "epochs_to_target": 3, "accuracy": 0.971},
        {"images_per_second": 170.0, "epochs_to_target": None, "accuracy": 0.962},
    ]
    claims = {c.claim: c for c in claims_for(_results(plan, numbers))}
    faster = claims["MobileNet (mobilenet_v2) trains faster than VGG (vgg11)"]
    assert faster.verdict == HOLDS and "2 seeds" in faster.evidence
    epochs = claims["MobileNet needs more epochs than VGG to reach 97.00 % test accuracy"]
    assert epochs.verdict == HOLDS and "counts as 4" in epochs.evidence


def test_small_dataset_claim_from_fixed_numbers() -> None:
    from cnnlab.experiments.verdicts import claims_for

    plan = plans.plan_separable(TrainConfig(), sizes=[1000, 10000], seeds=2)
    acc = {  # regular leads by ~5 pt on 1,000 digits, by ~0.3 pt on 10,000
        ("regular", 1000): (0.95, 0.952), ("separable", 1000): (0.90, 0.902),
        ("regular", 10000): (0.985, 0.986), ("separable", 10000): (0.982, 0.983),
    }  # fmt: skip
    numbers = [
        {"accuracy": acc[(a.factors["form"], a.factors["train_images"])][a.seed],
         "params": 405_045 if a.factors["form"] == "separable" else 409_082}
        for a in plan.arms
    ]  # fmt: skip
    claims = {c.claim: c for c in claims_for(_results(plan, numbers))}
    small = next(c for name, c in claims.items() if name.startswith("Regular convolution suits"))
    assert small.verdict == HOLDS
    assert "+5.00 pt on 1,000 digits" in small.evidence
    assert claims["Separable convolution cuts the number of parameters"].verdict == HOLDS
    # latency was not given: not measured yet, never a guess
    assert claims["Separable convolution infers faster (one image)"].verdict == NOT_YET


def test_a_conv_lab_spec_in_both_forms_equals_profile_and_profile_separable(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    from cnnlab.counting.spec import PRESETS
    from cnnlab.training.estimate import estimate_cost

    spec = PRESETS["MNIST CNN"].to_dict()
    path = tmp_path / "mnist_cnn.json"
    path.write_text(json.dumps(spec))
    plan = plans.plan_separable(TrainConfig(model="stack", spec=spec), spec=spec, seeds=1)
    regular, separable = (estimate_cost(a.config, measure=False) for a in plan.arms)
    as_given = _profile([str(path), "--mnist"], capsys)
    flipped = _profile([str(path), "--mnist", "--separable"], capsys)
    assert (regular.params, regular.macs_per_image) == (as_given["params"], as_given["macs"])
    assert (separable.params, separable.macs_per_image) == (flipped["params"], flipped["macs"])
    assert separable.macs_per_image < regular.macs_per_image
