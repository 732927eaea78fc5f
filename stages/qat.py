"""qat stage: quantization-aware fine-tuning of the float model with fake-quant (FX or PT2E), on
the plan the accuracy search chose (``quant.skip`` and the modules it keeps float)."""

import copy
from pathlib import Path

import typer

from qdet.config import config_to_dict
from qdet.core.checkpoint import fingerprint, save_checkpoint
from qdet.core.console import exit_on_error
from qdet.data.dataset import DetectionDataset
from qdet.models.detector import load_trained
from qdet.pipeline import stage
from qdet.pipeline.session import training_session
from qdet.quant.engines import float_dtype, get_engine
from qdet.quant.plan import make_plan, plan_dict, searched_plan
from qdet.quant.qat import calibrate_ranges, epoch_controls, freeze_layers, observers_frozen_while
from qdet.training.loop import FitHooks, epoch_logger, fit, validation_map

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    processed: Path = typer.Argument(...),
    float_model: Path = typer.Argument(...),
    search_plan: Path = typer.Argument(..., help="the search stage's modules kept float"),
    out: Path = typer.Option(..., help="fake-quant state for convert"),
    checkpoint: Path = typer.Option(..., help="resume checkpoint"),
    metrics: Path = typer.Option(...),
    history_csv: Path = typer.Option(...),
    plot: Path = typer.Option(...),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "qat")
    trained = load_trained(float_model, cfg.backbone, cfg.model)
    plan = searched_plan(make_plan(cfg.quant, cfg.calibrate, qat=True), search_plan)
    float_dtype(cfg.quant.float_dtype, plan.engine)  # one the engine cannot do stops here, not in convert
    resolved = config_to_dict(cfg)
    sections = ("seed", "dataset", "data", "train", "quant", "qat", "calibrate")
    inputs = (processed, float_model, search_plan)
    identity = fingerprint(resolved, *sections, inputs=inputs, stage=Path(__file__))
    q = cfg.qat
    with training_session(cfg, "qat", params, metrics, processed) as session:
        plain_train = DetectionDataset(session.train_set.records, trained.classes)
        engine = get_engine(plan.engine)
        prepared = engine.prepare(copy.deepcopy(trained.model).train(), plan, qat=True)
        freeze_layers(prepared, q.frozen_layers, engine.module_name)
        calibrate = lambda: calibrate_ranges(prepared, engine, plain_train, cfg.calibrate.images)  # noqa: E731
        hooks = FitHooks(
            on_epoch=epoch_logger(session.run),
            before_epoch=epoch_controls(prepared, engine, q.freeze_bn_after, q.freeze_observer_after),
            validate=observers_frozen_while(engine, lambda m: validation_map(m, session.valid_set)),
            on_fresh_start=calibrate if q.calibrate_first else None,
        )
        history = fit(
            model=prepared,
            train_set=session.train_set,
            valid_set=session.valid_set,
            schedule=q,
            checkpoint=checkpoint,
            identity=identity,
            hooks=hooks,
            workers=cfg.train.workers,
            max_images=q.max_images,
            ranks=session.ranks,
        )
        if session.ranks.writer:
            state = {"qat": prepared.state_dict(), "plan": plan_dict(plan), "config": resolved}
            save_checkpoint({**state, "classes": trained.classes}, out)
            title = f"QAT {trained.backbone} on {cfg.dataset}"
            session.finish(history, {"processes": session.ranks.world}, (metrics, history_csv, plot), title)


if __name__ == "__main__":
    app()
