"""Quantization-aware training controls: calibrated start, BN and observer freezing, frozen layers."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn
from torch.ao.nn.intrinsic import qat as nniqat
from torch.ao.quantization import (
    disable_fake_quant,
    disable_observer,
    enable_fake_quant,
    enable_observer,
)

from qdet.data.dataset import DetectionDataset
from qdet.quant.calibrate import run_calibration
from qdet.quant.parts import QuantError


def freeze_layers(model: nn.Module, names: list[str]) -> None:
    """No gradients for the named modules (e.g. the stem and first stage, as the seed recipe)."""
    known = {n for n, _ in model.named_modules()}
    for name in names:
        if name not in known:
            raise QuantError(f"qat.frozen_layers: no module named {name!r} in the prepared model")
        for p in model.get_submodule(name).parameters():
            p.requires_grad_(False)


def calibrate_ranges(model: nn.Module, dataset: DetectionDataset, images: int) -> float:
    """Observers on, fake-quant off, run calibration images: QAT starts from PTQ-like ranges."""
    model.apply(disable_fake_quant)
    model.apply(enable_observer)
    seconds = run_calibration(model, dataset, images)
    model.apply(enable_fake_quant)
    return seconds


def epoch_controls(
    model: nn.Module, freeze_bn_after: int, freeze_observer_after: int
) -> Callable[[int], None]:
    """``before_epoch`` hook: freeze BN statistics and observer ranges from the given epochs."""

    def before_epoch(epoch: int) -> None:
        if epoch >= freeze_bn_after:
            model.apply(nniqat.freeze_bn_stats)
        if epoch >= freeze_observer_after:
            model.apply(disable_observer)

    return before_epoch


def observers_frozen_while(
    fn: Callable[[nn.Module], dict[str, float]],
) -> Callable[[nn.Module], dict[str, float]]:
    """Wrap a validation function so that validating never moves the observer ranges."""

    def validate(model: nn.Module) -> dict[str, float]:
        enabled = {
            name: bool(m.observer_enabled[0])
            for name, m in model.named_modules()
            if hasattr(m, "observer_enabled")
        }
        model.apply(disable_observer)
        try:
            return fn(model)
        finally:
            for name, m in model.named_modules():
                if enabled.get(name):
                    m.observer_enabled[0] = 1
            model.train()

    return validate
