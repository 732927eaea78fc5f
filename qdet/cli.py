"""The stage boundary: the one place that reads params.yaml and the environment.

Stages call :func:`stage_main` to load and validate the config, find the repo root, set threads
and seeds, open the MLflow stage run, and turn expected errors into a one-line message and exit
code 1 instead of a traceback.
"""

from __future__ import annotations

import functools
import hashlib
import os
import random
import signal
import subprocess
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import torch
from rich.console import Console

from qdet.checkpoint import CheckpointError
from qdet.config import Config, ConfigError, config_to_dict, flatten, load_config
from qdet.data.records import DataError
from qdet.data.sources import SourceError, md5sum
from qdet.engine import NonFiniteLoss
from qdet.models.backbones import WeightsUnavailable
from qdet.tracking import (
    NoRun,
    StageRun,
    TrackingUnavailable,
    default_uri,
    git,
    git_commit,
    pipeline_key,
)
from qdet.training import Ranks

console = Console(stderr=True, soft_wrap=True)  # no hard wraps: logs stay greppable
EXPECTED = (
    ConfigError,
    DataError,
    SourceError,
    CheckpointError,
    NonFiniteLoss,
    TrackingUnavailable,
    WeightsUnavailable,
    OSError,  # unreadable input, unwritable output, disk full: the message names the path
    ValueError,
)


def quiet_warnings() -> None:
    """torch.ao.quantization and torch.jit warn on every call that they are deprecated; the
    project pins the versions where they work, so these are noise in stage output."""
    for category in (DeprecationWarning, FutureWarning):
        warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*RCNN always returns.*")
    warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
    warnings.filterwarnings("ignore", message=".*TypedStorage.*")


def repo_root() -> Path:
    """DVC_ROOT under dvc (it points at the original repo even for queued experiments)."""
    if os.environ.get("DVC_ROOT"):
        return Path(os.environ["DVC_ROOT"])
    top = git(["rev-parse", "--show-toplevel"])
    return Path(top) if top else Path.cwd()


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


def load(params: Path) -> Config:
    quiet_warnings()
    cfg = load_config(params)
    seed_everything(cfg.seed)
    return cfg


def tracker(cfg: Config, stage: str, params: Path, out_dir: Path) -> StageRun | NoRun:
    """The MLflow run for this stage (or a no-op when ``tracking.enabled`` is false)."""
    if not cfg.tracking.enabled:
        return NoRun()
    root = repo_root()
    uri = os.environ.get("MLFLOW_TRACKING_URI") or default_uri(root)
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
    )


def stage_main(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures print one clear line (file, line or key named) and exit 1."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except EXPECTED as exc:
            console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except KeyboardInterrupt:
            console.print("[yellow]interrupted; rerun to resume from the last checkpoint[/yellow]")
            sys.exit(130)

    return wrapper


class download_progress:  # noqa: N801 - used as a context manager like rich's
    """A byte progress bar for ``progress(done, total)`` callbacks; shown only once called."""

    def __enter__(self) -> Callable[[int, int | None], None]:
        from rich.progress import DownloadColumn, Progress, TransferSpeedColumn

        self.bar = Progress(
            *Progress.get_default_columns(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
        )
        self.task = None

        def update(done: int, total: int | None) -> None:
            if self.task is None:
                self.bar.start()
                self.task = self.bar.add_task("download", total=total)
            self.bar.update(self.task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.bar.stop()


def set_threads(threads: int) -> None:
    torch.set_num_threads(threads)


def fingerprint(resolved: dict[str, Any], *sections: str, inputs: tuple[Path, ...] = ()) -> dict[str, Any]:
    """What a resume checkpoint depends on: the config sections (thread and worker counts left
    out), the content of the input files and the code. A checkpoint from another float model,
    other data or other code is not resumed from: DVC reruns a stage for exactly those changes,
    and picking up the old epochs would silently give the old result."""
    out = {k: resolved[k] for k in sections}
    if "train" in out:
        out["train"] = {k: v for k, v in out["train"].items() if k not in ("threads", "workers")}
    code = [Path(__file__).parent, *(p for p in [Path(sys.argv[0])] if p.is_file())]  # qdet + the stage
    out["inputs"] = {str(path): content_digest(path) for path in inputs}
    out["code"] = content_digest(*code)
    return out


def content_digest(*paths: Path) -> str:
    """md5 over the files under ``paths`` (names and bytes, in sorted order)."""
    digest = hashlib.md5()
    for root in paths:
        files = sorted(p for p in root.rglob("*") if p.is_file()) if root.is_dir() else [root]
        for path in files:
            if "__pycache__" in path.parts:
                continue
            digest.update(str(path.relative_to(root) if root.is_dir() else path.name).encode())
            digest.update(md5sum(path).encode())
    return digest.hexdigest()


PR_SET_PDEATHSIG = 1  # linux/prctl.h


def die_with_parent(sig: int) -> None:
    """Linux: ask the kernel to send ``sig`` to this process when its parent dies.

    torchrun starts its ranks in new sessions and does not watch for its own parent, so a
    kill -9 of the stage (or of torchrun) would leave ranks training on and writing checkpoints
    under the rerun that is meant to resume from them.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def distributed(nproc: int, threads: int) -> Ranks:
    """``train.nproc`` > 1: relaunch this stage under torchrun (DDP), or, inside torchrun, join
    the process group (gloo on CPU, nccl with CUDA). Threads are shared out among the ranks."""
    if nproc == 1:
        set_threads(threads)
        return Ranks()
    if "LOCAL_RANK" not in os.environ:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            sys.argv[0],
            *sys.argv[1:],
        ]
        console.print(f"launching {nproc} processes: {' '.join(command[1:4])} ...")
        # SIGTERM lets torchrun stop its ranks before it goes
        code = subprocess.call(command, preexec_fn=lambda: die_with_parent(signal.SIGTERM))
        if code != 0:
            console.print(
                f"[bold red]error:[/bold red] a training process failed (torchrun exit {code}); "
                "rerun to resume from the last checkpoint",
                highlight=False,
            )
        sys.exit(code)
    die_with_parent(signal.SIGKILL)
    import torch.distributed as dist

    set_threads(max(1, threads // nproc))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def finish_distributed(ranks: Ranks) -> None:
    if ranks.world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
