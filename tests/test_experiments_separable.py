"""Separable runs of zoo models: ``TrainConfig.separable``, a real tiny separable training whose
counts equal ``cnnlab profile --separable`` and whose checkpoint reloads to the same outputs,
and separable experiments that train the zoo model itself (so class limits see its name).

The training run uses the first 600 training and 300 test digits of ``CNNLAB_DATA_DIR`` (the
mini IDX folder of ``test_experiments``), trained on 300 of them for one epoch.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from test_experiments import write_mini_mnist

from cnnlab.cli import main
from cnnlab.errors import UserError
from cnnlab.experiments import plan as plans
from cnnlab.training.config import TrainConfig
from cnnlab.training.store import FINISHED, RunStore


@pytest.fixture(scope="module")
def mini_mnist(mnist_path: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_mini_mnist(mnist_path, tmp_path_factory.mktemp("mini-mnist-sep"))


def _profile(argv: list[str], capsys: pytest.CaptureFixture[str]) -> dict[str, int]:
    assert main(["profile", *argv, "--json"]) == 0
    return json.loads(capsys.readouterr().out)["totals"]


# --- the option -------------------------------------------------------------------------------


def test_old_configs_without_the_key_load_as_regular() -> None:
    old = TrainConfig().to_dict()
    del old["separable"]
    config = TrainConfig.from_dict(old).validate()
    assert config.separable is False
    assert TrainConfig.from_dict({"model": "lenet5", "separable": True}).check_model().separable
    assert TrainConfig(separable=True).display_name == "small-cnn-separable-28"


@pytest.mark.parametrize(
    ("config", "message"),
    [
        (TrainConfig(separable=1), "separable must be true or false, got 1"),  # type: ignore[arg-type]
        (TrainConfig(separable="no"), "separable must be true or false"),  # type: ignore[arg-type]
        (
            TrainConfig(model="stack", spec={"input": [1, 28, 28], "layers": []}, separable=True),
            "separable does not go with model 'stack'",
        ),
    ],
)
def test_bad_separable_values_are_refused_in_one_line(config: TrainConfig, message: str) -> None:
    with pytest.raises(UserError) as info:
        config.validate()
    assert message in str(info.value) and "\n" not in str(info.value)


def test_a_model_with_no_conv_to_flip_is_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    """A model whose convs are all 1×1 or grouped has no separable form (checked on meta)."""
    from torch import nn

    from cnnlab.counting import zoo

    def convless(name: str, **_: Any) -> nn.Module:
        return nn.Sequential(
            nn.Conv2d(1, 4, 1), nn.Conv2d(4, 4, 3, groups=4), nn.Flatten(), nn.LazyLinear(10)
        )

    monkeypatch.setattr(zoo, "check_input", lambda *a, **k: None)
    monkeypatch.setattr(zoo, "build_model", convless)
    TrainConfig(model="lenet5").check_model()  # regular: nothing to flip is fine
    with pytest.raises(UserError, match=r"lenet5 has no conv with kernel > 1 \(and groups 1\)"):
        TrainConfig(model="lenet5", separable=True).check_model()


def test_train_separable_with_a_stack_exits_2(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    spec = tmp_path / "s.json"
    spec.write_text(json.dumps({"input": [1, 28, 28], "layers": [{"type": "conv",
                                "out_channels": 4, "kernel": 3}]}))  # fmt: skip
    assert main(["train", "--model", "stack", "--spec", str(spec), "--separable"]) == 2
    err = capsys.readouterr().err.strip()
    assert err.startswith("cnnlab") and "separable does not go with model 'stack'" in err
    assert len(err.splitlines()) == 1


# --- a real separable run ---------------------------------------------------------------------


def test_a_tiny_separable_run_counts_like_profile_and_reloads_the_same(
    mini_mnist: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import torch

    from cnnlab.inside.features import digit_input, feature_maps
    from cnnlab.training.checkpoints import load_checkpoint, predict
    from cnnlab.training.data import load_mnist
    from cnnlab.training.recipe import network

    argv = ["train", "--model", "small-cnn", "--separable", "--train-limit", "300", "--epochs",
            "1", "--device", "cpu", "--data-dir", str(mini_mnist), "--json"]  # fmt: skip
    assert main(argv) == 0
    out = json.loads(capsys.readouterr().out)
    assert out["status"] == FINISHED
    run = RunStore().get_run(out["run_id"])
    flipped = _profile(["small-cnn", "--mnist", "--separable"], capsys)
    regular = _profile(["small-cnn", "--mnist"], capsys)
    assert (run.params, run.macs) == (flipped["params"], flipped["macs"])
    assert run.model == "small-cnn" and run.macs < regular["macs"]

    model, config = load_checkpoint(RunStore().get_artifact(run.id, "checkpoint").path)
    assert config.separable and config.model == "small-cnn"
    assert sum(p.numel() for p in model.parameters()) == run.params
    assert [n for n, _ in model.named_modules() if n.endswith("depthwise")] != []
    # the reloaded network gives the run's own test predictions: its confusion matrix, exactly
    test = load_mnist("test", data_dir=str(mini_mnist))
    predicted = predict(model, config, test.images).argmax(1)
    matrix = torch.zeros(10, 10, dtype=torch.long)
    for truth, guess in zip(test.labels.tolist(), predicted.tolist(), strict=True):
        matrix[truth, guess] += 1
    assert matrix.tolist() == out["confusion_matrix"]
    # the recipe's own build of the config loads the same weights (same modules, same keys)
    rebuilt = network(config)
    rebuilt.load_state_dict(model.state_dict())
    x = digit_input(test.images[0], config.input_size)
    assert torch.equal(rebuilt.eval()(x), model(x))
    # the feature maps see the separable network: depthwise and pointwise rows
    stages = [row.stage for row in feature_maps(model, x).rows]
    assert stages.count("depthwise") == stages.count("pointwise") == 2


# --- experiments ------------------------------------------------------------------------------


def test_vgg11_at_32_makes_a_separable_plan_of_the_zoo_model(
    capsys: pytest.CaptureFixture[str],
) -> None:
    """The plan only (nothing trained): vgg11 in both forms, counts equal to profile."""
    from cnnlab.training.estimate import estimate_cost

    plan = plans.plan_separable(TrainConfig(model="vgg11", input_size=32), sizes=[1000, 2000])
    assert len(plan.arms) == 8 and plan.base_model == "vgg11"
    assert {a.config.model for a in plan.arms} == {"vgg11"}
    assert [a.config.separable for a in plan.arms[::2]] == [False, True, False, True]
    flags = ["vgg11", "--mnist", "--input-size", "32"]
    for arm, extra in ((plan.arms[0], []), (plan.arms[2], ["--separable"])):
        cost = estimate_cost(arm.config, measure=False)
        totals = _profile([*flags, *extra], capsys)
        assert (cost.params, cost.macs_per_image) == (totals["params"], totals["macs"])


def test_class_limits_see_the_real_model_name() -> None:
    from cnnlab.classroom.limits import ClassLimits

    limits = ClassLimits(allowed_models=("small-cnn", "lenet5")).validate()
    for arm in plans.plan_separable(TrainConfig(), seeds=1).arms:
        limits.check_config(arm.config)  # the separable arm trains as small-cnn: allowed
    vgg = plans.plan_separable(TrainConfig(model="vgg11", input_size=32), seeds=1)
    with pytest.raises(UserError, match="'vgg11' is not one of them"):
        limits.check_config(vgg.arms[1].config)
