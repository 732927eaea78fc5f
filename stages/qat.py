"""qat stage: quantization-aware fine-tuning of the float model with fake-quant (FX or PT2E)."""

import copy
import sys
from pathlib import Path

import typer

from qdet import stage
from qdet.checkpoint import fingerprint, save_checkpoint
from qdet.config import config_to_dict
from qdet.console import exit_on_error
from qdet.data.dataset import DetectionDataset, training_datasets
from qdet.distributed import distributed, finish_distributed
from qdet.models.detector import load_trained
from qdet.quant.engines import get_engine
from qdet.quant.plan import make_plan, plan_dict
from qdet.quant.qat import calibrate_ranges, epoch_controls, freeze_layers, observers_frozen_while
from qdet.tracking import NoRun
from qdet.training.loop import FitHooks, epoch_logger, fit, validation_map, write_history

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    processed: Path = typer.Argument(...),
    float_model: Path = typer.Argument(...),
    out: Path = typer.Option(..., help="fake-quant state for convert"),
    checkpoint: Path = typer.Option(..., help="resume checkpoint"),
    metrics: Path = typer.Option(...),
    history_csv: Path = typer.Option(...),
    plot: Path = typer.Option(...),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "qat")
    ranks = distributed(cfg.train, sys.argv)  # nproc or nnodes > 1: under torchrun
    trained = load_trained(float_model, cfg.backbone, cfg.model)
    train_set, valid_set = training_datasets(
        processed, cfg.dataset, cfg.data.classes, cfg.train.hflip, cfg.train.color_jitter
    )
    plain_train = DetectionDataset(train_set.records, trained.classes)
    plan = make_plan(cfg.quant, cfg.calibrate, qat=True)
    resolved = config_to_dict(cfg)
    sections = ("seed", "dataset", "data", "train", "quant", "qat", "calibrate")
    identity = fingerprint(resolved, *sections, inputs=(processed, float_model), stage=Path(__file__))
    q = cfg.qat
    with stage.tracker(cfg, "qat", params, metrics.parent) if ranks.main else NoRun() as run:
        engine = get_engine(plan.engine)
        prepared = engine.prepare(copy.deepcopy(trained.model).train(), plan, qat=True)
        freeze_layers(prepared, q.frozen_layers)
        calibrate = lambda: calibrate_ranges(prepared, engine, plain_train, cfg.calibrate.images)  # noqa: E731
        hooks = FitHooks(
            on_epoch=epoch_logger(run),
            before_epoch=epoch_controls(prepared, engine, q.freeze_bn_after, q.freeze_observer_after),
            validate=observers_frozen_while(engine, lambda m: validation_map(m, valid_set)),
            on_fresh_start=calibrate if q.calibrate_first else None,
        )
        history = fit(
            prepared,
            train_set,
            valid_set,
            q,
            checkpoint,
            identity,
            hooks,
            cfg.train.workers,
            q.max_images,
            ranks,
        )
        if ranks.writer:
            state = {"qat": prepared.state_dict(), "plan": plan_dict(plan), "config": resolved}
            save_checkpoint({**state, "classes": trained.classes}, out)
            title = f"QAT {trained.backbone} on {cfg.dataset}"
            for path in write_history(history, {"processes": ranks.world}, metrics, history_csv, plot, title):
                run.log_artifact(path, on_parent=path == plot)  # the curves: a key plot
    finish_distributed(ranks)


if __name__ == "__main__":
    app()
