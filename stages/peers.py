"""peers stage: what a user could pick instead of qdet, built from the same float model and the
same calibration images: ONNX Runtime fp32 and int8, OpenVINO fp32, bf16 and int8, and torch's
own bf16 float (AOTInductor under autocast); the bf16 ones only on a CPU with bf16 instructions."""

import tempfile
from pathlib import Path

import typer

from qdet.core.aside import Aside
from qdet.core.console import console, exit_on_error
from qdet.core.cpu import bf16_support
from qdet.core.files import compile_room, require_free_space, write_json
from qdet.data.dataset import load_split
from qdet.measure.accuracy import evaluate_detector
from qdet.models.detector import load_trained
from qdet.peers import write_manifest
from qdet.peers.build import build_bf16, build_onnx, build_openvino
from qdet.pipeline import stage

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    processed: Path = typer.Argument(...),
    float_model: Path = typer.Argument(...),
    out_dir: Path = typer.Option(..., help="ONNX files, OpenVINO peer specs, float_bf16/, peers.json"),
    metrics: Path = typer.Option(...),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "peers")
    require_free_space(*compile_room(out_dir, float_model), "peers")
    stage.set_threads(cfg.train.threads)
    trained = load_trained(float_model, cfg.backbone, cfg.model)
    calibration = load_split(processed, "train")
    out_dir.mkdir(parents=True, exist_ok=True)
    no_bf16 = bf16_support()
    # torch's bf16 compiles beside ONNX Runtime's and OpenVINO's builds, on the other core
    bf16_compile = None if no_bf16 else Aside(lambda: build_bf16(trained, out_dir), "torch's bf16 compile")
    with tempfile.TemporaryDirectory() as scratch:

        def score(detector, dataset) -> float:  # mAP@.5, to choose ORT's calibration method
            return evaluate_detector(detector, dataset, Path(scratch), "selection").stats["map50"]

        built, result = build_onnx(trained.model, calibration, cfg, out_dir, score)
    ov_built, skipped, ov_result = build_openvino(out_dir, calibration, cfg, no_bf16)
    built |= ov_built
    result |= ov_result
    if bf16_compile is None:
        skipped["float_bf16"] = str(no_bf16)
    else:
        with console.status("compiling the float model for bf16 with AOTInductor"):
            built["float_bf16"], result["float_bf16_compile_seconds"] = bf16_compile.result()
    write_manifest(out_dir, built, skipped, result)
    write_json(result, metrics)
    with stage.tracker(cfg, "peers", params, metrics.parent) as run:
        run.log_metrics({k: v for k, v in result.items() if isinstance(v, int | float)})
        run.set_tags({f"peers.{k}": str(v) for k, v in result.items() if isinstance(v, str)})
    console.print(f"peers built: {', '.join(built)}")
    for name, why in skipped.items():
        console.print(f"note: {name} left out: {why}")


if __name__ == "__main__":
    app()
