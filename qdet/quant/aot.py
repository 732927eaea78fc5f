"""Compile a detector ahead of time with AOTInductor into a self-contained folder.

Everything whose shapes follow from the input size is compiled, in the pieces the profile
chose (docs/internals.md has the measurements): ``backbone.pt2``
(normalisation, backbone, FPN), ``rpn_head.pt2`` (the RPN head on one level, run on each) and
``roi.pt2`` (level mapping, RoI align, box head, predictor, box decoding, softmax), each
captured with ``torch.export`` (any image size, any number of RoIs) from the float model or the
PT2E engine's converted graphs, and compiled with freezing. ``detector.json`` and the loader
``aot_detector.py`` (torch + torchvision only) travel with them. Loading compiles nothing.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import json
import os
import shutil
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from qdet.config import ModelConfig
from qdet.core.errors import QdetError
from qdet.serving import aot_detector

COMPILERS = ("c++", "g++", "clang++")


class CompilerMissing(QdetError):
    """Inductor compiles C++ and found no compiler."""


def check_compiler() -> None:
    """One line saying what to install, instead of Inductor's traceback deep in a compile."""
    wanted = os.environ.get("CXX")
    found = shutil.which(wanted) if wanted else next((c for c in COMPILERS if shutil.which(c)), None)
    if not found:
        raise CompilerMissing(
            "compiling the pt2e artifacts needs a C++ compiler (Inductor): none of "
            f"{', '.join([wanted] if wanted else COMPILERS)} found; install one (Debian/Ubuntu: "
            "apt-get install g++) or set CXX. Loading a compiled artifact needs none."
        )


# The feature maps leave backbone.pt2 and enter rpn_head.pt2 and roi.pt2 channels-last, the layout
# the convolutions write (oneDNN) and RoI align's gather reads: in the default NCHW, Inductor ended
# the backbone with a transpose of every level and RoI align began with another.
CHANNELS_LAST = True

# The transform pads every image to sides that are multiples of 32 (GeneralizedRCNNTransform's
# size_divisible), so the backbone is exported for sides 32·k: every feature-map size becomes a
# linear expression of k. Exported for any side, Inductor indexed the FPN's nearest upsampling
# through chains of floor divisions recomputed for every 8 channels, which slowed the int8
# backbone measurably (docs/results-history.md, "Measured figures that were code comments").
SIDE_MULTIPLE = 32


def _graph(module: nn.Module) -> nn.Module:
    """What to export: a part captured by the PT2E engine carries its converted graph."""
    graph = getattr(module, "graph_module", None)
    return graph if graph is not None else module.eval()


def handed_over(maps: dict[str, torch.Tensor]) -> dict[str, torch.Tensor]:
    """Feature maps in the layout they pass between the packages (``CHANNELS_LAST``)."""
    if not CHANNELS_LAST:
        return maps
    return {k: f.contiguous(memory_format=torch.channels_last) for k, f in maps.items()}


class Compiled(nn.Module):
    """A part as a compiled stage: inputs as varargs (one dynamic-shapes tuple for all), a
    backbone's feature dict as a tuple of its levels in the hand-over layout."""

    def __init__(self, part: nn.Module) -> None:
        super().__init__()
        self.part = part

    def forward(self, *inputs: torch.Tensor):
        out = self.part(*inputs)
        if isinstance(out, dict):
            out = tuple(handed_over(out).values())
        return out


class Normalised(nn.Module):
    """A backbone behind torchvision's normalisation, ``(image - mean) / std``: compiled together,
    Inductor fuses it into the backbone's first pass over the image (an int8 model's quantisation
    of its input), where the loader's transform took two passes of its own and a copy (the layout's
    ``normalize`` tells the loader)."""

    def __init__(self, inner: nn.Module, mean: list[float], std: list[float]) -> None:
        super().__init__()
        self.inner = inner
        self.register_buffer("mean", torch.tensor(mean).view(1, -1, 1, 1))
        self.register_buffer("std", torch.tensor(std).view(1, -1, 1, 1))

    def forward(self, *inputs: torch.Tensor):  # varargs, as Compiled: one dynamic-shapes tuple
        image, *rest = inputs
        return self.inner((image - self.mean) / self.std, *rest)


def rows_first_linear(head: nn.Module, channels: int, size: int) -> nn.Module:
    """A copy of a box head whose first linear layer reads RoI features flattened position by
    position (``[K, size, size, C]``, as the gather writes them) instead of channel by channel.

    Its input columns are permuted to match, the same products summed in another order: the
    box head's input no longer has to be transposed (mobilenet_v3_large PT2E int8, 2 threads:
    the transpose + quantize of 300 pooled RoIs took 2.8 ms of roi.pt2's ~8). The weight is the
    float parameter of a module, or the constant behind the first ``aten.linear`` of a captured
    graph (int8 per output channel, so the scales stay with their rows)."""
    head = copy.deepcopy(head)
    if isinstance(head, torch.fx.GraphModule):
        linear = next(n for n in head.graph.nodes if n.target == torch.ops.aten.linear.default)
        weight = linear.args[1]
        if weight.target == torch.ops.quantized_decomposed.dequantize_per_channel.default:
            if weight.args[3] != 0:
                raise QdetError(f"box head: weight quantized along axis {weight.args[3]}, not per output")
            weight = weight.args[0]
        if weight.op != "get_attr":
            raise QdetError(
                f"box head: the first linear's weight is {weight.op} {weight.target}, not a constant"
            )
        tensor = functools.reduce(getattr, weight.target.split("."), head)
    else:
        tensor = next(m for m in head.modules() if isinstance(m, nn.Linear)).weight
    if tensor.shape[1] != channels * size * size:
        raise QdetError(
            f"box head: first linear takes {tensor.shape[1]} features, not {channels}x{size}x{size}"
        )
    with torch.no_grad():
        tensor.copy_(tensor.view(-1, channels, size, size).permute(0, 2, 3, 1).reshape(tensor.shape))
    return head


class RoIStage(nn.Module):
    """What ``roi.pt2`` computes: the model's own multi-scale RoI align on the pooled levels (its
    level mapper and :func:`qdet.serving.roi_align.gather_roi_align`), box head, predictor, box
    decoding (torchvision's box coder) and softmax; returns boxes ``[N, classes, 4]`` and scores
    ``[N, classes]``."""

    def __init__(self, model: nn.Module, maps: dict[str, torch.Tensor], image_size: tuple[int, int]) -> None:
        super().__init__()
        self.pool = copy.deepcopy(model.roi_heads.box_roi_pool)
        self.pool.gather = True
        self.pool.scales = self.pool.map_levels = None
        self.names = list(self.pool.featmap_names)
        with torch.no_grad():  # sets the pool's scales and level mapper on real maps, before export
            self.pool(maps, [torch.tensor([[0.0, 0.0, 16.0, 16.0]])], [image_size])
        self.pool.channels_last = True
        self.channels, self.size = next(iter(maps.values())).shape[1], self.pool.output_size[0]
        self.box_head = rows_first_linear(_graph(model.roi_heads.box_head), self.channels, self.size)
        self.predictor = _graph(model.roi_heads.box_predictor)
        self.coder = model.roi_heads.box_coder

    def forward(self, *inputs: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        *features, proposals = inputs
        pooled = self.pool(dict(zip(self.names, features, strict=True)), [proposals], [])
        # [K, P, P, C] read as the [K, C, P, P] the head was captured for: it flattens the
        # memory as it lies, position by position, which its permuted first layer expects
        pooled = pooled.reshape(-1, self.channels, self.size, self.size)
        logits, deltas = self.predictor(self.box_head(pooled))
        boxes = self.coder.decode_single(deltas, proposals).reshape(proposals.shape[0], -1, 4)
        return boxes, torch.softmax(logits, -1)


def stages(model: nn.Module, model_cfg: ModelConfig) -> tuple[dict[str, tuple], dict[str, object]]:
    """The compiled stages with example inputs and dynamic dimensions, and the layout the
    loader needs: which feature levels RoI align pools from, the smallest image side at which
    every level is 2 or more pixels (export specialises sizes 0 and 1), and the normalisation
    ``backbone.pt2`` applies to the image it takes in [0, 1]."""
    model = model.eval()
    names = list(model.roi_heads.box_roi_pool.featmap_names)
    mean, std = [float(v) for v in model.transform.image_mean], [float(v) for v in model.transform.image_std]
    with torch.no_grad():
        batch, _ = model.transform([torch.rand(3, model_cfg.min_size, model_cfg.max_size)])
        image = batch.tensors
        maps = handed_over(model.backbone(image))
    keys = list(maps)
    pooled = [keys.index(n) for n in names]
    stride = max(image.shape[-1] // f.shape[-1] for f in maps.values())
    height, width = batch.image_sizes[0]
    corners = [[0.0, 0.0, width / 4, height / 4], [width / 8, height / 8, width / 2, height / 2]]
    proposals = torch.tensor(corners).repeat(4, 1) * torch.linspace(0.5, 1.5, 8).unsqueeze(1)
    auto = torch.export.Dim.AUTO
    least = (stride // SIDE_MULTIPLE + 1) * SIDE_MULTIPLE  # every level 2 or more pixels
    sides = {
        axis: SIDE_MULTIPLE * torch.export.Dim(name, min=least // SIDE_MULTIPLE)
        for axis, name in ((2, "rows"), (3, "cols"))
    }
    roi_inputs = (*[maps[n] for n in names], proposals)
    roi_dynamic = (*[{2: auto, 3: auto} for _ in names], {0: auto})
    raw = torch.rand(image.shape)  # the backbone takes the image in [0, 1] and normalises it
    compiled = {
        "backbone": (Normalised(Compiled(_graph(model.backbone)), mean, std), (raw,), (sides,)),
        "rpn_head": (Compiled(_graph(model.rpn.head.level)), (maps[keys[0]],), ({2: auto, 3: auto},)),
        "roi": (RoIStage(model, maps, batch.image_sizes[0]), roi_inputs, roi_dynamic),
    }
    return compiled, {"pooled": pooled, "min_side": least, "normalize": {"mean": mean, "std": std}}


INDUCTOR_CONFIGS = {
    "freezing": True,  # weights become constants: int8 weights packed once, at compile time
    "aot_inductor.enable_line_tables": False,  # debug line tables for profilers: ~1.2 MB per package
}


class Bf16Autocast(nn.Module):
    """A compiled stage under CPU bf16 autocast, as a PyTorch user runs bf16: what is float in it
    (convolutions and linears of a float model; for an int8 one, the ops between its int8
    kernels, which Inductor lowers to int8-mixed-bf16) in bf16, outputs back in fp32 for the
    data-dependent steps around it (anchors, NMS)."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, *inputs: torch.Tensor):
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.inner(*inputs)
        return torch.utils._pytree.tree_map(
            lambda t: t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, out
        )


def compile_module(module: nn.Module, inputs: tuple, dynamic: tuple, path: Path, bf16: bool = False) -> float:
    """Export ``module`` (under bf16 autocast with ``bf16``) and compile it to ``path``; seconds."""
    start = time.perf_counter()
    exported = torch.export.export(
        Bf16Autocast(module) if bf16 else module,
        inputs,
        dynamic_shapes=(dynamic,),  # varargs: one tuple
    )
    with torch.no_grad():
        torch._inductor.aoti_compile_and_package(
            exported, package_path=str(path), inductor_configs=INDUCTOR_CONFIGS
        )
    return time.perf_counter() - start


def save_compiled(
    model: nn.Module, model_cfg: ModelConfig, meta: dict[str, Any], folder: Path, bf16: bool = False
) -> tuple[int, dict[str, float]]:
    """Write the compiled detector folder (atomically: built aside, then renamed); with ``bf16``
    a float model's parts run under bf16 autocast.

    Returns its size in bytes and the compile seconds per part."""
    check_compiler()
    tmp = folder.with_name(folder.name + ".tmp")
    shutil.rmtree(tmp, ignore_errors=True)
    tmp.mkdir(parents=True)
    compiled, layout = stages(model, model_cfg)
    seconds = {
        name: compile_module(module, inputs, dynamic, tmp / f"{name}.pt2", bf16)
        for name, (module, inputs, dynamic) in compiled.items()
    }
    full_meta = {**meta, "model": dataclasses.asdict(model_cfg), "layout": layout, "compile_seconds": seconds}
    (tmp / aot_detector.META).write_text(json.dumps(full_meta, indent=1))
    shutil.copy2(aot_detector.__file__, tmp / "aot_detector.py")
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return sum(p.stat().st_size for p in folder.iterdir()), seconds
