"""Checkpoints: atomic writes (temp file + rename), safe loads (``weights_only=True``), and the
resume identity (fingerprint) that decides whether a rerun may pick up a training checkpoint."""

from __future__ import annotations

import hashlib
import json
import os
import pickle
import signal
import tempfile
import zipfile
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qdet.core.errors import QdetError
from qdet.core.files import md5sum
from qdet.core.lifeline import deferred_signal


class CheckpointError(QdetError):
    """A checkpoint that cannot be read; the message names the file."""


def save_checkpoint(state: dict[str, Any], path: Path) -> None:
    """Write to a temp file in the same folder, fsync, then rename: never a half-written file.
    Temp files an earlier, killed save left behind are removed first (one stage writes a given
    path at a time: :func:`qdet.pipeline.stage.claim_stage`)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    for stale in path.parent.glob(f".{path.name}.*.tmp"):
        stale.unlink(missing_ok=True)
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        # A stop is held until the write is done: interrupted inside torch.save, the zip
        # writer's own cleanup raises "unexpected pos", which hides the stop behind a traceback.
        with deferred_signal(signal.SIGTERM), deferred_signal(signal.SIGINT):
            with os.fdopen(fd, "wb") as f:
                torch.save(state, f)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def load_checkpoint(path: Path, hint: str = "") -> dict[str, Any]:
    """Load with ``weights_only=True``; a corrupt or truncated file is an error naming it (plus
    ``hint``: what to do, which depends on whose file it is)."""
    if not path.exists():
        raise CheckpointError(f"{path}: checkpoint not found")
    try:
        state = torch.load(path, map_location="cpu", weights_only=True)
    except (RuntimeError, EOFError, pickle.UnpicklingError, zipfile.BadZipFile, OSError) as exc:
        raise CheckpointError(f"{path}: checkpoint is corrupt or unreadable ({exc}){hint}") from exc
    if not isinstance(state, dict):
        raise CheckpointError(f"{path}: expected a dict checkpoint, got {type(state).__name__}")
    return state


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


SPEED_ONLY = ("threads", "workers")  # train keys that change how fast, not what is trained


def fingerprint(
    resolved: dict[str, Any], *sections: str, inputs: tuple[Path, ...] = (), stage: Path | None = None
) -> dict[str, Any]:
    """What a resume checkpoint depends on: the config sections (thread and worker counts left
    out), the content of the input files and the code (qdet and the stage script). A checkpoint
    from another float model, other data or other code is not resumed from: DVC reruns a stage
    for exactly those changes, and picking up the old epochs would silently give the old result."""
    out = {k: resolved[k] for k in sections}
    if "train" in out:
        out["train"] = {k: v for k, v in out["train"].items() if k not in SPEED_ONLY}
    package = Path(__file__).parents[1]  # all of qdet: the loop, the model, the engines
    code = [package, *(p for p in [stage] if p is not None and p.is_file())]
    out["inputs"] = {str(path): content_digest(path) for path in inputs}
    out["code"] = content_digest(*code)
    return out


FLOAT_RECIPE = ("dataset", "backbone", "data", "model", "train")  # what the float model is trained from


def recipe_digest(params: dict[str, Any]) -> str:
    """A short digest of what the float model is trained from, the seed left out (threads too:
    they change speed, not the recipe)."""
    recipe = {k: params.get(k) for k in FLOAT_RECIPE}
    recipe["train"] = {k: v for k, v in (recipe["train"] or {}).items() if k not in SPEED_ONLY}
    return hashlib.sha256(json.dumps(recipe, sort_keys=True).encode()).hexdigest()[:12]


def save_training(
    path: Path,
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    epoch: int,
    history: list[dict[str, float]],
    identity: dict[str, Any],
) -> None:
    """Everything needed to resume: weights, optimizer, scheduler, RNG, history, and the
    fingerprint the run was started with."""
    save_checkpoint(
        {
            "model": model.state_dict(),
            "optimizer": optimizer.state_dict(),
            "scheduler": scheduler.state_dict(),
            "epoch": epoch,
            "history": history,
            "rng": torch.get_rng_state(),
            "fingerprint": identity,
        },
        path,
    )


def resume_training(
    path: Path,
    identity: dict[str, Any],
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
) -> tuple[int, list[dict[str, float]], str | None]:
    """Load ``path`` into the training objects when it was written for ``identity``.

    Returns (epochs done, history, a message for the user or None when there was nothing)."""
    state = (
        load_checkpoint(path, "; it is the stage's own resume file: delete it to start over")
        if path.exists()
        else {}
    )
    if not state:
        return 0, [], None
    if state.get("fingerprint") != identity:
        return 0, [], f"[yellow]{path} was written for other params, inputs or code; starting over[/yellow]"
    model.load_state_dict(state["model"])
    optimizer.load_state_dict(state["optimizer"])
    scheduler.load_state_dict(state["scheduler"])
    torch.set_rng_state(state["rng"])
    start = int(state["epoch"])
    return start, list(state["history"]), f"[cyan]resuming from {path} after epoch {start}[/cyan]"
