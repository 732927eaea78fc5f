"""Quantization, behind one engine interface (:mod:`qdet.quant.engines`): PT2E (``torch.export``
+ torchao's X86 Inductor quantizer, AOTInductor artifacts; the maintained route) and FX graph
mode (``torch.ao.quantization`` + TorchScript; deprecated upstream). Shared by both: which parts
are quantized (the plan), calibration, QAT controls and per-module sensitivity."""
