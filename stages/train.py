"""train stage: float Faster R-CNN with the chosen backbone; checkpoint every epoch, resumable."""

import time
from pathlib import Path

import typer

from qdet import cli
from qdet.checkpoint import save_checkpoint
from qdet.config import config_to_dict
from qdet.data.dataset import training_datasets
from qdet.metrics import write_json
from qdet.models.detector import build_detector
from qdet.plots import training_curves, write_history_csv
from qdet.tracking import NoRun
from qdet.training import fit

app = typer.Typer(add_completion=False)


@app.command()
@cli.stage_main
def main(
    processed: Path = typer.Argument(Path("data/processed")),
    model_out: Path = typer.Option(Path("models/float.pt"), help="final float weights + config"),
    checkpoint: Path = typer.Option(Path("checkpoints/train.pt"), help="resume checkpoint"),
    metrics: Path = typer.Option(Path("metrics/train.json")),
    history_csv: Path = typer.Option(Path("metrics/train_history.csv")),
    plot: Path = typer.Option(Path("plots/train_curves.png")),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = cli.load(params)
    ranks = cli.distributed(cfg.train.nproc, cfg.train.threads)  # nproc > 1: runs under torchrun
    train_set, valid_set = training_datasets(
        processed, cfg.dataset, cfg.data.classes, cfg.train.hflip, cfg.train.color_jitter
    )
    classes = train_set.classes
    model = build_detector(cfg.backbone, cfg.model, len(classes))
    resolved = config_to_dict(cfg)
    fingerprint = cli.fingerprint(
        resolved, "seed", "dataset", "backbone", "data", "model", "train", inputs=(processed,)
    )
    with cli.tracker(cfg, "train", params, metrics.parent) if ranks.main else NoRun() as run:
        start = time.perf_counter()
        history = fit(
            model,
            train_set,
            valid_set,
            cfg.train,
            cfg.train.epochs,
            cfg.train.lr,
            cfg.train.batch_size,
            checkpoint,
            fingerprint,
            on_epoch=lambda epoch, row: run.log_metrics(row, step=epoch),
            console=cli.console,
            ranks=ranks,
        )
        if ranks.main:
            save_checkpoint({"model": model.state_dict(), "config": resolved, "classes": classes}, model_out)
            final = {k: v for k, v in history[-1].items() if k != "epoch"}
            write_json(
                {
                    "epochs": len(history),
                    "processes": ranks.world,
                    "train_seconds_this_run": time.perf_counter() - start,
                    **final,
                },
                metrics,
            )
            write_history_csv(history, history_csv)
            plot.parent.mkdir(parents=True, exist_ok=True)
            training_curves(history, plot, f"float {cfg.backbone} on {cfg.dataset}")
            for path in (metrics, history_csv, plot, params):
                run.log_artifact(path)
    cli.finish_distributed(ranks)


if __name__ == "__main__":
    app()
