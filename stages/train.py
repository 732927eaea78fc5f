"""train stage: float Faster R-CNN with the chosen backbone; checkpoint every epoch, resumable."""

import sys
import time
from pathlib import Path

import typer

from qdet import stage
from qdet.checkpoint import fingerprint, save_checkpoint
from qdet.config import config_to_dict
from qdet.console import exit_on_error
from qdet.data.dataset import training_datasets
from qdet.distributed import distributed, finish_distributed
from qdet.models.detector import build_detector
from qdet.tracking import NoRun
from qdet.training.loop import FitHooks, epoch_logger, fit, write_history

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    processed: Path = typer.Argument(...),
    model_out: Path = typer.Option(..., help="final float weights + config"),
    checkpoint: Path = typer.Option(..., help="resume checkpoint"),
    metrics: Path = typer.Option(...),
    history_csv: Path = typer.Option(...),
    plot: Path = typer.Option(...),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "train")
    ranks = distributed(cfg.train, sys.argv)  # nproc or nnodes > 1: under torchrun
    train_set, valid_set = training_datasets(
        processed, cfg.dataset, cfg.data.classes, cfg.train.hflip, cfg.train.color_jitter
    )
    classes = train_set.classes
    model = build_detector(cfg.backbone, cfg.model, len(classes))
    resolved = config_to_dict(cfg)
    identity = fingerprint(
        resolved,
        "seed",
        "dataset",
        "backbone",
        "data",
        "model",
        "train",
        inputs=(processed,),
        stage=Path(__file__),
    )
    with stage.tracker(cfg, "train", params, metrics.parent) if ranks.main else NoRun() as run:
        start = time.perf_counter()
        hooks = FitHooks(on_epoch=epoch_logger(run))
        history = fit(
            model,
            train_set,
            valid_set,
            cfg.train,
            checkpoint,
            identity,
            hooks,
            cfg.train.workers,
            ranks=ranks,
        )
        if ranks.writer:
            save_checkpoint({"model": model.state_dict(), "config": resolved, "classes": classes}, model_out)
            summary = {"processes": ranks.world, "train_seconds_this_run": time.perf_counter() - start}
            title = f"float {cfg.backbone} on {cfg.dataset}"
            for path in (*write_history(history, summary, metrics, history_csv, plot, title), params):
                run.log_artifact(path, on_parent=path == plot)  # the curves: a key plot
    finish_distributed(ranks)


if __name__ == "__main__":
    app()
