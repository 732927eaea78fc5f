"""control stage (``qat.control: true``): the float model fine-tuned with QAT's schedule and
images but no fake quantization, evaluated as ``float_ft``: how much of QAT's gain is training."""

from pathlib import Path

import typer

from qdet.config import config_to_dict
from qdet.core.checkpoint import fingerprint, load_checkpoint, save_checkpoint
from qdet.core.console import console, exit_on_error
from qdet.core.files import write_json
from qdet.models.detector import load_trained
from qdet.pipeline import stage
from qdet.pipeline.session import training_session
from qdet.quant.qat import freeze_layers
from qdet.training.control import OFF_NOTE, bn_freezing
from qdet.training.loop import FitHooks, epoch_logger, fit
from qdet.variants.table import CONTROL_FILE

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    processed: Path = typer.Argument(...),
    float_model: Path = typer.Argument(...),
    out_dir: Path = typer.Option(..., help=f"holds {CONTROL_FILE} when qat.control is on, else nothing"),
    checkpoint: Path = typer.Option(..., help="resume checkpoint"),
    metrics: Path = typer.Option(...),
    report_dir: Path = typer.Option(..., help="history CSV and curves when qat.control is on, else nothing"),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "control")
    history_csv, plot = report_dir / "control_history.csv", report_dir / "control_curves.png"
    folders = (out_dir, report_dir, checkpoint.parent)
    for folder in folders:
        folder.mkdir(parents=True, exist_ok=True)
        (folder / OFF_NOTE).unlink(missing_ok=True)
    if not cfg.qat.control:
        for path in (out_dir / CONTROL_FILE, history_csv, plot, checkpoint):
            path.unlink(missing_ok=True)
        for folder in folders:  # DVC outputs: a folder with a note rather than an empty one
            (folder / OFF_NOTE).write_text("qat.control is off: no float fine-tuning control here\n")
        write_json({"control": 0}, metrics)
        console.print("qat.control is off: no float fine-tuning control (set it to true to add float_ft)")
        return
    trained = load_trained(float_model, cfg.backbone, cfg.model)
    sections = ("seed", "dataset", "data", "train", "qat")
    identity = fingerprint(
        config_to_dict(cfg), *sections, inputs=(processed, float_model), stage=Path(__file__)
    )
    q, model = cfg.qat, trained.model.train()
    freeze_layers(model, q.frozen_layers)  # as QAT does
    with training_session(cfg, "control", params, metrics, processed) as session:
        history = fit(
            model=model,
            train_set=session.train_set,
            valid_set=session.valid_set,
            schedule=q,
            checkpoint=checkpoint,
            identity=identity,
            hooks=FitHooks(
                on_epoch=epoch_logger(session.run), before_epoch=bn_freezing(model, q.freeze_bn_after)
            ),
            workers=cfg.train.workers,
            max_images=q.max_images,
            ranks=session.ranks,
        )
        if session.ranks.writer:
            stored = load_checkpoint(float_model)  # same backbone and model config as the float model
            state = {"model": model.state_dict(), "config": stored["config"], "classes": trained.classes}
            save_checkpoint(state, out_dir / CONTROL_FILE)
            title = f"float fine-tuned like QAT (control) {trained.backbone} on {cfg.dataset}"
            session.finish(history, {"control": 1}, (metrics, history_csv, plot), title, plot_on_parent=False)


if __name__ == "__main__":
    app()
