"""Self-contained artifacts: the whole detector as TorchScript, loadable with torch + torchvision
alone (no qdet), returning a list of {boxes, labels, scores} dicts like the float model.
Class names and the resolved config travel inside the file as ``qdet.json``."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qdet.models.detector import DetectionsOnly

META = "qdet.json"


def script_detector(model: nn.Module) -> torch.jit.ScriptModule:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        return torch.jit.script(DetectionsOnly(model.eval()))


def save_artifact(scripted: torch.jit.ScriptModule, path: Path, meta: dict[str, Any]) -> int:
    """Write atomically (temp + rename); returns the size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    torch.jit.save(scripted, str(tmp), _extra_files={META: json.dumps(meta)})
    tmp.replace(path)
    return path.stat().st_size


def load_artifact(path: Path) -> tuple[torch.jit.ScriptModule, dict[str, Any]]:
    import torchvision  # noqa: F401  (registers torchvision::nms and roi_align for TorchScript)

    files = {META: ""}
    module = torch.jit.load(str(path), map_location="cpu", _extra_files=files)
    return module.eval(), json.loads(files[META] or "{}")
