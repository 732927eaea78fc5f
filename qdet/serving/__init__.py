"""Serving: what ships inside artifacts and registered models, importing nothing else of qdet
(torch, torchvision, MLflow, Pillow only): the MLflow pyfunc around any qdet artifact
(TorchScript file or AOTInductor folder), the image reader, the AOT loader and RoI align, and
the deploy loader (:mod:`.qdet_deploy`: ONNX Runtime or OpenVINO, no torch). :mod:`.formats` is
qdet's own loader of both formats and is not shipped."""

from pathlib import Path

TORCHSCRIPT_META = "qdet.json"  # the metadata file inside a TorchScript artifact (classes, variant, plan)
# what a deploy folder ships beside the model files: the loader and its image reader
SHIPPED_DEPLOY = tuple(Path(__file__).with_name(n) for n in ("qdet_deploy.py", "image_input.py"))
DEPLOY_META = "deploy.json"  # in a deploy folder: classes, files and settings, read by the loader
DEPLOY_OPENVINO = "openvino.json"  # in a deploy folder: the OpenVINO settings qdet runs it with
