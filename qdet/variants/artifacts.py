"""What convert wrote, as the readers see it: the manifest (``variants.json``: which file holds
which variant, the engine that wrote them, the float artifact of their format, graph
signatures), sizes, and loading any variant as a detector the way the variant table says.
The artifacts themselves load with torch + torchvision alone (:mod:`qdet.serving`)."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qdet.core.errors import QdetError
from qdet.models.detector import load_float_detector
from qdet.peers import peer_files
from qdet.peers.onnx import OrtDetector
from qdet.peers.openvino import OvDetector, spec_files
from qdet.serving.formats import load_artifact
from qdet.variants.table import CONTROL, CONTROL_FILE, REFERENCE, REGISTERED_INT8, variant


def size_summary(sizes: dict[str, int], float_name: str) -> dict[str, float]:
    """``{variant}_size_mb`` for each artifact and ``{variant}_size_ratio`` of the int8 ones
    (the float artifact of the same format, ``float_name``, divided by it)."""
    out = {f"{k}_size_mb": v / 1e6 for k, v in sizes.items()}
    return out | {f"{k}_size_ratio": sizes[float_name] / sizes[k] for k in REGISTERED_INT8}


MANIFEST = "variants.json"


def artifact_size(path: Path) -> int:
    """Bytes of an artifact file, of every file of an artifact folder, or of an OpenVINO peer's
    spec and the model it runs."""
    if path.suffix == ".json":
        return sum(p.stat().st_size for p in spec_files(path))
    return sum(p.stat().st_size for p in path.iterdir()) if path.is_dir() else path.stat().st_size


def graph_signature(model: nn.Module) -> str:
    """A digest of what an int8 model computes, not of its numbers: every module's type and, in
    captured graphs, each node's kind and operator. PTQ and QAT of one plan share it, so the
    registry knows their speeds can differ by noise only."""
    parts = []
    for name, module in model.named_modules():
        parts.append(f"{name}:{type(module).__name__}")
        if isinstance(module, torch.fx.GraphModule):
            parts += [f"{node.op}:{node.target}" for node in module.graph.nodes if node.op != "get_attr"]
    return hashlib.sha256("\n".join(parts).encode()).hexdigest()[:16]


def write_manifest(
    out_dir: Path,
    files: dict[str, Path],
    engine: str,
    float_name: str,
    graphs: dict[str, str],
    float_dtype: str = "fp32",
) -> None:
    """``variants.json``: the engine that wrote the int8 artifacts (readers ask it, never compare
    its name), what their float ops compute in, which artifact holds which variant, the float
    one in the int8 ones' format (it is registered beside them), and the int8 variants' graph
    signatures."""
    data = {
        "engine": engine,
        "float_dtype": float_dtype,
        "float": float_name,
        "variants": {k: v.relative_to(out_dir).as_posix() for k, v in files.items()},
        "graphs": graphs,
    }
    (out_dir / MANIFEST).write_text(json.dumps(data, indent=1))


def read_manifest(out_dir: Path) -> dict[str, Any]:
    return json.loads((out_dir / MANIFEST).read_text())


def evaluated_variants(
    out_dir: Path, peers: Path | None, float_model: Path | None = None, control: Path | None = None
) -> dict[str, Path]:
    """What evaluate scores, each under its own name: float eager (the trained checkpoint, the
    reference for every drop), convert's artifacts (float TorchScript or Inductor, PTQ, QAT), the
    QAT control (``float_ft``) when the control stage made one, then every peer built."""
    manifest = read_manifest(out_dir)
    out = {REFERENCE: float_model} if float_model is not None else {}
    out |= {name: out_dir / rel for name, rel in manifest["variants"].items()}
    if control is not None and (control / CONTROL_FILE).exists():
        out[CONTROL] = control / CONTROL_FILE
    if peers is not None:
        out |= peer_files(peers)
    return out


class ArtifactError(QdetError):
    """An artifact that does not load: truncated, corrupt or from another version."""


def load_variant(name: str, path: Path, threads: int):
    """A variant as a detector callable, loaded as the variant table says: a float checkpoint
    (eager), an artifact convert wrote (TorchScript file or AOTInductor folder), an ONNX file (ONNX
    Runtime) or an OpenVINO peer spec (``.json``). One that does not load is one line naming it
    (each runtime raises its own kind of error, none of them ours)."""
    try:
        return _load_variant(variant(name).load, path, threads)
    except (RuntimeError, ValueError, EOFError) as exc:
        raise ArtifactError(_unloadable(path, exc)) from None
    except Exception as exc:  # ONNX Runtime's InvalidProtobuf/Fail derive from Exception only
        if type(exc).__module__.startswith("onnxruntime"):
            raise ArtifactError(_unloadable(path, exc)) from None
        raise


def _unloadable(path: Path, exc: BaseException) -> str:
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    why = lines[0][:300] if lines else type(exc).__name__
    return (
        f"{path}: does not load ({why}); it is truncated or corrupt: rerun the stage that wrote it "
        "(dvc repro -f -s <stage>)"
    )


def _load_variant(how: str, path: Path, threads: int):
    if how == "checkpoint":
        return load_float_detector(path).model
    if how == "onnx":
        return OrtDetector(path, threads)
    if how == "openvino":
        return OvDetector(path, threads)

    return load_artifact(path)[0]
