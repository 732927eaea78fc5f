"""The PT2E engine: PyTorch's maintained quantization route (torchao + Inductor).

Each planned part is captured on its own with ``torch.export`` (whole torchvision detectors do
not export), annotated by torchao's ``X86InductorQuantizer``, observed (PTQ) or fake-quantized
(QAT) while the detector runs end to end as usual, then converted to quantize/dequantize +
float ops that Inductor lowers to int8 kernels. No ``torch.ao.quantization`` call, no quantized
dtype, no TorchScript.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

from torch import nn
from torchao.quantization.pt2e import disable_fake_quant, disable_observer, enable_fake_quant, enable_observer
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e

from qdet.config import ModelConfig
from qdet.quant.aot import save_compiled
from qdet.quant.interface import Saved
from qdet.quant.parts import PARTS, capture_inputs, check_skip, dynamic_shapes, get_part, set_part
from qdet.quant.plan import QuantPlan
from qdet.quant.pt2e.capture import ExportedPart, capture
from qdet.quant.pt2e.diagnostics import describe, module_sqnr
from qdet.quant.pt2e.qdq import export_qdq
from qdet.quant.pt2e.quantizer import make_quantizer, quantization_config
from qdet.quant.pt2e.workarounds import (
    bn_constants,
    folding_with_own_bn_constants,
    memoize_pattern_graphs,
    split_shared_activations,
)

memoize_pattern_graphs()

__all__ = [  # the engine interface (qdet.quant.interface), and what the tests use
    "ExportedPart",
    "capture_inputs",
    "convert",
    "describe",
    "dynamic_shapes",
    "export_qdq",
    "fake_quant",
    "freeze_bn",
    "module_name",
    "module_sqnr",
    "observers",
    "prepare",
    "quantization_config",
    "save_float",
    "save_int8",
    "split_shared_activations",
    "timed_int8",
]
ARTIFACT = "AOTInductor folder (compiling)"
FLOAT_DTYPES = ("fp32", "bf16")


def prepare(model: nn.Module, plan: QuantPlan, qat: bool) -> nn.Module:
    """Replace each planned part by its observed (PTQ) or fake-quant (QAT) captured graph, in
    place; returns the model, which still runs end to end for calibration and training."""
    check_skip(model, plan.parts, plan.skip)
    inputs_by_part = {part: capture_inputs(model, part) for part in plan.parts}
    for part in plan.parts:
        module = get_part(model, part)
        graph_module = capture(copy.deepcopy(module), inputs_by_part[part], training=qat)
        quantizer = make_quantizer(plan, part, qat)
        prepared = prepare_qat_pt2e(graph_module, quantizer) if qat else prepare_pt2e(graph_module, quantizer)
        channels = getattr(module, "out_channels", None)
        wrapped = ExportedPart(prepared, channels, inputs_by_part[part], bn_constants(module))
        set_part(model, part, wrapped.train(qat))
    return model


def freeze_bn(model: nn.Module) -> None:
    """QAT: batch-norm statistics stop moving (the weights still train)."""
    for module in model.modules():
        if isinstance(module, ExportedPart):
            module.freeze_bn()


def fake_quant(model: nn.Module, on: bool) -> None:
    for module in model.modules():
        if isinstance(module, ExportedPart):
            module.graph_module.apply(enable_fake_quant if on else disable_fake_quant)


def observers(model: nn.Module, on: bool) -> None:
    for module in model.modules():
        if isinstance(module, ExportedPart):
            module.graph_module.apply(enable_observer if on else disable_observer)


def convert(model: nn.Module, plan: QuantPlan) -> nn.Module:
    """Convert each captured part to its quantized graph (quantize/dequantize around float ops,
    which Inductor fuses into int8 kernels); a deep copy, the prepared model stays usable."""
    model = copy.deepcopy(model).eval()
    for part in plan.parts:
        wrapped = get_part(model, part)
        wrapped.freeze_bn()  # eval batch norms with their own eps: convert folds them into the convs
        with folding_with_own_bn_constants(wrapped.bn_constants):
            converted = convert_pt2e(wrapped.graph_module)
        channels = getattr(wrapped, "out_channels", None)
        set_part(model, part, ExportedPart(converted, channels, wrapped.example).eval())
    return model


def module_name(name: str) -> str:
    """The same module inside its captured part (``backbone.body.0`` ->
    ``backbone.graph_module.body.0``); a name outside the parts is unchanged."""
    for path in PARTS.values():
        if name.startswith(path + "."):
            return f"{path}.graph_module.{name[len(path) + 1 :]}"
    return name


def timed_int8(eager: nn.Module, loaded: Any, state: dict[str, Any]) -> nn.Module:
    """The artifact itself: the compiled detector times its own steps."""
    return loaded


def save_int8(
    model: nn.Module,
    model_cfg: ModelConfig,
    meta: dict[str, Any],
    out_dir: Path,
    variant: str,
    float_dtype: str = "fp32",
) -> Saved:
    """Every part compiled by AOTInductor into the folder ``<variant>``, with its loader; with
    ``bf16`` what stays float between the int8 kernels computes in bf16 (Inductor's
    int8-mixed-bf16 lowering of the quantize/dequantize graph under autocast)."""
    path = out_dir / variant
    meta = {**meta, "float_dtype": float_dtype}
    size, seconds = save_compiled(model, model_cfg, meta, path, bf16=float_dtype == "bf16")
    return Saved(path, size, seconds)


def save_float(
    model: nn.Module, model_cfg: ModelConfig, meta: dict[str, Any], out_dir: Path
) -> dict[str, Saved]:
    """Nothing more: the float model in this format (``float_inductor``) is built for every engine."""
    return {}
