"""Post-training static quantization: observers see calibration images, then int8."""

from __future__ import annotations

import time

import torch
from rich.progress import Progress
from torch import nn

from qdet.data.dataset import DetectionDataset


@torch.inference_mode()
def run_calibration(
    prepared: nn.Module, dataset: DetectionDataset, images: int, progress: Progress | None = None
) -> float:
    """Run up to ``images`` images (no augmentation) through the observed model; seconds taken."""
    prepared.eval()
    count = min(images, len(dataset))
    task = progress.add_task("calibrate", total=count, info="") if progress else None
    start = time.perf_counter()
    for i in range(count):
        image, _ = dataset[i]
        prepared([image])
        if progress is not None and task is not None:
            progress.update(task, advance=1)
    return time.perf_counter() - start
