"""calibrate stage: post-training static quantization (observers, calibration images, int8),
with a per-module sensitivity report."""

import tempfile
from pathlib import Path

import typer

from qdet.config import config_to_dict
from qdet.core.checkpoint import save_checkpoint
from qdet.core.console import console, exit_on_error
from qdet.core.files import write_json
from qdet.core.progress import progress_bar
from qdet.data.dataset import calibration_set, load_split
from qdet.measure.accuracy import map50_with_interval
from qdet.models.detector import load_trained
from qdet.pipeline import stage
from qdet.quant.calibrate import calibrate_ptq, calibration_summary
from qdet.quant.engines import float_dtype, get_engine
from qdet.quant.plan import make_plan, plan_dict
from qdet.quant.sensitivity import write_sensitivity
from qdet.report.plots import plot_sensitivity

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    processed: Path = typer.Argument(...),
    float_model: Path = typer.Argument(...),
    out: Path = typer.Option(..., help="observer state for convert"),
    metrics: Path = typer.Option(...),
    report: Path = typer.Option(...),
    sensitivity_csv: Path = typer.Option(...),
    sensitivity_png: Path = typer.Option(...),
    calibration_folder: Path = typer.Option(..., help="the images calibrate.source: folder calibrates on"),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "calibrate")
    stage.set_threads(cfg.train.threads)
    trained = load_trained(float_model, cfg.backbone, cfg.model)
    train = load_split(processed, "train")
    dataset = calibration_set(cfg.calibrate.source, calibration_folder, train)
    plan = make_plan(cfg.quant, cfg.calibrate, qat=False)
    float_dtype(cfg.quant.float_dtype, plan.engine)  # one the engine cannot do stops here, not in convert
    with stage.tracker(cfg, "calibrate", params, metrics.parent) as run:
        with progress_bar() as progress, tempfile.TemporaryDirectory() as scratch:
            ptq = calibrate_ptq(trained.model, plan, dataset, cfg.calibrate.images, progress, train)
            valid = map50_with_interval(
                ptq.int8, load_split(processed, "valid"), Path(scratch), "ptq", progress
            )
        state = {
            "observed": ptq.prepared.state_dict(),
            "plan": plan_dict(plan),
            "config": config_to_dict(cfg),
        }
        save_checkpoint({**state, "classes": trained.classes}, out)
        described = get_engine(plan.engine).describe(ptq.int8, plan)
        write_json(described, report)
        write_sensitivity(ptq.sqnr, sensitivity_csv)
        plot_sensitivity(ptq.sqnr, sensitivity_png)
        result = calibration_summary(ptq, described, valid)
        write_json(result, metrics)
        run.log_metrics(result)
        for path in (metrics, report, sensitivity_csv, sensitivity_png):
            run.log_artifact(path)
    worst = ", ".join(f"{k} {v:.1f} dB" for k, v in list(ptq.sqnr.items())[:3])
    console.print(
        f"calibrated on {result['images']} {cfg.calibrate.source} images in {ptq.seconds:.1f}s; "
        f"{result['int8_modules']} int8 modules; worst SQNR {worst}; valid mAP@.5 {valid[0]:.3f}"
    )


if __name__ == "__main__":
    app()
