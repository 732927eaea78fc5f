"""The FX engine's artifact: the whole detector scripted to one TorchScript file, with its
metadata (``qdet.json``: classes, variant, plan) inside; loads with torch + torchvision alone."""

from __future__ import annotations

import json
import warnings
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qdet.core.errors import last_line
from qdet.core.files import OutputError
from qdet.models.detector import DetectionsOnly
from qdet.serving import TORCHSCRIPT_META as META


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
    with warnings.catch_warnings():  # what scripting torchvision's detector always says
        warnings.filterwarnings(
            "ignore", message=r"`torch\.jit\.script` is deprecated", category=FutureWarning
        )
        warnings.filterwarnings(
            "ignore", message=r"RCNN always returns a \(Losses, Detections\)", category=UserWarning
        )
        return torch.jit.script(DetectionsOnly(model.eval()))


def save_artifact(scripted: torch.jit.ScriptModule, path: Path, meta: dict[str, Any]) -> int:
    """Write atomically (temp + rename); returns the size in bytes."""
    path.parent.mkdir(parents=True, exist_ok=True)
    tmp = path.with_name(path.name + ".tmp")
    try:
        torch.jit.save(scripted, str(tmp), _extra_files={META: json.dumps(meta)})
        tmp.replace(path)
    except RuntimeError as exc:  # torch.jit.save reports a full disk as a RuntimeError
        raise OutputError(f"{path}: not written ({last_line(exc)}); is the disk full?") from None
    finally:
        tmp.unlink(missing_ok=True)
    return path.stat().st_size
