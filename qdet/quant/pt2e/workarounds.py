"""What qdet fixes or works around in torchao's PT2E route, each with the upstream symptom and
the torchao releases it applies to (:data:`TORCHAO`; checked on 0.18). Each function here does
nothing once its :attr:`Workaround.needed` is false; when torchao fixes one, set its
``fixed_in`` and the tests (tests/quant/test_pt2e.py) show whether the plain route now holds."""

from __future__ import annotations

import collections
import contextlib
import copy
import functools
import types
from collections.abc import Callable, Hashable, Iterator
from dataclasses import dataclass
from unittest import mock

import torch
import torchao
from torch import nn
from torchao.quantization.pt2e import qat_utils, utils

TORCHAO = tuple(int(p) for p in torchao.__version__.split("+")[0].split(".")[:2])


@dataclass(frozen=True)
class Workaround:
    symptom: str  # what torchao does without it, in one line
    fixed_in: tuple[int, int] | None = None  # the first torchao release that no longer needs it

    @property
    def needed(self) -> bool:
        return self.fixed_in is None or TORCHAO < self.fixed_in


SHARED_ACTIVATIONS = Workaround(
    "X86InductorQuantizer: 'Input partition has more than one output node' on a ReLU module called twice"
)
BN_CONSTANTS = Workaround(
    "QAT conv+BN fusion and move-to-train/eval rewrite every batch norm with eps 1e-5, momentum 0.1"
)
SKIPPED_CONV_QAT = Workaround(
    "QAT conv+BN fusion: IndexError on a conv kept float (quant.skip, the search's plans)"
)
BN_FOLD = Workaround("convert_pt2e folds QAT conv+BN through a batch norm it writes with eps 1e-5")
PATTERN_EXPORTS = Workaround(
    "every QAT train/eval switch and conv+BN fold re-exports the same tiny pattern graphs (strict export)"
)

ACTIVATIONS = ("ReLU", "ReLU6", "Hardswish", "Hardsigmoid", "SiLU", "Hardtanh")
BN_OPS = {  # batch-norm op: positions of (momentum, eps) in its arguments
    torch.ops.aten.batch_norm.default: (6, 7),
    torch.ops.aten._native_batch_norm_legit.default: (6, 7),
    torch.ops.aten._native_batch_norm_legit_no_training.default: (5, 6),
}
BnConstants = dict[str, tuple[float, float]]


def split_shared_activations(graph_module: torch.fx.GraphModule) -> int:
    """Give each call of a shared activation module its own name in the node metadata.

    torchvision's ResNet blocks call one ``self.relu`` twice (after bn1 and after the residual
    add); the quantizer groups nodes by module name, sees one ReLU "partition" with two
    outputs, and stops with "Input partition has more than one output node". Naming every
    call apart gives it the conv + add + ReLU pattern it fuses. Returns how many were renamed.
    """
    if not SHARED_ACTIVATIONS.needed:
        return 0
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


def drop_skipped_conv_annotations(graph_module: torch.fx.GraphModule) -> int:
    """Remove the empty annotations X86InductorQuantizer leaves on convolutions it skips.

    A module kept float (``set_module_name_qconfig(name, None)``) gets an annotation with no
    quantization spec, which marks it done for the other annotators. torchao 0.18's QAT conv+BN
    fusion then rewrites such a conv and reads its input and weight specs from that empty map:
    ``IndexError: list index out of range``. Once annotation is over, an empty annotation asks
    for nothing, so prepare inserts the same observers without it. Returns how many were dropped.
    """
    if not SKIPPED_CONV_QAT.needed:
        return 0
    dropped = 0
    for node in graph_module.graph.nodes:
        annotation = node.meta.get("quantization_annotation")
        if (
            qat_utils._is_conv_or_conv_transpose_node(node)
            and annotation is not None
            and not annotation.input_qspec_map
            and annotation.output_qspec is None
        ):
            del node.meta["quantization_annotation"]
            dropped += 1
    return dropped


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
    if not BN_CONSTANTS.needed:
        return 0
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
    if not BN_FOLD.needed:
        yield
        return

    fold = qat_utils.fold_bn_weights_into_conv_node

    def fold_with_own_eps(
        conv: torch.fx.Node, weight: torch.fx.Node, bias: torch.fx.Node | None, bn: torch.fx.Node, m: object
    ) -> None:
        _set_bn_constants(bn, constants)
        fold(conv, weight, bias, bn, m)

    with mock.patch.object(qat_utils, "fold_bn_weights_into_conv_node", fold_with_own_eps):
        yield


def _key_of(value: object) -> Hashable:
    """What a pattern's graph depends on in ``value``: a tensor's shape, dtype and device (its
    values are example data), a plain value, function or module itself; anything else is not
    cached."""
    if isinstance(value, torch.Tensor):
        return ("tensor", tuple(value.shape), value.dtype, value.device.type)
    if value is None or isinstance(value, (bool, int, float, str, types.ModuleType)) or callable(value):
        hash(value)
        return value
    raise TypeError(f"no cache key for {type(value).__name__}")


def pattern_key(pattern: Callable, example_inputs: tuple, is_cuda: bool, kwargs: dict) -> Hashable | None:
    """The key of one pattern graph, or None when it cannot be cached. torchao builds its
    patterns as fresh closures (``WrapperModule(fn)``, ``_get_..._pattern(flags)``) on every call:
    the code and the values it closes over say which graph it traces to."""
    fn = getattr(pattern, "fn", pattern)
    code = getattr(fn, "__code__", None)
    if code is None:
        return None
    try:
        cells = tuple(_key_of(c.cell_contents) for c in fn.__closure__ or ())
        inputs = tuple(_key_of(x) for x in example_inputs)
        named = tuple(sorted((k, _key_of(v)) for k, v in kwargs.items()))
    except (TypeError, ValueError):  # unhashable, or an empty closure cell
        return None
    return code, cells, inputs, is_cuda, named


def memoize_pattern_graphs() -> bool:
    """Trace each of torchao's pattern graphs once per process, not on every call.

    torchao 0.18 builds the patterns it rewrites with (dropout and batch norm for every
    train/eval switch of a captured part, ~40 conv + BN variants for every QAT fold) with a
    strict ``torch.export`` each time: hundreds of exports, most of the time that rebuilding and
    converting one detector took (cProfile; docs/results-history.md). Each call still gets its
    own copy of the graph, as before. Installs once; returns whether it installed now."""
    if not PATTERN_EXPORTS.needed or getattr(utils._get_aten_graph_module_for_pattern, "memoized", False):
        return False
    trace = utils._get_aten_graph_module_for_pattern
    cache: dict[Hashable, torch.fx.GraphModule] = {}

    @functools.wraps(trace)
    def memoized(pattern: Callable, example_inputs: tuple, is_cuda: bool = False, **kwargs: object):
        key = pattern_key(pattern, example_inputs, is_cuda, kwargs)
        if key is None:
            return trace(pattern, example_inputs, is_cuda, **kwargs)
        if key not in cache:
            cache[key] = trace(pattern, example_inputs, is_cuda, **kwargs)
        return copy.deepcopy(cache[key])

    memoized.memoized = True  # type: ignore[attr-defined]
    memoized.cache = cache  # type: ignore[attr-defined]
    utils._get_aten_graph_module_for_pattern = memoized  # export_utils imports it at each call
    qat_utils._get_aten_graph_module_for_pattern = memoized  # qat_utils imported it by name
    return True
