"""The seed table's runs: the pipeline's own stages at each seed, outside the workspace."""

import json
import sys

import yaml

from qdet.core.checkpoint import recipe_digest
from qdet.core.cpu import bf16_or_fp32
from tests.e2e.repos import make_repo, run


def test_seeds_train_through_the_stages_in_scratch_folders_and_leave_the_workspace_alone(tmp_path):
    repo = make_repo(tmp_path / "repo", {"train": {"epochs": 2}})
    cmd = [sys.executable, "-m", "qdet.tools.seeds", "0", "1", "--jobs", "2", "--threads", "1"]
    done = run([*cmd, "--out", "reports/seeds.json"], repo)
    out = json.loads((repo / "reports" / "seeds.json").read_text())
    assert [row["seed"] for row in out["seeds"]] == [0, 1]
    assert all(len(row["val_map50_per_epoch"]) == 2 for row in out["seeds"])
    for row in out["seeds"]:
        curve = row["val_map50_per_epoch"]
        assert (
            row["val_map50"] == curve[-1]
            and abs(row["val_map50_last_epoch_gain"] - (curve[1] - curve[0])) < 1e-12
        )
    assert out["recipe"] == recipe_digest(yaml.safe_load((repo / "params.yaml").read_text()))
    # the same data and splits at every seed (data.seed), trained differently (seed)
    assert out["seeds"][0]["data_digest"] == out["seeds"][1]["data_digest"]
    assert out["seeds"][0]["train_loss"] != out["seeds"][1]["train_loss"]
    precision, _ = bf16_or_fp32("auto", "train.precision")  # what the recipe's auto resolves to here
    assert all(row["precision"] == precision for row in out["seeds"])
    assert all(row["test_map"] <= row["test_map50"] for row in out["seeds"])  # .5:.95 averages stricter IoUs
    assert out["environment"]["threads"] == 1
    assert all(row["threads"] == 1 and row["jobs"] == 2 for row in out["seeds"])  # how each row trained
    assert all(row["commit"] == out["commit"] for row in out["seeds"])
    assert f"seed 1 ({precision}): valid mAP@.5 per epoch" in done.stdout + done.stderr
    # nothing written where dvc repro works: no data, models, metrics or MLflow store
    assert not any((repo / name).exists() for name in ("data", "models", "metrics", "mlflow.db"))
