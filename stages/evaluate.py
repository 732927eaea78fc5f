"""evaluate stage: COCO metrics for every variant on the same test images, scored by the same
code: float eager (the reference), the float artifacts, PTQ, QAT, the control and every peer."""

from collections.abc import Iterable
from pathlib import Path

import typer

from qdet.core.aside import in_two_processes
from qdet.core.console import console, exit_on_error
from qdet.core.files import write_json
from qdet.core.progress import progress_bar
from qdet.data.dataset import load_split
from qdet.measure.accuracy import (
    VariantScore,
    add_drops,
    add_intervals,
    evaluate_detector,
    map_summary,
    per_class_csv,
)
from qdet.peers import skipped
from qdet.pipeline import stage
from qdet.report.plots import detection_grid, pr_curves
from qdet.tracking import split_summary
from qdet.variants.artifacts import evaluated_variants, load_variant
from qdet.variants.table import REFERENCE

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    processed: Path = typer.Argument(...),
    models: Path = typer.Argument(..., help="convert's folder (variants.json)"),
    peers: Path = typer.Argument(..., help="peers' folder (peers.json)"),
    float_model: Path = typer.Option(..., help="the trained float checkpoint (float eager)"),
    control: Path = typer.Option(..., help="control stage's folder (float_ft.pt when qat.control is on)"),
    out_dir: Path = typer.Option(..., help="COCO JSON files and per-class AP"),
    metrics: Path = typer.Option(...),
    plots: Path = typer.Option(..., help="PR curves and detection grids"),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "evaluate")
    stage.set_threads(cfg.train.threads)
    dataset = load_split(processed, "test")
    variants = evaluated_variants(models, peers, float_model, control)
    for name, why in skipped(peers).items():
        console.print(f"note: {name} not evaluated: {why}")
    plots.mkdir(parents=True, exist_ok=True)
    e, half = cfg.evaluate, max(1, cfg.train.threads // 2)

    def scored(names: Iterable[str], here: bool) -> dict[str, VariantScore]:
        out = {}
        with progress_bar(disable=not here) as progress:
            for variant in names:
                detector = load_variant(variant, variants[variant], half)
                out[variant] = s = evaluate_detector(detector, dataset, out_dir, variant, progress)
                grid = plots / f"detections_{variant}.png"
                detection_grid(dataset, s.predictions, dataset.classes, e.grid_images, e.draw_threshold, grid)
        return out

    # Accuracy, not speed: two processes take the variants in turn; the benchmark times them all
    console.print(f"scoring {', '.join(variants)}, in two processes")
    scores = in_two_processes(scored, list(variants), cfg.train.threads)
    results = {variant: s.stats for variant, s in scores.items()}
    add_drops(results, REFERENCE)
    with console.status("bootstrap intervals over the test images"):
        add_intervals(results, scores, REFERENCE)
    write_json(results, metrics)
    per_class_csv(scores, out_dir / "per_class_ap.csv")
    pr_curves({variant: s.curve for variant, s in scores.items()}, plots / "pr_curves.png")
    with stage.tracker(cfg, "evaluate", params, metrics.parent) as run:
        summary, detail = split_summary(results)
        run.log_metrics(summary, on_parent=True)
        run.log_metrics(detail)
        run.log_artifact(plots / "pr_curves.png", on_parent=True)
        grids = [plots / f"detections_{v}.png" for v in variants]
        for path in (metrics, out_dir / "per_class_ap.csv", *grids):
            run.log_artifact(path)
    for variant, stats in results.items():
        console.print(f"{variant:14s} {map_summary(stats)}")


if __name__ == "__main__":
    app()
