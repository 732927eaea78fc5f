"""qat stage: quantization-aware fine-tuning of the float model with FX fake-quant."""

import copy
from pathlib import Path

import typer

from qdet import cli
from qdet.checkpoint import save_checkpoint
from qdet.config import config_to_dict
from qdet.data.dataset import DetectionDataset, training_datasets
from qdet.metrics import write_json
from qdet.models.detector import load_float_detector
from qdet.plots import training_curves, write_history_csv
from qdet.quant.fx import QuantPlan, plan_dict, prepare
from qdet.quant.qat import calibrate_ranges, epoch_controls, freeze_layers, observers_frozen_while
from qdet.tracking import NoRun
from qdet.training import fit, validation_map

app = typer.Typer(add_completion=False)


@app.command()
@cli.stage_main
def main(
    processed: Path = typer.Argument(Path("data/processed")),
    float_model: Path = typer.Argument(Path("models/float.pt")),
    out: Path = typer.Option(Path("models/qat.pt"), help="fake-quant state for convert"),
    checkpoint: Path = typer.Option(Path("checkpoints/qat.pt"), help="resume checkpoint"),
    metrics: Path = typer.Option(Path("metrics/qat.json")),
    history_csv: Path = typer.Option(Path("metrics/qat_history.csv")),
    plot: Path = typer.Option(Path("plots/qat_curves.png")),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = cli.load(params)
    ranks = cli.distributed(cfg.train.nproc, cfg.train.threads)  # nproc > 1: runs under torchrun
    model, classes = load_float_detector(float_model, cfg.backbone, cfg.model)
    train_set, valid_set = training_datasets(
        processed, cfg.dataset, cfg.data.classes, cfg.train.hflip, cfg.train.color_jitter
    )
    plain_train = DetectionDataset(train_set.records, classes)
    q = cfg.quant
    plan = QuantPlan(q.parts, q.backend, "moving_average", q.per_channel, q.reduce_range, q.skip)
    resolved = config_to_dict(cfg)
    fingerprint = cli.fingerprint(
        resolved,
        "seed",
        "dataset",
        "backbone",
        "data",
        "model",
        "train",
        "quant",
        "qat",
        "calibrate",
        inputs=(processed, float_model),
    )
    with cli.tracker(cfg, "qat", params, metrics.parent) if ranks.main else NoRun() as run:
        prepared = prepare(copy.deepcopy(model).train(), plan, qat=True)
        freeze_layers(prepared, cfg.qat.frozen_layers)
        history = fit(
            prepared,
            train_set,
            valid_set,
            cfg.train,
            cfg.qat.epochs,
            cfg.qat.lr,
            cfg.qat.batch_size,
            checkpoint,
            fingerprint,
            on_epoch=lambda epoch, row: run.log_metrics(row, step=epoch),
            before_epoch=epoch_controls(prepared, cfg.qat.freeze_bn_after, cfg.qat.freeze_observer_after),
            max_images=cfg.qat.max_images,
            validate=observers_frozen_while(lambda m: validation_map(m, valid_set)),
            on_fresh_start=(
                (lambda: calibrate_ranges(prepared, plain_train, cfg.calibrate.images))
                if cfg.qat.calibrate_first
                else None
            ),
            console=cli.console,
            ranks=ranks,
        )
        if not ranks.main:
            cli.finish_distributed(ranks)
            return
        save_checkpoint(
            {
                "qat": prepared.state_dict(),
                "plan": plan_dict(plan),
                "config": resolved,
                "classes": classes,
            },
            out,
        )
        final = {k: v for k, v in history[-1].items() if k != "epoch"}
        write_json({"epochs": len(history), "processes": ranks.world, **final}, metrics)
        write_history_csv(history, history_csv)
        plot.parent.mkdir(parents=True, exist_ok=True)
        training_curves(history, plot, f"QAT {cfg.backbone} on {cfg.dataset}")
        for path in (metrics, history_csv, plot):
            run.log_artifact(path)
    cli.finish_distributed(ranks)


if __name__ == "__main__":
    app()
