"""Cross-check against the real libraries on a real forward pass (values in ../shared/NOTES.md)."""

from __future__ import annotations

import pytest

from cnnlab.counting.analyse import analyse_zoo
from cnnlab.counting.crosscheck import crosscheck, crosscheck_json
from cnnlab.counting.spec import PRESETS
from cnnlab.errors import UserError
from cnnlab.views.tables import to_markdown


def test_alexnet_report_matches_each_tool() -> None:
    reports = crosscheck("alexnet-report")
    by = {(r.tool, r.quantity): r for r in reports}
    assert by[("cnnlab", "params")].value == 45_442_856
    assert by[("cnnlab", "MACs")].value == 698_533_568
    assert by[("torchinfo", "params")].value == 45_442_856
    assert by[("torchinfo", "MACs")].value == 699_024_680  # bias included
    assert by[("fvcore", "MACs")].value == 698_542_784  # + adaptive avg pool, no max pool
    assert "max_pool2d" in by[("fvcore", "MACs")].note
    assert by[("FlopCounterMode", "FLOPs")].value == 1_397_067_136 == 2 * 698_533_568
    assert crosscheck_json(reports) == {
        "torchinfo": {"params": 45_442_856, "macs": 699_024_680},
        "fvcore": {"flops": 698_542_784},
        "flop_counter": {"flops": 1_397_067_136},
    }
    assert all(r.unit and r.includes for r in reports)
    report = to_markdown(analyse_zoo("alexnet-report"), reports)
    assert "699,024,680" in report and "## Counting conventions" in report


def test_stack_and_mnist_forms() -> None:
    spec = PRESETS["MNIST CNN"]
    reports = crosscheck("stack", spec=spec)
    by = {(r.tool, r.quantity): r.value for r in reports}
    ours = analyse_zoo("stack", spec=spec).totals
    assert by[("torchinfo", "params")] == ours.params
    assert by[("FlopCounterMode", "FLOPs")] == 2 * ours.macs
    sep = crosscheck("stack", spec=PRESETS["MobileNet v1 Table 3 layer"], separable=True)
    assert {(r.tool, r.quantity): r.value for r in sep}[("FlopCounterMode", "FLOPs")] == (
        2 * 52_283_392
    )
    lenet = {(r.tool, r.quantity): r.value for r in crosscheck("lenet5", mnist=True)}
    assert lenet[("torchinfo", "params")] == lenet[("cnnlab", "params")] == 61_706


def test_bad_input_is_a_user_error_before_building() -> None:
    with pytest.raises(UserError, match="unknown model"):
        crosscheck("alexnet-reprot")
    with pytest.raises(UserError, match="cannot take"):
        crosscheck("vgg16", input_shape=(3, 16, 16))
