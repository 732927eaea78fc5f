"""PT2E's int8 detector as ONNX QDQ, with qdet's own ranges.

A converted PT2E graph is float ops between ``quantized_decomposed`` quantize/dequantize ops,
each holding the scale and zero point qdet's observers (PTQ) or fake-quant (QAT) chose, and int8
weights with their per-channel scales. torch's ONNX exporter writes those ops as ONNX
QuantizeLinear/DequantizeLinear through its custom-symbolic route (the dynamo exporter, which
knows them, cannot export a whole detector): the same Q/DQ pairs in the same places, nothing
recalibrated. ONNX Runtime, OpenVINO and TensorRT read QDQ as int8.
"""

from __future__ import annotations

import contextlib
from collections.abc import Iterator
from pathlib import Path

import torch
from torch import nn
from torch.onnx import register_custom_op_symbolic, unregister_custom_op_symbolic
from torch.onnx import symbolic_helper as sh

from qdet.models.onnx import OPSET, export_onnx
from qdet.quant.parts import QuantError

INTEGER = {0: torch.uint8, 1: torch.int8}  # torch's ScalarType codes as the exporter passes them
ONNX_INTEGER = {torch.uint8: 2, torch.int8: 3}  # onnx.TensorProto.UINT8, INT8


def _integer(code: int) -> torch.dtype:
    if code not in INTEGER:
        raise QuantError(f"ONNX QDQ holds uint8 or int8 values, not torch ScalarType {code}")
    return INTEGER[code]


def _qparams(g, scale: float, zero_point: int, code: int):
    return (
        g.op("Constant", value_t=torch.tensor(scale, dtype=torch.float32)),
        g.op("Constant", value_t=torch.tensor(zero_point, dtype=_integer(code))),
    )


@sh.parse_args("v", "f", "i", "i", "i", "i")
def quantize_per_tensor(g, x, scale: float, zero_point: int, quant_min: int, quant_max: int, dtype: int):
    """QuantizeLinear saturates to the whole integer range; a narrower one (7-bit activations,
    ``quant.reduce_range``) is clipped first, in float, to the same bounds."""
    info = torch.iinfo(_integer(dtype))
    if (quant_min, quant_max) != (info.min, info.max):
        low, high = ((q - zero_point) * scale for q in (quant_min, quant_max))
        bound = [g.op("Constant", value_t=torch.tensor(v, dtype=torch.float32)) for v in (low, high)]
        x = g.op("Clip", x, *bound)
    return g.op("QuantizeLinear", x, *_qparams(g, scale, zero_point, dtype))


@sh.parse_args("v", "f", "i", "i", "i", "i", "none")
def dequantize_per_tensor(g, x, scale, zero_point, quant_min, quant_max, dtype, out_dtype=None):
    return g.op("DequantizeLinear", x, *_qparams(g, scale, zero_point, dtype))


@sh.parse_args("v", "v", "v", "i", "i", "i", "i", "none")
def dequantize_per_channel(g, x, scales, zero_points, axis, quant_min, quant_max, dtype, out_dtype=None):
    """Per-channel weights: their scales and zero points are constants of the graph, cast to the
    types ONNX wants (float scales, zero points of the weight's own type); the exporter's
    constant folding stores them cast."""
    zero_points = g.op("Cast", zero_points, to_i=ONNX_INTEGER[_integer(dtype)])
    return g.op("DequantizeLinear", x, g.op("Cast", scales, to_i=1), zero_points, axis_i=axis)


SYMBOLICS = {
    "quantized_decomposed::quantize_per_tensor": quantize_per_tensor,
    "quantized_decomposed::dequantize_per_tensor": dequantize_per_tensor,
    "quantized_decomposed::dequantize_per_channel": dequantize_per_channel,
}


@contextlib.contextmanager
def qdq_symbolics() -> Iterator[None]:
    """The symbolics registered for one export only (the registry is global to the process)."""
    for name, function in SYMBOLICS.items():
        register_custom_op_symbolic(name, function, OPSET)
    try:
        yield
    finally:
        for name in SYMBOLICS:
            unregister_custom_op_symbolic(name, OPSET)


def export_qdq(model: nn.Module, path: Path, example: torch.Tensor) -> float:
    """The converted detector, image in and boxes out, as ONNX QDQ; seconds."""
    with qdq_symbolics():
        return export_onnx(model, path, example)
