"""Quantization, behind one engine interface (:mod:`qdet.quant.engines`): PT2E (``torch.export``
+ torchao's X86 Inductor quantizer, AOTInductor artifacts; the maintained route) and FX graph
mode (``torch.ao.quantization`` + TorchScript; deprecated upstream). Shared by both: which parts
are quantized (the plan), calibration, QAT controls and per-module sensitivity."""

from qdet.config.engines import DEPRECATED_UPSTREAM


def deprecated_upstream(engine: str) -> bool:
    """Whether an engine's APIs are deprecated upstream (their warnings are then noise in stage
    output). Known here, without importing torch or the engine: importing FX is what warns."""
    return engine in DEPRECATED_UPSTREAM
