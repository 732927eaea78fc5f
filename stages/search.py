"""search stage: accuracy to a budget. PTQ's valid mAP@.5 (scored by calibrate, which holds the
int8 model) is set against float's (train's last validation of float.pt); over
``quant.max_drop``, modules are kept float (worst SQNR first, confirmed by valid mAP, cheapest
per point first) until the drop fits. The chosen plan's observers go to convert, the modules it
keeps float to QAT (a small file, so a budget that keeps the plan reruns no QAT)."""

import tempfile
from pathlib import Path

import typer

from qdet.core.checkpoint import load_checkpoint, save_checkpoint
from qdet.core.console import console, exit_on_error
from qdet.core.files import stage_output, write_json
from qdet.data.dataset import calibration_set, load_split
from qdet.measure.budget import PlanScorer
from qdet.measure.floor import module_gmacs
from qdet.measure.plan_price import KernelPrice
from qdet.models.detector import load_trained
from qdet.pipeline import stage
from qdet.quant.search import search
from qdet.quant.sensitivity import read_sensitivity
from qdet.report.plots import search_plot

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    processed: Path = typer.Argument(...),
    float_model: Path = typer.Argument(...),
    observed: Path = typer.Argument(..., help="the calibrate stage's observer state"),
    sensitivity_csv: Path = typer.Option(..., help="the calibrate stage's SQNR per module"),
    calibrate_metrics: Path = typer.Option(..., help="PTQ's valid mAP@.5, scored by calibrate"),
    train_metrics: Path = typer.Option(..., help="float's valid mAP@.5 (train's last validation)"),
    out: Path = typer.Option(..., help="the chosen plan's observer state, for convert"),
    plan_out: Path = typer.Option(..., help="the modules the chosen plan keeps float, for QAT"),
    metrics: Path = typer.Option(...),
    plot: Path = typer.Option(...),
    calibration_folder: Path = typer.Option(..., help="the images calibrate.source: folder calibrates on"),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "search")
    stage.set_threads(cfg.train.threads)
    state = load_checkpoint(observed, "rerun the calibrate stage: dvc repro calibrate")
    if cfg.quant.search == "off":
        save_checkpoint(state, out)
        write_json({"kept_float": []}, plan_out)
        write_json({"search": "off", "kept_float": []}, metrics)
        search_plot(None, plot)
        console.print("quant.search is off: PTQ goes to convert as calibrated")
        return
    trained = load_trained(float_model, cfg.backbone, cfg.model)
    valid = load_split(processed, "valid")
    modules = {name for name, _ in trained.model.named_modules()}
    # worst SQNR first; residual adds are not modules to keep
    ranked = [m for m in read_sensitivity(sensitivity_csv) if m in modules]
    reference = stage_output(train_metrics, "val_map50", "train")  # float.pt's last validation, fp32
    ptq = tuple(stage_output(calibrate_metrics, k, "calibrate") for k in ("valid_map50", "valid_map50_ci95"))
    with tempfile.TemporaryDirectory() as scratch:
        train = load_split(processed, "train")
        calibration = calibration_set(cfg.calibrate.source, calibration_folder, train)
        scorer = PlanScorer(
            trained.model, state, calibration, valid, cfg.calibrate.images, Path(scratch), ptq
        )
        with console.status("pricing the modules at this CPU's best-case kernel rates"):
            price = KernelPrice(module_gmacs(trained.model, [valid[i][0] for i in range(2)], ranked))
        with console.status("searching for the plan that fits quant.max_drop"):
            outcome = search(reference, cfg.quant.max_drop, ranked, scorer, price)
    chosen = outcome.steps[outcome.chosen]
    save_checkpoint(scorer.state_of(chosen.kept_float), out)
    write_json({"kept_float": chosen.kept_float}, plan_out)  # unchanged by a budget that keeps the plan
    record = {"search": "auto", **outcome.as_dict(), "rates": price.rates, "latency": "kernel ms, est."}
    write_json(record, metrics)
    search_plot(record, plot)
    with stage.tracker(cfg, "search", params, metrics.parent) as run:
        run.log_metrics(record)
        run.set_tags({"quant_search.kept_float": ",".join(chosen.kept_float) or "none"})
        run.log_artifact(plot)
    console.print(outcome.line())


if __name__ == "__main__":
    app()
