"""The model zoo: names, MNIST adaptation, meta builds, input checks with advice."""

from __future__ import annotations

import pytest
import torch
from torch import nn

from cnnlab.counting.spec import PRESETS
from cnnlab.counting.zoo import (
    ZOO,
    build_model,
    check_input,
    default_input_shape,
    fit_input_size,
    list_models,
    parse_shape,
    student_layer_names,
)
from cnnlab.errors import UserError


def n_params(model: nn.Module) -> int:
    return sum(p.numel() for p in model.parameters())


def test_list_models_has_the_zoo_first_and_every_torchvision_classifier() -> None:
    names = list_models()
    assert names[: len(ZOO)] == list(ZOO)
    for name in ("resnet50", "efficientnet_b0", "googlenet", "squeezenet1_1", "densenet121"):
        assert name in names
    assert len(names) == len(set(names))
    for required in ("alexnet-report", "vgg16_bn", "mobilenet_v3_small", "small-cnn", "lenet5"):
        assert required in ZOO


def test_unknown_model_lists_close_names() -> None:
    with pytest.raises(UserError, match=r"unknown model 'vgg61'; did you mean vgg1"):
        build_model("vgg61", device="meta")
    with pytest.raises(UserError, match="unknown model 'zzzz'; known models: alexnet"):
        default_input_shape("zzzz")


def test_meta_build_allocates_nothing_and_counts_params() -> None:
    model = build_model("vgg16", device="meta")
    assert all(p.device.type == "meta" for p in model.parameters())
    assert n_params(model) == 138_357_544
    assert n_params(build_model("alexnet-report", device="meta")) == 45_442_856
    # RegNet computes its widths with tensors: still builds on meta
    assert n_params(build_model("regnet_y_400mf", device="meta")) == 4_344_144


def test_mnist_adaptation() -> None:
    model = build_model("vgg16", mnist=True, device="meta")
    assert model.features[0].in_channels == 1
    assert model.classifier[-1].out_features == 10
    squeeze = build_model("squeezenet1_1", mnist=True, device="meta")  # conv classifier
    assert squeeze.classifier[1].out_channels == 10
    assert build_model("alexnet", num_classes=7, device="meta").classifier[-1].out_features == 7


def test_small_models_run_on_real_mnist_shapes() -> None:
    for name in ("small-cnn", "lenet5"):
        model = build_model(name).eval()
        with torch.no_grad():
            assert model(torch.zeros(2, 1, 28, 28)).shape == (2, 10)


def test_stack_model_and_mnist_head() -> None:
    spec = PRESETS["VGG block"]
    model = build_model("stack", spec=spec, device="meta")
    assert [name for name, _ in model.named_children()] == ["0", "1", "2"]
    adapted = build_model("stack", spec=spec, mnist=True)
    with torch.no_grad():
        assert adapted(torch.zeros(1, 1, 112, 112)).shape == (1, 10)
    mnist_cnn = build_model("stack", spec=PRESETS["MNIST CNN"], mnist=True)
    assert n_params(mnist_cnn) == n_params(build_model("stack", spec=PRESETS["MNIST CNN"]))
    with pytest.raises(UserError, match="needs a Conv Lab spec"):
        build_model("stack")


def test_default_input_shapes() -> None:
    assert default_input_shape("alexnet") == (3, 224, 224)
    assert default_input_shape("inception_v3") == (3, 299, 299)
    assert default_input_shape("lenet5") == (1, 28, 28)
    assert default_input_shape("vgg16", mnist=True) == (1, 28, 28)
    assert default_input_shape("vgg16", mnist=True, input_size=64) == (1, 64, 64)
    assert default_input_shape("resnet18", input_size=160) == (3, 160, 160)
    assert default_input_shape("stack", spec=PRESETS["MNIST CNN"]) == (1, 28, 28)
    with pytest.raises(UserError, match="between 1 and 4096"):
        default_input_shape("vgg16", input_size=0)


def test_check_input_names_the_layer_and_suggests_a_size() -> None:
    check_input("vgg16", mnist=True, input_shape=(1, 32, 32))
    with pytest.raises(UserError) as info:
        check_input("vgg16", mnist=True, input_shape=(1, 28, 28))
    assert str(info.value) == (
        "vgg16 cannot take 1×28×28: spatial size reaches 0 at features.30 (MaxPool2d); "
        "use input size ≥ 32"
    )
    with pytest.raises(UserError, match=r"features.0 \(Conv2d\) expects 3 input channels"):
        check_input("alexnet", input_shape=(1, 224, 224))
    with pytest.raises(UserError, match="takes exactly 224×224"):
        check_input("vit_b_16", input_shape=(3, 200, 200))


def test_fit_input_size_is_the_smallest_offered_size_the_model_takes() -> None:
    offered = (28, 32, 64, 224)
    assert fit_input_size("alexnet-report", offered) == 64  # needs ≥ 63: 28 and 32 are too small
    assert fit_input_size("vgg16", offered) == 32
    assert fit_input_size("lenet5", offered) == 28
    assert fit_input_size("vgg16", (28, 16)) is None
    assert fit_input_size("vit_b_16", offered) == 224  # takes exactly 224×224
    assert fit_input_size("alexnet", range(1, 225), mnist=False) == 63  # the long-list search
    assert fit_input_size("stack", offered, spec=PRESETS["MNIST CNN"]) == 28


def test_student_layer_names() -> None:
    from cnnlab.counting.analyse import analyse_zoo

    def names(model: str) -> dict[str, str]:
        return student_layer_names(model, [(r.name, r.type) for r in analyse_zoo(model).rows])

    alexnet = names("alexnet")
    assert list(alexnet.values()) == [*(f"conv{i}" for i in range(1, 6)), "fc6", "fc7", "fc8"]
    assert alexnet["features.0"] == "conv1" and alexnet["classifier.6"] == "fc8"
    vgg = names("vgg16_bn")
    assert vgg["features.0"] == "conv1_1" and list(vgg.values())[12:] == [
        "conv5_3", "fc6", "fc7", "fc8",
    ]  # fmt: skip
    assert names("vgg19")["features.34"] == "conv5_4"
    assert names("resnet18") == {}


def test_parse_shape() -> None:
    assert parse_shape("3x224x224") == (3, 224, 224)
    assert parse_shape("1×28×28") == (1, 28, 28)
    for bad in ("3x224", "axbxc", "0x10x10", "3x5000x5000", "-1x2x2"):
        with pytest.raises(UserError):
            parse_shape(bad)


# Published figures that count something cnnlab's per-module rules do not see: MaxViT's
# attention products are einsums in forward (outside any module); ViT-H/14's are for 518×518.
NOT_COMPARABLE = {"maxvit_t", "vit_h_14"}


def test_every_torchvision_classifier_matches_its_published_params_and_gmacs() -> None:
    import torchvision

    from cnnlab.counting.analyse import analyse_zoo

    checked = 0
    for name in list_models():
        if name in ("alexnet-report", "small-cnn", "lenet5") or name in NOT_COMPARABLE:
            continue
        weights = torchvision.models.get_model_weights(name).DEFAULT
        transform = weights.transforms()
        crop = transform.crop_size[0]
        a = analyse_zoo(name, input_shape=(3, crop, crop))
        assert a.totals.params == weights.meta["num_params"], name
        # torchvision publishes "GFLOPS" = conv/linear/matmul multiply-adds, rounded to 3 places
        assert round(a.totals.macs / 1e9, 3) == pytest.approx(weights.meta["_ops"], abs=1e-3), name
        checked += 1
    assert checked >= 70
