"""Two queued `dvc exp` workers at once: every experiment's metrics in `dvc exp show`, every run
in the one MLflow store at the repository root (not in the queue's temporary copies)."""

from __future__ import annotations

import mlflow
import pytest

from qdet.tracking import default_uri
from tests.e2e.repos import env, make_repo, run, run_queue

pytestmark = pytest.mark.slow


def test_parallel_queue_logs_every_experiment_to_one_store(tmp_path):
    repo = make_repo(tmp_path / "repo", {"data": {"synthetic": {"num_images": 12}}})
    for seed in (1, 2):
        run(["dvc", "exp", "run", "--queue", "-n", f"seed{seed}", "-S", f"seed={seed}"], repo)
    status = run_queue(repo, env(), 1200)
    assert status.count("Success") == 2, status
    shown = run(["dvc", "exp", "show", "--json"], repo).stdout
    assert '"seed1"' in shown and '"seed2"' in shown
    mlflow.set_tracking_uri(default_uri(repo))
    runs = mlflow.search_runs([mlflow.get_experiment_by_name("qdet").experiment_id], output_format="list")
    parents = {r.data.tags.get("dvc_exp_name") for r in runs if "mlflow.parentRunId" not in r.data.tags}
    assert parents == {"seed1", "seed2"}
    for name in ("seed1", "seed2"):
        stages = {r.data.tags.get("qdet.stage") for r in runs if r.data.tags.get("dvc_exp_name") == name}
        assert {"train", "qat", "evaluate", "benchmark", "register"} <= stages
    assert all(r.info.status == "FINISHED" for r in runs)
    assert not list((repo / ".dvc" / "tmp").rglob("mlflow.db"))
