"""qdet: a torchvision Faster R-CNN trained, made int8 (PTQ and QAT, with the PT2E or the FX
engine) and measured against the float model and the runtimes a user could pick instead.

Packages by job: ``data`` (sources to a torch Dataset), ``models`` (backbones, detector),
``quant`` (the engines: what is quantized, calibration, QAT, conversion), ``peers`` (ONNX
Runtime, OpenVINO, torch bf16), ``serving`` (what ships inside artifacts and registered
models), ``registry`` (the champion policy and the MLflow registry I/O).
"""
