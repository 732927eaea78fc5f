"""The two quantization engines behind one interface, chosen by ``quant.engine``.

``fx``: torch.ao FX graph mode, quantized tensors, TorchScript artifacts (deprecated upstream).
``pt2e``: torch.export + torchao's X86InductorQuantizer, AOTInductor artifacts (maintained).

Both quantize the same parts and leave the same data-dependent parts in float. An engine is a
module implementing :class:`qdet.quant.interface.Engine`, from preparing the model to writing
the artifact a user runs; code outside ``qdet/quant`` asks the engine and never compares engine
names.
"""

from __future__ import annotations

import copy
import importlib
from typing import cast

import torch
from torch import nn

from qdet.config.engines import ENGINES
from qdet.core.cpu import bf16_or_fp32
from qdet.quant.interface import Engine
from qdet.quant.parts import QuantError
from qdet.quant.plan import QuantPlan, stored_plan

MODULES = {"fx": "qdet.quant.fx", "pt2e": "qdet.quant.pt2e"}  # each engine of the registry, implemented


def get_engine(name: str) -> Engine:
    if name not in ENGINES:
        raise QuantError(f"quant.engine: unknown engine {name!r}; valid: {', '.join(ENGINES)}")
    return cast(Engine, importlib.import_module(MODULES[name]))


def float_dtype(setting: str, engine_name: str) -> tuple[str, str]:
    """What the int8 artifacts' float ops compute in (``quant.float_dtype``), and why: ``auto``
    is bf16 only where the engine can lower int8 with bf16 around it and the CPU computes bf16
    natively (emulated bf16 is slower than fp32); the console and convert's metrics say which."""
    engine = get_engine(engine_name)
    if setting == "auto" and "bf16" not in engine.FLOAT_DTYPES:
        return "fp32", f"auto: the {engine_name} engine computes its float ops in fp32"
    if setting not in (*engine.FLOAT_DTYPES, "auto"):
        raise QuantError(
            f"quant.float_dtype: {setting} is not possible with quant.engine {engine_name} "
            f"(it computes in {', '.join(engine.FLOAT_DTYPES)})"
        )
    return bf16_or_fp32(setting, "quant.float_dtype")


def restore(float_model: nn.Module, plan: QuantPlan, state: dict[str, torch.Tensor], qat: bool) -> nn.Module:
    """Rebuild a prepared model (observers or fake-quant) from its saved state_dict.

    A prepared graph does not survive ``torch.save``; its state_dict does, and preparing the
    same float model with the same plan gives the same graph to load it into.
    """
    model = copy.deepcopy(float_model)
    model.train(qat)
    get_engine(plan.engine).prepare(model, plan, qat)
    model.load_state_dict(state)
    return model.eval()


def int8_from_state(float_model: nn.Module, state: dict, key: str, qat: bool) -> nn.Module:
    """The int8 model from a calibrate (``key="observed"``) or qat (``"qat"``) checkpoint."""
    plan = stored_plan(state, f"the {'qat' if qat else 'calibrated'} checkpoint")
    return get_engine(plan.engine).convert(restore(float_model, plan, state[key], qat), plan)
