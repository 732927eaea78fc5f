"""Smoke test: every listed backbone, with and without FPN, trains a step and detects."""

import dataclasses

import pytest
import torch

from qdet.models.backbones import BACKBONES
from qdet.models.detector import build_detector
from tests.helpers import LISTED, TINY_MODEL


@pytest.mark.parametrize("fpn", [True, False], ids=["fpn", "single"])
@pytest.mark.parametrize("name", LISTED)
def test_backbone_trains_and_detects(name, fpn):
    cfg = dataclasses.replace(TINY_MODEL, fpn=fpn)
    model = build_detector(name, cfg, num_classes=3)
    images = [torch.rand(3, 96, 128)]
    targets = [{"boxes": torch.tensor([[10.0, 10.0, 50.0, 60.0]]), "labels": torch.tensor([2])}]
    model.train()
    losses = model(images, targets)
    sum(losses.values()).backward()
    assert all(torch.isfinite(v) for v in losses.values())
    model.eval()
    with torch.no_grad():
        (out,) = model(images)
    assert set(out) == {"boxes", "labels", "scores"}


def test_unknown_backbone_lists_valid_names():
    with pytest.raises(ValueError, match="unknown backbone 'resnet19'; valid: .*resnet18"):
        build_detector("resnet19", TINY_MODEL, 3)


def test_all_listed_backbones_are_registered():
    assert set(LISTED) <= set(BACKBONES)


@pytest.mark.parametrize("name", ["mobilenet_v3_large", "mobilenet_v3_small", "resnet18"])
def test_from_scratch_batchnorm_statistics_follow_training(name):
    """MobileNetV3's own BN momentum (0.01) is for fine-tuning; from scratch it must be 0.1."""
    model = build_detector(name, TINY_MODEL, 3)
    momenta = {m.momentum for m in model.modules() if isinstance(m, torch.nn.BatchNorm2d)}
    assert momenta == {0.1}
