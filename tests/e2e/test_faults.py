"""Faults: kill -9 mid-training, a corrupt checkpoint, an unwritable output, a lost server."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import time

import pytest

from tests.e2e.repos import env, make_prepared_repo, run
from tests.helpers import stage_cmd

TRAIN = stage_cmd("train")
SLOW_TRAIN = {"train": {"epochs": 3, "batch_size": 2}, "tracking": {"enabled": False}}


@pytest.fixture(scope="module")
def prepared_repo(tmp_path_factory):
    return make_prepared_repo(tmp_path_factory.mktemp("faults"), SLOW_TRAIN)


def _metrics(repo):
    return json.loads((repo / "metrics" / "train.json").read_text())


def test_kill_9_mid_training_resumes_from_last_checkpoint(prepared_repo):
    repo = prepared_repo
    checkpoint = repo / "checkpoints" / "train.pt"
    proc = subprocess.Popen(TRAIN, cwd=repo, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.time() + 240
    while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
        time.sleep(0.2)
    assert checkpoint.exists(), "no checkpoint after the first epoch"
    time.sleep(1.0)  # now inside epoch 2
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    done = run(TRAIN, repo)
    assert "resuming from checkpoints/train.pt after epoch" in done.stderr
    assert _metrics(repo)["epochs"] == 3
    resumed = _metrics(repo)

    # an uninterrupted run from scratch ends at the same numbers, to the last bit
    checkpoint.unlink()
    run(TRAIN, repo)
    fresh = _metrics(repo)
    for key in ("loss", "val_map50", "val_map"):
        assert resumed[key] == fresh[key], key


def test_corrupt_checkpoint_is_an_error_not_a_restart(prepared_repo):
    repo = prepared_repo
    checkpoint = repo / "checkpoints" / "train.pt"
    checkpoint.parent.mkdir(exist_ok=True)
    checkpoint.write_bytes(b"PK\x03\x04 this is not a checkpoint")
    done = run(TRAIN, repo, check=False)
    assert done.returncode == 1
    assert "checkpoints/train.pt: checkpoint is corrupt or unreadable" in done.stderr
    assert "Traceback" not in done.stderr
    checkpoint.unlink()


def test_unwritable_output_is_a_clear_error(prepared_repo):
    repo = prepared_repo
    (repo / "blocker").write_text("a file where a folder should be")
    done = run(
        [*TRAIN, "--model-out", "blocker/float.pt", "--checkpoint", "blocker/train.pt"], repo, check=False
    )
    assert done.returncode == 1
    assert "blocker" in done.stderr and "Traceback" not in done.stderr


def test_tracking_server_down_fails_before_training(prepared_repo):
    repo = prepared_repo
    params = (repo / "params.yaml").read_text().replace("enabled: false", "enabled: true")
    (repo / "params.yaml").write_text(params)
    e = env() | {"MLFLOW_TRACKING_URI": "http://127.0.0.1:9"}
    start = time.time()
    done = subprocess.run(TRAIN, cwd=repo, env=e, capture_output=True, text=True, timeout=120)
    assert done.returncode == 1
    assert "http://127.0.0.1:9 is not reachable" in done.stderr
    assert "epoch" not in done.stderr and time.time() - start < 60
    (repo / "params.yaml").write_text(params.replace("enabled: true", "enabled: false"))
