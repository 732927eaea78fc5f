"""convert stage: PTQ and QAT models -> int8 artifacts that load without qdet: TorchScript for
the FX engine, AOTInductor folders for PT2E; plus the float model compiled by Inductor (a peer),
and each int8 model as ONNX QDQ and OpenVINO IR with a torch-free loader (``deploy/<variant>``)."""

from pathlib import Path

import typer
from torch import nn

from qdet.core.aside import Aside
from qdet.core.checkpoint import load_checkpoint
from qdet.core.console import console, exit_on_error
from qdet.core.cpu import bf16_support
from qdet.core.files import compile_room, require_free_space, write_json
from qdet.models.detector import load_trained
from qdet.peers.deploy import write_deploys
from qdet.peers.openvino import default_precision
from qdet.pipeline import stage
from qdet.quant.aot import save_compiled
from qdet.quant.engines import float_dtype, get_engine, int8_from_state
from qdet.quant.plan import same_engine, stored_plan
from qdet.variants.artifacts import artifact_size, graph_signature, size_summary, write_manifest
from qdet.variants.table import FLOAT_COMPILED, FP32_TWIN, RECOMMENDED, deployed

app = typer.Typer(add_completion=False)
KEYS = {"qat": "qat", "ptq": "observed"}  # variant -> its state in the checkpoint


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
    paths = {"ptq": ptq_state, "qat": qat_state}
    states = {variant: load_checkpoint(path) for variant, path in paths.items()}
    plan = same_engine({str(paths[v]): stored_plan(state, str(paths[v])) for v, state in states.items()})
    engine = get_engine(plan.engine)
    dtype, why = float_dtype(cfg.quant.float_dtype, plan.engine)
    rest = default_precision(bf16_support())  # float ops of the deploy rows, as OpenVINO's int8 peer

    def write_int8(variant: str, int8: nn.Module) -> dict[str, tuple[Path, int, str, dict]]:
        """One int8 variant, and with bf16 the recommended one's fp32 twin (what bf16 costs,
        measured): name -> (artifact, bytes, graph signature, compile seconds per part)."""
        graph, written = graph_signature(int8), {}
        twin = [(FP32_TWIN, "fp32")] if dtype != "fp32" and variant == RECOMMENDED else []
        for name, computes_in in [(variant, dtype), *twin]:
            artifact_meta = {**meta, "variant": name, "plan": states[variant]["plan"]}
            saved = engine.save_int8(int8, trained.config, artifact_meta, out_dir, name, computes_in)
            written[name] = (saved.path, saved.size, graph, saved.compile_seconds or {})
        return written

    # a compile runs on one core: the float model compiles in a forked child while int8 is built here
    float_meta = {**meta, "variant": FLOAT_COMPILED}
    beside = Aside(
        lambda: save_compiled(trained.model, trained.config, float_meta, out_dir / FLOAT_COMPILED),
        "compiling the float model",
    )
    with console.status("rebuilding the QAT and PTQ models; the float model compiles beside"):
        int8 = {v: int8_from_state(trained.model, states[v], k, v == "qat") for v, k in KEYS.items()}
    with console.status(f"writing qat, then ptq, as a {engine.ARTIFACT}, float ops in {dtype}"):
        written = write_int8("qat", int8["qat"]) | write_int8("ptq", int8["ptq"])
    with console.status("writing qat, then ptq, as ONNX QDQ and OpenVINO IR (deploy/)"):
        metas = {v: {**meta, "variant": v, "plan": states[v]["plan"]} for v in int8}
        deploy = write_deploys(engine, int8, out_dir / "deploy", metas, cfg.train.threads, rest)
    with console.status("compiling the float model"):
        float_size, float_seconds = beside.result()
    files, sizes, graphs = {FLOAT_COMPILED: out_dir / FLOAT_COMPILED}, {FLOAT_COMPILED: float_size}, {}
    seconds = {FLOAT_COMPILED: float_seconds}
    for name, path in ((deployed(v)[kind], p) for v, kinds in deploy.items() for kind, p in kinds.items()):
        files[name], sizes[name] = path, artifact_size(path)
    for name, (path, size, graph, compile_seconds) in sorted(written.items()):
        files[name], sizes[name], graphs[name] = path, size, graph
        if compile_seconds:
            seconds[name] = compile_seconds
    console.print(f"int8 artifacts: float ops in {dtype} ({why})")
    same_format = engine.save_float(trained.model, trained.config, meta, out_dir)
    for name, saved in same_format.items():
        files[name], sizes[name] = saved.path, saved.size
    float_name = next(iter(same_format), FLOAT_COMPILED)  # the float model in the int8 artifacts' format
    write_manifest(out_dir, files, plan.engine, float_name, graphs, dtype)
    compiles = {f"{k}_compile_seconds": sum(v.values()) for k, v in seconds.items()}
    result = size_summary(sizes, float_name) | compiles
    write_json({**result, "engine": plan.engine, "float_dtype": dtype, "float_dtype_why": why}, metrics)
    with stage.tracker(cfg, "convert", params, metrics.parent) as run:
        run.set_tags({"float_dtype": dtype, "float_dtype_why": why})
        run.log_metrics({k: v for k, v in result.items() if not k.endswith("_size_mb")})  # sizes: benchmark
    console.print("artifact sizes: " + ", ".join(f"{k} {v / 1e6:.1f} MB" for k, v in sizes.items()))


if __name__ == "__main__":
    app()
