"""What the registry page says about a model and each of its versions: what it is, how to load
it (MLflow pyfunc, ``qdet-predict``, the artifact without qdet) and the figures that decided it.
Pure text from the candidates and the run's rows; :mod:`qdet.registry.publish` writes it."""

from __future__ import annotations

from qdet.registry.champion import Candidate
from qdet.variants.table import VARIANTS

FLOAT = "the float model, in the int8 variants' format"  # the registered name "float"
DEPLOY_LINES = [
    "- without torch: `artifacts/deploy/` holds the same int8 model as ONNX QDQ (`model.onnx`) and "
    "OpenVINO IR (`openvino/model.xml` + `.bin`): `python artifacts/deploy/qdet_deploy.py img.jpg "
    "--runtime openvino`, or `Detector('artifacts/deploy', runtime='onnxruntime').predict('img.jpg')` "
    "from `qdet_deploy` (numpy, Pillow and the runtime only)",
    "- C++/C#/Java: the runtime on either file; input `image` float32 3xHxW RGB in [0, 1], outputs "
    "`boxes` (x1 y1 x2 y2), `labels` (k is `classes[k-1]` of `deploy.json`), `scores`",
]


def _ci(values: list[float], fmt: str) -> str:
    return "[" + ", ".join(format(v, fmt) for v in values) + "]"


def figures(candidate: Candidate, row: dict[str, object]) -> str:
    """One line of the figures that decide a version: accuracy, latency, the speedups."""
    parts = [
        f"test mAP@.5 {candidate.map50:.3f} {_ci(candidate.map50_ci95, '.3f')}",
        f"{candidate.map50_drop:+.3f} vs float eager",
        f"p50 {candidate.latency_ms:.1f} ms",
        f"x{candidate.speedup:.2f} {_ci(candidate.speedup_ci95, '.2f')} the best non-int8 row",
    ]
    if isinstance(row.get("speedup_vs_best_int8_peer"), int | float):
        parts.append(f"x{row['speedup_vs_best_int8_peer']:.2f} the best int8 peer")
    if isinstance(row.get("size_mb"), int | float):
        parts.append(f"{row['size_mb']:.1f} MB")
    return ", ".join(parts)


def loading(name: str, ref: str, artifact_name: str | None, deploy: bool = False) -> list[str]:
    """How to run the model at ``models:/<name><ref>`` (``ref``: ``/3`` or ``@champion``);
    ``artifact_name``: the file or folder under the model's ``artifacts/`` (None: either kind);
    ``deploy``: it carries ``artifacts/deploy`` (ONNX, OpenVINO IR, the torch-free loader)."""
    uri = f"models:/{name}{ref}"
    folder = "`artifacts/<folder>/aot_detector.py` loads a PT2E folder with torch + torchvision only"
    script = "`torch.jit.load` an FX `.ts` file (torch only)"
    if artifact_name is None:
        without_qdet = f"{folder}; {script}"
    elif artifact_name.endswith(".ts"):
        without_qdet = script.replace("an FX `.ts` file", f"`artifacts/{artifact_name}`")
    else:
        without_qdet = (
            folder.replace("<folder>", artifact_name) + f": `load('artifacts/{artifact_name}')([image])`"
        )
    return [
        f"- MLflow: `mlflow.pyfunc.load_model('{uri}').predict(pd.DataFrame({{'image': [base64_jpeg]}}))`"
        " (one row per detection); `mlflow models serve -m " + uri + "` serves it",
        f"- qdet: `qdet-predict {uri} my_images/` (annotated images, detections.csv)",
        f"- without qdet: `mlflow artifacts download -u {uri}`, then {without_qdet}",
    ] + (DEPLOY_LINES if deploy else [])


def version_description(
    name: str, version: str, candidate: Candidate, row: dict[str, object], run_tags: dict
) -> str:
    """A version's Description: what it is, the figures it was registered with, how to load it."""
    known = VARIANTS.get(candidate.variant)
    kind = f"{known.label} ({known.runtime})" if known else FLOAT
    return "\n".join(
        [
            f"**{candidate.variant}**: {kind}; Faster R-CNN, backbone {run_tags.get('backbone', '?')}, "
            f"trained on {run_tags.get('dataset', '?')} (pipeline run {run_tags.get('run_id', '?')}).",
            "",
            f"Figures of its run: {figures(candidate, row)}.",
            "",
            "Load it:",
            *loading(name, f"/{version}", candidate.artifact.name, candidate.deploy is not None),
        ]
    )


def model_description(
    name: str, alias: str, champion: Candidate | None, version: str | None, row: dict, reason: str
) -> str:
    """The registered model's Description: what the versions are, how to load the alias, and the
    figures of the version that holds it (``champion`` when the alias moved to it in this run)."""
    lines = [
        f"qdet's Faster R-CNN detector `{name}`: every pipeline run registers its float model and its "
        "int8 models (PTQ, QAT); each version's description and tags hold its figures.",
        "",
        f"`@{alias}` is the most accurate int8 version that passed the gate (mAP@.5 drop and speedup "
        "against the best non-int8 row of its benchmark), moved only when a challenger beats it on "
        "the same test images.",
        "",
    ]
    if champion is not None and version is not None:
        lines += [f"**@{alias}: version {version} ({champion.variant})**: {figures(champion, row)}.", ""]
        lines += [f"Why it holds the alias: {reason}.", ""]
    else:
        lines += [f"@{alias} did not move in the last run: {reason}.", ""]
    artifact = champion.artifact.name if champion is not None else None
    deploy = champion is not None and champion.deploy is not None
    return "\n".join([*lines, "Load it:", *loading(name, f"@{alias}", artifact, deploy)])
