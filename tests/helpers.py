"""Helpers shared by the tests: the repository, its params (the one source of defaults) with
overrides, and tiny model settings."""

from __future__ import annotations

import ast
import dataclasses
import re
import shlex
import time
from pathlib import Path
from typing import Any

import requests
import yaml

from qdet.config import Config, ModelConfig, config_from_dict

REPO = Path(__file__).resolve().parents[1]
DEFAULTS: dict[str, Any] = yaml.safe_load((REPO / "params.yaml").read_text())
LISTED = [
    "resnet18",
    "resnet34",
    "resnet50",
    "resnet101",
    "mobilenet_v2",
    "mobilenet_v3_large",
    "mobilenet_v3_small",
    "squeezenet1_0",
    "squeezenet1_1",
    "vgg16",
    "shufflenet_v2_x1_0",
    "efficientnet_b0",
]


def merge(base: dict, update: dict) -> dict:
    """``update`` merged into ``base`` section by section (neither is changed)."""
    out = dict(base)
    for k, v in update.items():
        out[k] = merge(base.get(k, {}), v) if isinstance(v, dict) else v
    return out


def config(overrides: dict | None = None) -> Config:
    """The repository's params.yaml with ``overrides``, validated."""
    return config_from_dict(merge(DEFAULTS, overrides or {}))


def model_config(**overrides: Any) -> ModelConfig:
    return dataclasses.replace(config().model, **overrides)


TINY_MODEL = model_config(
    min_size=96,
    max_size=128,
    fpn_channels=32,
    representation_size=32,
    rpn_pre_nms_top_n_train=50,
    rpn_post_nms_top_n_train=20,
    rpn_pre_nms_top_n_test=50,
    rpn_post_nms_top_n_test=20,
    box_batch_size_per_image=16,
)


def stage_cmd(name: str, *extra: str) -> list[str]:
    """The stage's command line as dvc.yaml has it (paths live there only), plus ``extra``."""
    stages = yaml.safe_load((REPO / "dvc.yaml").read_text())["stages"]
    return [*shlex.split(stages[name]["cmd"]), *extra]


def answers(url: str, seconds: float = 120) -> bool:
    """Whether ``url`` answers 200 within ``seconds`` (a server started in the background)."""
    deadline = time.time() + seconds
    while time.time() < deadline:
        try:
            if requests.get(url, timeout=2).ok:
                return True
        except requests.RequestException:
            time.sleep(1)
    return False


MODULE_STRING = re.compile(r"^qdet(\.[a-z0-9_]+)+$")  # e.g. "-m", "qdet.measure.memprobe" in a subprocess


def module_file(name: str) -> Path | None:
    """The file of a qdet module or package, or None for anything else."""
    if name != "qdet" and not name.startswith("qdet."):
        return None
    base = REPO.joinpath(*name.split("."))
    for candidate in (base.with_suffix(".py"), base / "__init__.py"):
        if candidate.is_file():
            return candidate
    return None


def imported_files(path: Path, by_name: bool = True) -> set[Path]:
    """qdet files that ``path`` imports, anywhere in it (function-local imports included), and the
    packages on the way. ``by_name``: also every string naming a qdet module (``python -m
    qdet.x``, ``importlib``): what a stage may run, and also tag names such as ``"qdet.stage"``,
    so it over-counts; the DVC deps want it, the import graph does not."""
    names: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            names |= {a.name for a in node.names}
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module)
            names |= {f"{node.module}.{a.name}" for a in node.names}  # `from qdet import bench`
        elif (
            by_name
            and isinstance(node, ast.Constant)
            and isinstance(node.value, str)
            and MODULE_STRING.match(node.value)
        ):
            names.add(node.value)
    files = set()
    for name in names:
        parts = name.split(".")
        for i in range(1, len(parts) + 1):  # importing qdet.a.b runs qdet/__init__ and qdet/a/__init__
            found = module_file(".".join(parts[:i]))
            if found:
                files.add(found)
    return files


def tiny_torchscript(path: Path, variant: str) -> Path:
    """The seeded tiny float detector (classes a, b, c) saved as a TorchScript artifact at ``path``."""
    import torch

    from qdet.models.detector import build_detector
    from qdet.quant.torchscript import save_artifact, script_detector

    torch.manual_seed(0)
    model = build_detector("resnet18", TINY_MODEL, num_classes=3).eval()
    save_artifact(script_detector(model), path, {"classes": ["a", "b", "c"], "variant": variant})
    return path
