"""benchmark stage: latency p50/p90, images/s, size, peak RSS and the speedups (vs float eager, vs
the fastest non-int8 variant, vs the fastest int8 peer) of every variant and peer, timed in
steady state in one process (blocks of back-to-back calls, rotating order); a per-component
breakdown of float and int8; the int8 floor; throughput with every core busy."""

from pathlib import Path

import torch
import typer

from qdet.core.checkpoint import load_checkpoint
from qdet.core.console import console, exit_on_error
from qdet.core.files import read_json, write_json
from qdet.data.dataset import load_split
from qdet.measure import speed
from qdet.measure.breakdown import breakdowns
from qdet.measure.floor import floor_line, measure_floor
from qdet.measure.limits import backbone_vs_peak, limit_line
from qdet.measure.streams import throughput_lines, throughput_rows
from qdet.models.detector import load_trained
from qdet.peers import skipped
from qdet.pipeline import stage
from qdet.quant.engines import get_engine
from qdet.report.plots import map_vs_latency
from qdet.tracking import split_summary
from qdet.variants.artifacts import read_manifest
from qdet.variants.table import RECOMMENDED, REFERENCE, VARIANTS, int8_peers, non_int8

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    processed: Path = typer.Argument(...),
    float_model: Path = typer.Argument(...),
    qat_state: Path = typer.Argument(...),
    exported: Path = typer.Argument(...),
    peers: Path = typer.Argument(...),
    eval_metrics: Path = typer.Option(...),
    metrics: Path = typer.Option(...),
    breakdown_out: Path = typer.Option(...),
    plot: Path = typer.Option(...),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "benchmark")
    b = cfg.benchmark
    stage.set_threads(b.threads)
    torch.backends.quantized.engine = cfg.quant.backend
    dataset = load_split(processed, "test")
    images = [dataset[i][0] for i in range(min(b.images, len(dataset)))]
    eager = load_trained(float_model, cfg.backbone, cfg.model).model
    files = speed.variant_files(float_model, exported, peers)
    for name, why in skipped(peers).items():
        console.print(f"note: {name} not timed: {why}")
    variants = speed.load_variants(files, eager, b.threads)
    times = speed.time_with_progress(variants, images, b.warmup, b.rounds, b.block)
    result = speed.summarize(times, REFERENCE, non_int8(list(times)), int8_peers(list(times)), b.block)
    manifest = read_manifest(exported)
    speed.complete_rows(
        result, files, read_json(eval_metrics), dataset.records[0].source, b.threads, manifest["float"]
    )
    best = speed.best_rows(times)
    engine = get_engine(manifest["engine"])  # the engine that wrote the QAT artifact
    int8 = engine.timed_int8(eager, variants[RECOMMENDED], load_checkpoint(qat_state))
    parts = breakdowns(eager, variants, int8, images, b.rounds * b.block)
    environment = speed.environment(b.threads)
    limit = backbone_vs_peak(eager, images[0], parts["int8"], b.threads)
    floor = measure_floor(eager, images, parts["int8"], result)
    paths = [r.source for r in dataset.records[: len(images)]]
    rates = throughput_rows(files, best, paths, b.threads, b.throughput_seconds)
    regime = speed.regime(b.threads, b.warmup, b.rounds, b.block)
    write_json({**best, "regime": regime, "floor": floor, "throughput": rates, "variants": result}, metrics)
    write_json({"environment": environment, "breakdown_ms": parts, "int8_backbone": limit}, breakdown_out)
    map_vs_latency({VARIANTS[name].label: row for name, row in result.items()}, plot)
    with stage.tracker(cfg, "benchmark", params, metrics.parent) as run:
        summary, detail = split_summary(result)
        run.log_metrics(summary, on_parent=True)
        run.log_metrics(detail)
        run.set_tags({f"env.{k}": str(v) for k, v in environment.items()})
        run.set_tags({k: str(v) for k, v in best.items()})
        run.log_artifact(plot, on_parent=True)
        for path in (metrics, breakdown_out):
            run.log_artifact(path)
    console.print(speed.table(result, best), highlight=False)
    for name, row in parts.items():
        console.print(f"{name} breakdown (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()))
    for line in (
        limit_line(limit),
        floor_line(floor, RECOMMENDED, result[RECOMMENDED]),
        *throughput_lines(rates),
    ):
        console.print(line, highlight=False)


if __name__ == "__main__":
    app()
