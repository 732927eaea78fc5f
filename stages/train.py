"""train stage: float Faster R-CNN with the chosen backbone; checkpoint every epoch, resumable."""

import time
from pathlib import Path

import typer

from qdet.config import config_to_dict
from qdet.core.checkpoint import fingerprint, save_checkpoint
from qdet.core.console import console, exit_on_error
from qdet.core.device import training_precision
from qdet.models.detector import build_detector
from qdet.pipeline import stage
from qdet.pipeline.session import training_session
from qdet.training.loop import FitHooks, epoch_logger, fit

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
    resolved = config_to_dict(cfg)
    sections = ("seed", "dataset", "backbone", "data", "model", "train")
    identity = fingerprint(resolved, *sections, inputs=(processed,), stage=Path(__file__))
    with training_session(cfg, "train", params, metrics, processed) as session:
        precision, why = training_precision(cfg.train.precision, session.ranks.device)
        identity["precision"] = precision  # auto resolves per machine: never resume the other one's
        if session.ranks.main:
            console.print(f"float training in {precision} ({why})")
        classes = session.train_set.classes
        model = build_detector(cfg.backbone, cfg.model, len(classes))
        start = time.perf_counter()
        history = fit(
            model=model,
            train_set=session.train_set,
            valid_set=session.valid_set,
            schedule=cfg.train,
            checkpoint=checkpoint,
            identity=identity,
            hooks=FitHooks(on_epoch=epoch_logger(session.run)),
            workers=cfg.train.workers,
            ranks=session.ranks,
            precision=precision,
        )
        if session.ranks.writer:
            save_checkpoint({"model": model.state_dict(), "config": resolved, "classes": classes}, model_out)
            summary = {
                "processes": session.ranks.world,
                "train_seconds_this_run": time.perf_counter() - start,
                "precision": precision,
                "precision_why": why,
            }
            title = f"float {cfg.backbone} on {cfg.dataset}"
            session.finish(history, summary, (metrics, history_csv, plot), title)
            session.run.log_artifact(params)


if __name__ == "__main__":
    app()
