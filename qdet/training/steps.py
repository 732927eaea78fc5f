"""Training and inference loops. Progress goes to a rich bar; per-epoch results to a callback
that the stage passes in (so the library never imports MLflow)."""

from __future__ import annotations

import math
import time
from collections.abc import Callable, Iterable

import torch
from rich.progress import Progress
from torch import nn
from torch.utils.data import DataLoader

from qdet.config import ScheduleConfig
from qdet.core.device import model_device, to_device
from qdet.core.errors import QdetError

EpochCallback = Callable[[int, dict[str, float]], None]


class NonFiniteLoss(QdetError):
    """Training diverged; the message gives the epoch, iteration and loss values."""


def make_optimizer(params: Iterable[nn.Parameter], cfg: ScheduleConfig) -> torch.optim.Optimizer:
    """The optimizer, fused: one kernel updates every tensor (the same update; a resnet18 FPN
    AdamW step takes 7 ms on 2 cores of a Zen 5 against 37 ms tensor by tensor, torch's CPU
    default: 15 s of the default float training)."""
    params = [p for p in params if p.requires_grad]
    if cfg.optimizer == "sgd":
        return torch.optim.SGD(
            params, lr=cfg.lr, momentum=cfg.momentum, weight_decay=cfg.weight_decay, fused=True
        )
    return torch.optim.AdamW(params, lr=cfg.lr, weight_decay=cfg.weight_decay, fused=True)


def make_scheduler(
    optimizer: torch.optim.Optimizer, cfg: ScheduleConfig, iters_per_epoch: int
) -> torch.optim.lr_scheduler.LRScheduler:
    """Per-iteration schedule: linear warm-up, then cosine to 0 or step decay."""
    total = max(cfg.epochs * iters_per_epoch, 1)
    warmup = min(cfg.warmup_iters, total // 2)

    def factor(it: int) -> float:
        if it < warmup:
            return 0.1 + 0.9 * it / max(warmup, 1)
        if cfg.scheduler == "cosine":
            return 0.5 * (1 + math.cos(math.pi * (it - warmup) / max(total - warmup, 1)))
        if cfg.scheduler == "step":
            return cfg.gamma ** (it // (cfg.step_size * iters_per_epoch))
        return 1.0

    return torch.optim.lr_scheduler.LambdaLR(optimizer, factor)


def train_one_epoch(
    model: nn.Module,
    optimizer: torch.optim.Optimizer,
    scheduler: torch.optim.lr_scheduler.LRScheduler,
    loader: DataLoader,
    epoch: int,
    progress: Progress | None = None,
    max_batches: int | None = None,
    trace: list[float] | None = None,
    precision: str = "fp32",
) -> dict[str, float]:
    """One pass over ``loader``; returns mean losses and images/s, and appends each iteration's
    total loss to ``trace`` (the curve within an epoch). Stops on a non-finite loss. With
    ``precision="bf16"`` the forward pass runs under bf16 autocast (weights, gradients and the
    optimizer stay fp32; autocast keeps losses and RoI align in fp32)."""
    model.train()
    sums: dict[str, float] = {}
    images_seen, batches = 0, 0
    total = len(loader) if max_batches is None else min(len(loader), max_batches)
    task = progress.add_task(f"epoch {epoch}", total=total, info="") if progress else None
    start = time.perf_counter()
    device = model_device(model)
    for images, targets in loader:
        if batches >= total:
            break
        with torch.autocast(device.type, dtype=torch.bfloat16, enabled=precision == "bf16"):
            losses = model(*to_device(list(images), list(targets), device))
        loss = sum(losses.values())
        if not torch.isfinite(loss):
            values = {k: float(v.detach()) for k, v in losses.items()}
            raise NonFiniteLoss(
                f"non-finite loss at epoch {epoch}, iteration {batches}: {values}; "
                "lower the learning rate or check the data"
            )
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()
        scheduler.step()
        batches += 1
        images_seen += len(images)
        for k, v in losses.items():
            sums[k] = sums.get(k, 0.0) + float(v.detach())
        sums["loss"] = sums.get("loss", 0.0) + float(loss.detach())
        if trace is not None:
            trace.append(float(loss.detach()))
        if progress is not None and task is not None:
            rate = images_seen / (time.perf_counter() - start)
            progress.update(
                task,
                advance=1,
                info=f"mean loss {sums['loss'] / batches:.3f}  {rate:.2f} img/s  "
                f"lr {optimizer.param_groups[0]['lr']:.2e}",
            )
    elapsed = time.perf_counter() - start
    out = {k: v / max(batches, 1) for k, v in sums.items()}
    out["images_per_s"] = images_seen / max(elapsed, 1e-9)
    out["lr"] = optimizer.param_groups[0]["lr"]
    return out
