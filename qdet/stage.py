"""The stage boundary: the one place that reads params.yaml and the environment.

A stage script calls :func:`load` for its typed, validated config (seeds set), :func:`tracker`
for its MLflow run, and wraps its command in :func:`qdet.console.exit_on_error` so expected
errors end in one line, not a traceback.
"""

from __future__ import annotations

import os
import random
from pathlib import Path

import numpy as np
import torch

from qdet.config import Config, config_to_dict, flatten, load_config
from qdet.console import quiet_warnings
from qdet.tracking import NoRun, StageRun, default_uri, git, git_commit, pipeline_key


def repo_root() -> Path:
    """DVC_ROOT under dvc (it points at the original repo even for queued experiments)."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"])
    top = git(["rev-parse", "--show-toplevel"])
    return Path(top) if top else Path.cwd()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load(params: Path) -> Config:
    """The validated config (one line naming the key on error), with every RNG seeded."""
    cfg = load_config(params)
    quiet_warnings(deprecations=cfg.quant.engine == "fx")
    seed_everything(cfg.seed)
    return cfg


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def tracker(cfg: Config, stage: str, params: Path, out_dir: Path) -> StageRun | NoRun:
    """The MLflow run for this stage (or a no-op when ``tracking.enabled`` is false)."""
    if not cfg.tracking.enabled:
        return NoRun()
    root = repo_root()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_uri(root)
    commit = git_commit(root)
    exp_name = os.environ.get("DVC_EXP_NAME")
    tags = {
        "dataset": cfg.dataset,
        "backbone": cfg.backbone,
        "git_commit": commit,
        "dvc_exp_name": exp_name or "",
        "qdet.run_name": exp_name or f"{cfg.dataset}-{cfg.backbone}",
    }
    text = params.read_text() if params.exists() else ""
    artifact_root = None if uri.startswith(("http://", "https://")) else root / "mlartifacts"
    return StageRun(
        uri,
        cfg.tracking.experiment,
        stage,
        pipeline_key(exp_name, commit, text),
        tags,
        flatten(config_to_dict(cfg)),
        artifact_root,
        out_dir / f"mlflow_offline_{stage}.jsonl",
    )
