"""Helpers shared by the tests: the repository, its params (the one source of defaults) with
overrides, and tiny model settings."""

from __future__ import annotations

import dataclasses
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
