"""QConfig mappings by name: observers for calibration, fake-quant for QAT, modules left float."""

from __future__ import annotations

import torch
from torch.ao.quantization import (
    FakeQuantize,
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    MovingAveragePerChannelMinMaxObserver,
    PerChannelMinMaxObserver,
    QConfig,
    QConfigMapping,
    get_default_qat_qconfig_mapping,
    get_default_qconfig_mapping,
)

from qdet.quant.parts import QuantError

OBSERVERS = {
    "minmax": MinMaxObserver,
    "moving_average": MovingAverageMinMaxObserver,
    "histogram": HistogramObserver,
}


def make_qconfig(observer: str, per_channel: bool, reduce_range: bool, qat: bool) -> QConfig:
    """8-bit unsigned activations (7-bit with ``reduce_range``), symmetric int8 weights."""
    if observer not in OBSERVERS:
        raise QuantError(f"calibrate.observer: unknown {observer!r}; valid: {', '.join(OBSERVERS)}")
    act_max = 127 if reduce_range else 255
    if qat:
        activation = FakeQuantize.with_args(
            observer=MovingAverageMinMaxObserver,
            quant_min=0,
            quant_max=act_max,
            dtype=torch.quint8,
            qscheme=torch.per_tensor_affine,
        )
        weight_observer = (
            MovingAveragePerChannelMinMaxObserver if per_channel else MovingAverageMinMaxObserver
        )
        weight = FakeQuantize.with_args(
            observer=weight_observer,
            quant_min=-128,
            quant_max=127,
            dtype=torch.qint8,
            qscheme=torch.per_channel_symmetric if per_channel else torch.per_tensor_symmetric,
        )
        return QConfig(activation=activation, weight=weight)
    activation = OBSERVERS[observer].with_args(dtype=torch.quint8, quant_min=0, quant_max=act_max)
    if per_channel:
        weight = PerChannelMinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_channel_symmetric)
    else:
        weight = MinMaxObserver.with_args(dtype=torch.qint8, qscheme=torch.per_tensor_symmetric)
    return QConfig(activation=activation, weight=weight)


def make_mapping(
    backend: str, observer: str, per_channel: bool, reduce_range: bool, qat: bool, skip: list[str]
) -> QConfigMapping:
    """The backend's default mapping (fixed-range ops like sigmoid keep their configs) with our
    global qconfig; ``skip`` names (relative to the part) get ``None`` and stay float."""
    base = get_default_qat_qconfig_mapping(backend) if qat else get_default_qconfig_mapping(backend)
    mapping = base.set_global(make_qconfig(observer, per_channel, reduce_range, qat))
    for name in skip:
        mapping.set_module_name(name, None)
    return mapping
