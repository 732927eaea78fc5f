"""Compile a detector's parts ahead of time with AOTInductor into a self-contained folder.

Each part (backbone, RPN head, box head, predictor), float or converted by the PT2E engine, is
captured with ``torch.export`` (dynamic batch, image and RoI sizes) and compiled with freezing
into a ``.pt2`` package; ``detector.json``, the loader ``aot_detector.py`` and its RoI align
``roi_align.py`` (torch + torchvision only) travel with them. Loading the folder compiles nothing.
"""

from __future__ import annotations

import dataclasses
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
from qdet.quant.parts import PARTS, capture_inputs, dynamic_shapes, get_part
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


def _graph(module: nn.Module) -> nn.Module:
    """What to export: a part captured by the PT2E engine carries its converted graph."""
    graph = getattr(module, "graph_module", None)
    return graph if graph is not None else module.eval()


PER_IMAGE = ("backbone", "rpn_head")  # compiled for one image; the loader loops over a batch


def compile_inputs(model: nn.Module, part: str) -> tuple[tuple[torch.Tensor, ...], tuple[dict, ...]]:
    """Example inputs and dynamic dimensions for AOTInductor: image-level parts for batch 1 with
    any height and width (the detector runs one image at a time; a dynamic batch dimension
    starts at 2, and padding a single image to 2 doubled the work), RoI-level parts for any
    number of RoIs."""
    inputs = capture_inputs(model, part)
    if part not in PER_IMAGE:
        return inputs, dynamic_shapes(inputs)
    auto = torch.export.Dim.AUTO
    return tuple(x[:1] for x in inputs), tuple({2: auto, 3: auto} for _ in inputs)


INDUCTOR_CONFIGS = {
    "freezing": True,  # weights become constants: int8 weights packed once, at compile time
    "aot_inductor.enable_line_tables": False,  # debug line tables for profilers: ~1.2 MB per package
}


class Bf16Autocast(nn.Module):
    """A float part under CPU bf16 autocast, as a PyTorch user runs bf16: convolutions and
    linears in bf16, outputs back in fp32 for the float glue (anchors, NMS, RoI align) around it."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self.inner = inner

    def forward(self, x: torch.Tensor):  # every part takes one tensor
        with torch.autocast("cpu", dtype=torch.bfloat16):
            out = self.inner(x)
        return torch.utils._pytree.tree_map(
            lambda t: t.float() if isinstance(t, torch.Tensor) and t.is_floating_point() else t, out
        )


def compile_part(model: nn.Module, part: str, path: Path, bf16: bool = False) -> float:
    """Compile one part to ``path`` (under bf16 autocast with ``bf16``); returns the seconds."""
    inputs, dynamic = compile_inputs(model, part)
    start = time.perf_counter()
    module = _graph(get_part(model, part))
    exported = torch.export.export(Bf16Autocast(module) if bf16 else module, inputs, dynamic_shapes=dynamic)
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
    seconds = {part: compile_part(model, part, tmp / f"{part}.pt2", bf16) for part in PARTS}
    full_meta = {
        **meta,
        "model": dataclasses.asdict(model_cfg),
        "out_channels": model.backbone.out_channels,
        "featmap_names": list(model.roi_heads.box_roi_pool.featmap_names),
        "compile_seconds": seconds,
    }
    (tmp / aot_detector.META).write_text(json.dumps(full_meta, indent=1))
    shutil.copy2(aot_detector.__file__, tmp / "aot_detector.py")
    shutil.copy2(Path(aot_detector.__file__).with_name(aot_detector.ROI_ALIGN), tmp / aot_detector.ROI_ALIGN)
    shutil.rmtree(folder, ignore_errors=True)
    tmp.rename(folder)
    return sum(p.stat().st_size for p in folder.iterdir()), seconds
