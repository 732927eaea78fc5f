"""Where the time goes: median milliseconds per part of a detector, measured with forward
hooks. A torchvision detector (eager, or the eager twin an engine rebuilds of an int8 model hooks
cannot see into, TorchScript) is split into transform, backbone, RPN head, proposals, RoI align,
box head and post-processing; a compiled detector (:mod:`qdet.serving.aot_detector`) into what
it runs: transform, backbone (``backbone.pt2``), RPN head (``rpn_head.pt2`` on every level, and
the flattening of its outputs), proposals, ``roi`` (RoI align + box head + decoding, one
package) and post-processing."""

from __future__ import annotations

import statistics
import time

import torch
from torch import nn

from qdet.measure.accuracy import Detector
from qdet.serving import aot_detector
from qdet.variants.table import FLOAT_COMPILED, REFERENCE

COMPONENTS = {
    "transform": "transform",
    "backbone": "backbone",
    "rpn": "rpn",
    "rpn_head": "rpn.head",
    "roi_heads": "roi_heads",
    "roi_align": "roi_heads.box_roi_pool",
    "box_head": "roi_heads.box_head",
    "box_predictor": "roi_heads.box_predictor",
}


COMPILED = {  # qdet.serving.aot_detector.Detector's submodules
    "transform": "transform",
    "features": "features",
    "backbone": "features.backbone",
    "proposals": "proposals",
    "roi": "roi",
    "detections": "detections",
}
COMPILED_STEPS = tuple(k for k, path in COMPILED.items() if "." not in path)  # one after the other


@torch.inference_mode()
def breakdown(model: nn.Module, images: list[torch.Tensor], rounds: int) -> dict[str, float]:
    """Median ms per component: of a compiled detector, its own steps; of a torchvision one,
    backbone / RPN / RoI align / heads / post-processing."""
    compiled = isinstance(model, aot_detector.Detector)
    med = _medians(model, COMPILED if compiled else COMPONENTS, images, rounds)
    if compiled:
        rest = med["total"] - sum(med[k] for k in COMPILED_STEPS)  # the transform's resize back
        return {
            "transform": med["transform"],
            "backbone": med["backbone"],
            "rpn_head": med["features"] - med["backbone"],
            "proposals": med["proposals"],
            "roi": med["roi"],
            "postprocess": med["detections"] + rest,
            "total": med["total"],
        }
    return {
        "transform": med["transform"],
        "backbone": med["backbone"],
        "rpn_head": med["rpn_head"],
        "proposals": med["rpn"] - med["rpn_head"],
        "roi_align": med["roi_align"],
        "box_head": med["box_head"] + med["box_predictor"],
        # box decoding + NMS inside roi_heads, and the transform's resize back to the image
        "postprocess": med["total"]
        - med["transform"]
        - med["backbone"]
        - med["rpn"]
        - med["roi_align"]
        - med["box_head"]
        - med["box_predictor"],
        "total": med["total"],
    }


def _medians(
    model: nn.Module, components: dict[str, str], images: list[torch.Tensor], rounds: int
) -> dict[str, float]:
    """Median ms of each hooked submodule over ``rounds`` calls, and of the whole call."""
    spent: dict[str, float] = {}
    starts: dict[str, float] = {}
    handles = []
    for key, path in components.items():
        module = model.get_submodule(path)
        handles.append(
            module.register_forward_pre_hook(lambda *_, key=key: starts.__setitem__(key, time.perf_counter()))
        )
        handles.append(
            module.register_forward_hook(
                lambda *_, key=key: spent.__setitem__(
                    key, spent.get(key, 0.0) + time.perf_counter() - starts[key]
                )
            )
        )
    model.eval()
    try:
        model([images[0]])  # warm-up
        per_round: list[dict[str, float]] = []
        for r in range(rounds):
            spent.clear()
            start = time.perf_counter()
            model([images[r % len(images)]])
            total = time.perf_counter() - start
            per_round.append({**spent, "total": total})
    finally:
        for h in handles:
            h.remove()
    return {k: statistics.median(r[k] for r in per_round) * 1e3 for k in per_round[0]}


def breakdowns(
    eager: nn.Module, variants: dict[str, Detector], int8: nn.Module, images: list[torch.Tensor], rounds: int
) -> dict[str, dict[str, float]]:
    """Per-component time of float eager, the float Inductor artifact and ``int8``, the QAT model
    as its engine lets hooks see into it (:meth:`qdet.quant.interface.Engine.timed_int8`)."""
    out = {REFERENCE: breakdown(eager, images, rounds)}
    if FLOAT_COMPILED in variants:
        out[FLOAT_COMPILED] = breakdown(variants[FLOAT_COMPILED], images, rounds)
    out["int8"] = breakdown(int8, images, rounds)
    return out
