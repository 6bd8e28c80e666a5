"""The rule table: hand-computed values, formula text, FlopCounterMode agreement, not-counted."""

from __future__ import annotations

import pytest
import torch
from torch import nn
from torch.utils.flop_counter import FlopCounterMode

from cnnlab.counting.rules import CONVENTIONS_MARKDOWN, RULES, count_module, rule_for


def test_alexnet_conv1_by_hand() -> None:
    conv = nn.Conv2d(3, 64, kernel_size=11, stride=4, padding=2)
    c = count_module(conv, (1, 3, 224, 224), (1, 64, 55, 55))
    assert c.params == 3 * 11 * 11 * 64 + 64 == 23_296  # the report wrote 23796
    assert c.params_formula == "3 × 11 × 11 × 64 + 64 = 23,296"
    assert c.macs == 70_276_800
    assert c.macs_formula == "3 × 11 × 11 × 64 × 55 × 55 = 70,276,800"
    assert c.flops == 2 * 70_276_800 + 64 * 55 * 55
    assert c.counted


def test_depthwise_and_pointwise_formulas() -> None:
    dw = nn.Conv2d(512, 512, 3, padding=1, groups=512, bias=False)
    c = count_module(dw, (1, 512, 14, 14), (1, 512, 14, 14))
    assert (c.params, c.macs) == (4_608, 903_168)
    assert c.params_formula == "3 × 3 × 512 = 4,608"
    pw = nn.Conv2d(512, 512, 1, bias=False)
    c = count_module(pw, (1, 512, 14, 14), (1, 512, 14, 14))
    assert (c.params, c.macs) == (262_144, 51_380_224)
    assert c.params_formula == "512 × 512 = 262,144"


def test_grouped_conv_and_single_input_channel() -> None:
    g = nn.Conv2d(64, 128, 3, groups=4)
    c = count_module(g, (1, 64, 8, 8), (1, 128, 6, 6))
    assert c.params == 16 * 9 * 128 + 128 == sum(p.numel() for p in g.parameters())
    assert c.macs == 16 * 9 * 128 * 36
    one = nn.Conv2d(1, 32, 3)  # a regular conv with one input channel keeps its "1 ×"
    assert count_module(one, (1, 1, 28, 28), (1, 32, 26, 26)).params_formula.startswith("1 × 3")


def test_linear_bn_pool_activation() -> None:
    lin = count_module(nn.Linear(9216, 4096), (1, 9216), (1, 4096))
    assert lin.params == 37_752_832 and lin.macs == 37_748_736
    assert lin.params_formula == "9,216 × 4,096 + 4,096 = 37,752,832"
    bn = count_module(nn.BatchNorm2d(64), (1, 64, 10, 10), (1, 64, 10, 10))
    assert (bn.params, bn.macs, bn.flops) == (128, 0, 2 * 6400)
    mp = count_module(nn.MaxPool2d(3, 2), (1, 64, 55, 55), (1, 64, 27, 27))
    assert mp.flops == 8 * 64 * 27 * 27
    ap = count_module(nn.AvgPool2d(2), (1, 8, 4, 4), (1, 8, 2, 2))
    assert ap.flops == 4 * 8 * 2 * 2
    act = count_module(nn.ReLU(), (1, 8, 4, 4), (1, 8, 4, 4))
    assert (act.params, act.macs, act.flops) == (0, 0, 128)
    assert count_module(nn.Dropout(), (1, 10), (1, 10)).flops == 0


def test_adaptive_pool_bins_match_pytorch() -> None:
    # 7 → 3 bins: [0,3) [2,5) [4,7): lengths 3+3+3 = 9 per dimension
    c = count_module(nn.AdaptiveAvgPool2d(3), (1, 2, 7, 7), (1, 2, 3, 3))
    assert c.flops == 2 * 9 * 9
    same = count_module(nn.AdaptiveAvgPool2d(6), (1, 256, 6, 6), (1, 256, 6, 6))
    assert same.flops == 9_216  # fvcore's extra 9,216 on AlexNet is this layer
    mx = count_module(nn.AdaptiveMaxPool2d(1), (1, 4, 5, 5), (1, 4, 1, 1))
    assert mx.flops == 4 * 24


def test_subclass_uses_parent_rule_and_unknown_is_not_counted() -> None:
    class MyConv(nn.Conv2d):
        pass

    assert rule_for(MyConv(1, 1, 1)) is RULES[nn.Conv2d]
    prelu = nn.PReLU(8)
    c = count_module(prelu, (1, 8, 4, 4), (1, 8, 4, 4))
    assert not c.counted and c.params == 8 and c.macs == 0 and c.flops == 0
    assert c.macs_formula == "not counted"


@pytest.mark.parametrize(
    ("module", "shape"),
    [
        (nn.Conv2d(3, 16, 3, padding=1), (1, 3, 12, 12)),
        (nn.Conv2d(16, 16, 3, groups=16, bias=False), (1, 16, 9, 9)),
        (nn.Conv2d(8, 12, 5, stride=2, dilation=2, groups=4), (1, 8, 20, 20)),
        (nn.Conv1d(4, 6, 3), (1, 4, 10)),
        (nn.ConvTranspose2d(4, 6, 3, stride=2), (1, 4, 5, 5)),
        (nn.Linear(20, 7), (3, 20)),
    ],
)
def test_flop_counter_mode_is_twice_our_macs(module: nn.Module, shape: tuple[int, ...]) -> None:
    x = torch.zeros(shape)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        out = module(x)
    c = count_module(module, shape, tuple(out.shape))
    assert counter.get_total_flops() == 2 * c.macs


def test_conventions_markdown_lists_every_rule() -> None:
    assert CONVENTIONS_MARKDOWN.count("\n|") >= 10
    for kind in ("Conv2d", "Linear", "BatchNorm2d", "MaxPool2d", "AdaptiveAvgPool2d", "ReLU"):
        assert kind in CONVENTIONS_MARKDOWN
    assert "not counted" in CONVENTIONS_MARKDOWN


def test_attention_rules_agree_with_flop_counter_mode() -> None:
    from torchvision.models.swin_transformer import ShiftedWindowAttention

    mha = nn.MultiheadAttention(8, 2, batch_first=True)
    x = torch.randn(1, 5, 8)
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():  # need_weights: the explicit bmm path FlopCounterMode sees
        mha(x, x, x, need_weights=True)
    c = count_module(mha, (1, 5, 8), (1, 5, 8))
    assert c.macs == 5 * 24 * 8 + 2 * 5 * 5 * 8 + 5 * 8 * 8
    assert counter.get_total_flops() == 2 * c.macs
    assert c.params == sum(p.numel() for p in mha.parameters())

    swa = ShiftedWindowAttention(16, [4, 4], [2, 2], num_heads=2)
    x = torch.randn(1, 10, 10, 16)  # padded to 12×12: 9 windows of 4×4
    counter = FlopCounterMode(display=False)
    with counter, torch.no_grad():
        swa(x)
    c = count_module(swa, (1, 10, 10, 16), (1, 10, 10, 16))
    assert counter.get_total_flops() == 2 * c.macs
