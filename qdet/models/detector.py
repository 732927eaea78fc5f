"""Faster R-CNN assembly with heads that FX can trace one piece at a time.

torchvision's RPNHead takes a list (FX cannot trace it) and FastRCNNPredictor branches on
``x.dim()``; here the RPN head's per-level work is its own module looped over the levels, and the
predictor takes the already-flat box features, so every head can be quantized.
"""

# No "from __future__ import annotations": FX copies these hints into the code it generates,
# and TorchScript must be able to read them there.

from pathlib import Path
from typing import NamedTuple

import torch
from torch import Tensor, nn
from torchvision.models.detection import FasterRCNN
from torchvision.models.detection.anchor_utils import AnchorGenerator
from torchvision.models.detection.faster_rcnn import TwoMLPHead

from qdet.config import ModelConfig, section_from_dict
from qdet.core.checkpoint import load_checkpoint
from qdet.core.console import console
from qdet.core.errors import QdetError
from qdet.models.backbones import build_backbone
from qdet.serving.roi_align import GatherRoIAlign


class ModelError(QdetError, ValueError):
    """A model that cannot be built as configured; the message names the key or file."""


class RPNLevelHead(nn.Module):
    """The RPN head on one feature map: 3x3 conv + ReLU, objectness and box deltas."""

    def __init__(self, in_channels: int, num_anchors: int) -> None:
        super().__init__()
        self.conv = nn.Conv2d(in_channels, in_channels, 3, padding=1)
        self.relu = nn.ReLU()
        self.cls_logits = nn.Conv2d(in_channels, num_anchors, 1)
        self.bbox_pred = nn.Conv2d(in_channels, num_anchors * 4, 1)
        for layer in (self.conv, self.cls_logits, self.bbox_pred):
            nn.init.normal_(layer.weight, std=0.01)
            nn.init.constant_(layer.bias, 0)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        t = self.relu(self.conv(x))
        return self.cls_logits(t), self.bbox_pred(t)


class LoopRPNHead(nn.Module):
    """Applies one :class:`RPNLevelHead` (float or int8) to every level, as RPNHead does."""

    def __init__(self, level: nn.Module) -> None:
        super().__init__()
        self.level = level

    def forward(self, x: list[Tensor]) -> tuple[list[Tensor], list[Tensor]]:
        logits: list[Tensor] = []
        deltas: list[Tensor] = []
        for feature in x:
            a, b = self.level(feature)
            logits.append(a)
            deltas.append(b)
        return logits, deltas


class FlatPredictor(nn.Module):
    """Class scores and box deltas from flat box features (no shape check, so FX can trace it)."""

    def __init__(self, in_features: int, num_classes: int) -> None:
        super().__init__()
        self.cls_score = nn.Linear(in_features, num_classes)
        self.bbox_pred = nn.Linear(in_features, num_classes * 4)

    def forward(self, x: Tensor) -> tuple[Tensor, Tensor]:
        return self.cls_score(x), self.bbox_pred(x)


def build_detector(backbone_name: str, cfg: ModelConfig, num_classes: int) -> FasterRCNN:
    """Faster R-CNN for ``num_classes`` object classes (background is added here)."""
    weights = cfg.weights if cfg.weights in ("none", "imagenet") else "none"
    backbone, levels = build_backbone(backbone_name, weights, cfg.fpn, cfg.fpn_channels, cfg.fpn_levels)
    if cfg.fpn:
        sizes = tuple((s,) for s in cfg.anchor_sizes)
        ratios = (tuple(cfg.aspect_ratios),) * len(sizes)
    else:
        sizes, ratios = (tuple(cfg.anchor_sizes),), (tuple(cfg.aspect_ratios),)
    anchors = AnchorGenerator(sizes, ratios)
    channels = backbone.out_channels
    pool = GatherRoIAlign([str(i) for i in range(levels)], cfg.roi_output_size, 2)
    head = TwoMLPHead(channels * cfg.roi_output_size**2, cfg.representation_size)
    model = FasterRCNN(
        backbone,
        num_classes=None,
        min_size=cfg.min_size,
        max_size=cfg.max_size,
        rpn_anchor_generator=anchors,
        rpn_head=LoopRPNHead(RPNLevelHead(channels, anchors.num_anchors_per_location()[0])),
        rpn_pre_nms_top_n_train=cfg.rpn_pre_nms_top_n_train,
        rpn_post_nms_top_n_train=cfg.rpn_post_nms_top_n_train,
        rpn_pre_nms_top_n_test=cfg.rpn_pre_nms_top_n_test,
        rpn_post_nms_top_n_test=cfg.rpn_post_nms_top_n_test,
        box_roi_pool=pool,
        box_head=head,
        box_predictor=FlatPredictor(cfg.representation_size, num_classes + 1),
        box_batch_size_per_image=cfg.box_batch_size_per_image,
        box_score_thresh=cfg.box_score_thresh,
        box_detections_per_img=cfg.box_detections_per_img,
    )
    if cfg.weights not in ("none", "imagenet"):
        load_weights(model, Path(cfg.weights))
    return model


def load_weights(model: nn.Module, path: Path) -> None:
    """Load detector weights from a qdet checkpoint or a plain state_dict (weights_only)."""
    state = load_checkpoint(
        path, " (model.weights takes a torch.save'd state_dict or a qdet checkpoint, not TorchScript or ONNX)"
    )
    state = state.get("model", state)
    missing, unexpected = model.load_state_dict(state, strict=False)
    if missing or unexpected:
        raise ModelError(
            f"{path}: weights do not fit this model (missing {len(missing)} keys, e.g. "
            f"{missing[:3]}; unexpected {len(unexpected)}, e.g. {unexpected[:3]}); "
            "check backbone and model.* params"
        )


class DetectionsOnly(nn.Module):
    """Wraps a detector so that scripting returns the detections list, not (losses, detections)."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model

    def forward(self, images: list[Tensor]) -> list[dict[str, Tensor]]:
        if torch.jit.is_scripting():
            return self.model(images)[1]
        return self.model(images)


class FloatDetector(NamedTuple):
    """The train stage's output, rebuilt from the config it was trained with."""

    model: FasterRCNN
    classes: list[str]
    backbone: str
    config: ModelConfig


RETIRED_KEYS = ("roi_align_tasks",)  # model keys older checkpoints carry; no longer settings


def load_float_detector(path: Path) -> FloatDetector:
    """The trained float detector, built from the backbone and ``model.*`` stored in its
    checkpoint (never from today's params: those may have changed since training)."""
    state = load_checkpoint(path)
    classes = list(state["classes"])
    stored = state["config"]
    kept = {k: v for k, v in stored["model"].items() if k not in RETIRED_KEYS}
    cfg = section_from_dict(ModelConfig, {**kept, "weights": "none"}, "model")
    model = build_detector(stored["backbone"], cfg, len(classes))
    model.load_state_dict(state["model"])
    return FloatDetector(model.eval(), classes, stored["backbone"], cfg)


def load_trained(path: Path, backbone: str, cfg: ModelConfig) -> FloatDetector:
    """:func:`load_float_detector`, saying so when params.yaml (``backbone``, ``cfg``) has moved
    on since training: the checkpoint's values are used (``dvc repro`` would retrain first)."""
    loaded = load_float_detector(path)
    for line in config_differences(backbone, cfg, loaded):
        console.print(f"[yellow]note:[/yellow] {path} was trained with {line}; using the checkpoint's value")
    return loaded


def config_differences(backbone: str, cfg: ModelConfig, loaded: FloatDetector) -> list[str]:
    """``key=trained value (params: value)`` for each model setting params.yaml has changed."""
    out = [] if backbone == loaded.backbone else [f"backbone={loaded.backbone} (params: {backbone})"]
    for key, value in cfg.__dict__.items():
        if key != "weights" and value != getattr(loaded.config, key):
            out.append(f"model.{key}={getattr(loaded.config, key)} (params: {value})")
    return out
