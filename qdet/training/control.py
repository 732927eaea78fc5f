"""The QAT control: the float model fine-tuned exactly as QAT is (its epochs, images, learning
rate and batch-norm freezing) but without fake quantization. QAT minus this control is what
quantization-aware training itself gives; the control minus float is what more training gives."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

OFF_NOTE = "control_off.txt"  # in its output folders when qat.control is off


def _use_running_statistics(module: nn.Module, _inputs: tuple) -> None:
    module.training = False


def freeze_bn_statistics(model: nn.Module) -> None:
    """Batch norms normalize with their running statistics and stop updating them, even while
    the model is in train mode (what QAT's frozen BN does)."""
    for module in model.modules():
        if isinstance(module, nn.modules.batchnorm._BatchNorm):
            module.register_forward_pre_hook(_use_running_statistics)


def bn_freezing(model: nn.Module, freeze_bn_after: int) -> Callable[[int], None]:
    """``before_epoch`` hook: freeze batch-norm statistics from epoch ``freeze_bn_after`` on."""
    frozen = False

    def before_epoch(epoch: int) -> None:
        nonlocal frozen
        if epoch >= freeze_bn_after and not frozen:
            freeze_bn_statistics(model)
            frozen = True

    return before_epoch
