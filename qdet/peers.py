"""Reference variants a user could pick instead of qdet: ONNX Runtime fp32 and int8, built from
the same float model and the same calibration images, so the benchmark compares against them.

fp32: torch's ONNX exporter (TorchScript-based, opset 17: the dynamo exporter fails on
``batched_nms``). int8: ORT's own static quantization (QDQ, uint8 activations, per-channel int8
weights) after ORT's pre-processing (without it, biases pass through Identity nodes and the FPN
and RPN convolutions stay float; its symbolic shape inference fails on this graph, so it is
skipped). Sessions run with thread spinning off: a spinning ORT pool would steal the cores from
whatever is timed next in the same process.
"""

from __future__ import annotations

import copy
import time
import warnings
from pathlib import Path

import numpy as np
import torch
from torch import nn

from qdet.data.dataset import DetectionDataset

PEERS = ("ort_fp32", "ort_int8")
# The compute ops. ORT's default (every op type it can quantize, Gather/Reshape/... included)
# gave a model that crashes ORT (segfault) under its EXTENDED/ALL graph optimisations on an
# image whose detections are all filtered out.
ORT_INT8_OPS = ("Conv", "Gemm", "MatMul", "Add", "Relu", "MaxPool", "Resize")


def export_onnx(model: nn.Module, path: Path, example: torch.Tensor) -> float:
    """The whole float detector as ONNX (one image in; boxes, labels, scores out); seconds."""
    model = copy.deepcopy(model).eval()
    pool = model.roi_heads.box_roi_pool
    if hasattr(pool, "tasks"):
        pool.tasks = 1  # torch.jit.fork does not trace; one task is torchvision's own path
    path.parent.mkdir(parents=True, exist_ok=True)
    start = time.perf_counter()
    with warnings.catch_warnings(), torch.no_grad():
        warnings.simplefilter("ignore")
        torch.onnx.export(
            model,
            ([example],),
            str(path),
            dynamo=False,
            opset_version=17,
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


class CalibrationImages:
    """ORT's CalibrationDataReader over the first ``images`` images of a dataset."""

    def __init__(self, dataset: DetectionDataset, images: int) -> None:
        self.items = iter(range(min(images, len(dataset))))
        self.dataset = dataset

    def get_next(self) -> dict[str, np.ndarray] | None:
        index = next(self.items, None)
        return None if index is None else {"image": self.dataset[index][0].numpy()}


def quantize_onnx(fp32: Path, int8: Path, dataset: DetectionDataset, images: int) -> float:
    """ORT static int8 (QDQ) of ``fp32`` calibrated on ``images`` images; seconds."""
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static
    from onnxruntime.quantization.shape_inference import quant_pre_process

    start = time.perf_counter()
    prepared = int8.with_name(int8.stem + ".pre.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    quantize_static(
        str(prepared),
        str(int8),
        CalibrationImages(dataset, images),
        quant_format=QuantFormat.QDQ,
        activation_type=QuantType.QUInt8,
        weight_type=QuantType.QInt8,
        per_channel=True,
        calibrate_method=CalibrationMethod.MinMax,
        op_types_to_quantize=list(ORT_INT8_OPS),
    )
    prepared.unlink()
    return time.perf_counter() - start


class OrtDetector:
    """An ONNX detector behind the same call as the others: list of images -> list of dicts."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")
        options.log_severity_level = 3  # warnings about unused initializers are not the user's
        self.session = ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for image in images:
            boxes, labels, scores = self.session.run(None, {"image": image.numpy()})
            out.append(
                {
                    "boxes": torch.from_numpy(boxes),
                    "labels": torch.from_numpy(labels),
                    "scores": torch.from_numpy(scores),
                }
            )
        return out
