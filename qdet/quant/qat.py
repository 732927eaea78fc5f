"""Quantization-aware training controls: calibrated start, BN and observer freezing, frozen layers."""

from __future__ import annotations

from collections.abc import Callable
from types import ModuleType

from torch import nn

from qdet.data.dataset import DetectionDataset
from qdet.quant.calibrate import run_calibration
from qdet.quant.parts import PARTS, QuantError


def freeze_layers(model: nn.Module, names: list[str]) -> None:
    """No gradients for the named modules (e.g. the stem and first stage, as the seed recipe)."""
    known = {n for n, _ in model.named_modules()}
    for name in names:
        found = next((n for n in (name, _inside_captured_part(name)) if n in known), None)
        if found is None:
            raise QuantError(f"qat.frozen_layers: no module named {name!r} in the prepared model")
        for p in model.get_submodule(found).parameters():
            p.requires_grad_(False)


def _inside_captured_part(name: str) -> str:
    """The same module inside a PT2E-captured part (``backbone.body.0`` ->
    ``backbone.graph_module.body.0``)."""
    for path in PARTS.values():
        if name.startswith(path + "."):
            return f"{path}.graph_module.{name[len(path) + 1 :]}"
    return name


def calibrate_ranges(model: nn.Module, engine: ModuleType, dataset: DetectionDataset, images: int) -> float:
    """Observers on, fake-quant off, run calibration images: QAT starts from PTQ-like ranges."""
    engine.fake_quant(model, False)
    engine.observers(model, True)
    seconds = run_calibration(model, dataset, images)
    engine.fake_quant(model, True)
    return seconds


def epoch_controls(
    model: nn.Module, engine: ModuleType, freeze_bn_after: int, freeze_observer_after: int
) -> Callable[[int], None]:
    """``before_epoch`` hook: freeze BN statistics and observer ranges from the given epochs."""

    def before_epoch(epoch: int) -> None:
        if epoch >= freeze_bn_after:
            engine.freeze_bn(model)
        if epoch >= freeze_observer_after:
            engine.observers(model, False)

    return before_epoch


def observers_frozen_while(
    engine: ModuleType,
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
