"""convert stage: PTQ and QAT models -> int8 artifacts that load without qdet: TorchScript for
the FX engine, AOTInductor folders for PT2E; plus the float model compiled by Inductor (a peer)."""

from pathlib import Path

import typer

from qdet import stage
from qdet.checkpoint import load_checkpoint
from qdet.console import console, exit_on_error
from qdet.export import graph_signature, size_summary, write_manifest
from qdet.files import compile_room, require_free_space, write_json
from qdet.models.detector import load_trained
from qdet.quant.aot import save_compiled
from qdet.quant.engines import get_engine, int8_from_state
from qdet.quant.plan import QuantPlan

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    float_model: Path = typer.Argument(...),
    ptq_state: Path = typer.Argument(...),
    qat_state: Path = typer.Argument(...),
    out_dir: Path = typer.Option(..., help="one artifact per variant and variants.json"),
    metrics: Path = typer.Option(...),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "convert")
    require_free_space(*compile_room(out_dir, float_model), "convert")
    trained = load_trained(float_model, cfg.backbone, cfg.model)
    meta = {"classes": trained.classes, "backbone": trained.backbone}
    sizes, seconds, files, graphs = {}, {}, {}, {}
    with console.status("compiling the float model with AOTInductor"):
        files["float_inductor"] = out_dir / "float_inductor"
        sizes["float_inductor"], seconds["float_inductor"] = save_compiled(
            trained.model, trained.config, {**meta, "variant": "float_inductor"}, files["float_inductor"]
        )
    for variant, path, key, qat in (("ptq", ptq_state, "observed", False), ("qat", qat_state, "qat", True)):
        state = load_checkpoint(path)
        plan = QuantPlan(**state["plan"])
        engine = get_engine(plan.engine)
        int8 = int8_from_state(trained.model, state, key, qat)
        graphs[variant] = graph_signature(int8)
        artifact_meta = {**meta, "variant": variant, "plan": state["plan"]}
        with console.status(f"writing {variant} as a {engine.ARTIFACT}"):
            saved = engine.save_int8(int8, trained.config, artifact_meta, out_dir, variant)
        files[variant], sizes[variant] = saved.path, saved.size
        if saved.compile_seconds:
            seconds[variant] = saved.compile_seconds
    for name, saved in engine.save_float(trained.model, trained.config, meta, out_dir).items():
        files[name], sizes[name] = saved.path, saved.size
    write_manifest(out_dir, files, plan.engine, graphs)
    result = size_summary(sizes) | {f"{k}_compile_seconds": sum(v.values()) for k, v in seconds.items()}
    write_json(result, metrics)
    with stage.tracker(cfg, "convert", params, metrics.parent) as run:
        run.log_metrics(
            {k: v for k, v in result.items() if not k.endswith("_size_mb")}
        )  # sizes: on the parent, from benchmark
    console.print("artifact sizes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))


if __name__ == "__main__":
    app()
