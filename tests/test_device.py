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
