"""Nothing runs twice, nothing is left RUNNING: a stage dies with the dvc that started it, a
second copy of a stage refuses to start, killed stages' MLflow runs end as KILLED or FAILED."""

from __future__ import annotations

import os
import signal
import subprocess
import time
from pathlib import Path

import mlflow
import pytest

from qdet.tracking import default_uri
from tests.e2e.repos import env, make_prepared_repo, run
from tests.helpers import stage_cmd

TRAIN = stage_cmd("train")
SLOW_TRAIN = {"train": {"epochs": 15, "batch_size": 2}}


@pytest.fixture(scope="module")
def repo(tmp_path_factory):
    return make_prepared_repo(tmp_path_factory.mktemp("orphans"), SLOW_TRAIN)


def stage_pids(repo: Path, script: str) -> list[int]:
    """Processes running ``stages/<script>`` with ``repo`` as their working directory."""
    pids = []
    for proc in Path("/proc").iterdir():
        try:
            cmdline = (proc / "cmdline").read_bytes().split(b"\0")
            if f"stages/{script}".encode() in cmdline and Path(os.readlink(proc / "cwd")) == repo:
                pids.append(int(proc.name))
        except (OSError, ValueError):
            continue
    return pids


def wait_for(condition, seconds: float) -> bool:
    deadline = time.time() + seconds
    while time.time() < deadline:
        if condition():
            return True
        time.sleep(0.2)
    return False


def _runs(repo: Path):
    mlflow.set_tracking_uri(default_uri(repo))
    exp = mlflow.get_experiment_by_name("qdet")
    return mlflow.search_runs([exp.experiment_id], output_format="list") if exp else []


def _state(repo: Path, log: Path) -> str:
    """What a stage that outlived dvc is doing: its signal masks and kernel wait, and its output."""
    lines = []
    for pid in stage_pids(repo, "train.py"):
        status = Path(f"/proc/{pid}/status").read_text().splitlines()
        lines += [f"pid {pid}:"] + [s for s in status if s.startswith(("State", "PPid", "Sig", "Threads"))]
        lines.append("wchan " + Path(f"/proc/{pid}/wchan").read_text())
    return "\n".join(lines) + "\n" + log.read_text()[-3000:]


def _running(repo: Path, stage: str) -> list:
    return [r for r in _runs(repo) if r.info.status == "RUNNING" and r.data.tags.get("qdet.stage") == stage]


# dash keeps a shell between dvc and the stage (the hard case, in the default suite); bash execs the stage
@pytest.mark.parametrize("shell", ["/bin/sh", pytest.param("/bin/bash", marks=pytest.mark.slow)])
def test_a_stage_dies_with_the_dvc_that_started_it(repo, shell, tmp_path):
    log = tmp_path / "dvc.log"
    if not Path(shell).exists():
        pytest.skip(f"{shell} is not installed")
    dvc = subprocess.Popen(
        ["dvc", "repro", "train"],
        cwd=repo,
        env={**env(), "SHELL": shell},
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    assert wait_for(lambda: stage_pids(repo, "train.py"), 120), "train never started"
    assert wait_for(lambda: _running(repo, "train"), 120), "train's MLflow run never started"
    os.kill(dvc.pid, signal.SIGKILL)
    dvc.wait()
    assert wait_for(lambda: not stage_pids(repo, "train.py"), 60), f"train outlived dvc:\n{_state(repo, log)}"
    killed = [r for r in _runs(repo) if r.data.tags.get("qdet.stage") == "train"]
    statuses = [r.info.status for r in killed]
    everything = [
        (r.info.run_name, r.info.status, r.data.tags.get("qdet.stage"), r.data.tags.get("mlflow.parentRunId"))
        for r in _runs(repo)
    ]
    assert statuses and set(statuses) == {"KILLED"}, (
        f"{everything}\n{log.read_text()[-3000:]}"
    )  # SIGTERM ends it


def test_a_second_copy_of_a_stage_refuses_to_start(repo, tmp_path):
    log = tmp_path / "first.log"
    first = subprocess.Popen(TRAIN, cwd=repo, env=env(), stdout=log.open("w"), stderr=subprocess.STDOUT)
    try:
        lock = repo / ".dvc" / "tmp" / "qdet" / "train.lock"
        assert wait_for(lambda: lock.exists() and lock.read_text() == str(first.pid), 60)
        second = run(TRAIN, repo, check=False)
        assert second.returncode == 1
        assert f"another 'train' stage is running in this workspace (pid {first.pid})" in second.stderr
        assert "Traceback" not in second.stderr
    finally:
        first.send_signal(signal.SIGTERM)
        first.wait(timeout=60)
    assert first.returncode == 130, log.read_text()[-3000:]  # SIGTERM ends it in one line


@pytest.mark.slow  # a whole 15-epoch training (1.8 min)
def test_after_kill_9_and_a_good_rerun_nothing_is_running(repo):
    proc = subprocess.Popen(TRAIN, cwd=repo, env=env(), stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    assert wait_for(
        lambda: any(
            r.info.status == "RUNNING" and r.data.tags.get("qdet.pid") == str(proc.pid) for r in _runs(repo)
        ),
        120,
    )
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    run(TRAIN, repo)
    runs = _runs(repo)
    assert not [r.info.run_name for r in runs if r.info.status == "RUNNING"]
    assert any(r.info.status == "FAILED" and r.data.tags.get("qdet.pid") == str(proc.pid) for r in runs)
