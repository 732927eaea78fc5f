"""Is PT2E at least as fast as FX? Both engines' int8 artifacts of one float model, and that
model compiled by Inductor, timed interleaved in one process, per backbone.

The pipeline answers this for a trained model (``dvc exp run -S quant.engine=fx`` beside the
default run); this answers it in minutes for any list of backbones, on the default model
params with random weights and random calibration images (int8 kernel speed does not depend on
the weights' values; the number of detections after NMS does, a little). On a CPU without
AVX512-VNNI it adds ``fx_onednn``: FX with the int8 kernels it runs on a CPU with VNNI (see
:func:`fx_with_onednn_kernels`)::

    qdet-compare-engines resnet18 mobilenet_v3_large squeezenet1_1 --out engines.json
"""

from __future__ import annotations

import copy
import statistics
import tempfile
from pathlib import Path

import torch
import typer

from qdet.config import load_config
from qdet.core.console import console, exit_on_error
from qdet.core.cpu import cpu_flags
from qdet.core.files import write_json
from qdet.measure import stats
from qdet.measure.speed import environment, time_interleaved
from qdet.models.detector import build_detector
from qdet.quant.aot import save_compiled
from qdet.quant.calibrate import run_calibration
from qdet.quant.engines import ENGINES, get_engine
from qdet.quant.plan import make_plan
from qdet.serving.formats import load_artifact
from qdet.variants.table import FLOAT_COMPILED

app = typer.Typer(add_completion=False)
FLOAT = FLOAT_COMPILED
VNNI = "avx512_vnni"
FX_ONEDNN = "fx_onednn"


def fx_with_onednn_kernels(path: Path) -> object:
    """The FX file loaded with oneDNN's int8 kernels. PyTorch's x86 quantized engine packs an
    int8 convolution for oneDNN on CPUs with AVX512-VNNI and for FBGEMM elsewhere (its
    ``should_use_onednn_quant``); PT2E's Inductor kernels are oneDNN's on every x86 CPU. On a CPU
    without VNNI this row is FX as it runs on one with it: the same kernels on both sides, so
    the race measures the engines, not the kernel libraries. (Weights are packed at load.)"""
    engine = torch.backends.quantized.engine
    torch.backends.quantized.engine = "onednn"
    try:
        return load_artifact(path)[0]
    finally:
        torch.backends.quantized.engine = engine


def compare(backbone: str, params: Path, folder: Path, rounds: int) -> dict[str, object]:
    """p50 ms of each engine's PTQ artifact and the float Inductor one, and each engine's
    speedup over the others with a paired 95% interval (bootstrap over rounds)."""
    cfg = load_config(params)
    torch.manual_seed(0)
    model = build_detector(backbone, cfg.model, num_classes=4).eval()
    size = (3, cfg.model.min_size, cfg.model.max_size)
    calibration = [torch.rand(*size) for _ in range(4)]
    files = {FLOAT: folder / FLOAT}
    save_compiled(model, cfg.model, {"classes": list("abcd")}, files[FLOAT])
    for name in ENGINES:
        cfg.quant.engine = name
        plan = make_plan(cfg.quant, cfg.calibrate, qat=False)
        engine = get_engine(name)
        prepared = engine.prepare(copy.deepcopy(model), plan, qat=False)
        run_calibration(prepared, [(image, None) for image in calibration], len(calibration))
        saved = engine.save_int8(
            engine.convert(prepared, plan), cfg.model, {"classes": list("abcd")}, folder, name
        )
        files[name] = saved.path
    detectors = {name: load_artifact(path)[0] for name, path in files.items()}
    scripted = [path for path in files.values() if path.suffix == ".ts"]  # FX's TorchScript file
    if VNNI not in cpu_flags() and scripted:
        detectors[FX_ONEDNN] = fx_with_onednn_kernels(scripted[0])
    images = [torch.rand(*size) for _ in range(3)]
    times = time_interleaved(detectors, images, warmup=5, rounds=rounds)
    rows = stats.resample(rounds)
    boot = {name: stats.medians(ts, rows) for name, ts in times.items()}
    p50 = {name: statistics.median(ts) for name, ts in times.items()}
    out: dict[str, object] = {f"{name}_p50_ms": p50[name] * 1e3 for name in times}
    for name in ENGINES:
        for other in times:
            if other != name:
                out[f"{name}_speedup_vs_{other}"] = p50[other] / p50[name]
                out[f"{name}_speedup_vs_{other}_ci95"] = stats.interval(
                    boot[other] / boot[name], p50[other] / p50[name]
                )
    return out


@app.command()
@exit_on_error
def main(
    backbones: list[str] = typer.Argument(..., help="torchvision backbone names"),
    params: Path = typer.Option(Path("params.yaml"), help="model and quant params (engine ignored)"),
    rounds: int = typer.Option(40, help="timed rounds, interleaved in rotating order"),
    threads: int = typer.Option(2),
    out: Path = typer.Option(Path("reports/engines.json")),
) -> None:
    torch.set_num_threads(threads)
    result: dict[str, object] = {"environment": environment(threads), "rounds": rounds}
    for backbone in backbones:
        with console.status(f"{backbone}: quantizing with {', '.join(ENGINES)} and compiling"):
            with tempfile.TemporaryDirectory() as folder:
                result[backbone] = row = compare(backbone, params, Path(folder), rounds)
        console.print(
            f"{backbone}: "
            + ", ".join(
                f"{k.removesuffix('_p50_ms')} {v:.1f} ms" for k, v in row.items() if k.endswith("_p50_ms")
            )
        )
    write_json(result, out)


if __name__ == "__main__":
    app()
