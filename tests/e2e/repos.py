"""Test repositories: a temporary copy of this one with tiny params, for running real dvc and MLflow."""

from __future__ import annotations

import contextlib
import os
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import yaml

from tests.helpers import REPO, merge, stage_cmd

KEEP = [
    "dvc.yaml",
    "params.yaml",
    "pyproject.toml",
    "README.md",
    ".gitignore",
    ".dvcignore",
    ".dvc/config",
    ".dvc/.gitignore",
    "stages",
    "qdet",
    "calibration",  # a dep of calibrate and search (its README; calibrate.source: folder)
    "reports/seeds.json",  # a dep of the report stage (committed: python -m qdet.tools.seeds writes it)
]
TINY = {
    "data": {
        "synthetic": {"num_images": 16, "width": 256, "height": 160, "min_object": 16, "max_object": 48}
    },
    "model": {"min_size": 160, "max_size": 256, "rpn_post_nms_top_n_test": 50, "rpn_pre_nms_top_n_test": 100},
    "train": {"epochs": 1, "batch_size": 2},
    "quant": {"engine": "fx"},  # TorchScript artifacts, quick; the PT2E pipeline has its own slow test
    "calibrate": {"images": 4},
    "qat": {"epochs": 1, "max_images": 4, "batch_size": 2},
    "benchmark": {"rounds": 2, "block": 2, "warmup": 1, "images": 2, "throughput_seconds": 0.3},
    "evaluate": {"grid_images": 2},
    "register": {"max_map_drop": 1.0, "min_speedup": 0.0},
}


def make_repo(dest: Path, overrides: dict | None = None) -> Path:
    for item in KEEP:
        src = REPO / item
        if src.is_dir():
            shutil.copytree(src, dest / item, ignore=shutil.ignore_patterns("__pycache__"))
        elif src.exists():
            (dest / item).parent.mkdir(parents=True, exist_ok=True)
            shutil.copy2(src, dest / item)
    params = yaml.safe_load((REPO / "params.yaml").read_text())
    (dest / "params.yaml").write_text(yaml.safe_dump(merge(merge(params, TINY), overrides or {})))
    subprocess.run(["git", "init", "-q"], cwd=dest, check=True)
    commit(dest, "test repo")
    return dest


def commit(repo: Path, message: str) -> None:
    """Everything in the work tree, as a user commits a run (dvc.lock included)."""
    git = ["git", "-c", "user.name=qdet", "-c", "user.email=qdet@localhost"]
    subprocess.run([*git, "add", "-A"], cwd=repo, check=True)
    subprocess.run([*git, "commit", "-qm", message], cwd=repo, check=True)


def make_prepared_repo(dest: Path, overrides: dict | None = None) -> Path:
    """A test repository whose data is generated and preprocessed (stages run directly)."""
    repo = make_repo(dest, overrides)
    run(stage_cmd("download"), repo)
    run(stage_cmd("preprocess"), repo)
    return repo


def env() -> dict[str, str]:
    e = {k: v for k, v in os.environ.items() if not k.startswith(("MLFLOW_", "DVC_"))}
    e["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{e.get('PATH', '')}"
    e.pop("PYTHONWARNINGS", None)  # stages run with warnings as a user's shell has them
    return e


def run(cmd: list[str], cwd: Path, check: bool = True, **kw) -> subprocess.CompletedProcess:
    done = subprocess.run(cmd, cwd=cwd, env=kw.pop("env", env()), capture_output=True, text=True, **kw)
    if check and done.returncode != 0:
        raise AssertionError(
            f"{' '.join(cmd)} failed ({done.returncode}):\n{done.stdout[-4000:]}\n{done.stderr[-4000:]}"
        )
    return done


def run_queue(repo: Path, e: dict[str, str], deadline_s: float) -> str:
    """Start two queue workers, wait until nothing is queued or running, and return the final
    ``dvc queue status``. ``dvc queue start`` leaves its workers as daemons that inherit its
    stdout/stderr: with captured pipes, waiting for it means waiting for the workers, and a
    worker that misses its shutdown (seen here: dvc-task's "empty queue" monitor fired while
    its task still ran, and the worker then idled forever) hangs the test. So no pipes, a
    deadline, and the workers stopped (then killed) at the end."""
    subprocess.run(
        ["dvc", "queue", "start", "-j", "2"],
        cwd=repo,
        env=e,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        check=True,
        timeout=120,
    )
    try:
        deadline = time.time() + deadline_s
        while time.time() < deadline:
            status = run(["dvc", "queue", "status"], repo, env=e).stdout
            if "Queued" not in status and "Running" not in status:
                break
            time.sleep(10)
        return status + _failed_task_logs(repo, e, status)
    finally:
        subprocess.run(["dvc", "queue", "stop"], cwd=repo, env=e, capture_output=True, timeout=120)
        for pid_file in (repo / ".dvc" / "tmp" / "exps" / "celery").glob("dvc-exp-worker-*.pid"):
            with contextlib.suppress(ValueError, OSError):  # gone already
                pid = int(pid_file.read_text())
                if b"queue-worker" in Path(f"/proc/{pid}/cmdline").read_bytes():
                    os.kill(pid, signal.SIGKILL)


def _failed_task_logs(repo: Path, e: dict[str, str], status: str) -> str:
    """The tail of each failed task's log, so a failed queue test says why the experiment failed."""
    text = ""
    for name in (line.split()[1] for line in status.splitlines() if line.endswith("Failed")):
        done = run(["dvc", "queue", "logs", name], repo, check=False, env=e)
        text += f"\n--- dvc queue logs {name}:\n{(done.stdout + done.stderr)[-4000:]}"
    return text


def torch_deprecations(repo: Path, console: str) -> list[str]:
    """Lines of the console and of every stage log (third-party output goes to ``logs/``) where
    torch says something is deprecated: Python warnings and the C++ ``[W ...] Warning:`` lines."""
    text = console + "".join(log.read_text() for log in sorted((repo / "logs").glob("*.log")))
    words = ("DeprecationWarning", "FutureWarning", "is deprecated", "are deprecated")
    return [line for line in text.splitlines() if "torch" in line and any(w in line for w in words)]


def stages_run(output: str) -> list[str]:
    return [line.split("'")[1] for line in output.splitlines() if line.startswith("Running stage '")]
