"""Epoch loop with validation, checkpoint every epoch and resume — shared by float training and QAT."""

from __future__ import annotations

import tempfile
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
import torch.distributed as dist
from rich.console import Console
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from torch.utils.data import DataLoader, DistributedSampler

from qdet.checkpoint import load_checkpoint
from qdet.config import TrainConfig
from qdet.data.dataset import DetectionDataset, collate
from qdet.engine import (
    EpochCallback,
    make_optimizer,
    make_scheduler,
    predict_dataset,
    progress_bar,
    save_training,
    train_one_epoch,
)
from qdet.metrics import score


def validation_map(detector: Callable, dataset: DetectionDataset) -> dict[str, float]:
    """COCO mAP of ``detector`` on ``dataset`` (scored from JSON files, as the evaluate stage)."""
    predictions = predict_dataset(detector, dataset)
    with tempfile.TemporaryDirectory() as tmp:
        stats, _ = score(
            dataset.records,
            dataset.classes,
            predictions,
            Path(tmp) / "gt.json",
            Path(tmp) / "dt.json",
        )
    return stats


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in a DDP job (rank 0 of 1 when there is none)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def _reduce(row: dict[str, float], ranks: Ranks) -> dict[str, float]:
    """Mean of each loss over ranks; images/s summed (the job's throughput)."""
    if ranks.world == 1:
        return row
    keys = sorted(row)
    values = torch.tensor([row[k] for k in keys], dtype=torch.float64)
    dist.all_reduce(values)
    return {
        k: float(v) if k == "images_per_s" else float(v) / ranks.world
        for k, v in zip(keys, values, strict=True)
    }


def fit(
    model: nn.Module,
    train_set: DetectionDataset,
    valid_set: DetectionDataset,
    cfg: TrainConfig,
    epochs: int,
    lr: float,
    batch_size: int,
    checkpoint: Path,
    fingerprint: dict[str, Any],
    on_epoch: EpochCallback | None = None,
    before_epoch: Callable[[int], None] | None = None,
    max_images: int = 0,
    validate: Callable[[nn.Module], dict[str, float]] | None = None,
    on_fresh_start: Callable[[], None] | None = None,
    console: Console | None = None,
    ranks: Ranks = Ranks(),
) -> list[dict[str, float]]:
    """Train ``epochs`` epochs, validating and checkpointing after each; resume from
    ``checkpoint`` when it was written for the same ``fingerprint`` (the training-relevant
    config). ``validate`` scores the model after each epoch (default: COCO mAP on
    ``valid_set``). ``on_fresh_start`` runs only when training starts from scratch (QAT's
    range calibration: a resumed run has its ranges in the checkpoint). Returns the history.

    Under DDP (``ranks.world > 1``) ``batch_size`` is the global batch, split over the ranks;
    only rank 0 validates, writes the checkpoint and calls ``on_epoch``.
    """
    validate = validate or (lambda m: validation_map(m, valid_set))
    console = console or Console(stderr=True)
    if batch_size % ranks.world:
        raise ValueError(f"batch size {batch_size} does not split over train.nproc={ranks.world} processes")
    # The sampler's order depends only on (seed, epoch): a resumed run sees the same batches.
    sampler = DistributedSampler(
        train_set, ranks.world, ranks.rank, shuffle=True, seed=int(fingerprint.get("seed", 0))
    )
    loader = DataLoader(
        train_set,
        batch_size=batch_size // ranks.world,
        sampler=sampler,
        collate_fn=collate,
        num_workers=cfg.workers,
    )
    max_batches = -(-max_images // batch_size) if max_images else None
    iters = min(len(loader), max_batches or len(loader))
    optimizer = make_optimizer(model.parameters(), cfg, lr)
    scheduler = make_scheduler(optimizer, cfg, epochs, iters)
    start, history = 0, []
    state = load_checkpoint(checkpoint) if checkpoint.exists() else {}
    if state:
        if state.get("fingerprint") == fingerprint:
            model.load_state_dict(state["model"])
            optimizer.load_state_dict(state["optimizer"])
            scheduler.load_state_dict(state["scheduler"])
            torch.set_rng_state(state["rng"])
            start, history = int(state["epoch"]), list(state["history"])
            if ranks.main:
                console.print(f"[cyan]resuming from {checkpoint} after epoch {start}[/cyan]")
        elif ranks.main:
            console.print(
                f"[yellow]{checkpoint} was written for other params, inputs or code; starting over[/yellow]"
            )
    if start == 0 and on_fresh_start is not None:
        on_fresh_start()
    trained = DistributedDataParallel(model) if ranks.world > 1 else model
    with progress_bar() as progress:
        for epoch in range(start, epochs):
            sampler.set_epoch(epoch)
            if before_epoch is not None:
                before_epoch(epoch)
            bar = progress if ranks.main else None
            row = {
                "epoch": epoch + 1,
                **_reduce(
                    train_one_epoch(trained, optimizer, scheduler, loader, epoch + 1, bar, max_batches), ranks
                ),
            }
            if ranks.main:
                row.update({f"val_{k}": v for k, v in validate(model).items()})
                history.append(row)
                save_training(
                    checkpoint, model, optimizer, scheduler, epoch + 1, history, {"fingerprint": fingerprint}
                )
                progress.console.print(
                    f"epoch {epoch + 1}/{epochs}: loss {row['loss']:.3f}, "
                    f"{row['images_per_s']:.2f} img/s, val mAP@.5 {row['val_map50']:.3f}, "
                    f"mAP {row['val_map']:.3f}"
                )
                if on_epoch is not None:
                    on_epoch(epoch + 1, row)
            if ranks.world > 1:
                dist.barrier()  # the others wait while rank 0 validates and writes
    return history
