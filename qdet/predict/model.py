"""Which detector ``qdet-predict`` runs and on what: a local artifact or a registered model
(``models:/name@alias``, downloaded from the MLflow store), on torch (the TorchScript file or
AOTInductor folder) or on ONNX Runtime / OpenVINO (the deploy folder convert writes beside them
and register attaches to the PTQ/QAT versions)."""

from __future__ import annotations

import json
import os
from collections.abc import Callable
from pathlib import Path

from qdet.core.errors import QdetError
from qdet.serving import DEPLOY_META, DEPLOY_OPENVINO
from qdet.serving.formats import load_artifact

RUNTIMES = ("torch", "onnxruntime", "openvino")


class ModelError(QdetError):
    """The model argument does not name a loadable detector."""


def store_uri(explicit: str | None) -> str:
    """The MLflow store for ``models:/`` URIs: ``--tracking-uri``, else MLFLOW_TRACKING_URI, else
    the ``mlflow.db`` of the repository this runs in; outside one, one line saying what to set
    (MLflow itself would create an empty ``mlflow.db`` in the current folder)."""
    # tracking only for models:/ URIs: qdet-predict on a file loads none of the pipeline's code
    from qdet.tracking import default_uri, git

    if explicit or os.environ.get("MLFLOW_TRACKING_URI"):
        return explicit or os.environ["MLFLOW_TRACKING_URI"]
    top = git(["rev-parse", "--show-toplevel"])
    if top and (Path(top) / "mlflow.db").exists():
        return default_uri(Path(top))
    raise ModelError(
        "models:/ needs the MLflow store: run inside the qdet repository, or pass --tracking-uri "
        "(or set MLFLOW_TRACKING_URI) to e.g. sqlite:////path/to/qdet/mlflow.db or http://host:5000"
    )


def resolve_model(model: str, tracking_uri: str | None = None, runtime: str = "torch") -> Path:
    """A local artifact (.ts file or AOTInductor folder; for ONNX Runtime and OpenVINO a deploy
    folder), or the one inside a registered model."""
    if runtime not in RUNTIMES:
        raise ModelError(f"--runtime {runtime}: one of {', '.join(RUNTIMES)}")
    if not model.startswith(("models:/", "runs:/")):
        path = Path(model)
        if not path.exists():
            raise ModelError(f"{path}: model file not found")
        if runtime != "torch" and not (path / DEPLOY_META).is_file():
            raise ModelError(
                f"{path}: --runtime {runtime} runs a deploy folder (models/export/deploy/qat, or a "
                "registered PTQ/QAT version), which holds deploy.json"
            )
        if path.suffix == ".pt":
            raise ModelError(
                f"{path}: a training checkpoint, not an exported detector; use an artifact from "
                "models/export/ (qat.ts, or the qat folder with the PT2E engine) or models:/<name>@<alias>"
            )
        return path
    import mlflow  # MLflow loads only for models:/ and runs:/ URIs
    from mlflow.exceptions import MlflowException  # MLflow loads only for models:/ and runs:/ URIs

    uri = store_uri(tracking_uri)
    # models:/ is resolved by the registry, whose URI is not download_artifacts' tracking_uri:
    # left unset it is MLflow's default, a new mlflow.db in the current folder
    mlflow.set_tracking_uri(uri)
    mlflow.set_registry_uri(uri)
    try:
        local = Path(mlflow.artifacts.download_artifacts(artifact_uri=model))
    except MlflowException as exc:
        raise ModelError(f"{model} in {uri}: {str(exc).splitlines()[0]}") from None
    if runtime != "torch":
        found = sorted(p.parent for p in local.rglob(DEPLOY_META))
    else:
        found = sorted([*local.rglob("*.ts"), *(p.parent for p in local.rglob("detector.json"))])
    if not found:
        kind = (
            "deploy folder (a PTQ/QAT version registered by this qdet)" if runtime != "torch" else "artifact"
        )
        raise ModelError(f"{model}: no qdet {kind} inside the registered model")
    return found[0]


def load_model(path: Path, runtime: str, threads: int) -> tuple[Callable, dict]:
    """The detector (list of 3xHxW images -> list of dicts) at ``path`` on ``runtime``, and its
    metadata (classes, variant)."""
    if runtime == "torch":
        try:
            return load_artifact(path)
        except RuntimeError as exc:  # torch.jit.load / AOTInductor on a truncated or foreign file
            first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
            raise ModelError(
                f"{path}: not a loadable qdet artifact (truncated or corrupt?): {first}"
            ) from None
    meta = json.loads((path / DEPLOY_META).read_text())
    try:
        if runtime == "onnxruntime":
            from qdet.peers.onnx import OrtDetector  # only the runtime asked for is loaded

            return OrtDetector(path / meta["onnx"], threads), meta
        from qdet.peers.openvino import OvDetector  # only the runtime asked for is loaded

        return OvDetector(path / DEPLOY_OPENVINO, threads), meta
    except (RuntimeError, OSError) as exc:  # OpenVINO's and ONNX Runtime's load errors
        raise ModelError(f"{path}: {runtime} cannot load it: {str(exc).strip().splitlines()[0]}") from None
