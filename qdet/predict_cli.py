"""``qdet-predict``: run an int8 or float detector on images, folders or videos."""

from __future__ import annotations

from pathlib import Path

import torch
import typer

from qdet.console import console, exit_on_error, quiet_warnings
from qdet.predict import Predictor

app = typer.Typer(add_completion=False, help=__doc__)


@app.command()
@exit_on_error
def main(
    model: str = typer.Argument(
        ..., help="TorchScript file (models/export/qat.ts) or models:/<name>@<alias>"
    ),
    sources: list[Path] = typer.Argument(..., help="images, folders of images, or video files"),
    out: Path = typer.Option(Path("predictions"), help="folder for annotated outputs"),
    threshold: float = typer.Option(0.5, help="score threshold for drawn detections"),
    threads: int = typer.Option(2, help="torch threads"),
) -> None:
    quiet_warnings()
    torch.set_num_threads(threads)
    report = Predictor(model, threshold).run(sources, out)
    for line in report.skipped:
        console.print(f"[yellow]skipped[/yellow] {line}", highlight=False)
    console.print(
        f"{report.images} images, {report.frames} video frames, {report.detections} detections "
        f"≥ {threshold}; {report.images_per_s:.2f} images/s (model time); "
        f"{len(report.skipped)} skipped; outputs in {out}"
    )
    if report.images + report.frames == 0:
        raise typer.Exit(1)


if __name__ == "__main__":
    app()
