"""Device choice for training (this machine has no GPU: the CPU paths and the refusals)."""

import pytest
import torch

from qdet.core.device import DeviceError, backend, model_device, resolve, to_device


def test_auto_and_cpu_resolve_to_the_cpu_without_a_gpu(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    assert resolve("auto") == resolve("cpu") == torch.device("cpu")
    assert backend(resolve("auto")) == "gloo"


def test_cuda_without_a_gpu_names_the_key(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: False)
    with pytest.raises(DeviceError, match="train.device: cuda, but torch sees no GPU"):
        resolve("cuda")


def test_each_rank_takes_its_own_gpu_and_nccl(monkeypatch):
    monkeypatch.setattr(torch.cuda, "is_available", lambda: True)
    monkeypatch.setattr(torch.cuda, "device_count", lambda: 2)
    assert resolve("auto", local_rank=1) == torch.device("cuda", 1)
    assert backend(torch.device("cuda", 1)) == "nccl"  # not for CPU tensors: the old bug
    with pytest.raises(DeviceError, match="local rank 2 has no GPU"):
        resolve("cuda", local_rank=2)


def test_batches_stay_put_on_the_cpu_and_models_report_their_device():
    images, targets = [torch.zeros(3, 4, 4)], [{"boxes": torch.zeros(0, 4)}]
    assert to_device(images, targets, torch.device("cpu")) == (images, targets)
    assert model_device(torch.nn.Linear(2, 2)) == torch.device("cpu")
    assert model_device(torch.nn.ReLU()) == torch.device("cpu")


def test_training_precision_follows_the_cpu(monkeypatch):
    from qdet.core import cpu, device

    monkeypatch.setattr(cpu, "bf16_support", lambda: None)  # a Zen 4/5: bf16 instructions
    assert device.training_precision("auto", "cpu") == ("bf16", "auto: this CPU computes bf16 natively")
    assert device.training_precision("auto", "cuda:0")[0] == "fp32"  # a GPU keeps torchvision's recipe
    assert device.training_precision("fp32", "cpu") == ("fp32", "train.precision: fp32")
    monkeypatch.setattr(cpu, "bf16_support", lambda: "no bf16 instructions here")
    assert device.training_precision("auto", "cpu") == ("fp32", "auto: no bf16 instructions here")
    assert device.training_precision("bf16", torch.device("cpu")) == (
        "bf16",
        "train.precision: bf16 (no bf16 instructions here)",
    )
