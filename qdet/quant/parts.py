"""The parts of a Faster R-CNN that FX can trace, by name, and their example inputs.

The transform, anchor generator, proposal selection, RoI align, NMS and post-processing are
data-dependent (control flow, lists, dicts of variable size) and stay float.
"""

from __future__ import annotations

import torch
from torch import nn

from qdet.core.errors import QdetError


class QuantError(QdetError, ValueError):
    """A quantization setting that does not fit the model; the message names the params key."""


PARTS: dict[str, str] = {
    "backbone": "backbone",
    "rpn_head": "rpn.head.level",
    "box_head": "roi_heads.box_head",
    "box_predictor": "roi_heads.box_predictor",
}
FLOAT_ONLY = {
    "transform": "resize and normalisation (data-dependent sizes)",
    "rpn.anchor_generator": "anchor grid depends on the image size",
    "rpn (proposal selection)": "top-k, NMS and box decoding are data-dependent",
    "roi_heads.box_roi_pool": "RoI align has no int8 kernel; LevelMapper is not traceable",
    "roi_heads (post-processing)": "box decoding, score threshold and NMS",
}


def quant_report(int8: list[str], float_: list[str], parts: list[str]) -> dict[str, list[str]]:
    """The quantized-modules report of either engine: int8 modules, float ones and why."""
    float_ += [f"{PARTS[p]}: part not in quant.parts" for p in PARTS if p not in parts]
    return {
        "int8_modules": int8,
        "float_modules": float_,
        "float_by_design": [f"{k}: {v}" for k, v in FLOAT_ONLY.items()],
    }


def check_parts(parts: list[str]) -> None:
    unknown = [p for p in parts if p not in PARTS]
    if unknown:
        raise QuantError(f"quant.parts: unknown part {unknown[0]!r}; valid: {', '.join(PARTS)}")


def check_skip(model: nn.Module, parts: list[str], skip: list[str]) -> None:
    """Every ``quant.skip`` name must be a module inside a quantized part."""
    names = {n for n, _ in model.named_modules()}
    for s in skip:
        if s not in names:
            raise QuantError(f"quant.skip: no module named {s!r} in the model")
        if not any(s.startswith(PARTS[p] + ".") for p in parts):
            raise QuantError(f"quant.skip: {s!r} is not inside a quantized part ({parts})")


def get_part(model: nn.Module, part: str) -> nn.Module:
    return model.get_submodule(PARTS[part])


def set_part(model: nn.Module, part: str, module: nn.Module) -> None:
    parent_path, _, name = PARTS[part].rpartition(".")
    setattr(model.get_submodule(parent_path) if parent_path else model, name, module)


def example_inputs(model: nn.Module, part: str, batch: int = 1) -> tuple[torch.Tensor, ...]:
    """Small inputs of the right shape for tracing (FX, ``torch.export``: ``batch`` 2 keeps the
    batch dimension dynamic, export specialises sizes 0 and 1) and shape propagation."""
    channels = model.backbone.out_channels
    if part == "backbone":
        return (torch.rand(batch, 3, 128, 160),)
    if part == "rpn_head":
        return (torch.rand(batch, channels, 16, 20),)
    if part == "box_head":
        size = model.roi_heads.box_roi_pool.output_size[0]
        return (torch.rand(4 * batch, channels, size, size),)
    return (torch.rand(4 * batch, model.roi_heads.box_predictor.cls_score.in_features),)


def capture_inputs(model: nn.Module, part: str) -> tuple[torch.Tensor, ...]:
    """Example inputs for ``torch.export``: every dimension but the channels above 1, so that
    they stay dynamic (export specialises dimensions of size 0 and 1). A captured part keeps the
    inputs it was captured with (its float attributes, e.g. the predictor's width, are gone)."""
    example = getattr(get_part(model, part), "example", None)  # a captured part (pt2e's ExportedPart)
    return example if example is not None else example_inputs(model, part, batch=2)


def dynamic_shapes(inputs: tuple[torch.Tensor, ...]) -> tuple[dict[int, object], ...]:
    """Every dimension but the channels may vary: batch, RoI count, image and feature sizes."""
    auto = torch.export.Dim.AUTO
    return tuple({d: auto for d in range(x.dim()) if d != 1 or x.dim() == 2} for x in inputs)
