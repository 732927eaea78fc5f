"""evaluate stage: COCO metrics for float, PTQ and QAT on the same valid images, same code."""

from pathlib import Path

import typer

from qdet import cli
from qdet.data.common import read_classes, read_split
from qdet.data.dataset import DetectionDataset
from qdet.engine import predict_dataset, progress_bar
from qdet.export import load_artifact
from qdet.metrics import per_class_ap, pr_curve, score, write_json
from qdet.plots import detection_grid, pr_curves

app = typer.Typer(add_completion=False)
VARIANTS = ("float", "ptq", "qat")


@app.command()
@cli.stage_main
def main(
    processed: Path = typer.Argument(Path("data/processed")),
    models: Path = typer.Argument(Path("models/export"), help="folder with float/ptq/qat .ts"),
    out_dir: Path = typer.Option(Path("eval"), help="COCO JSON files and per-class AP"),
    metrics: Path = typer.Option(Path("metrics/eval.json")),
    plots: Path = typer.Option(Path("plots"), help="PR curves and detection grids"),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = cli.load(params)
    cli.set_threads(cfg.train.threads)
    classes = read_classes(processed)
    dataset = DetectionDataset(read_split(processed, "valid"), classes)
    results, curves, rows = {}, {}, ["variant,class,ap,ap50"]
    plots.mkdir(parents=True, exist_ok=True)
    with progress_bar() as progress:
        for variant in VARIANTS:
            detector, _ = load_artifact(models / f"{variant}.ts")
            predictions = predict_dataset(detector, dataset, progress, f"evaluate {variant}")
            stats, ev = score(
                dataset.records,
                classes,
                predictions,
                out_dir / "coco_gt.json",
                out_dir / f"detections_{variant}.json",
            )
            results[variant] = stats
            curves[variant] = pr_curve(ev)
            rows += [
                f"{variant},{c},{v['ap']:.4f},{v['ap50']:.4f}" for c, v in per_class_ap(ev, classes).items()
            ]
            detection_grid(
                dataset,
                predictions,
                classes,
                cfg.evaluate.grid_images,
                cfg.evaluate.draw_threshold,
                plots / f"detections_{variant}.png",
            )
    for variant in ("ptq", "qat"):
        for key in ("map", "map50"):
            results[variant][f"{key}_drop"] = results["float"][key] - results[variant][key]
    write_json(results, metrics)
    (out_dir / "per_class_ap.csv").write_text("\n".join(rows) + "\n")
    pr_curves(curves, plots / "pr_curves.png")
    with cli.tracker(cfg, "evaluate", params, metrics.parent) as run:
        for variant, stats in results.items():
            run.log_metrics({f"{variant}_{k}": v for k, v in stats.items()}, on_parent=True)
        for path in (
            metrics,
            out_dir / "per_class_ap.csv",
            plots / "pr_curves.png",
            *(plots / f"detections_{v}.png" for v in VARIANTS),
        ):
            run.log_artifact(path)
    for variant, stats in results.items():
        cli.console.print(
            f"{variant:6s} mAP@.5 {stats['map50']:.3f}  mAP {stats['map']:.3f}"
            + (f"  drop@.5 {stats['map50_drop']:+.3f}" if variant != "float" else "")
        )


if __name__ == "__main__":
    app()
