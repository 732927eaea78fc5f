"""What the converted parts say about themselves: which modules run int8 and which stayed float,
and each module's SQNR against float (torchao's numeric debugger)."""

from __future__ import annotations

import copy

import torch
from torch import nn
from torchao.quantization.pt2e import extract_results_from_loggers, prepare_for_propagation_comparison
from torchao.quantization.pt2e.utils import _fuse_conv_bn_

from qdet.quant.parts import PARTS, capture_inputs, get_part, quant_report
from qdet.quant.plan import QuantPlan
from qdet.quant.pt2e.capture import capture


def describe(model: nn.Module, plan: QuantPlan) -> dict[str, object]:
    """Which convolutions and linears run int8 (their weight is dequantized from int8 in the
    converted graph) and which stayed float, for the stage output."""
    int8, float_ = [], []
    for part in plan.parts:
        graph_module = get_part(model, part).graph_module
        for node in graph_module.graph.nodes:
            if node.op != "call_function" or node.target not in (
                torch.ops.aten.conv2d.default,
                torch.ops.aten.linear.default,
            ):
                continue
            stack = node.meta.get("nn_module_stack") or {}
            fqn = list(stack.values())[-1][0] if stack else node.name
            name = f"{PARTS[part]}.{fqn}"
            weight = node.args[1]
            quantized = getattr(weight, "target", None) in (
                torch.ops.quantized_decomposed.dequantize_per_channel.default,
                torch.ops.quantized_decomposed.dequantize_per_tensor.default,
            )
            kind = "Conv2d" if node.target is torch.ops.aten.conv2d.default else "Linear"
            if quantized:
                int8.append(f"{name} ({kind})")
            else:
                float_.append(f"{name}: listed in quant.skip")
    return quant_report(int8, float_, plan.parts)


def _sqnr_db(ref: torch.Tensor, actual: torch.Tensor) -> float:
    noise = (ref - actual).pow(2).mean()
    return float(10 * torch.log10(ref.pow(2).mean() / noise)) if noise > 0 else float("inf")


@torch.inference_mode()
def module_sqnr(
    float_model: nn.Module, int8_model: nn.Module, inputs: dict[str, list[torch.Tensor]]
) -> dict[str, float]:
    """{module name: mean SQNR in dB of its output, int8 against float}, worst first.

    torchao's numeric debugger puts loggers after every node of the converted part and of the
    float part captured again (the same graph, so the same node names the quantized graph came
    from); the outputs of each convolution, linear and residual add are compared on the
    recorded float inputs of the part."""
    wanted = {torch.ops.aten.conv2d.default, torch.ops.aten.linear.default, torch.ops.aten.add.Tensor}
    out: dict[str, float] = {}
    for part, xs in inputs.items():
        if not xs:
            continue
        reference = capture(
            copy.deepcopy(get_part(float_model, part)), capture_inputs(float_model, part), False
        )
        _fuse_conv_bn_(reference)  # as prepare_pt2e does: a conv's output is then conv + BN in both
        ref = prepare_for_propagation_comparison(reference)
        actual = prepare_for_propagation_comparison(get_part(int8_model, part).graph_module)
        for x in xs:
            ref(x)
            actual(x)
        ref_logs = {info.name: stats for info, (_, _, stats) in extract_results_from_loggers(ref).items()}
        int8_logs = {info.name: stats for info, (_, _, stats) in extract_results_from_loggers(actual).items()}
        for node in reference.graph.nodes:
            if node.target not in wanted or node.name not in int8_logs or node.name not in ref_logs:
                continue
            pairs = zip(ref_logs[node.name], int8_logs[node.name], strict=True)
            values = [_sqnr_db(r, a) for r, a in pairs]
            stack = node.meta.get("nn_module_stack") or {}
            owner = list(stack.values())[-1][0].split("@")[0] if stack else ""
            if node.target is torch.ops.aten.add.Tensor or not owner:  # named by node, like the FX report
                name = f"{PARTS[part]}:{owner + '.' if owner else ''}{node.name}"
            else:
                name = f"{PARTS[part]}.{owner}"
            out[name] = sum(values) / len(values)
    return dict(sorted(out.items(), key=lambda kv: kv[1]))
