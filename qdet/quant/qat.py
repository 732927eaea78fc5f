"""Quantization-aware training controls: calibrated start, BN and observer freezing, frozen layers."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from qdet.data.dataset import DetectionDataset
from qdet.quant.calibrate import run_calibration
from qdet.quant.interface import Engine
from qdet.quant.parts import QuantError


def freeze_layers(
    model: nn.Module, names: list[str], module_name: Callable[[str], str] | None = None
) -> None:
    """No gradients for the named modules (e.g. the stem and first stage, as the seed recipe).
    Names are the float model's; ``module_name`` (the engine's) finds them in a prepared model."""
    known = {n for n, _ in model.named_modules()}
    for name in names:
        found = name if module_name is None else module_name(name)
        if found not in known:
            raise QuantError(f"qat.frozen_layers: no module named {name!r} in the prepared model")
        for p in model.get_submodule(found).parameters():
            p.requires_grad_(False)


def calibrate_ranges(model: nn.Module, engine: Engine, dataset: DetectionDataset, images: int) -> float:
    """Observers on, fake-quant off, run calibration images: QAT starts from PTQ-like ranges."""
    engine.fake_quant(model, False)
    engine.observers(model, True)
    seconds = run_calibration(model, dataset, images)
    engine.fake_quant(model, True)
    return seconds


def epoch_controls(
    model: nn.Module, engine: Engine, freeze_bn_after: int, freeze_observer_after: int
) -> Callable[[int], None]:
    """``before_epoch`` hook: freeze BN statistics and observer ranges from the given epochs."""

    def before_epoch(epoch: int) -> None:
        if epoch >= freeze_bn_after:
            engine.freeze_bn(model)
        if epoch >= freeze_observer_after:
            engine.observers(model, False)

    return before_epoch


def observers_frozen_while(
    engine: Engine,
    fn: Callable[[nn.Module], dict[str, float]],
) -> Callable[[nn.Module], dict[str, float]]:
    """Wrap a validation function so that validating never moves the observer ranges."""

    def validate(model: nn.Module) -> dict[str, float]:
        enabled = {
            name: bool(m.observer_enabled[0])
            for name, m in model.named_modules()
            if hasattr(m, "observer_enabled")
        }
        engine.observers(model, False)
        try:
            return fn(model)
        finally:
            for name, m in model.named_modules():
                if enabled.get(name):
                    m.observer_enabled[0] = 1
            model.train()

    return validate
