"""The skeleton the three training stages (train, qat, control) share: relaunch under torchrun
when asked, the train and valid splits, the stage's MLflow run on the main rank only, and after
``fit`` the history, its curves and their logging on the writing rank. A change to how a
training stage runs is made here once, not in three scripts."""

from __future__ import annotations

import sys
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from qdet.config import Config
from qdet.data.dataset import DetectionDataset, training_datasets
from qdet.pipeline import stage
from qdet.tracking import NoRun
from qdet.training.distributed import Ranks, distributed, finish_distributed
from qdet.training.loop import write_history


@dataclass
class Session:
    ranks: Ranks
    train_set: DetectionDataset  # augmented as train.hflip / train.color_jitter say
    valid_set: DetectionDataset
    run: Any  # the stage's MLflow run; a NoRun on the ranks that do not log

    def finish(
        self,
        history: list[dict[str, float]],
        summary: dict[str, Any],
        files: tuple[Path, Path, Path],
        title: str,
        plot_on_parent: bool = True,
    ) -> None:
        """Write the metrics JSON, the history CSV and the curves (``files``, in that order) and
        log them with the stage's run; the curves also on the pipeline's run unless told not."""
        metrics, history_csv, plot = files
        for path in write_history(history, summary, metrics, history_csv, plot, title):
            self.run.log_artifact(path, on_parent=plot_on_parent and path == plot)


@contextmanager
def training_session(
    cfg: Config, name: str, params: Path, metrics: Path, processed: Path
) -> Iterator[Session]:
    """Everything around a training stage's ``fit``; ``metrics`` is its metrics file."""
    ranks = distributed(cfg.train, sys.argv)  # nproc or nnodes > 1: under torchrun
    train_set, valid_set = training_datasets(
        processed, cfg.dataset, cfg.data.classes, cfg.train.hflip, cfg.train.color_jitter
    )
    with stage.tracker(cfg, name, params, metrics.parent) if ranks.main else NoRun() as run:
        yield Session(ranks, train_set, valid_set, run)
    finish_distributed(ranks)
