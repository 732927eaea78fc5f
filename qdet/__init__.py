"""qdet: a torchvision Faster R-CNN trained, made int8 (PTQ and QAT, with the PT2E or the FX
engine) and measured against the float model and the runtimes a user could pick instead.

Packages by job: ``core`` (what every package shares: console, errors, files, checkpoints),
``config`` (typed params), ``data`` (sources to a torch Dataset, train / valid / test),
``models`` (backbones, detector), ``training`` (the loop train, qat and control share),
``quant`` (the engines: what is quantized, calibration, QAT, conversion, their artifacts),
``peers`` (ONNX Runtime, OpenVINO, torch bf16), ``measure`` (the variant table, accuracy, speed,
plots, the results page), ``registry`` (the champion policy and its MLflow I/O), ``tracking``
(MLflow runs), ``serving`` (what ships inside artifacts and registered models), ``predict``
(``qdet-predict``) and ``pipeline`` (what the DVC stages stand on: the stage boundary, the
training-stage skeleton).
"""
