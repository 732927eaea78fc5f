"""PTQ calibration: the observers see the calibration set, the SQNR is measured on the train
split's images, so ranges that do not fit the images the model learned from show up as low
SQNR whatever calibrated them (a calibration folder of empty frames, for instance)."""

from __future__ import annotations

import torch

from qdet.models.detector import build_detector
from qdet.quant.calibrate import calibrate_ptq
from qdet.quant.parts import PARTS
from qdet.quant.plan import QuantPlan
from tests.helpers import TINY_MODEL


def test_sqnr_is_measured_on_the_train_images_not_on_the_calibration_set():
    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=3).eval()
    plan = QuantPlan(list(PARTS), engine="fx", observer="minmax")
    dim = [(torch.full((3, 96, 128), 0.02), None)]  # ranges from an almost black frame
    bright = [(torch.rand(3, 96, 128), None) for _ in range(4)]
    on_train = calibrate_ptq(model, plan, dim, 1, None, sqnr_on=bright)
    on_itself = calibrate_ptq(model, plan, dim, 1, None, sqnr_on=dim * 4)
    assert on_train.images == 1
    # the dim frame's ranges clip the bright images: far worse than on the frame itself
    assert min(on_train.sqnr.values()) < min(on_itself.sqnr.values()) - 10
