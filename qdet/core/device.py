"""Where training runs: the one place that picks the device, as torchvision's detection
references do (the model and each batch on one device, ``cuda:<local rank>`` under DDP, nccl
only with CUDA tensors). Only training uses it: calibration, convert, evaluate and benchmark
stay on the CPU, the int8 target."""

from __future__ import annotations

import torch
from torch import nn

from qdet.core.cpu import bf16_or_fp32
from qdet.core.errors import QdetError


class DeviceError(QdetError):
    """``train.device`` asks for something this machine does not have."""


def resolve(setting: str, local_rank: int = 0) -> torch.device:
    """``auto`` -> the GPU when one is present, else the CPU; ``cuda`` without a GPU is an error
    naming the key. Under DDP each process takes the GPU of its local rank."""
    if setting == "cpu" or (setting == "auto" and not torch.cuda.is_available()):
        return torch.device("cpu")
    if not torch.cuda.is_available():
        raise DeviceError("train.device: cuda, but torch sees no GPU here; use auto or cpu")
    if local_rank >= torch.cuda.device_count():
        raise DeviceError(
            f"train.nproc: local rank {local_rank} has no GPU (this node has {torch.cuda.device_count()})"
        )
    return torch.device("cuda", local_rank)


def training_precision(setting: str, device: torch.device | str) -> tuple[str, str]:
    """What float training computes in (``train.precision``), and why. ``auto`` is bf16 autocast
    on a CPU that computes bf16 natively, where its training step takes less than half the fp32
    one and the model reaches the same plateau (docs/internals.md); fp32 on other CPUs (emulated
    bf16 is slower than fp32) and on a GPU (torchvision's recipe). The weights stay fp32 either way."""
    if torch.device(device).type == "cpu":
        return bf16_or_fp32(setting, "train.precision")
    if setting == "auto":
        return "fp32", "auto: fp32 on a GPU, torchvision's recipe"
    return setting, f"train.precision: {setting}"


def backend(device: torch.device) -> str:
    """The process-group backend for tensors on ``device``: nccl for CUDA, gloo for the CPU."""
    return "nccl" if device.type == "cuda" else "gloo"


def model_device(model: nn.Module) -> torch.device:
    """Where ``model`` holds its weights (the CPU for a module without parameters)."""
    return next((p.device for p in model.parameters()), torch.device("cpu"))


def to_device(
    images: list[torch.Tensor], targets: list[dict[str, torch.Tensor]] | None, device: torch.device
) -> tuple[list[torch.Tensor], list[dict[str, torch.Tensor]] | None]:
    """A batch on ``device`` (a no-op on the CPU)."""
    if device.type == "cpu":
        return images, targets
    images = [image.to(device, non_blocking=True) for image in images]
    if targets is not None:
        targets = [{k: v.to(device, non_blocking=True) for k, v in t.items()} for t in targets]
    return images, targets
