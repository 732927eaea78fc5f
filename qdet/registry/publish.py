"""The registry's MLflow I/O: register every variant as a pyfunc model (TorchScript file or
AOTInductor folder), tag the versions, log the reference models and their metrics, and move
the alias where :mod:`qdet.registry.champion` says."""

from __future__ import annotations

import contextlib
import hashlib
import json
import shutil
import tempfile
from collections.abc import Callable
from pathlib import Path

import mlflow
from mlflow.exceptions import MlflowException
from mlflow.utils.mlflow_tags import MLFLOW_MODEL_VERSIONS

from qdet.core.errors import QdetError
from qdet.core.files import md5sum
from qdet.registry.champion import Candidate, Holder, challenge
from qdet.registry.describe import model_description, version_description
from qdet.registry.figures import describe_parent, log_model_metrics, log_reference
from qdet.registry.schema import input_example, signature
from qdet.variants.artifacts import read_manifest
from qdet.variants.table import REGISTERED_INT8, deployed, label

SERVING = Path(__file__).resolve().parents[1] / "serving"  # what ships inside a registered model
PYFUNC_FILE = SERVING / "detector_pyfunc.py"
IMAGE_INPUT_FILE = SERVING / "image_input.py"  # the pyfunc's image reader, shipped beside it
REQUIREMENTS = ["torch==2.14.1", "torchvision==0.29.1", "pillow", "pandas", "numpy"]


class RegistryUnreachable(QdetError):
    """Register could not reach the store: what it did is in its offline log, rerun later."""


REGISTERED = ("float", *REGISTERED_INT8)  # the variant table's registered int8 ones and their float


def model_name(configured: str, dataset: str, backbone: str) -> str:
    """``register.model_name``, where ``auto`` means ``qdet-<dataset>-<backbone>``."""
    return configured if configured != "auto" else f"qdet-{dataset}-{backbone}"


def registered_rows(exported: Path) -> dict[str, str]:
    """Registered name -> its eval/benchmark row (``float`` is the float artifact of the engine)."""
    return {"float": read_manifest(exported)["float"]} | {name: name for name in REGISTERED_INT8}


def candidates(exported: Path, maps: dict, bench: dict) -> list[Candidate]:
    """One candidate per exported variant, with its accuracy (evaluate) and its speed
    (benchmark): the speedup is against the fastest float variant of the run, peers included."""
    manifest = read_manifest(exported)
    row = registered_rows(exported)
    graphs = manifest.get("graphs", {})
    rows = bench["variants"]
    return [
        Candidate(
            v,
            exported / manifest["variants"][row[v]],
            maps[row[v]]["map50"],
            maps[row[v]]["map50_drop"],
            rows[row[v]]["speedup_vs_best_float"],
            rows[row[v]]["speedup_vs_best_float_ci95"],
            rows[row[v]]["latency_ms_p50"],
            graphs.get(v, v),
            maps[row[v]].get("map50_ci95", [maps[row[v]]["map50"]] * 2),
            artifact_md5(exported / manifest["variants"][row[v]]),
            deploy_folder(exported, manifest["variants"], v),
        )
        for v in REGISTERED
    ]


def deploy_folder(exported: Path, files: dict[str, str], registered: str) -> Path | None:
    """The folder holding a variant's deploy files (its ONNX row's file sits in it), if convert
    wrote one."""
    onnx_row = deployed(registered).get("onnx")
    return (exported / files[onnx_row]).parent if onnx_row in files else None


def artifact_md5(path: Path) -> str:
    """The artifact's bytes, a file or a folder's files in name order (missing: empty)."""
    if path.is_file():
        return md5sum(path)
    if not path.is_dir():
        return ""
    digest = hashlib.md5()
    for file in sorted(p for p in path.rglob("*") if p.is_file()):
        digest.update(f"{file.relative_to(path)}:{md5sum(file)}".encode())
    return digest.hexdigest()


def _numbers(text: str | None) -> list[float] | None:
    """A ``[lo, hi]`` tag back to numbers (None when absent or unreadable)."""
    try:
        value = json.loads(text) if text else None
    except ValueError:
        return None
    return [float(v) for v in value] if isinstance(value, list) and len(value) == 2 else None


def _version_by_alias(name: str, alias: str):
    """The version ``alias`` points at, or None when the model or the alias does not exist."""
    try:
        return mlflow.MlflowClient().get_model_version_by_alias(name, alias)
    except MlflowException as exc:
        if exc.error_code in ("RESOURCE_DOES_NOT_EXIST", "INVALID_PARAMETER_VALUE", "NOT_FOUND"):
            return None
        raise


def current_holder(name: str, alias: str, run) -> Holder | None:
    """The version ``alias`` points at, from its tags; None when the alias is not set or the
    store could not be reached (counted and logged offline like every registry call)."""
    version = run.call(_version_by_alias, name, alias)
    if version is None:
        return None
    tags = version.tags

    def number(key: str) -> float | None:
        try:
            return float(tags[key])
        except (KeyError, ValueError):
            return None

    return Holder(
        str(version.version),
        tags.get("variant", "?"),
        number("map50"),
        _numbers(tags.get("map50_ci95")),
        number("speedup_vs_best_float"),
        _numbers(tags.get("speedup_vs_best_float_ci95")),
        tags.get("evaluation"),
        tags.get("artifact_md5"),
    )


def register_variant(
    name: str, candidate: Candidate, row: dict[str, object], tags: dict[str, str], run
) -> tuple[str | None, str | None]:
    """Log ``candidate`` as a pyfunc model in ``run`` (a :class:`qdet.tracking.StageRun`) and
    register it with its tags in the same call (an interrupted register leaves no untagged
    version); returns (the version, the logged model's id), None for what the store could not
    take (the run's offline log has the call). Its metrics are logged after every model is:
    MLflow links a run's metrics so far to each model logged in it."""
    with contextlib.ExitStack() as stack:
        artifacts = {"detector": str(candidate.artifact)}
        if candidate.deploy is not None:  # MLflow names a copied folder by its own name: "deploy"
            folder = Path(stack.enter_context(tempfile.TemporaryDirectory())) / "deploy"
            artifacts["deploy"] = str(shutil.copytree(candidate.deploy, folder))
        info = run.call(
            mlflow.pyfunc.log_model,
            name=f"model_{candidate.variant}",
            python_model=str(PYFUNC_FILE),
            code_paths=[str(IMAGE_INPUT_FILE)],
            artifacts=artifacts,
            pip_requirements=REQUIREMENTS,
            signature=signature(),
            input_example=input_example(),
            # what the operator may set at load time: the folder the ``path`` input may read (none,
            # so off, until they name one), the default score threshold, torch threads (None: torch's)
            model_config={"image_dir": None, "score_threshold": 0.0, "threads": None},
        )
    if info is None:
        return None, None
    run.call(mlflow.set_logged_model_tags, info.model_id, {"qdet.variant": candidate.variant})
    version_tags = {
        **tags,
        "variant": candidate.variant,
        "map50": f"{candidate.map50:.4f}",
        "map50_drop": f"{candidate.map50_drop:.4f}",
        "speedup_vs_best_float": f"{candidate.speedup:.3f}",
        "speedup_vs_best_float_ci95": "[{:.3f}, {:.3f}]".format(*candidate.speedup_ci95),
        "latency_ms_p50": f"{candidate.latency_ms:.1f}",
        "map50_ci95": "[{:.4f}, {:.4f}]".format(*candidate.map50_ci95),
        "artifact_md5": candidate.artifact_md5,
        "graph": candidate.graph,
    }
    version = run.call(
        create_version,
        name,
        info.model_uri,
        run.parent_id or run.run_id,
        version_tags,
        info.model_id,
        lambda version: version_description(name, version, candidate, row, tags),
    )
    return (None if version is None else str(version.version)), info.model_id


def create_version(
    name: str, source: str, run_id: str, tags: dict[str, str], model_id: str, describe: Callable[[str], str]
):
    """A registry version of the model logged at ``source``, with its tags in the same call, and
    linked to ``run_id``: the pipeline's parent run, where the metrics that chose it are. A
    tracking server refuses a ``models:/`` source from another run unless ``model_id`` names
    the logged model (a sqlite store does not check). The logged model lists its versions in
    the tag ``mlflow.register_model`` writes, which the UI's "Registered models" column reads."""
    client = mlflow.MlflowClient()
    try:
        client.create_registered_model(name)
    except MlflowException as exc:
        if exc.error_code != "RESOURCE_ALREADY_EXISTS":
            raise
    version = client.create_model_version(name, source, run_id=run_id, tags=tags, model_id=model_id)
    client.update_model_version(name, version.version, description=describe(str(version.version)))
    listed = json.loads(client.get_logged_model(model_id).tags.get(MLFLOW_MODEL_VERSIONS, "[]"))
    listed.append({"name": version.name, "version": version.version})
    client.set_logged_model_tags(model_id, {MLFLOW_MODEL_VERSIONS: json.dumps(listed)})
    return version


def publish(
    name: str,
    alias: str,
    variants: list[Candidate],
    registered: dict[str, str],
    rows: dict[str, dict[str, object]],
    champion: Candidate | None,
    bench: dict,
    tags: dict[str, str],
    run,
) -> tuple[dict[str, str | None], bool, str]:
    """Register every variant with its metrics (``registered``: variant -> its row in ``rows``),
    log the other rows as references, describe the parent run, and move ``alias`` to
    ``champion`` if it beats the version holding it (:func:`challenge`; ``tags["evaluation"]``
    says what it was scored on). Returns (variant -> version, whether the alias moved, why)."""
    logged = {c.variant: register_variant(name, c, rows[registered[c.variant]], tags, run) for c in variants}
    versions = {variant: version for variant, (version, _) in logged.items()}
    for step, (variant, (_, model_id)) in enumerate(logged.items()):
        if model_id is not None:
            log_model_metrics(model_id, rows[registered[variant]], step, run)
    for step, row in enumerate(r for r in rows if r not in registered.values()):
        log_reference(row, label(row), rows[row], len(variants) + step, run)
    describe_parent(champion.variant if champion else None, rows, bench, run)
    if champion is None:
        moved, reason = False, "no variant passes the gate"
    elif versions[champion.variant] is None:
        return versions, False, "the registry could not be reached"
    else:
        take, reason = challenge(champion, tags["evaluation"], current_holder(name, alias, run))
        moved = take and set_alias(name, alias, versions[champion.variant], run)
    if moved or not run.call(_description, name):  # the page describes the model from its first run on
        winner = champion if moved else None
        version = versions[champion.variant] if moved else None
        row = rows[registered[champion.variant]] if moved else {}
        text = model_description(name, alias, winner, version, row, reason)
        run.call(mlflow_client().update_registered_model, name, description=text)
    return versions, moved, reason


def mlflow_client():
    return mlflow.MlflowClient()


def _description(name: str) -> str:
    """The registered model's description ("" when it has none or does not exist yet)."""
    try:
        return mlflow_client().get_registered_model(name).description or ""
    except MlflowException:
        return ""


def set_alias(name: str, alias: str, version: str, run) -> bool:
    """Move ``alias`` to ``version``; False when the store could not be reached."""
    failed_before = len(run.failed)
    run.call(mlflow.MlflowClient().set_registered_model_alias, name, alias, version)
    return len(run.failed) == failed_before
