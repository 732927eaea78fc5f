"""Post-training static quantization: observers see calibration images, then int8."""

from __future__ import annotations

import copy
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import torch
from rich.progress import Progress
from torch import nn

from qdet.core.device import model_device
from qdet.data.dataset import DetectionDataset
from qdet.quant.engines import get_engine
from qdet.quant.plan import QuantPlan
from qdet.quant.sensitivity import InputRecorder


@torch.inference_mode()
def run_calibration(
    prepared: nn.Module,
    dataset: Sequence[tuple[torch.Tensor, Any]],
    images: int,
    progress: Progress | None = None,
) -> float:
    """Run up to ``images`` images (no augmentation: a plain split, or any sequence of (image,
    target) pairs) through the observed model; seconds taken."""
    prepared.eval()
    count = min(images, len(dataset))
    task = progress.add_task("calibrate", total=count, info="") if progress else None
    start = time.perf_counter()
    device = model_device(prepared)
    for i in range(count):
        image, _ = dataset[i]
        prepared([image.to(device)])
        if progress is not None and task is not None:
            progress.update(task, advance=1)
    return time.perf_counter() - start


@dataclass
class PtqResult:
    """A calibrated model: its observers (to save), the int8 model, and what it cost in SQNR."""

    prepared: nn.Module
    int8: nn.Module
    sqnr: dict[str, float]  # module -> dB, worst first
    seconds: float
    images: int


def calibrated(
    model: nn.Module, plan: QuantPlan, dataset: Sequence, images: int, progress: Progress | None = None
) -> tuple[nn.Module, nn.Module, float]:
    """(observed model, int8 model, seconds of calibration): ``images`` images through the
    observers of a copy of ``model``, then int8. ``model`` itself is left as it was."""
    engine = get_engine(plan.engine)
    prepared = engine.prepare(copy.deepcopy(model), plan, qat=False)
    seconds = run_calibration(prepared, dataset, images, progress)
    return prepared, engine.convert(prepared, plan), seconds


def calibrate_ptq(
    model: nn.Module,
    plan: QuantPlan,
    dataset: Sequence,
    images: int,
    progress: Progress | None,
    sqnr_on: DetectionDataset,
) -> PtqResult:
    """Observe ``images`` images of ``dataset`` (the calibration set), convert to int8, and
    measure each module's SQNR against float on the float inputs of a few ``sqnr_on`` images
    (the train split: how the ranges fit the images the model learned from, whatever
    calibrated them)."""
    recorder = InputRecorder(model, plan.parts)
    run_calibration(model, sqnr_on, 4)  # float inputs of each part, for sensitivity
    recorder.remove()
    prepared, int8, seconds = calibrated(model, plan, dataset, images, progress)
    sqnr = get_engine(plan.engine).module_sqnr(model, int8, recorder.inputs)
    return PtqResult(prepared, int8, sqnr, seconds, min(images, len(dataset)))


def calibration_summary(
    result: PtqResult, described: dict[str, list[str]], valid: tuple[float, list[float]]
) -> dict[str, object]:
    """The calibrate stage's metrics, PTQ's valid mAP@.5 with its interval among them: the
    accuracy search's first step, scored here where the int8 model already is."""
    return {
        "calibration_seconds": result.seconds,
        "images": result.images,
        "int8_modules": len(described["int8_modules"]),
        "float_modules": len(described["float_modules"]),
        "worst_sqnr_db": next(iter(result.sqnr.values()), float("nan")),
        "valid_map50": valid[0],
        "valid_map50_ci95": valid[1],
    }
