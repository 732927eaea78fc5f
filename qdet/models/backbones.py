"""Backbones by torchvision classification model name, split into stages by output stride.

One generic route serves every family: take the model's feature layers in order, run a dummy
image through them, and cut a stage wherever the stride grows. The FPN then takes the deepest
``fpn_levels`` stages; without FPN the last stage's map is the single feature map (the classic
"take ``.features``, set ``out_channels``" recipe).
"""

from __future__ import annotations

import math
import urllib.error
import urllib.request
from collections.abc import Callable
from pathlib import Path

import torch
from torch import nn
from torchvision.models import get_model, get_model_weights
from torchvision.models.detection.backbone_utils import BackboneWithFPN
from torchvision.ops.feature_pyramid_network import LastLevelMaxPool

from qdet.core.errors import QdetError


class BackboneError(QdetError, ValueError):
    """An unknown backbone name or a shape it cannot give; the message names the key."""


class WeightsUnavailable(QdetError):
    """Pretrained weights are neither cached nor downloadable; says where to put the file."""


def _resnet_layers(m: nn.Module) -> list[nn.Module]:
    return [
        nn.Sequential(m.conv1, m.bn1, m.relu, m.maxpool),
        m.layer1,
        m.layer2,
        m.layer3,
        m.layer4,
    ]


def _shufflenet_layers(m: nn.Module) -> list[nn.Module]:
    return [nn.Sequential(m.conv1, m.maxpool), m.stage2, m.stage3, m.stage4, m.conv5]


def _features_layers(m: nn.Module) -> list[nn.Module]:
    return list(m.features.children())


FAMILIES: dict[str, Callable[[nn.Module], list[nn.Module]]] = {
    **{f"resnet{d}": _resnet_layers for d in (18, 34, 50, 101, 152)},
    **{n: _resnet_layers for n in ("resnext50_32x4d", "resnext101_32x8d", "wide_resnet50_2")},
    **{f"shufflenet_v2_x{s}": _shufflenet_layers for s in ("0_5", "1_0", "1_5", "2_0")},
    **{
        n: _features_layers
        for n in (
            "mobilenet_v2",
            "mobilenet_v3_large",
            "mobilenet_v3_small",
            "squeezenet1_0",
            "squeezenet1_1",
            "vgg11",
            "vgg11_bn",
            "vgg13",
            "vgg16",
            "vgg16_bn",
            "vgg19",
            "efficientnet_b0",
            "efficientnet_b1",
            "efficientnet_b2",
            "mnasnet1_0",
        )
    },
}
BACKBONES = sorted(FAMILIES)


def _hub_file(name: str) -> tuple[str, Path]:
    url = get_model_weights(name).DEFAULT.url
    return url, Path(torch.hub.get_dir()) / "checkpoints" / url.rsplit("/", 1)[-1]


FROM_SCRATCH_BN_MOMENTUM = 0.1


def with_bn_momentum(model: nn.Module, momentum: float) -> nn.Module:
    """Set every BatchNorm's running-statistics momentum (in place; returns the model).

    torchvision's MobileNetV3 uses 0.01, tuned for fine-tuning ImageNet weights. Trained from
    scratch for a few hundred iterations, its running statistics then lag far behind the
    weights: measured here, mobilenet_v3_large-FPN scored mAP@.5 0.000 in eval mode after 3
    epochs, and 0.467 once the statistics were recomputed. PyTorch's default 0.1 keeps up.
    """
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.momentum = momentum
    return model


def classification_model(name: str, weights: str) -> nn.Module:
    """A torchvision classifier, random (``none``) or with ImageNet weights (``imagenet``)."""
    if name not in FAMILIES:
        raise BackboneError(f"unknown backbone {name!r}; valid: {', '.join(BACKBONES)}")
    if weights != "imagenet":
        return with_bn_momentum(get_model(name, weights=None), FROM_SCRATCH_BN_MOMENTUM)
    url, cached = _hub_file(name)
    if not cached.exists():
        try:
            urllib.request.urlopen(urllib.request.Request(url, method="HEAD"), timeout=5).close()
        except (urllib.error.URLError, TimeoutError, OSError) as exc:
            raise WeightsUnavailable(
                f"ImageNet weights for {name} are not cached and cannot be downloaded ({exc}). "
                f"Copy {url.rsplit('/', 1)[-1]} (from {url}) to {cached}, or use model.weights: none"
            ) from exc
    return get_model(name, weights="DEFAULT")


def split_stages(layers: list[nn.Module], probe: int = 256) -> list[tuple[nn.Sequential, int, int]]:
    """Group consecutive layers by output stride -> [(stage, out_channels, stride)]."""
    stages: list[tuple[list[nn.Module], int, int]] = []
    x = torch.zeros(1, 3, probe, probe)
    with torch.no_grad():
        for layer in layers:
            was_training = layer.training
            layer.eval()
            x = layer(x)
            layer.train(was_training)
            stride = 2 ** round(math.log2(probe / x.shape[-1]))
            if stages and stages[-1][2] == stride:
                stages[-1][0].append(layer)
                stages[-1] = (stages[-1][0], x.shape[1], stride)
            else:
                stages.append(([layer], x.shape[1], stride))
    return [(nn.Sequential(*mods), ch, s) for mods, ch, s in stages]


class SingleMapBackbone(nn.Sequential):
    """All stages in sequence; one feature map out. ``out_channels`` is what FasterRCNN reads."""

    def __init__(self, stages: list[nn.Module], out_channels: int) -> None:
        super().__init__(*stages)
        self.out_channels = out_channels


def build_backbone(
    name: str, weights: str, fpn: bool, fpn_channels: int, fpn_levels: int
) -> tuple[nn.Module, int]:
    """-> (backbone, number of feature maps used by anchors and RoI pooling, without 'pool')."""
    classifier = classification_model(name, weights)  # rejects unknown names with the list
    layers = FAMILIES[name](classifier)
    stages = split_stages(layers)
    if not fpn:
        return SingleMapBackbone([s for s, _, _ in stages], stages[-1][1]), 1
    if fpn_levels > len(stages):
        raise BackboneError(f"model.fpn_levels={fpn_levels}: {name} has only {len(stages)} stages")
    body = nn.Sequential(*[s for s, _, _ in stages])
    first = len(stages) - fpn_levels
    return_layers = {str(i): str(i - first) for i in range(first, len(stages))}
    in_channels = [stages[i][1] for i in range(first, len(stages))]
    backbone = BackboneWithFPN(
        body, return_layers, in_channels, fpn_channels, extra_blocks=LastLevelMaxPool()
    )
    return backbone, fpn_levels
