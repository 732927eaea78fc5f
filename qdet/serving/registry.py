"""Register TorchScript variants as MLflow pyfunc models and move an alias behind a gate."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

PYFUNC_FILE = Path(__file__).with_name("detector_pyfunc.py")
REQUIREMENTS = ["torch==2.14.1", "torchvision==0.29.1", "pillow", "pandas", "numpy"]


@dataclass
class Candidate:
    variant: str
    artifact: Path
    map50: float
    map50_drop: float
    speedup: float
    latency_ms: float


REGISTERED = ("float", "ptq", "qat")  # reference variants (ONNX Runtime peers) are never registered


def model_name(configured: str, dataset: str, backbone: str) -> str:
    """``register.model_name``, where ``auto`` means ``qdet-<dataset>-<backbone>``."""
    return configured if configured != "auto" else f"qdet-{dataset}-{backbone}"


def candidates(exported: Path, maps: dict, bench: dict) -> list[Candidate]:
    """One candidate per exported variant, with its accuracy (evaluate) and its speed
    (benchmark): the speedup is against the fastest float variant of the run, peers included."""
    from qdet.export import read_manifest

    manifest = read_manifest(exported)
    row = {"float": manifest["float"], "ptq": "ptq", "qat": "qat"}  # evaluate name -> artifact/bench row
    return [
        Candidate(
            v,
            exported / manifest["variants"][row[v]],
            maps[v]["map50"],
            maps[v].get("map50_drop", 0.0),
            bench[row[v]]["speedup_vs_best_float"],
            bench[row[v]]["latency_ms_p50"],
        )
        for v in REGISTERED
    ]


def choose_champion(
    candidates: list[Candidate], max_map_drop: float, min_speedup: float
) -> tuple[Candidate | None, list[str]]:
    """The fastest candidate whose mAP@.5 drop and speedup pass the gate, and why others fail."""
    reasons, passing = [], []
    for c in candidates:
        if c.map50_drop > max_map_drop:
            reasons.append(f"{c.variant}: mAP@.5 drop {c.map50_drop:.3f} > {max_map_drop}")
        elif c.speedup < min_speedup:
            reasons.append(f"{c.variant}: speedup vs best float {c.speedup:.2f} < {min_speedup}")
        else:
            passing.append(c)
    best = min(passing, key=lambda c: c.latency_ms) if passing else None
    return best, reasons


def register_variant(name: str, candidate: Candidate, tags: dict[str, str]) -> str:
    """Log ``candidate`` as a pyfunc model in the active run and register it; returns the version."""
    import mlflow

    info = mlflow.pyfunc.log_model(
        name=f"model_{candidate.variant}",
        python_model=str(PYFUNC_FILE),
        artifacts={"detector": str(candidate.artifact)},
        pip_requirements=REQUIREMENTS,
        registered_model_name=name,
    )
    version = str(info.registered_model_version)
    client = mlflow.MlflowClient()
    for key, value in {
        **tags,
        "variant": candidate.variant,
        "map50": f"{candidate.map50:.4f}",
        "map50_drop": f"{candidate.map50_drop:.4f}",
        "speedup": f"{candidate.speedup:.3f}",
        "latency_ms_p50": f"{candidate.latency_ms:.1f}",
    }.items():
        client.set_model_version_tag(name, version, key, value)
    return version


def set_alias(name: str, alias: str, version: str) -> None:
    import mlflow

    mlflow.MlflowClient().set_registered_model_alias(name, alias, version)
