"""The accuracy-budget search on a real detector with a forced PTQ drop: the stages run as dvc
runs them, on a tiny model trained well enough for mAP to mean something (val mAP@.5 ≈ 0.34).

The drop is planted, not hoped for: one box-head feature is scaled down by ``K`` in ``fc6``
and up by ``K`` where ``fc7`` reads it. ReLU commutes with a positive scale, so the float model
computes the same detections; but every row of ``fc7``'s weights now has one entry ``K`` times
the rest, and per-channel int8 weights round the rest to zero. Keeping ``fc7`` float is the
cure, and its SQNR is the worst by far: the search must find it, confirm it and stop.
"""

from __future__ import annotations

import json

import pytest
import yaml

from qdet.core.checkpoint import load_checkpoint, save_checkpoint
from qdet.data.dataset import load_split
from qdet.measure.accuracy import map50_with_interval
from qdet.models.detector import load_float_detector
from tests.e2e.repos import make_prepared_repo, run
from tests.helpers import stage_cmd

K, FEATURE = 1000.0, 0
PLANTED = "roi_heads.box_head.fc7"
LEARNABLE = {  # enough images and epochs for a valid mAP@.5 well above the budget
    "data": {"synthetic": {"num_images": 64}},
    "train": {"epochs": 8},
    "quant": {"max_drop": 0.05},
}


def plant_outlier(path) -> None:
    """Scale box-head feature ``FEATURE`` by 1/K in fc6 and by K where fc7 reads it."""
    checkpoint = load_checkpoint(path)
    weights = checkpoint["model"]
    weights["roi_heads.box_head.fc6.weight"][FEATURE] /= K
    weights["roi_heads.box_head.fc6.bias"][FEATURE] /= K
    weights[f"{PLANTED}.weight"][:, FEATURE] *= K
    save_checkpoint(checkpoint, path)


# trains a learnable tiny detector, then calibrates and searches as dvc runs them
def test_a_forced_ptq_drop_is_found_kept_float_and_brought_within_budget(tmp_path):
    repo = make_prepared_repo(tmp_path / "repo", LEARNABLE)
    run(stage_cmd("train"), repo)
    trained = json.loads((repo / "metrics" / "train.json").read_text())["val_map50"]
    plant_outlier(repo / "models" / "float.pt")
    planted = load_float_detector(repo / "models" / "float.pt").model
    valid = load_split(repo / "data" / "processed", "valid")
    assert map50_with_interval(planted, valid, tmp_path, "planted")[0] == pytest.approx(trained, abs=1e-3)
    run(stage_cmd("calibrate"), repo)
    done = run(stage_cmd("search"), repo)

    record = json.loads((repo / "metrics" / "quant_search.json").read_text())
    budget = yaml.safe_load((repo / "params.yaml").read_text())["quant"]["max_drop"]
    steps = record["steps"]
    assert record["reference_map50"] == trained  # float.pt's own validation, which the plant kept
    assert record["reference_map50"] - steps[0]["map50"] > budget  # PTQ forced over budget
    assert steps[1]["kept_float"] == [PLANTED]  # the worst SQNR is probed first
    assert record["met"] and PLANTED in record["kept_float"] and record["map50_drop"] <= budget
    assert record["evaluations"] <= 7
    skip = load_checkpoint(repo / "models" / "ptq_search.pt")["plan"]["skip"]
    assert set(record["kept_float"]) <= set(skip)  # convert gets the chosen plan
    said = [line for line in done.stderr.splitlines() if line.startswith("quant search: ")]
    assert len(said) == 1 and "within the budget" in said[0], done.stderr[-2000:]  # one line
