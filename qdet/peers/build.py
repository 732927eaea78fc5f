"""Build every peer from the trained float model: the peers stage's work, one function a family."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from torch import nn

from qdet.config import Config
from qdet.core.console import console
from qdet.data.dataset import DetectionDataset
from qdet.models.onnx import export_onnx
from qdet.peers import onnx, openvino
from qdet.quant.aot import save_compiled


def build_onnx(
    model: nn.Module, calibration: DetectionDataset, cfg: Config, out_dir: Path, score: onnx.Score
) -> tuple[dict[str, Path], dict[str, Any]]:
    """``ort_fp32.onnx`` and ORT's static int8 ``ort_int8.onnx`` calibrated on the PTQ images by
    the best of ORT's methods on as many training images after them (never the valid or test
    images), as ``score`` (the stage's mAP@.5) ranks them."""
    fp32, int8 = out_dir / "ort_fp32.onnx", out_dir / "ort_int8.onnx"
    images, threads = cfg.calibrate.images, cfg.train.threads
    with console.status("exporting the float model to ONNX"):
        result: dict[str, Any] = {"export_seconds": export_onnx(model, fp32, calibration[0][0])}

    with console.status(f"ONNX Runtime int8: {', '.join(onnx.CALIBRATION)}, each on {images} images"):
        method, scores, seconds = onnx.choose_calibration(fp32, int8, calibration, images, score, threads)
    result |= {f"ort_calibration_{m}_selection_map50": s for m, s in scores.items() if isinstance(s, float)}
    result |= {f"ort_calibration_{m}_error": s for m, s in scores.items() if isinstance(s, str)}
    shown = ", ".join(f"{m} {s:.3f}" if isinstance(s, float) else f"{m}: {s}" for m, s in scores.items())
    console.print(
        f"ONNX Runtime calibration: {method} (mAP@.5 on the training images after the calibration"
        f" ones: {shown})"
    )
    result |= {"quantize_seconds": seconds, "ort_calibration": method}
    return {"ort_fp32": fp32, "ort_int8": int8}, result


def build_openvino(
    out_dir: Path, calibration: DetectionDataset, cfg: Config, no_bf16: str | None
) -> tuple[dict[str, Path], dict[str, str], dict[str, Any]]:
    """``ov_fp32`` and ``ov_bf16`` on ``ort_fp32.onnx``; ``ov_int8`` on NNCF's IR, or on
    ``ort_int8.onnx`` where NNCF fails (its error kept in the result), with what stays float in
    OpenVINO's default precision for this CPU (bf16 where it has bf16 instructions)."""
    threads = cfg.train.threads
    built: dict[str, Path] = {}
    skipped: dict[str, str] = {}
    result: dict[str, Any] = {}
    fp32 = out_dir / "ort_fp32.onnx"
    with console.status("OpenVINO: compiling the fp32 peer"):
        built["ov_fp32"] = out_dir / "ov_fp32.json"
        result["ov_fp32_precision"] = openvino.write_spec(built["ov_fp32"], fp32, "f32", threads, "onnx")
    if no_bf16:
        skipped["ov_bf16"] = no_bf16
    else:
        with console.status("OpenVINO: compiling the bf16 peer"):
            spec = out_dir / "ov_bf16.json"
            reported = openvino.write_spec(spec, fp32, "bf16", threads, "onnx")
        result["ov_bf16_precision"] = reported
        if reported == "bf16":
            built["ov_bf16"] = spec
        else:
            spec.unlink()
            skipped["ov_bf16"] = f"asked for bf16, OpenVINO compiled it as {reported}"
    ir = out_dir / "ov_int8.xml"
    with console.status(f"OpenVINO int8: NNCF post-training quantization on {cfg.calibrate.images} images"):
        result["nncf_seconds"], error = openvino.nncf_quantize(fp32, ir, calibration, cfg.calibrate.images)
    source, route = (ir, "nncf") if error is None else (out_dir / "ort_int8.onnx", "ort_qdq")
    if error is not None:
        result["nncf_error"] = error
        console.print(f"note: NNCF could not quantize this detector ({error}); OpenVINO runs ORT's int8")
    built["ov_int8"] = out_dir / "ov_int8.json"
    result["ov_int8_route"] = route
    rest = openvino.default_precision(no_bf16)
    result["ov_int8_precision"] = openvino.write_spec(built["ov_int8"], source, rest, threads, route)
    return built, skipped, result


def build_bf16(trained, out_dir: Path) -> tuple[Path, float]:
    """torch's bf16 float: the float detector's parts compiled by AOTInductor under bf16
    autocast (the same loader as ``float_inductor``); returns its folder and compile seconds."""
    folder = out_dir / "float_bf16"
    meta = {"classes": trained.classes, "backbone": trained.backbone, "variant": "float_bf16"}
    _, seconds = save_compiled(trained.model, trained.config, meta, folder, bf16=True)
    return folder, sum(seconds.values())
