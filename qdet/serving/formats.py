"""The two artifact formats the engines write, told apart here and nowhere else in qdet (the
shipped pyfunc, which cannot import qdet, repeats the test): an AOTInductor artifact is a folder
that carries its own loader, a TorchScript artifact one file with its metadata inside."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from qdet.serving import TORCHSCRIPT_META
from qdet.serving.aot_detector import load


def load_artifact(path: Path) -> tuple[Any, dict[str, Any]]:
    """Any artifact convert writes (int8 of either engine, float TorchScript or Inductor) and its
    metadata (classes, variant, plan)."""
    import torch  # torch only to load a torch artifact (the deploy loader needs none)

    if path.is_dir():
        detector = load(path)
        return detector, detector.meta
    import torchvision  # noqa: F401  (registers torchvision::nms and roi_align for TorchScript)

    files = {TORCHSCRIPT_META: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return module.eval(), json.loads(files[TORCHSCRIPT_META] or "{}")
