"""The stage boundary: the one place that reads params.yaml and the environment.

A stage script calls :func:`load` for its typed, validated config (seeds set), :func:`tracker`
for its MLflow run, and wraps its command in :func:`qdet.core.console.exit_on_error` so expected
errors end in one line, not a traceback.
"""

from __future__ import annotations

import fcntl
import gc
import os
import random
import signal
import time
from pathlib import Path

from qdet.config import Config, config_to_dict, flatten, load_config
from qdet.core.console import LOGS, quiet_warnings, third_party_to_log
from qdet.core.errors import QdetError
from qdet.core.lifeline import die_with_dvc
from qdet.quant import deprecated_upstream
from qdet.tracking import NoRun, StageRun, check_reachable, default_uri, git, git_commit, pipeline_key


def repo_root() -> Path:
    """DVC_ROOT under dvc (it points at the original repo even for queued experiments)."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"])
    top = git(["rev-parse", "--show-toplevel"])
    return Path(top) if top else Path.cwd()


def workspace_root() -> Path:
    """The workspace this process runs in (a queued experiment's temp copy, not DVC_ROOT)."""
    top = git(["rev-parse", "--show-toplevel"])
    return Path(top) if top else Path.cwd()


class Terminated(KeyboardInterrupt):
    """SIGTERM, raised like Ctrl-C so that ``with`` blocks close: MLflow runs end as KILLED,
    temp files are removed, and the stage exits with one line."""


def _terminated(signum: int, _frame) -> None:
    # Once: a second SIGTERM (the parent-death signal and the dvc watcher can both fire) must
    # not interrupt the shutdown the first one started (ending the MLflow runs as KILLED).
    signal.signal(signal.SIGTERM, signal.SIG_IGN)
    raise Terminated(f"signal {signum}")


_claims: list = []  # open lock files: held for the life of the process


def claim_stage(name: str) -> None:
    """Make this stage process die with the ``dvc`` that started it and refuse to run while
    another copy of the same stage runs in the same workspace.

    DVC drops its own lock when it is killed; without this the orphaned stage would go on
    (and a rerun would start a second copy next to it, both writing the same outputs and
    timing each other). Ranks under torchrun skip it: their launching stage holds the claim.
    """
    if "LOCAL_RANK" in os.environ:
        return

    signal.signal(signal.SIGTERM, _terminated)
    die_with_dvc(signal.SIGTERM)
    root = workspace_root()
    if Path.cwd().resolve() != root.resolve() and (root / "dvc.yaml").exists():
        raise StageBusy(  # its relative paths (data/, models/, params.yaml) would land elsewhere
            f"run stages from the repository root, as dvc does: cd {root} (now in {Path.cwd()})"
        )
    lock = root / ".dvc" / "tmp" / "qdet" / f"{name}.lock"
    lock.parent.mkdir(parents=True, exist_ok=True)
    handle = open(lock, "a+")
    try:
        fcntl.flock(handle, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except BlockingIOError:
        handle.seek(0)
        holder = handle.read().strip() or "unknown"
        handle.close()
        raise StageBusy(
            f"another '{name}' stage is running in this workspace (pid {holder}); "
            "wait for it to finish or stop it, then rerun"
        ) from None
    handle.seek(0)
    handle.truncate()
    handle.write(str(os.getpid()))
    handle.flush()
    _claims.append(handle)


class StageBusy(QdetError):
    """The stage cannot start here: it already runs in this workspace, or this is not the root."""


def seed_everything(seed: int, uses_torch: bool = True) -> None:
    import numpy as np  # the data stages run without loading torch

    random.seed(seed)
    np.random.seed(seed)
    if uses_torch:  # importing torch takes a second: the download stage's no-op run skips it
        import torch  # the data stages run without loading torch

        torch.manual_seed(seed)


_started: list[float] = []  # when this stage process began its work (the MLflow run's start)


def load(params: Path, stage: str, uses_torch: bool = True) -> Config:
    """Claim the stage (:func:`claim_stage`), then the validated config (one line naming the key
    on error), with every RNG seeded."""
    _started.append(time.time())
    claim_stage(stage)
    third_party_to_log(LOGS / f"{stage}.log", uses_torch)
    cfg = load_config(params)
    if cfg.tracking.enabled:
        check_reachable(tracking_uri())  # before any work, not after it
    quiet_warnings(deprecations=deprecated_upstream(cfg.quant.engine))
    seed_everything(cfg.seed, uses_torch)
    # what is loaded by now lives as long as the stage: out of the collector's sight, the exit's
    # collections skip it (torch and torchvision's objects are many), and forks share it
    gc.freeze()
    return cfg


def set_threads(threads: int) -> None:
    import torch  # the data stages run without loading torch

    torch.set_num_threads(threads)


def tracking_uri() -> str:
    """MLFLOW_TRACKING_URI, else the repository's sqlite store."""
    return os.environ.get("MLFLOW_TRACKING_URI") or default_uri(repo_root())


def tracker(cfg: Config, stage: str, params: Path, out_dir: Path) -> StageRun | NoRun:
    """The MLflow run for this stage (or a no-op when ``tracking.enabled`` is false)."""
    if not cfg.tracking.enabled:
        return NoRun()
    root = repo_root()
    uri = tracking_uri()
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
        started=_started[0] if _started else None,
        source=f"dvc exp run -n {exp_name}" if exp_name else "dvc repro",
    )
