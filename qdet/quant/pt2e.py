"""The PT2E engine: PyTorch's maintained quantization route (torchao + Inductor).

Each planned part is captured on its own with ``torch.export`` (whole torchvision detectors do
not export), annotated by torchao's ``X86InductorQuantizer``, observed (PTQ) or fake-quantized
(QAT) while the detector runs end to end as usual, then converted to quantize/dequantize +
float ops that Inductor lowers to int8 kernels. No ``torch.ao.quantization`` call, no quantized
dtype, no TorchScript.
"""

from __future__ import annotations

import collections
import contextlib
import copy
from collections.abc import Iterator
from unittest import mock

import torch
from torch import nn
from torch.export import Dim
from torchao.quantization.pt2e import (
    HistogramObserver,
    MinMaxObserver,
    MovingAverageMinMaxObserver,
    PerChannelMinMaxObserver,
    disable_fake_quant,
    disable_observer,
    enable_fake_quant,
    enable_observer,
    move_exported_model_to_eval,
    move_exported_model_to_train,
)
from torchao.quantization.pt2e.quantize_pt2e import convert_pt2e, prepare_pt2e, prepare_qat_pt2e
from torchao.quantization.pt2e.quantizer import QuantizationSpec
from torchao.quantization.pt2e.quantizer.x86_inductor_quantizer import (
    QuantizationConfig,
    X86InductorQuantizer,
    get_default_x86_inductor_quantization_config,
)

from qdet.quant.parts import PARTS, QuantError, check_skip, example_inputs, get_part, quant_report, set_part
from qdet.quant.plan import QuantPlan

OBSERVERS = {
    "minmax": MinMaxObserver,
    "moving_average": MovingAverageMinMaxObserver,
    "histogram": HistogramObserver,
}
ACTIVATIONS = ("ReLU", "ReLU6", "Hardswish", "Hardsigmoid", "SiLU", "Hardtanh")
BN_OPS = {  # batch-norm op: positions of (momentum, eps) in its arguments
    torch.ops.aten.batch_norm.default: (6, 7),
    torch.ops.aten._native_batch_norm_legit.default: (6, 7),
    torch.ops.aten._native_batch_norm_legit_no_training.default: (5, 6),
}
BnConstants = dict[str, tuple[float, float]]


def capture_inputs(model: nn.Module, part: str) -> tuple[torch.Tensor, ...]:
    """Example inputs for ``torch.export``: every dimension but the channels above 1, so that
    they stay dynamic (export specialises dimensions of size 0 and 1). A captured part keeps the
    inputs it was captured with (its float attributes, e.g. the predictor's width, are gone)."""
    module = get_part(model, part)
    if isinstance(module, ExportedPart):
        return module.example
    return example_inputs(model, part, batch=2)


def dynamic_shapes(inputs: tuple[torch.Tensor, ...]) -> tuple[dict[int, object], ...]:
    """Every dimension but the channels may vary: batch, RoI count, image and feature sizes."""
    auto = Dim.AUTO
    return tuple({d: auto for d in range(x.dim()) if d != 1 or x.dim() == 2} for x in inputs)


def split_shared_activations(graph_module: torch.fx.GraphModule) -> int:
    """Give each call of a shared activation module its own name in the node metadata.

    torchvision's ResNet blocks call one ``self.relu`` twice (after bn1 and after the residual
    add); the quantizer groups nodes by module name, sees one ReLU "partition" with two
    outputs, and stops with "Input partition has more than one output node". Naming every
    call apart gives it the conv + add + ReLU pattern it fuses. Returns how many were renamed.
    """
    calls: collections.Counter[str] = collections.Counter()
    for node in graph_module.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if node.op == "call_function" and stack:
            calls[list(stack.values())[-1][0]] += 1
    renamed = 0
    for node in graph_module.graph.nodes:
        stack = node.meta.get("nn_module_stack")
        if node.op != "call_function" or not stack:
            continue
        key = list(stack)[-1]
        fqn, kind = stack[key]
        kind_name = kind if isinstance(kind, str) else kind.__qualname__
        if calls[fqn] > 1 and kind_name.rsplit(".", 1)[-1] in ACTIVATIONS:
            node.meta["nn_module_stack"] = {**stack, key: (f"{fqn}@{node.name}", kind)}
            renamed += 1
    return renamed


def bn_constants(module: nn.Module) -> BnConstants:
    """{running-variance buffer name: (eps, momentum)} of every batch norm in a part."""
    return {
        f"{name}.running_var": (m.eps, 0.1 if m.momentum is None else m.momentum)
        for name, m in module.named_modules()
        if isinstance(m, nn.modules.batchnorm._BatchNorm)
    }


def restore_bn_constants(graph_module: torch.fx.GraphModule, constants: BnConstants) -> int:
    """Give every batch norm in a captured graph its module's own eps and momentum back.

    torchao 0.18's QAT conv + BN fusion and its move-to-train/eval rewrite every batch norm with
    eps 1e-5 and momentum 0.1 (TODOs in its ``qat_utils`` and ``export_utils``), including the
    ``sqrt(running_var + eps)`` that scales the fake-quantized weight. MobileNetV3 uses eps 1e-3:
    its QAT graph with fake quant off was 141x off float (relative error of the first FPN level,
    with BN statistics from real activations), and its QAT scored mAP@.5 0.266 against float
    0.458. Matched by the running-variance buffer, which the rewrites keep. Returns how many
    batch norms were set.
    """
    restored = sum(_set_bn_constants(node, constants) for node in list(graph_module.graph.nodes))
    graph_module.recompile()
    return restored


def _set_bn_constants(node: torch.fx.Node, constants: BnConstants) -> bool:
    if node.target not in BN_OPS:
        return False
    variance = node.args[4]
    if getattr(variance, "op", None) != "get_attr" or variance.target not in constants:
        return False
    eps, momentum = constants[variance.target]
    momentum_at, eps_at = BN_OPS[node.target]
    args = list(node.args)
    args[momentum_at], args[eps_at] = momentum, eps
    node.args = tuple(args)
    for user in list(variance.users):  # the QAT fusion's sqrt(running_var + eps)
        if user.target is torch.ops.aten.add.Tensor and isinstance(user.args[1], float):
            user.args = (variance, eps)
    return True


@contextlib.contextmanager
def folding_with_own_bn_constants(constants: BnConstants) -> Iterator[None]:
    """``convert_pt2e`` folds each QAT conv + BN into the conv through a batch-norm node it has
    just written with eps 1e-5 (torchao 0.18 ``_fold_conv_bn_qat_helper``), whatever the graph
    said: MobileNetV3's converted QAT model scored mAP@.5 0.466 where its own fake-quant model
    scored 0.554 (0.544 with this). Set the module's eps on that node just before the fold."""

    from torchao.quantization.pt2e import qat_utils

    fold = qat_utils.fold_bn_weights_into_conv_node

    def fold_with_own_eps(
        conv: torch.fx.Node, weight: torch.fx.Node, bias: torch.fx.Node | None, bn: torch.fx.Node, m: object
    ) -> None:
        _set_bn_constants(bn, constants)
        fold(conv, weight, bias, bn, m)

    with mock.patch.object(qat_utils, "fold_bn_weights_into_conv_node", fold_with_own_eps):
        yield


def quantization_config(plan: QuantPlan, qat: bool) -> QuantizationConfig:
    """torchao's x86 config, with the configured PTQ activation observer and 7- or 8-bit range."""
    base = get_default_x86_inductor_quantization_config(is_qat=qat, reduce_range=plan.reduce_range)
    if not plan.per_channel:
        raise QuantError("quant.per_channel: the pt2e engine quantizes weights per channel only; set true")
    if qat:
        return base
    if plan.observer not in OBSERVERS:
        raise QuantError(f"calibrate.observer: unknown {plan.observer!r}; valid: {', '.join(OBSERVERS)}")
    activation = _with_observer(base.input_activation, OBSERVERS[plan.observer])
    weight = _with_observer(base.weight, PerChannelMinMaxObserver)
    return QuantizationConfig(activation, activation, weight, None, False)


def _with_observer(spec: QuantizationSpec, observer: type) -> QuantizationSpec:
    return QuantizationSpec(
        dtype=spec.dtype,
        quant_min=spec.quant_min,
        quant_max=spec.quant_max,
        qscheme=spec.qscheme,
        ch_axis=spec.ch_axis,
        observer_or_fake_quant_ctr=observer.with_args(eps=2**-12),
    )


def make_quantizer(plan: QuantPlan, part: str, qat: bool) -> X86InductorQuantizer:
    quantizer = X86InductorQuantizer().set_global(quantization_config(plan, qat))
    for name in plan.skip_for(part):
        quantizer.set_module_name_qconfig(name, None)
    return quantizer


class ExportedPart(nn.Module):
    """A captured part inside the eager detector.

    ``train()``/``eval()`` on the detector reach the graph as torchao's move-to-train/eval
    (batch norm and dropout), except that frozen batch-norm statistics stay frozen; each batch
    norm keeps its own eps and momentum (``bn_constants``).
    """

    def __init__(
        self,
        graph_module: torch.fx.GraphModule,
        out_channels: int | None,
        example: tuple[torch.Tensor, ...],
        bn_constants: BnConstants | None = None,
    ) -> None:
        super().__init__()
        self.graph_module = graph_module
        self.example = example  # what it was captured with: shapes for compiling it later
        self.bn_constants = bn_constants or {}
        self.bn_frozen = False
        if out_channels is not None:
            self.out_channels = out_channels  # FasterRCNN reads it from the backbone

    def train(self, mode: bool = True) -> ExportedPart:
        self.training = mode
        self._bn_mode(training=mode and not self.bn_frozen)
        return self

    def freeze_bn(self) -> None:
        self.bn_frozen = True
        self._bn_mode(training=False)

    def _bn_mode(self, training: bool) -> None:
        (move_exported_model_to_train if training else move_exported_model_to_eval)(self.graph_module)
        restore_bn_constants(self.graph_module, self.bn_constants)

    def forward(self, x: torch.Tensor):
        return self.graph_module(x)


def capture(module: nn.Module, inputs: tuple[torch.Tensor, ...], training: bool) -> torch.fx.GraphModule:
    from torchao.quantization.pt2e import generate_numeric_debug_handle

    module = module.train(training)
    exported = torch.export.export(module, inputs, dynamic_shapes=dynamic_shapes(inputs))
    generate_numeric_debug_handle(exported)  # lets module_sqnr pair float and int8 nodes
    graph_module = exported.module()
    split_shared_activations(graph_module)
    return graph_module


def prepare(model: nn.Module, plan: QuantPlan, qat: bool) -> nn.Module:
    """Replace each planned part by its observed (PTQ) or fake-quant (QAT) captured graph, in
    place; returns the model, which still runs end to end for calibration and training."""
    check_skip(model, plan.parts, plan.skip)
    inputs_by_part = {part: capture_inputs(model, part) for part in plan.parts}
    for part in plan.parts:
        module = get_part(model, part)
        graph_module = capture(copy.deepcopy(module), inputs_by_part[part], training=qat)
        quantizer = make_quantizer(plan, part, qat)
        prepared = prepare_qat_pt2e(graph_module, quantizer) if qat else prepare_pt2e(graph_module, quantizer)
        channels = getattr(module, "out_channels", None)
        wrapped = ExportedPart(prepared, channels, inputs_by_part[part], bn_constants(module))
        set_part(model, part, wrapped.train(qat))
    return model


def freeze_bn(model: nn.Module) -> None:
    """QAT: batch-norm statistics stop moving (the weights still train)."""
    for module in model.modules():
        if isinstance(module, ExportedPart):
            module.freeze_bn()


def fake_quant(model: nn.Module, on: bool) -> None:
    for module in model.modules():
        if isinstance(module, ExportedPart):
            module.graph_module.apply(enable_fake_quant if on else disable_fake_quant)


def observers(model: nn.Module, on: bool) -> None:
    for module in model.modules():
        if isinstance(module, ExportedPart):
            module.graph_module.apply(enable_observer if on else disable_observer)


def convert(model: nn.Module, plan: QuantPlan) -> nn.Module:
    """Convert each captured part to its quantized graph (quantize/dequantize around float ops,
    which Inductor fuses into int8 kernels); a deep copy, the prepared model stays usable."""
    model = copy.deepcopy(model).eval()
    for part in plan.parts:
        wrapped = get_part(model, part)
        wrapped.freeze_bn()  # eval batch norms with their own eps: convert folds them into the convs
        with folding_with_own_bn_constants(wrapped.bn_constants):
            converted = convert_pt2e(wrapped.graph_module)
        channels = getattr(wrapped, "out_channels", None)
        set_part(model, part, ExportedPart(converted, channels, wrapped.example).eval())
    return model


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
    from torchao.quantization.pt2e import extract_results_from_loggers, prepare_for_propagation_comparison
    from torchao.quantization.pt2e.utils import _fuse_conv_bn_

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
