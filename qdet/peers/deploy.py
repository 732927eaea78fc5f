"""qdet's own int8 where users deploy: the PTQ or QAT detector as ONNX QDQ, with the scales and
zero points qdet chose (the engine's ``export_qdq``: nothing recalibrated), and as OpenVINO IR
converted from it, weights stored int8; beside them a loader that needs only numpy, Pillow and
the runtime (:mod:`qdet.serving.qdet_deploy`).

One folder per variant: the register stage attaches it to the model version, and evaluate and
benchmark run it as the variant's ``_onnx`` (ONNX Runtime) and ``_openvino`` rows. Those rows
answer what the benchmark alone cannot: how much of qdet's lead over OpenVINO int8 is the model
(its ranges and QAT weights) and how much is qdet's runtime.
"""

from __future__ import annotations

import json
import shutil
from pathlib import Path

import torch
from torch import nn

from qdet.core.console import console
from qdet.peers import openvino
from qdet.quant.interface import Engine
from qdet.quant.parts import QuantError
from qdet.serving import DEPLOY_META, DEPLOY_OPENVINO, SHIPPED_DEPLOY

ONNX_FILE = "model.onnx"
IR_FILE = "openvino/model.xml"  # + model.bin
ROUTE = "qdet QDQ"


def write_deploy(
    engine: Engine,
    model: nn.Module,
    folder: Path,
    meta: dict,
    threads: int,
    rest: str,
) -> dict[str, Path]:
    """The deploy folder of one converted int8 ``model``; ``rest`` is what OpenVINO computes the
    float ops in (``f32``, or ``bf16`` where the CPU has it: the same as its own int8 peer).
    Returns the files evaluate and benchmark run: ``{"onnx": ..., "openvino": <spec>}``.
    Raises the engine's :class:`~qdet.quant.parts.QuantError` when it has no QDQ export."""
    shutil.rmtree(folder, ignore_errors=True)
    folder.mkdir(parents=True)
    size = model.transform.min_size[0], model.transform.max_size
    example = torch.rand(3, *size, generator=torch.Generator().manual_seed(0))  # shapes only: traced once
    engine.export_qdq(model, folder / ONNX_FILE, example)
    openvino.to_ir(folder / ONNX_FILE, folder / IR_FILE)
    reported = openvino.write_spec(folder / DEPLOY_OPENVINO, folder / IR_FILE, rest, threads, ROUTE)
    deploy_meta = {
        **meta,
        "onnx": ONNX_FILE,
        "openvino": IR_FILE,
        "openvino_config": openvino.read_spec(folder / DEPLOY_OPENVINO)["config"],  # the benchmark's
        "openvino_precision": reported,
        "input": {"image": "float32, 3 x H x W, RGB in [0, 1]"},
        "outputs": {
            "boxes": "float32, N x 4, x1 y1 x2 y2 in input pixels",
            "labels": "int64, N: label k is classes[k - 1]",
            "scores": "float32, N, highest first",
        },
    }
    (folder / DEPLOY_META).write_text(json.dumps(deploy_meta, indent=1))
    for shipped in SHIPPED_DEPLOY:
        shutil.copy2(shipped, folder / shipped.name)
    return {"onnx": folder / ONNX_FILE, "openvino": folder / DEPLOY_OPENVINO}


def write_deploys(
    engine: Engine,
    models: dict[str, nn.Module],
    out_dir: Path,
    metas: dict[str, dict],
    threads: int,
    rest: str,
) -> dict[str, dict[str, Path]]:
    """:func:`write_deploy` of each variant into ``out_dir/<variant>``: variant -> its files;
    nothing, said once, when the engine has no QDQ export."""
    try:
        return {v: write_deploy(engine, m, out_dir / v, metas[v], threads, rest) for v, m in models.items()}
    except QuantError as error:
        console.print(f"[yellow]note:[/yellow] no ONNX or OpenVINO deploy files: {error}")
        return {}
