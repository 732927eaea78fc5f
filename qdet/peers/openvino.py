"""The OpenVINO peers: Intel's CPU runtime on the same ONNX files, set up as its docs say for
latency (``PERFORMANCE_HINT: LATENCY``, one stream, the benchmark's thread count).

An OpenVINO peer is a small JSON file beside the model it runs (``ov_fp32.json`` -> ``ort_fp32.onnx``
with ``INFERENCE_PRECISION_HINT: f32``): the same file, compiled two ways, is two peers. The
precision a peer records is the one the compiled model reports, never the one asked for: on a
CPU without bf16 instructions OpenVINO quietly computes in f32 whatever the hint says.

int8: OpenVINO's own route, NNCF's post-training quantization of the fp32 model (the data-dependent
ops left float), saved as OpenVINO IR. NNCF cannot follow ``If`` nodes; the ONNX export leaves
none (:func:`qdet.models.onnx.nms_without_if`). Where NNCF still fails on a graph, the error is
recorded and OpenVINO runs ONNX Runtime's QDQ model as int8 instead, which it does natively.
"""

from __future__ import annotations

import json
import logging
import re
import time
from pathlib import Path
from typing import Any

import numpy as np
import torch

from qdet.data.dataset import DetectionDataset
from qdet.peers import part_prefixes

SPEC_RUNTIME = "openvino"
LATENCY = {"PERFORMANCE_HINT": "LATENCY", "NUM_STREAMS": "1"}  # OpenVINO's latency recipe


def _core():
    import openvino as ov  # OpenVINO / NNCF load only when this peer is built or run

    return ov.Core()


def compile_model(model: Path, config: dict[str, str], threads: int):
    core = _core()
    return core.compile_model(
        core.read_model(str(model)), "CPU", {**config, "INFERENCE_NUM_THREADS": str(threads)}
    )


def default_precision(no_bf16: str | None) -> str:
    """What OpenVINO computes the float ops of an int8 model in by default on this CPU: bf16
    where it has bf16 instructions (``no_bf16`` is None), else f32. qdet's deploy rows and
    OpenVINO's own int8 peer use it alike."""
    return "f32" if no_bf16 else "bf16"


def reported_precision(compiled) -> str:
    """What the compiled model computes in: ``f32`` or ``bf16`` (OpenVINO's type names)."""
    value = compiled.get_property("INFERENCE_PRECISION_HINT")
    return value.to_string() if hasattr(value, "to_string") else str(value)


def write_spec(path: Path, model: Path, precision: str, threads: int, route: str) -> str:
    """Compile ``model`` once with ``precision`` as the hint, write the peer's JSON and return
    the precision the compiled model reports."""
    config = {**LATENCY, "INFERENCE_PRECISION_HINT": precision}
    reported = reported_precision(compile_model(model, config, threads))
    spec = {
        "runtime": SPEC_RUNTIME,
        "model": model.relative_to(path.parent).as_posix(),
        "config": config,
        "reported_precision": reported,
        "route": route,
    }
    path.write_text(json.dumps(spec, indent=1))
    return reported


def read_spec(path: Path) -> dict[str, Any]:
    spec = json.loads(path.read_text())
    if spec.get("runtime") != SPEC_RUNTIME:
        raise ValueError(f"{path}: not an OpenVINO peer (runtime {spec.get('runtime')!r})")
    return spec


def spec_model(path: Path) -> Path:
    """The model a spec runs (named relative to the spec's folder)."""
    return path.parent / read_spec(path)["model"]


def spec_files(path: Path) -> list[Path]:
    """The files a peer runs: its JSON and its model (an IR's ``.bin`` beside its ``.xml``)."""
    model = spec_model(path)
    extra = [model.with_suffix(".bin")] if model.suffix == ".xml" else []
    return [path, model, *extra]


class OvDetector:
    """An OpenVINO peer behind the same call as the others: list of images -> list of dicts."""

    def __init__(self, path: Path, threads: int) -> None:
        spec = read_spec(path)
        self.compiled = compile_model(spec_model(path), spec["config"], threads)
        self.precision = reported_precision(self.compiled)
        self.request = self.compiled.create_infer_request()
        self.outputs = [self.compiled.output(name) for name in ("boxes", "labels", "scores")]

    def __call__(self, images: list[torch.Tensor]) -> list[dict[str, torch.Tensor]]:
        out = []
        for image in images:
            result = self.request.infer({0: image.numpy()})
            boxes, labels, scores = (np.array(result[o]) for o in self.outputs)
            out.append(
                {
                    "boxes": torch.from_numpy(boxes),
                    "labels": torch.from_numpy(labels.astype(np.int64)),
                    "scores": torch.from_numpy(scores),
                }
            )
        return out


def outside_parts() -> str:
    """A regular expression for every node outside the parts qdet quantizes (backbone, RPN head,
    box head, predictor; the ONNX export names nodes by module path), which NNCF leaves float:
    a fair peer quantizes what qdet quantizes. Left to itself NNCF also quantized the box
    decoding and anchor arithmetic (coordinates in int8): mAP@.5 −7.9 points on the default model."""
    inside = "|".join(re.escape(prefix) for prefix in part_prefixes())
    return f"^(?!{inside}).*"


def nncf_quantize(fp32: Path, out: Path, dataset: DetectionDataset, images: int) -> tuple[float, str | None]:
    """OpenVINO's own int8: NNCF post-training quantization of the ONNX model, saved as IR
    (``out``, ``.xml`` + ``.bin``). Returns (seconds, None) or (seconds, the error in one line)
    when NNCF cannot quantize this graph."""
    import nncf  # OpenVINO / NNCF load only when this peer is built or run
    import nncf.errors  # OpenVINO / NNCF load only when this peer is built or run
    import openvino as ov  # OpenVINO / NNCF load only when this peer is built or run

    nncf.set_log_level(logging.WARNING)  # its INFO lines list every op it leaves float
    errors = nncf.errors
    # what NNCF raises for a graph it cannot quantize (OpenVINO's graph passes: RuntimeError)
    cannot = (errors.InternalError, errors.ValidationError, errors.UnsupportedModelError, RuntimeError)
    start = time.perf_counter()
    items = [dataset[i][0].numpy() for i in range(min(images, len(dataset)))]
    try:
        quantized = nncf.quantize(
            _core().read_model(str(fp32)),
            nncf.Dataset(items),
            subset_size=len(items),
            ignored_scope=nncf.IgnoredScope(patterns=[outside_parts()], validate=False),
        )
    except cannot as error:  # a graph NNCF cannot quantize: kept, and ORT's int8 runs instead
        first = str(error).strip().splitlines()[0] if str(error).strip() else ""
        return time.perf_counter() - start, f"{type(error).__module__}.{type(error).__name__}: {first}"
    ov.save_model(quantized, str(out), compress_to_fp16=False)  # float weights stay fp32
    return time.perf_counter() - start, None


def to_ir(onnx_path: Path, xml: Path) -> None:
    """An ONNX model as OpenVINO IR (``.xml`` + ``.bin``): QDQ weights are stored as their int8
    values with OpenVINO's decompression ops, float weights stay fp32. Read by the runtime's ONNX
    frontend, as OpenVINO runs an ONNX file: ``ov.convert_model`` of the same QDQ file gave an IR
    that ran slower (measured: docs/results-history.md)."""
    import openvino as ov  # as in _core: only where OpenVINO runs

    xml.parent.mkdir(parents=True, exist_ok=True)
    ov.save_model(_core().read_model(str(onnx_path)), str(xml), compress_to_fp16=False)
