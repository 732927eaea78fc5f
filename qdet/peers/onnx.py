"""The ONNX peers: the float detector exported to ONNX (run by ONNX Runtime and by OpenVINO) and
ONNX Runtime's own static int8 of it, calibrated on the same images as qdet's PTQ.

fp32: the float detector as :func:`qdet.models.onnx.export_onnx` writes it. int8: ORT's own
static quantization (QDQ, uint8 activations, per-channel int8 weights, calibrated by the method
of ORT's three that scores best on training images: see :func:`choose_calibration`) after ORT's
pre-processing (without it, biases pass through Identity nodes and the FPN and RPN convolutions
stay float; its symbolic shape inference fails on this graph, so it is skipped). Sessions run
with ORT's default thread settings but the thread count (its intra-op threads spin between
calls, as users get them): the benchmark times in steady state, where the untimed first call of
each block absorbs a neighbour's spinning.
"""

from __future__ import annotations

import contextlib
import io
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch

from qdet.data.dataset import DetectionDataset
from qdet.peers import part_prefixes
from qdet.quant.parts import QuantError

CALIBRATION = ("minmax", "entropy", "percentile")  # ORT's CalibrationMethod, by params name
# The compute ops. ORT's default (every op type it can quantize, Gather/Reshape/... included)
# gave a model that crashes ORT (segfault) under its EXTENDED/ALL graph optimisations on an
# image whose detections are all filtered out.
ORT_INT8_OPS = ("Conv", "Gemm", "MatMul", "Add", "Relu", "MaxPool", "Resize")


def int8_nodes(model_path: Path) -> list[str]:
    """The nodes ORT quantizes: the compute ops of the parts qdet quantizes (backbone, RPN head,
    box head, predictor; ONNX names them by module path), as a fair peer must. Left to op types
    alone ORT also quantized the box decoding, anchor and NMS offset additions (coordinates in
    uint8), and the model crashed ORT (segfault) on the first image."""
    import onnx  # ONNX / ONNX Runtime load only when this peer is built or run

    prefixes = part_prefixes()
    graph = onnx.load(str(model_path), load_external_data=False).graph
    return [n.name for n in graph.node if n.name.startswith(prefixes) and n.op_type in ORT_INT8_OPS]


class CalibrationImages:
    """ORT's CalibrationDataReader over the first ``images`` images of a dataset, read in
    ranges (``set_range``) so the calibrator holds one image's activations at a time."""

    def __init__(self, dataset: DetectionDataset, images: int) -> None:
        self.dataset, self.count = dataset, min(images, len(dataset))
        self.set_range(0, self.count)

    def __len__(self) -> int:
        return self.count

    def set_range(self, start_index: int, end_index: int) -> None:
        self.items = iter(range(start_index, min(end_index, self.count)))

    def get_next(self) -> dict[str, np.ndarray] | None:
        index = next(self.items, None)
        return None if index is None else {"image": self.dataset[index][0].numpy()}


def quantize_onnx(fp32: Path, int8: Path, dataset: DetectionDataset, images: int, method: str) -> float:
    """ORT static int8 (QDQ) of ``fp32`` calibrated on ``images`` images with ``method`` (one of
    :data:`CALIBRATION`); seconds."""
    # ONNX / ONNX Runtime load only when this peer is built or run
    from onnxruntime.quantization import CalibrationMethod, QuantFormat, QuantType, quantize_static

    # ONNX / ONNX Runtime load only when this peer is built or run
    from onnxruntime.quantization.shape_inference import quant_pre_process

    start = time.perf_counter()
    prepared = int8.with_name(int8.stem + ".pre.onnx")
    quant_pre_process(str(fp32), str(prepared), skip_symbolic_shape=True)
    try:
        reader = CalibrationImages(dataset, images)
        with contextlib.redirect_stdout(io.StringIO()):  # ORT prints a line per image for histograms
            quantize_static(
                str(prepared),
                str(int8),
                reader,
                quant_format=QuantFormat.QDQ,
                activation_type=QuantType.QUInt8,
                weight_type=QuantType.QInt8,
                per_channel=True,
                calibrate_method={
                    "minmax": CalibrationMethod.MinMax,
                    "entropy": CalibrationMethod.Entropy,
                    "percentile": CalibrationMethod.Percentile,
                }[method],
                op_types_to_quantize=list(ORT_INT8_OPS),
                nodes_to_quantize=int8_nodes(prepared),
                # one image a range: the histogram methods keep every activation of a range until they
                # bin it (64 images: several GB), and stack them, which fails on RoI tensors whose
                # length differs from image to image
                extra_options={"CalibStridedMinMax": 1},
            )
    finally:
        prepared.unlink(missing_ok=True)
    return time.perf_counter() - start


class OrtDetector:
    """An ONNX detector behind the same call as the others: list of images -> list of dicts."""

    def __init__(self, path: Path, threads: int) -> None:
        import onnxruntime as ort  # ONNX / ONNX Runtime load only when this peer is built or run

        options = ort.SessionOptions()
        options.intra_op_num_threads = threads
        options.inter_op_num_threads = 1
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


Score = Callable[["OrtDetector", DetectionDataset], float]  # a detector's mAP@.5 on a dataset


def choose_calibration(
    fp32: Path,
    int8: Path,
    dataset: DetectionDataset,
    images: int,
    score: Score,
    threads: int,
) -> tuple[str, dict[str, float | str], float]:
    """Quantize with each of ORT's calibration methods (on the first ``images`` images) and keep
    the one whose int8 model scores best (``score``: mAP@.5) on as many training images after
    them: never the valid or test images. A method ORT fails with is reported (its error in one line)
    and left out. Writes the winner to ``int8``; returns (method, per method its score or its
    error, seconds)."""
    start = time.perf_counter()
    held_out = DetectionDataset(dataset.records[images : 2 * images], dataset.classes)
    if len(held_out) == 0:  # a training split no larger than the calibration set: score on it
        held_out = DetectionDataset(dataset.records[:images], dataset.classes)
    results: dict[str, float | str] = {}
    for method in CALIBRATION:
        candidate = int8.with_name(f"{int8.stem}.{method}.onnx")
        try:
            quantize_onnx(fp32, candidate, dataset, images, method)
        except ValueError as error:  # ORT 1.32's histogram methods fail on empty RoI tensors
            results[method] = f"ORT failed: {str(error).strip().splitlines()[0]}"
            continue
        results[method] = score(OrtDetector(candidate, threads), held_out)
    scored = [m for m in CALIBRATION if isinstance(results[m], float)]
    if not scored:
        raise QuantError(f"ONNX Runtime could not quantize {fp32} with any calibration method: {results}")
    best = max(scored, key=lambda m: results[m])  # ties: the first, MinMax (ORT's default)
    int8.with_name(f"{int8.stem}.{best}.onnx").replace(int8)
    for method in CALIBRATION:
        int8.with_name(f"{int8.stem}.{method}.onnx").unlink(missing_ok=True)
    return best, results, time.perf_counter() - start
