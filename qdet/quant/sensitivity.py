"""Per-module quantization error: SQNR (dB) of each int8 module's output against float, on
calibration inputs, via PyTorch's FX Numeric Suite. Low SQNR = a candidate for ``quant.skip``."""

from __future__ import annotations

import copy
from pathlib import Path

import torch
from torch import nn
from torch.ao.ns._numeric_suite_fx import (
    OutputLogger,
    add_loggers,
    extend_logger_results_with_comparison,
    extract_logger_info,
)
from torch.ao.ns.fx.utils import compute_sqnr

from qdet.quant.parts import PARTS, get_part


class InputRecorder:
    """Forward pre-hooks that keep the first ``limit`` inputs of each part of a float model."""

    def __init__(self, model: nn.Module, parts: list[str], limit: int = 8) -> None:
        self.inputs: dict[str, list[torch.Tensor]] = {p: [] for p in parts}
        self.handles = []
        for part in parts:

            def hook(_module, args, part=part):
                if len(self.inputs[part]) < limit:
                    self.inputs[part].append(args[0].detach().clone())

            self.handles.append(get_part(model, part).register_forward_pre_hook(hook))

    def remove(self) -> None:
        for h in self.handles:
            h.remove()


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


def plot_sensitivity(sqnr: dict[str, float], path: Path, most: int = 40) -> None:
    """Bars of the ``most`` worst modules (SQNR, dB), worst on top."""
    from qdet.plots import bars

    path.parent.mkdir(parents=True, exist_ok=True)
    bars(
        dict(list(sqnr.items())[:most]),
        path,
        "SQNR (dB), higher is better",
        "int8 vs float per module (worst first)",
    )


def write_sensitivity(sqnr: dict[str, float], path: Path) -> None:
    """CSV ``module,sqnr_db``, worst first (a DVC plot and an MLflow artifact)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    lines = ["module,sqnr_db"] + [f"{k},{v:.3f}" for k, v in sqnr.items()]
    path.write_text("\n".join(lines) + "\n")
