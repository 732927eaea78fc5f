"""Every listed backbone quantizes (all parts), scripts, and detects as int8."""

import copy

import pytest
import torch

from qdet.models.detector import build_detector
from qdet.quant.fx import convert, describe, prepare
from qdet.quant.parts import PARTS
from qdet.quant.plan import QuantPlan
from qdet.quant.torchscript import script_detector
from tests.helpers import LISTED, TINY_MODEL

QUICK = {"resnet18", "squeezenet1_1", "mobilenet_v3_large"}


def _params():
    for name in LISTED:
        marks = [] if name in QUICK else [pytest.mark.slow]
        yield pytest.param(name, marks=marks, id=name)


@pytest.mark.parametrize("name", _params())
def test_backbone_quantizes_and_scripts(name):
    torch.manual_seed(0)
    model = build_detector(name, TINY_MODEL, num_classes=3).eval()
    plan = QuantPlan(list(PARTS))
    prepared = prepare(copy.deepcopy(model), plan, qat=False)
    with torch.no_grad():
        prepared([torch.rand(3, 96, 128)])
    int8 = convert(prepared, plan)
    modules = describe(int8, plan)["int8_modules"]
    for path in PARTS.values():
        assert any(m.startswith(path + ".") for m in modules), path
    (out,) = script_detector(int8)([torch.rand(3, 96, 128)])
    assert set(out) == {"boxes", "labels", "scores"}
