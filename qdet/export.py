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


def forget_dead_builtins() -> int:
    """Drop ids of op objects that no longer exist from TorchScript's builtin table; returns how many.

    torch.library replaces an op's Python object when an overload is added (importing
    torch.ao.quantization does it for ``quantized_decomposed``) but the old object's id stays in
    ``torch.jit._builtins``' id-keyed table. A later object born at that address (a Conv2d's
    ``_reversed_padding_repeated_twice`` list, say) is then taken for the op and scripting fails
    at random with "builtin cannot be used as a value". Ops of namespaces other than aten/prim
    are checked against the op object their packet holds now.
    """
    table = torch.jit._builtins._get_builtin_table()
    dead = []
    for key, qualname in table.items():
        namespace, _, name = qualname.partition("::")
        if namespace in ("aten", "prim"):
            continue
        packet = getattr(getattr(torch.ops, namespace), name, None)
        if packet is None or id(getattr(packet, "_op", packet)) != key:
            dead.append(key)
    for key in dead:
        del table[key]
    return len(dead)


def script_detector(model: nn.Module) -> torch.jit.ScriptModule:
    forget_dead_builtins()
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


def size_summary(sizes: dict[str, int]) -> dict[str, float]:
    """``{variant}_size_mb`` for each artifact and ``{variant}_size_ratio`` (float / variant)."""
    out = {f"{k}_size_mb": v / 1e6 for k, v in sizes.items()}
    return out | {f"{k}_size_ratio": sizes["float"] / v for k, v in sizes.items() if k != "float"}
