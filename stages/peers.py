"""peers stage: what a user could pick instead of qdet, built from the same float model and the
same calibration images: ONNX Runtime fp32 and ONNX Runtime static int8."""

from pathlib import Path

import typer

from qdet import stage
from qdet.console import console, exit_on_error
from qdet.data.dataset import load_split
from qdet.files import write_json
from qdet.models.detector import load_trained
from qdet.peers import export_onnx, quantize_onnx

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    processed: Path = typer.Argument(...),
    float_model: Path = typer.Argument(...),
    out_dir: Path = typer.Option(..., help="ort_fp32.onnx, ort_int8.onnx"),
    metrics: Path = typer.Option(...),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "peers")
    stage.set_threads(cfg.train.threads)
    trained = load_trained(float_model, cfg.backbone, cfg.model)
    calibration = load_split(processed, "train")
    fp32, int8 = out_dir / "ort_fp32.onnx", out_dir / "ort_int8.onnx"
    with console.status("exporting the float model to ONNX"):
        export_seconds = export_onnx(trained.model, fp32, calibration[0][0])
    with console.status(f"ONNX Runtime static quantization on {cfg.calibrate.images} images"):
        quantize_seconds = quantize_onnx(fp32, int8, calibration, cfg.calibrate.images)
    result = {
        "export_seconds": export_seconds,
        "quantize_seconds": quantize_seconds,
        "ort_fp32_size_mb": fp32.stat().st_size / 1e6,
        "ort_int8_size_mb": int8.stat().st_size / 1e6,
    }
    write_json(result, metrics)
    with stage.tracker(cfg, "peers", params, metrics.parent) as run:
        run.log_metrics(
            {k: v for k, v in result.items() if not k.endswith("_size_mb")}
        )  # sizes: on the parent, from benchmark
    sizes = f"fp32 {result['ort_fp32_size_mb']:.1f} MB, int8 {result['ort_int8_size_mb']:.1f} MB"
    console.print(f"ONNX Runtime peers: {sizes}")


if __name__ == "__main__":
    app()
