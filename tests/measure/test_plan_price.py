"""A plan's price: the quantized modules' MACs at the int8 rate, the ones kept float at fp32's."""

from __future__ import annotations

import pytest
import torch

from qdet.measure.floor import module_gmacs
from qdet.measure.plan_price import KernelPrice
from qdet.models.detector import build_detector
from tests.helpers import TINY_MODEL

RATES = {"int8_conv_gmac_per_s": 200.0, "fp32_conv_gmac_per_s": 50.0}


def test_keeping_a_module_float_costs_its_macs_at_the_fp32_rate():
    price = KernelPrice({"a": 1.0, "b": 3.0}, RATES)
    assert price([]) == pytest.approx(1000 * 4.0 / 200)
    assert price(["b"]) - price([]) == pytest.approx(1000 * 3.0 * (1 / 50 - 1 / 200))
    assert price(["a"]) < price(["b"])


def test_module_macs_are_counted_per_named_module_of_the_detector():
    model = build_detector("resnet18", TINY_MODEL, num_classes=3).eval()
    image = torch.rand(3, 96, 128)
    names = ["backbone.body.0.1.0.conv1", "roi_heads.box_head.fc6"]
    gmacs = module_gmacs(model, [image], names)
    conv = model.get_submodule(names[0])
    assert gmacs[names[0]] > 0 and gmacs[names[1]] > 0
    # a 3x3 convolution: in x out x 9 MACs at each output position (image scaled to min_size)
    per_position = conv.in_channels * conv.out_channels * 9 / 1e9
    assert gmacs[names[0]] / per_position == pytest.approx(round(gmacs[names[0]] / per_position), rel=1e-6)
