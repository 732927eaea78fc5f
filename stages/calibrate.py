"""calibrate stage: post-training static quantization (observers, calibration images, int8),
with a per-module sensitivity report."""

import copy
from pathlib import Path

import typer

from qdet import cli
from qdet.checkpoint import save_checkpoint
from qdet.config import config_to_dict
from qdet.data.common import read_classes, read_split
from qdet.data.dataset import DetectionDataset
from qdet.engine import progress_bar
from qdet.metrics import write_json
from qdet.models.detector import load_float_detector
from qdet.plots import bars
from qdet.quant.calibrate import run_calibration
from qdet.quant.fx import QuantPlan, convert, describe, plan_dict, prepare
from qdet.quant.sensitivity import InputRecorder, module_sqnr, write_sensitivity

app = typer.Typer(add_completion=False)


@app.command()
@cli.stage_main
def main(
    processed: Path = typer.Argument(Path("data/processed")),
    float_model: Path = typer.Argument(Path("models/float.pt")),
    out: Path = typer.Option(Path("models/ptq_observed.pt"), help="observer state for convert"),
    metrics: Path = typer.Option(Path("metrics/calibrate.json")),
    report: Path = typer.Option(Path("reports/quantized_modules.json")),
    sensitivity_csv: Path = typer.Option(Path("metrics/sensitivity.csv")),
    sensitivity_png: Path = typer.Option(Path("plots/sensitivity.png")),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = cli.load(params)
    cli.set_threads(cfg.train.threads)
    model, classes = load_float_detector(float_model, cfg.backbone, cfg.model)
    dataset = DetectionDataset(read_split(processed, "train"), read_classes(processed))
    q = cfg.quant
    plan = QuantPlan(q.parts, q.backend, cfg.calibrate.observer, q.per_channel, q.reduce_range, q.skip)
    with cli.tracker(cfg, "calibrate", params, metrics.parent) as run:
        prepared = prepare(copy.deepcopy(model), plan, qat=False)
        recorder = InputRecorder(model, plan.parts)
        with progress_bar() as progress:
            seconds = run_calibration(prepared, dataset, cfg.calibrate.images, progress)
            run_calibration(model, dataset, 4)  # float inputs of each part, for sensitivity
        recorder.remove()
        int8 = convert(prepared, plan)
        sqnr = module_sqnr(model, int8, recorder.inputs)
        save_checkpoint(
            {
                "observed": prepared.state_dict(),
                "plan": plan_dict(plan),
                "config": config_to_dict(cfg),
                "classes": classes,
            },
            out,
        )
        described = describe(int8, plan)
        write_json(described, report)
        write_sensitivity(sqnr, sensitivity_csv)
        sensitivity_png.parent.mkdir(parents=True, exist_ok=True)
        bars(
            dict(list(sqnr.items())[:40]),
            sensitivity_png,
            "SQNR (dB), higher is better",
            "int8 vs float per module (worst first)",
        )
        result = {
            "calibration_seconds": seconds,
            "images": min(cfg.calibrate.images, len(dataset)),
            "int8_modules": len(described["int8_modules"]),
            "float_modules": len(described["float_modules"]),
            "worst_sqnr_db": next(iter(sqnr.values()), float("nan")),
        }
        write_json(result, metrics)
        run.log_metrics(result)
        for path in (metrics, report, sensitivity_csv, sensitivity_png):
            run.log_artifact(path)
    cli.console.print(
        f"calibrated on {result['images']} images in {seconds:.1f}s; "
        f"{result['int8_modules']} int8 modules; worst SQNR "
        + ", ".join(f"{k} {v:.1f} dB" for k, v in list(sqnr.items())[:3])
    )


if __name__ == "__main__":
    app()
