import inspect
import time
from pathlib import Path

import mlflow
import pytest
from mlflow.exceptions import MlflowException

from qdet.tracking import (
    StageRun,
    TrackingUnavailable,
    check_reachable,
    check_sqlite,
    default_uri,
    pipeline_key,
    split_summary,
)


def _stage(tmp_path, stage, key="repro-abc", started=None):
    return StageRun(
        default_uri(tmp_path),
        "qdet-test",
        stage,
        key,
        {"dataset": "gtsdb", "backbone": "r18"},
        {"train.lr": 0.001},
        tmp_path / "mlartifacts",
        tmp_path / f"offline_{stage}.jsonl",
        started=started,
    )


def _runs(tmp_path):
    mlflow.set_tracking_uri(default_uri(tmp_path))
    exp = mlflow.get_experiment_by_name("qdet-test")
    return mlflow.search_runs([exp.experiment_id], output_format="list")


def test_one_parent_per_pipeline_and_a_child_per_stage(tmp_path):
    for stage in ("train", "calibrate"):
        with _stage(tmp_path, stage) as run:
            run.log_metrics({"loss": 1.0}, step=1)
    runs = _runs(tmp_path)
    parents = [r for r in runs if "mlflow.parentRunId" not in r.data.tags]
    children = [r for r in runs if "mlflow.parentRunId" in r.data.tags]
    assert len(parents) == 1 and len(children) == 2
    assert {c.data.tags["mlflow.parentRunId"] for c in children} == {parents[0].info.run_id}
    assert {c.data.tags["qdet.stage"] for c in children} == {"train", "calibrate"}
    assert all(r.info.status == "FINISHED" for r in runs)
    assert parents[0].data.params["train.lr"] == "0.001"


def test_summary_on_the_parent_detail_on_the_stage_never_both(tmp_path):
    rows = {"ptq": {"map50": 0.81234567, "map50_ci95": [0.7, 0.9], "map_small": 0.4, "map_large": -1.0}}
    summary, detail = split_summary(rows)
    assert summary == {"ptq_map50": 0.81234567}  # intervals: on the stage run and the logged model
    assert detail == {"ptq_map50_ci95": [0.7, 0.9], "ptq_map_small": 0.4}  # -1 is not a score
    plot = tmp_path / "plot.png"
    plot.write_bytes(b"png")
    with _stage(tmp_path, "evaluate") as run:
        run.log_metrics(summary, on_parent=True)
        run.log_metrics(detail)
        run.log_artifact(plot, on_parent=True)
    (parent,) = [r for r in _runs(tmp_path) if "mlflow.parentRunId" not in r.data.tags]
    (child,) = [r for r in _runs(tmp_path) if "mlflow.parentRunId" in r.data.tags]
    assert parent.data.metrics == {"ptq_map50": 0.8123}  # logged at the precision it carries
    assert child.data.metrics == {"ptq_map50_ci95_lo": 0.7, "ptq_map50_ci95_hi": 0.9, "ptq_map_small": 0.4}
    client = mlflow.MlflowClient()
    assert [a.path for a in client.list_artifacts(parent.info.run_id)] == ["plot.png"]
    assert client.list_artifacts(child.info.run_id) == []
    assert parent.data.tags["mlflow.source.name"] == "dvc repro"


def test_stage_run_spans_the_stage_not_just_its_logging(tmp_path):
    started = time.time() - 120  # the stage began its work two minutes before it logs
    with _stage(tmp_path, "benchmark", started=started):
        pass
    (child,) = [r for r in _runs(tmp_path) if "mlflow.parentRunId" in r.data.tags]
    assert child.info.start_time == int(started * 1000)
    assert child.info.end_time - child.info.start_time >= 120_000
    assert child.data.tags["mlflow.runName"] == "benchmark" and child.data.tags["mlflow.user"]


def test_failed_stage_leaves_nothing_running(tmp_path):
    with pytest.raises(RuntimeError):
        with _stage(tmp_path, "train"):
            raise RuntimeError("boom")
    statuses = {r.data.tags.get("qdet.stage", "parent"): r.info.status for r in _runs(tmp_path)}
    assert statuses == {"train": "FAILED", "parent": "FAILED"}


def test_pipeline_key_separates_experiments_and_commits():
    assert pipeline_key("exp-a", "c1", "p") == "exp-exp-a"
    assert pipeline_key(None, "c1", "p") != pipeline_key(None, "c2", "p")
    assert pipeline_key(None, "c1", "p") != pipeline_key(None, "c1", "q")


def test_unreachable_server_fails_fast_naming_uri():
    start = time.perf_counter()
    with pytest.raises(TrackingUnavailable, match=r"http://127\.0\.0\.1:9 is not reachable"):
        check_reachable("http://127.0.0.1:9")
    assert time.perf_counter() - start < 10


def test_logging_failures_are_kept_locally(tmp_path, monkeypatch):
    with _stage(tmp_path, "train") as run:

        def broken(*args, **kwargs):
            raise MlflowException("server went away")

        monkeypatch.setattr(mlflow, "log_metrics", broken)
        run.log_metrics({"loss": 0.5}, step=3)
        monkeypatch.undo()
    assert len(run.failed) == 1 and "server went away" in run.failed[0]
    assert "server went away" in (tmp_path / "offline_train.jsonl").read_text()


def test_interrupted_stage_ends_killed_and_a_dead_stage_run_is_failed_by_the_next(tmp_path):
    with pytest.raises(KeyboardInterrupt):
        with _stage(tmp_path, "train"):
            raise KeyboardInterrupt
    statuses = {r.data.tags.get("qdet.stage", "parent"): r.info.status for r in _runs(tmp_path)}
    assert statuses == {"train": "KILLED", "parent": "KILLED"}
    # a stage run whose process is gone (kill -9 leaves it RUNNING) ...
    stage = _stage(tmp_path, "qat")
    stage.__enter__()
    client = mlflow.MlflowClient(default_uri(tmp_path))
    client.set_tag(stage.run_id, "qdet.pid", "999999999")
    mlflow.end_run("RUNNING")
    mlflow.end_run("RUNNING")
    # ... is marked FAILED when the next stage of the pipeline starts
    with _stage(tmp_path, "convert"):
        pass
    assert client.get_run(stage.run_id).info.status == "FAILED"


def test_a_corrupt_or_locked_store_is_one_line_before_any_work(tmp_path):
    import sqlite3

    db = tmp_path / "mlflow.db"
    db.write_bytes(b"this is not sqlite at all" * 100)
    with pytest.raises(
        TrackingUnavailable, match=r"mlflow\.db: file is not a database; it is not a sqlite file"
    ):
        check_reachable(default_uri(tmp_path))
    db.unlink()
    holder = sqlite3.connect(db)
    holder.execute("CREATE TABLE t (x)")
    holder.execute("BEGIN IMMEDIATE")  # another process writing
    try:
        with pytest.raises(
            TrackingUnavailable, match=r"mlflow\.db: database is locked; another process holds it"
        ):
            check_reachable(default_uri(tmp_path), timeout=0.2)
    finally:
        holder.rollback()
        holder.close()
    check_reachable(default_uri(tmp_path))  # free again


def _as_unprivileged():
    """Run a child without root's power to write anywhere (tests run as root in CI)."""
    import os

    if os.geteuid() != 0:
        return {}
    import pwd

    nobody = pwd.getpwnam("nobody")
    return {"user": nobody.pw_uid, "group": nobody.pw_gid}


def test_a_read_only_store_is_refused_before_any_work(request):
    import os
    import shutil
    import sqlite3
    import subprocess
    import sys
    import tempfile

    folder = Path(tempfile.mkdtemp(prefix="qdet-ro-"))  # pytest's own folders are private to root
    request.addfinalizer(lambda: shutil.rmtree(folder, ignore_errors=True))
    db = folder / "mlflow.db"
    with sqlite3.connect(db) as connection:
        connection.execute("CREATE TABLE t (x)")
    db.chmod(0o444)  # readable by all, writable by nobody but root
    folder.chmod(0o777)
    # the child runs check_sqlite's own source with the system Python: "nobody" may not enter
    # the project's venv, and as root every file is writable
    source = inspect.getsource(check_sqlite)
    code = (
        "import os, sqlite3\nfrom pathlib import Path\nclass TrackingUnavailable(Exception): pass\n"
        f"{source}\ntry:\n    check_sqlite(Path({str(db)!r}), 1.0)\n"
        "except TrackingUnavailable as e:\n    print(e)\nelse:\n    print('passed')\n"
    )
    python = "/usr/bin/python3" if os.path.exists("/usr/bin/python3") else sys.executable
    done = subprocess.run([python, "-c", code], capture_output=True, text=True, **_as_unprivileged())
    assert "attempt to write a readonly database; make it writable" in done.stdout, done.stdout + done.stderr


def test_a_server_whose_health_answers_but_api_fails_is_refused(tmp_path):
    import threading
    from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

    class HalfUp(BaseHTTPRequestHandler):
        def do_GET(self):  # noqa: N802 - http.server's name
            self.send_response(200 if self.path == "/health" else 500)
            self.end_headers()
            self.wfile.write(b"OK" if self.path == "/health" else b"backend store unavailable")

        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), HalfUp)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    uri = f"http://127.0.0.1:{server.server_address[1]}"
    try:
        with pytest.raises(TrackingUnavailable) as caught:
            check_reachable(uri)
    finally:
        server.shutdown()
    assert str(caught.value).startswith(
        f"MLflow tracking server {uri} answers /health but its API fails (500)"
    )
    assert "\n" not in str(caught.value)
