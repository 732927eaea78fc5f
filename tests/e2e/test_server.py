"""A real `mlflow server` on a free loopback port: the pipeline logs to it over HTTP, the runs and
the registered models are checked through the REST API, and the server is stopped by its PID."""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import mlflow
import pytest
import requests

from tests.e2e.repos import env, make_prepared_repo, make_repo, run, run_queue, stages_run
from tests.helpers import answers, stage_cmd

pytestmark = pytest.mark.slow


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


@dataclass
class Server:
    url: str
    pid: int

    def kill(self) -> None:
        """SIGKILL the server and its workers (the PID leads its own process group)."""
        with contextlib.suppress(ProcessLookupError):
            os.killpg(self.pid, signal.SIGKILL)


@pytest.fixture
def server(tmp_path):
    port = _free_port()
    mlflow_bin = Path(sys.executable).parent / "mlflow"
    proc = subprocess.Popen(
        [
            str(mlflow_bin),
            "server",
            "--host",
            "127.0.0.1",
            "--port",
            str(port),
            "--backend-store-uri",
            f"sqlite:///{tmp_path / 'server.db'}",
            "--artifacts-destination",
            str(tmp_path / "server-artifacts"),
        ],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,
        env=env(),
    )
    url = f"http://127.0.0.1:{port}"
    if not answers(f"{url}/health"):
        os.killpg(proc.pid, signal.SIGKILL)
        pytest.fail("mlflow server did not answer /health within 120 s")
    yield Server(url, proc.pid)
    with contextlib.suppress(ProcessLookupError):  # a test may have killed it already
        os.killpg(proc.pid, signal.SIGTERM)  # the PID leads its own group: workers stop with it
    proc.wait(timeout=30)
    with pytest.raises(requests.RequestException):
        requests.get(f"{url}/health", timeout=2)


def test_pipeline_logs_and_registers_on_a_server(server, tmp_path):
    server = server.url
    repo = make_repo(tmp_path / "repo")
    done = run(["dvc", "repro"], repo, env=env() | {"MLFLOW_TRACKING_URI": server})
    assert stages_run(done.stdout)[-2:] == ["register", "report"]
    assert not (repo / "mlflow.db").exists()  # nothing went to the local store
    api = f"{server}/api/2.0/mlflow"
    exp = requests.get(
        f"{api}/experiments/get-by-name", params={"experiment_name": "qdet"}, timeout=10
    ).json()
    runs = requests.post(
        f"{api}/runs/search", json={"experiment_ids": [exp["experiment"]["experiment_id"]]}, timeout=10
    ).json()["runs"]
    tags = [{t["key"]: t["value"] for t in r["data"].get("tags", [])} for r in runs]
    assert {t.get("qdet.stage") for t in tags} >= {
        "train",
        "calibrate",
        "qat",
        "evaluate",
        "benchmark",
        "register",
    }
    assert all(r["info"]["status"] == "FINISHED" for r in runs)
    model = requests.get(
        f"{api}/registered-models/get", params={"name": "qdet-gtsdb-resnet18"}, timeout=10
    ).json()
    assert "champion" in {a["alias"] for a in model["registered_model"].get("aliases", [])}
    versions = requests.get(
        f"{api}/model-versions/search", params={"filter": "name='qdet-gtsdb-resnet18'"}, timeout=10
    ).json()["model_versions"]
    assert {t["value"] for v in versions for t in v.get("tags", []) if t["key"] == "variant"} == {
        "float",
        "ptq",
        "qat",
    }


def test_server_lost_mid_training_training_finishes_and_reports(server, tmp_path):
    repo = make_prepared_repo(tmp_path / "repo", {"train": {"epochs": 3}})
    checkpoint = repo / "checkpoints" / "train.pt"
    with open(tmp_path / "train.log", "w") as log:
        proc = subprocess.Popen(
            stage_cmd("train"),
            cwd=repo,
            env=env() | {"MLFLOW_TRACKING_URI": server.url},
            stdout=log,
            stderr=subprocess.STDOUT,
        )
        deadline = time.time() + 300
        while not checkpoint.exists() and time.time() < deadline and proc.poll() is None:
            time.sleep(0.2)
        assert checkpoint.exists(), "no checkpoint after the first epoch"
        server.kill()  # epoch 1 was logged; epochs 2 and 3 have nowhere to go
        assert proc.wait(timeout=600) == 0, (tmp_path / "train.log").read_text()[-3000:]
    output = (tmp_path / "train.log").read_text()
    assert json.loads((repo / "metrics" / "train.json").read_text())["epochs"] == 3
    assert (repo / "models" / "float.pt").exists()
    assert "could not be logged to " + server.url in output
    assert "log_metrics" in output
    (local,) = (repo / "metrics").glob("mlflow_offline_*.jsonl")
    assert str(local.relative_to(repo)) in output or str(local) in output
    records = [json.loads(line) for line in local.read_text().splitlines()]
    steps = {r["kwargs"].get("step") for r in records if r["call"] == "log_metrics"}
    assert {2, 3} <= steps, records


def test_two_queued_experiments_share_a_server_with_proxied_artifacts(server, tmp_path):
    """Two `dvc exp` workers at once against one `mlflow server` that serves the artifacts
    itself (no shared disk needed): every run, artifact and registry version arrives."""
    e = env() | {"MLFLOW_TRACKING_URI": server.url}
    repo = make_repo(tmp_path / "repo", {"data": {"synthetic": {"num_images": 12}}})
    for seed in (1, 2):
        run(["dvc", "exp", "run", "--queue", "-n", f"seed{seed}", "-S", f"seed={seed}"], repo, env=e)
    status = run_queue(repo, e, 1500)
    assert status.count("Success") == 2, status
    client = mlflow.MlflowClient(server.url)
    runs = client.search_runs([client.get_experiment_by_name("qdet").experiment_id])
    parents = {r.data.tags.get("dvc_exp_name") for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert parents == {"seed1", "seed2"} and all(r.info.status == "FINISHED" for r in runs)
    for r in runs:
        if r.data.tags.get("qdet.stage") == "benchmark":
            assert r.info.artifact_uri.startswith("mlflow-artifacts:")  # through the server
            assert "benchmark.json" in {a.path for a in client.list_artifacts(r.info.run_id)}
    versions = client.search_model_versions("name='qdet-gtsdb-resnet18'")
    assert len(versions) == 6 and all("variant" in v.tags for v in versions)
    assert not (repo / "mlflow.db").exists() and not (repo / "mlartifacts").exists()
