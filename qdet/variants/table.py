"""The variant table: every detector the pipeline evaluates and times, what it is and where it
runs. Evaluate, benchmark, the plots and the report read it instead of spelling names again.

``kind`` is what the speedups are about: ``speedup_vs_best_float`` compares with the fastest
variant whose kind is not int8 (fp32 or bf16, any runtime), ``speedup_vs_best_int8_peer`` with
the fastest int8 detector a user could run instead of qdet's (ONNX Runtime, OpenVINO).
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal


@dataclass(frozen=True)
class Variant:
    name: str
    label: str  # how tables and plots name it
    kind: Literal["float", "int8"]
    precision: Literal["fp32", "bf16", "int8"]  # what it computes in (int8: the quantized parts)
    runtime: str
    load: Literal["checkpoint", "artifact", "onnx", "openvino"]  # how evaluate and benchmark load it
    peer: bool  # a reference a user could run instead: evaluated and timed, never registered
    registered: bool = False  # an int8 model register puts in the registry (with the manifest's float)
    source: str | None = None  # a registered variant whose deploy files (ONNX, OpenVINO IR) this row runs


VARIANTS: dict[str, Variant] = {
    v.name: v
    for v in (
        Variant("float_eager", "float eager", "float", "fp32", "torch eager", "checkpoint", False),
        Variant("float_ts", "float TorchScript", "float", "fp32", "TorchScript", "artifact", False),
        Variant("float_inductor", "float Inductor (AOT)", "float", "fp32", "AOTInductor", "artifact", False),
        Variant("ptq", "PTQ int8", "int8", "int8", "qdet", "artifact", False, registered=True),
        Variant("qat", "QAT int8", "int8", "int8", "qdet", "artifact", False, registered=True),
        Variant("qat_fp32", "QAT int8, float ops in fp32", "int8", "int8", "qdet", "artifact", False),
        *(
            Variant(f"{v}_{load}", f"{v.upper()} int8 {how}", "int8", "int8", runtime, load, False, source=v)
            for v in ("ptq", "qat")
            for load, how, runtime in (
                ("onnx", "as ONNX QDQ (ONNX Runtime)", "ONNX Runtime"),
                ("openvino", "as OpenVINO IR", "OpenVINO"),
            )
        ),
        Variant(
            "float_ft", "float + QAT's epochs (control)", "float", "fp32", "torch eager", "checkpoint", False
        ),
        Variant(
            "float_bf16",
            "float bf16 (AOTInductor, autocast)",
            "float",
            "bf16",
            "AOTInductor",
            "artifact",
            True,
        ),
        Variant("ort_fp32", "ONNX Runtime fp32", "float", "fp32", "ONNX Runtime", "onnx", True),
        Variant("ort_int8", "ONNX Runtime int8", "int8", "int8", "ONNX Runtime", "onnx", True),
        Variant("ov_fp32", "OpenVINO fp32", "float", "fp32", "OpenVINO", "openvino", True),
        Variant("ov_bf16", "OpenVINO bf16", "float", "bf16", "OpenVINO", "openvino", True),
        Variant("ov_int8", "OpenVINO int8", "int8", "int8", "OpenVINO", "openvino", True),
    )
}
REFERENCE = "float_eager"  # the trained model itself: drops and "vs float eager" are against it
CONTROL = "float_ft"  # the QAT control: what QAT's epochs give without fake quantization
CONTROL_FILE = f"{CONTROL}.pt"  # in the control stage's folder, only when qat.control is on
FLOAT_COMPILED = "float_inductor"  # the float model compiled as the PT2E parts are (every engine builds it)
FP32_TWIN = "qat_fp32"  # the recommended model with fp32 float ops, written only when they are bf16
RECOMMENDED = "qat"  # the int8 variant the breakdown times and the summary shows when no champion
REGISTERED_INT8 = tuple(v.name for v in VARIANTS.values() if v.registered)
DEPLOYED = tuple(v.name for v in VARIANTS.values() if v.source)  # qdet's int8 on ONNX Runtime, OpenVINO


def deployed(name: str) -> dict[str, str]:
    """The rows that run ``name``'s deploy files, by how they load (``onnx``, ``openvino``)."""
    return {v.load: v.name for v in VARIANTS.values() if v.source == name}


def variant(name: str) -> Variant:
    if name not in VARIANTS:
        raise KeyError(f"unknown variant {name!r}; known: {', '.join(VARIANTS)}")
    return VARIANTS[name]


def non_int8(names: list[str] | tuple[str, ...]) -> list[str]:
    """The candidates for the best float: every variant that is not int8, any runtime."""
    return [n for n in names if variant(n).kind != "int8"]


def int8_peers(names: list[str] | tuple[str, ...]) -> list[str]:
    """The int8 detectors a user could run instead of qdet's."""
    return [n for n in names if variant(n).kind == "int8" and variant(n).peer]


def label(name: str) -> str:
    return VARIANTS[name].label if name in VARIANTS else name
