"""Quantization with FX graph mode: which parts, qconfigs, calibration, QAT, conversion, sensitivity."""
