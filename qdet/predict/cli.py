"""``qdet-predict``: run an int8 or float detector on images, folders or videos."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
import typer

from qdet.core.console import console, exit_on_error, quiet_warnings, third_party_to_log
from qdet.core.errors import QdetError
from qdet.predict.predictor import Predictor, PredictReport, check_inputs

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
@exit_on_error
def main(
    model: str = typer.Argument(
        ...,
        help="artifact (a PT2E folder, models/export/qat.ts; with --runtime onnxruntime or openvino "
        "models/export/deploy/qat) or models:/<name>@<alias>",
    ),
    sources: list[Path] = typer.Argument(..., help="images, folders of images (recursive), or video files"),
    out: Path = typer.Option(
        Path("predictions"), help="annotated copies, detections.csv, latency.csv, predict.log"
    ),
    threshold: float = typer.Option(0.5, min=0.0, max=1.0, help="score threshold for kept detections"),
    threads: int = typer.Option(2, min=1, help="threads of the runtime"),
    runtime: str = typer.Option(
        "torch", help="torch (the artifact) | onnxruntime | openvino (the deploy folder: ONNX, OpenVINO IR)"
    ),
    max_pixels: int = typer.Option(40_000_000, min=1, help="larger images are refused (memory)"),
    tracking_uri: str = typer.Option(
        None, help="MLflow store for models:/ (default: MLFLOW_TRACKING_URI, else this repository's)"
    ),
) -> None:
    quiet_warnings()
    paths = check_inputs(sources)  # before anything is loaded or written
    third_party_to_log(out / "predict.log")  # torch's C++ warnings, MLflow's INFO lines
    torch.set_num_threads(threads)
    try:
        predictor = Predictor(model, threshold, max_pixels, tracking_uri, runtime, threads)
    except QdetError:
        _remove_if_empty(out / "predict.log", out)  # a model that does not load leaves no output folder
        raise
    report = predictor.run(paths, out)
    for line in report.failed:
        console.print(f"[yellow]failed[/yellow] {line}", highlight=False)
    console.print(summary(report, threshold, predictor.warmup_calls, out), highlight=False)
    if report.failed or report.images + report.frames == 0:
        raise typer.Exit(1)


def summary(report: PredictReport, threshold: float, warmup_calls: int, out: Path) -> str:
    """One line: what ran, what was found, how fast once steady, what failed, where it went."""
    if report.latencies_ms:
        p50, p90 = np.percentile(report.latencies_ms, [50, 90])
        latency = (
            f"latency per image p50 {p50:.1f} ms, p90 {p90:.1f} ms ({report.images_per_s:.2f} images/s) "
            f"after {warmup_calls} warm-up calls"
        )
    else:
        latency = "no latency (nothing ran)"
    return (
        f"{report.images} images, {report.frames} video frames, {report.detections} detections "
        f">= {threshold}; {latency}; {len(report.failed)} failed; outputs in {out}"
    )


def _remove_if_empty(log: Path, out: Path) -> None:
    if log.exists() and log.stat().st_size == 0:
        log.unlink()
    if out.is_dir() and not any(out.iterdir()):
        out.rmdir()


if __name__ == "__main__":
    app()
