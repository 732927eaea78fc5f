"""convert stage: PTQ and QAT models -> int8; all variants -> self-contained TorchScript files."""

import dataclasses
from pathlib import Path

import typer

from qdet import stage
from qdet.checkpoint import load_checkpoint
from qdet.console import console, exit_on_error
from qdet.export import save_artifact, script_detector, size_summary
from qdet.files import write_json
from qdet.models.detector import load_trained
from qdet.quant.fx import int8_from_state

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    float_model: Path = typer.Argument(...),
    ptq_state: Path = typer.Argument(...),
    qat_state: Path = typer.Argument(...),
    out_dir: Path = typer.Option(..., help="float.ts, ptq.ts, qat.ts"),
    metrics: Path = typer.Option(...),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params)
    trained = load_trained(float_model, cfg.backbone, cfg.model)
    model_config = {"backbone": trained.backbone, "model": dataclasses.asdict(trained.config)}
    meta = {"classes": trained.classes, "config": model_config}  # what the weights were trained with
    float_meta = {**meta, "variant": "float"}
    sizes = {"float": save_artifact(script_detector(trained.model), out_dir / "float.ts", float_meta)}
    for variant, path, key, qat in (("ptq", ptq_state, "observed", False), ("qat", qat_state, "qat", True)):
        state = load_checkpoint(path)
        int8 = int8_from_state(trained.model, state, key, qat)
        artifact_meta = {**meta, "variant": variant, "plan": state["plan"]}
        sizes[variant] = save_artifact(script_detector(int8), out_dir / f"{variant}.ts", artifact_meta)
    result = size_summary(sizes)
    write_json(result, metrics)
    with stage.tracker(cfg, "convert", params, metrics.parent) as run:
        run.log_metrics(result)
    console.print("artifact sizes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))


if __name__ == "__main__":
    app()
