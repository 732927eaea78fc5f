"""Serving: what ships inside artifacts and registered models, importing nothing else of qdet
(torch, torchvision, MLflow, Pillow only): the MLflow pyfunc around any qdet artifact
(TorchScript file or AOTInductor folder), the image reader, the AOT loader and RoI align.
:mod:`.formats` is qdet's own loader of both formats and is not shipped."""

TORCHSCRIPT_META = "qdet.json"  # the metadata file inside a TorchScript artifact (classes, variant, plan)
