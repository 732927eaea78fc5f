"""DDP: train under torchrun with 2 processes (gloo on CPU) vs one process, same global batch."""

from __future__ import annotations

import csv
import json

import torch

from qdet.config import ModelConfig
from qdet.models.detector import load_float_detector
from tests.e2e.conftest import make_repo, run

TINY = {
    "train": {"epochs": 3, "batch_size": 4, "warmup_iters": 2},
    "tracking": {"enabled": False},
    "data": {"synthetic": {"num_images": 24}},
}


def _history(repo, name):
    with open(repo / "metrics" / f"{name}.csv") as f:
        return [float(r["loss"]) for r in csv.DictReader(f)]


def test_torchrun_two_processes_matches_one_process(tmp_path):
    repo = make_repo(tmp_path / "ddp", TINY)
    run(["python", "stages/download.py", "data/raw"], repo)
    run(["python", "stages/preprocess.py", "data/raw", "data/processed"], repo)
    run(
        [
            "python",
            "stages/train.py",
            "data/processed",
            "--model-out",
            "models/single.pt",
            "--checkpoint",
            "checkpoints/single.pt",
            "--history-csv",
            "metrics/single.csv",
        ],
        repo,
    )
    params = (repo / "params.yaml").read_text().replace("nproc: 1", "nproc: 2")
    (repo / "params.yaml").write_text(params)
    done = run(
        [
            "python",
            "stages/train.py",
            "data/processed",
            "--model-out",
            "models/ddp.pt",
            "--checkpoint",
            "checkpoints/ddp.pt",
            "--history-csv",
            "metrics/ddp.csv",
        ],
        repo,
    )
    assert "launching 2 processes" in done.stderr
    assert json.loads((repo / "metrics" / "train.json").read_text())["processes"] == 2
    single, ddp = _history(repo, "single"), _history(repo, "ddp")
    assert len(single) == len(ddp) == 3
    assert single[-1] < single[0] and ddp[-1] < ddp[0]  # both learn
    for a, b in zip(single, ddp, strict=True):
        assert abs(a - b) / a < 0.35, (single, ddp)
    # the DDP checkpoint is a plain single-process model (no "module." prefixes)
    model, classes = load_float_detector(
        repo / "models" / "ddp.pt", "resnet18", ModelConfig(min_size=160, max_size=256)
    )
    with torch.no_grad():
        (out,) = model([torch.rand(3, 160, 256)])
    assert set(out) == {"boxes", "labels", "scores"} and classes
