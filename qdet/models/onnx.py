"""The whole detector as ONNX, image in, boxes out: what the ONNX peers start from and what
qdet's own int8 is shipped as (:mod:`qdet.peers.deploy`).

torch's TorchScript-based exporter, opset 17: the dynamo exporter fails on ``batched_nms``, and
whole torchvision detectors do not ``torch.export``.
"""

from __future__ import annotations

import contextlib
import copy
import time
import warnings
from collections.abc import Iterator
from pathlib import Path

import torch
import torchvision.ops.boxes as boxes_ops
from torch import nn

OPSET = 17  # per-axis DequantizeLinear (weights) needs 13


@contextlib.contextmanager
def nms_without_if(max_coordinate: float) -> Iterator[None]:
    """torchvision's batched NMS with its coordinate trick (each class's boxes shifted apart so
    one NMS serves all classes) offset by a fixed ``max_coordinate + 1`` instead of
    ``boxes.max() + 1``: the same detections, but no ``If`` node in the ONNX graph (torchvision
    scripts the trick to guard ``max()`` of no boxes), which NNCF's OpenVINO backend cannot follow
    ("Could not find a node Unsqueeze_... in NNCFGraph")."""

    def batched_nms(boxes: torch.Tensor, scores: torch.Tensor, idxs: torch.Tensor, iou: float):
        offsets = idxs.to(boxes) * (max_coordinate + 1)
        return torch.ops.torchvision.nms(boxes + offsets[:, None], scores, iou)

    original = boxes_ops._batched_nms_coordinate_trick
    boxes_ops._batched_nms_coordinate_trick = batched_nms
    try:
        yield
    finally:
        boxes_ops._batched_nms_coordinate_trick = original


EXPORT_NOISE = (  # (message, category, module) torch.onnx.export warns about on torchvision's detector
    # the route chosen on purpose (the dynamo exporter fails on batched_nms) and its helper
    (r"You are using the legacy TorchScript-based ONNX export", DeprecationWarning, ""),
    (r"The feature will be removed\. Please remove usage of this function", DeprecationWarning, ""),
    # torchvision's detection code as traced: sizes it reads become constants or are recomputed
    # per input in the graph; evaluate scores the exported model against eager (same mAP)
    (r"", torch.jit.TracerWarning, r"torchvision\."),
    (r"To copy construct from a tensor", UserWarning, r"torchvision\."),
    # ... and torch's helpers it calls: interpolate's traced scale, torch._assert's shape checks
    (r"torch\.tensor results are registered as constants", torch.jit.TracerWarning, r"torch\.nn\.functional"),
    (r"To copy construct from a tensor", UserWarning, r"torch\.nn\.functional"),
    (r"Converting a tensor to a Python boolean", torch.jit.TracerWarning, r"torch$"),
    (r"Exporting aten::index operator of advanced indexing", UserWarning, ""),
)


def export_onnx(model: nn.Module, path: Path, example: torch.Tensor) -> float:
    """The whole float detector as ONNX (one image in; boxes, labels, scores out); seconds.
    NMS runs on resized images, clipped to at most ``max_size`` a side: twice that bounds every
    coordinate (see :func:`nms_without_if`)."""
    model = copy.deepcopy(model).eval()
    pool = model.roi_heads.box_roi_pool
    if hasattr(pool, "tasks"):
        pool.tasks = 1  # torch.jit.fork does not trace; one task is torchvision's own path
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    bound = 2.0 * model.transform.max_size
    with warnings.catch_warnings(), torch.no_grad(), nms_without_if(bound):
        for message, category, module in EXPORT_NOISE:
            warnings.filterwarnings("ignore", message=message, category=category, module=module)
        torch.onnx.export(
            model,
            ([example],),
            str(path),
            dynamo=False,
            opset_version=OPSET,
            input_names=["image"],
            output_names=["boxes", "labels", "scores"],
            dynamic_axes={
                "image": {1: "height", 2: "width"},
                "boxes": {0: "n"},
                "labels": {0: "n"},
                "scores": {0: "n"},
            },
        )
    return time.perf_counter() - start
