"""convert stage: PTQ and QAT models -> int8; all variants -> self-contained TorchScript files."""

from pathlib import Path

import typer

from qdet import cli
from qdet.checkpoint import load_checkpoint
from qdet.config import config_to_dict
from qdet.export import save_artifact, script_detector
from qdet.metrics import write_json
from qdet.models.detector import load_float_detector
from qdet.quant.fx import int8_from_state

app = typer.Typer(add_completion=False)


@app.command()
@cli.stage_main
def main(
    float_model: Path = typer.Argument(Path("models/float.pt")),
    ptq_state: Path = typer.Argument(Path("models/ptq_observed.pt")),
    qat_state: Path = typer.Argument(Path("models/qat.pt")),
    out_dir: Path = typer.Option(Path("models/export"), help="float.ts, ptq.ts, qat.ts"),
    metrics: Path = typer.Option(Path("metrics/convert.json")),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = cli.load(params)
    model, classes = load_float_detector(float_model, cfg.backbone, cfg.model)
    meta = {"classes": classes, "config": config_to_dict(cfg)}
    sizes = {
        "float": save_artifact(script_detector(model), out_dir / "float.ts", {**meta, "variant": "float"})
    }
    for variant, path, key, qat in (
        ("ptq", ptq_state, "observed", False),
        ("qat", qat_state, "qat", True),
    ):
        state = load_checkpoint(path)
        int8 = int8_from_state(model, state, key, qat)
        sizes[variant] = save_artifact(
            script_detector(int8),
            out_dir / f"{variant}.ts",
            {**meta, "variant": variant, "plan": state["plan"]},
        )
    result = {f"{k}_size_mb": v / 1e6 for k, v in sizes.items()}
    result |= {f"{k}_size_ratio": sizes["float"] / v for k, v in sizes.items() if k != "float"}
    write_json(result, metrics)
    with cli.tracker(cfg, "convert", params, metrics.parent) as run:
        run.log_metrics(result)
    cli.console.print("artifact sizes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))


if __name__ == "__main__":
    app()
