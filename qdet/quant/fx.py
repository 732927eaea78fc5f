"""Prepare, convert and describe the quantizable parts of a detector with FX graph mode.

Each part is traced on its own and replaced in place by its prepared (observed or fake-quant)
GraphModule; the detector keeps running end to end, so calibration and QAT use the normal
forward. Parts take float tensors and return float tensors: quantize/dequantize sit at their edges.
"""

from __future__ import annotations

import copy

import torch
from torch import nn
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx

from qdet.quant.parts import FLOAT_ONLY, PARTS, QuantError, check_parts, example_inputs, get_part, set_part
from qdet.quant.plan import QuantPlan
from qdet.quant.qconfig import make_mapping


def _check_skip(model: nn.Module, plan: QuantPlan) -> None:
    names = {n for n, _ in model.named_modules()}
    for s in plan.skip:
        if s not in names:
            raise QuantError(f"quant.skip: no module named {s!r} in the model")
        if not any(s.startswith(PARTS[p] + ".") for p in plan.parts):
            raise QuantError(f"quant.skip: {s!r} is not inside a quantized part ({plan.parts})")


def prepare(model: nn.Module, plan: QuantPlan, qat: bool) -> nn.Module:
    """Replace each planned part by its prepared GraphModule (in place; returns the model)."""
    check_parts(plan.parts)
    _check_skip(model, plan)
    torch.backends.quantized.engine = plan.backend
    inputs_by_part = {part: example_inputs(model, part) for part in plan.parts}
    for part in plan.parts:
        module = get_part(model, part)
        inputs = inputs_by_part[part]
        mapping = make_mapping(
            plan.backend,
            plan.observer,
            plan.per_channel,
            plan.reduce_range,
            qat,
            plan.skip_for(part),
        )
        if qat:
            prepared = prepare_qat_fx(module.train(), mapping, inputs)
        else:
            prepared = prepare_fx(module.eval(), mapping, inputs)
        if hasattr(module, "out_channels"):  # FasterRCNN reads it; GraphModules drop it
            prepared.out_channels = module.out_channels
        set_part(model, part, prepared)
    return model


def convert(model: nn.Module, plan: QuantPlan) -> nn.Module:
    """Convert prepared parts to int8 (a deep copy: the prepared model stays usable)."""
    torch.backends.quantized.engine = plan.backend
    model = copy.deepcopy(model).eval()
    for part in plan.parts:
        prepared = get_part(model, part)
        converted = convert_fx(prepared)
        if hasattr(prepared, "out_channels"):
            converted.out_channels = prepared.out_channels
        set_part(model, part, converted)
    return model


def describe(model: nn.Module, plan: QuantPlan) -> dict[str, object]:
    """Which modules ended up int8 and which stayed float, and why, for the stage output."""
    int8, float_ = [], []
    for part in plan.parts:
        for name, mod in get_part(model, part).named_modules():
            kind = type(mod).__module__
            if not name or list(mod.children()):
                continue
            full = f"{PARTS[part]}.{name}"
            if ".quantized" in kind:
                int8.append(f"{full} ({type(mod).__name__})")
            elif isinstance(mod, nn.Conv2d | nn.Linear):
                float_.append(f"{full}: listed in quant.skip")
    for part in set(PARTS) - set(plan.parts):
        float_.append(f"{PARTS[part]}: part not in quant.parts")
    return {
        "int8_modules": int8,
        "float_modules": float_,
        "float_by_design": [f"{k}: {v}" for k, v in FLOAT_ONLY.items()],
    }


def restore(float_model: nn.Module, plan: QuantPlan, state: dict[str, torch.Tensor], qat: bool) -> nn.Module:
    """Rebuild a prepared model (observers or fake-quant) from its saved state_dict.

    A prepared GraphModule does not survive ``torch.save``; its state_dict does, and preparing
    the same float model with the same plan gives the same graph to load it into.
    """
    model = copy.deepcopy(float_model)
    model.train(qat)
    prepare(model, plan, qat)
    model.load_state_dict(state)
    return model.eval()


def int8_from_state(float_model: nn.Module, state: dict, key: str, qat: bool) -> nn.Module:
    """The int8 model from a calibrate (``key="observed"``) or qat (``"qat"``) checkpoint."""
    plan = QuantPlan(**state["plan"])
    return convert(restore(float_model, plan, state[key], qat), plan)
