"""The FX engine: prepare, convert and describe the quantizable parts of a detector with FX graph mode.

Each part is traced on its own and replaced in place by its prepared (observed or fake-quant)
GraphModule; the detector keeps running end to end, so calibration and QAT use the normal
forward. Parts take float tensors and return float tensors: quantize/dequantize sit at their edges.
"""

from __future__ import annotations

import copy
from pathlib import Path
from typing import Any

import torch
from torch import nn
from torch.ao.nn.intrinsic import qat as nniqat
from torch.ao.ns._numeric_suite_fx import (
    OutputLogger,
    add_loggers,
    extend_logger_results_with_comparison,
    extract_logger_info,
)
from torch.ao.ns.fx.utils import compute_sqnr
from torch.ao.quantization import disable_fake_quant, disable_observer, enable_fake_quant, enable_observer
from torch.ao.quantization.quantize_fx import convert_fx, prepare_fx, prepare_qat_fx

from qdet.config import ModelConfig
from qdet.quant.engines import int8_from_state
from qdet.quant.interface import Saved
from qdet.quant.parts import (
    PARTS,
    QuantError,
    check_parts,
    check_skip,
    example_inputs,
    get_part,
    quant_report,
    set_part,
)
from qdet.quant.plan import QuantPlan
from qdet.quant.qconfig import make_mapping
from qdet.quant.torchscript import save_artifact, script_detector

ARTIFACT = "TorchScript file"
FLOAT_DTYPES = ("fp32",)  # quantized kernels and the scripted glue: fp32 around int8


def prepare(model: nn.Module, plan: QuantPlan, qat: bool) -> nn.Module:
    """Replace each planned part by its prepared GraphModule (in place; returns the model)."""
    check_parts(plan.parts)
    check_skip(model, plan.parts, plan.skip)
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
    return quant_report(int8, float_, plan.parts)


def fake_quant(model: nn.Module, on: bool) -> None:
    model.apply(enable_fake_quant if on else disable_fake_quant)


def observers(model: nn.Module, on: bool) -> None:
    model.apply(enable_observer if on else disable_observer)


def freeze_bn(model: nn.Module) -> None:
    """QAT: batch-norm statistics stop moving (the weights still train)."""
    model.apply(nniqat.freeze_bn_stats)


def _node_targets(graph_module: nn.Module) -> dict[str, str]:
    """FX node name -> dotted module name (what ``quant.skip`` takes) for module calls."""
    return {n.name: str(n.target) for n in graph_module.graph.nodes if n.op == "call_module"}


@torch.inference_mode()
def module_sqnr(
    float_model: nn.Module, int8_model: nn.Module, inputs: dict[str, list[torch.Tensor]]
) -> dict[str, float]:
    """{module name: mean SQNR in dB over the recorded inputs}, worst first."""
    out: dict[str, float] = {}
    for part, xs in inputs.items():
        if not xs:
            continue
        f_ns, q_ns = add_loggers(
            "fp32",
            copy.deepcopy(get_part(float_model, part)),
            "int8",
            copy.deepcopy(get_part(int8_model, part)),
            OutputLogger,
        )
        for x in xs:
            f_ns(x)
            q_ns(x)
        results = extract_logger_info(f_ns, q_ns, OutputLogger, "int8")
        extend_logger_results_with_comparison(results, "fp32", "int8", compute_sqnr, "sqnr")
        targets = _node_targets(get_part(int8_model, part))
        for node_name, layer in results.items():
            # a module call is named as quant.skip expects it; a functional op (add_relu) by node
            name = (
                f"{PARTS[part]}.{targets[node_name]}"
                if node_name in targets
                else f"{PARTS[part]}:{node_name}"
            )
            for kind in layer.values():
                values = [float(s) for e in kind["int8"] for s in e["sqnr"]]
                out[name] = sum(values) / len(values)
    return dict(sorted(out.items(), key=lambda kv: kv[1]))


def module_name(name: str) -> str:
    """FX parts keep their modules' names (``backbone.body.0`` stays ``backbone.body.0``)."""
    return name


def timed_int8(eager: nn.Module, loaded: Any, state: dict[str, Any]) -> nn.Module:
    """Hooks cannot see into TorchScript: the equivalent eager int8 model, rebuilt from the QAT
    checkpoint, with the RoI align the TorchScript artifact runs."""
    int8 = int8_from_state(eager, state, "qat", qat=True)
    int8.roi_heads.box_roi_pool.gather = True
    return int8


def save_int8(
    model: nn.Module,
    model_cfg: ModelConfig,
    meta: dict[str, Any],
    out_dir: Path,
    variant: str,
    float_dtype: str = "fp32",
) -> Saved:
    """The whole detector scripted to ``<variant>.ts`` (the script holds the model: ``model_cfg``
    is not needed); its float ops compute in fp32 only."""
    if float_dtype not in FLOAT_DTYPES:
        raise QuantError(f"quant.float_dtype: the fx engine computes in {FLOAT_DTYPES}, not {float_dtype}")
    path = out_dir / f"{variant}.ts"
    return Saved(path, save_artifact(script_detector(model), path, meta), {})


def save_float(
    model: nn.Module, model_cfg: ModelConfig, meta: dict[str, Any], out_dir: Path
) -> dict[str, Saved]:
    """The float model as TorchScript too (``float_ts``): a row in the int8 artifacts' format."""
    return {"float_ts": save_int8(model, model_cfg, {**meta, "variant": "float"}, out_dir, "float")}


def export_qdq(model: nn.Module, path: Path, example: torch.Tensor) -> float:
    """Not written: FX's int8 holds quantized tensors and packed kernels, which qdet does not map
    to ONNX QDQ; the maintained engine does."""
    raise QuantError(
        "the fx engine's int8 is not exported to ONNX: quant.engine=pt2e writes ONNX and OpenVINO IR"
    )
