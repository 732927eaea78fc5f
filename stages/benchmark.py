"""benchmark stage: latency p50/p90, images/s, size, peak RSS and speedup of every variant,
timed interleaved in one process; plus a per-component breakdown for float and int8."""

import json
from pathlib import Path

import torch
import typer

from qdet import bench, cli
from qdet.checkpoint import load_checkpoint
from qdet.data.common import read_classes, read_split
from qdet.data.dataset import DetectionDataset
from qdet.engine import progress_bar
from qdet.export import load_artifact
from qdet.metrics import write_json
from qdet.models.detector import load_float_detector
from qdet.plots import map_vs_latency
from qdet.quant.fx import int8_from_state

app = typer.Typer(add_completion=False)


@app.command()
@cli.stage_main
def main(
    processed: Path = typer.Argument(Path("data/processed")),
    float_model: Path = typer.Argument(Path("models/float.pt")),
    qat_state: Path = typer.Argument(Path("models/qat.pt")),
    exported: Path = typer.Argument(Path("models/export")),
    eval_metrics: Path = typer.Option(Path("metrics/eval.json")),
    metrics: Path = typer.Option(Path("metrics/benchmark.json")),
    breakdown_out: Path = typer.Option(Path("reports/breakdown.json")),
    plot: Path = typer.Option(Path("plots/map_vs_latency.png")),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = cli.load(params)
    b = cfg.benchmark
    cli.set_threads(b.threads)
    torch.backends.quantized.engine = cfg.quant.backend
    dataset = DetectionDataset(read_split(processed, "valid"), read_classes(processed))
    count = min(b.images, len(dataset))
    images = [dataset[i][0] for i in range(count)]
    eager, _ = load_float_detector(float_model, cfg.backbone, cfg.model)
    files = {
        "float_eager": float_model,
        "float_ts": exported / "float.ts",
        "ptq": exported / "ptq.ts",
        "qat": exported / "qat.ts",
    }
    variants = {
        "float_eager": eager,
        **{k: load_artifact(v)[0] for k, v in files.items() if k != "float_eager"},
    }
    with progress_bar() as progress:
        task = progress.add_task("benchmark rounds", total=b.rounds, info="interleaved")
        times = bench.time_interleaved(
            variants, images, b.warmup, b.rounds, lambda: progress.update(task, advance=1)
        )
    result = bench.summarize(times, "float_eager")
    maps = json.loads(eval_metrics.read_text())
    for name, row in result.items():
        row["size_mb"] = files[name].stat().st_size / 1e6
        peak, baseline = bench.peak_rss_mb(files[name], dataset.records[0].source, 3, b.threads)
        row["peak_rss_mb"], row["model_rss_mb"] = peak, peak - baseline
        row["map50"] = maps["float" if name.startswith("float") else name]["map50"]
    for name in ("ptq", "qat"):
        result[name]["size_ratio"] = result["float_ts"]["size_mb"] / result[name]["size_mb"]
    int8 = int8_from_state(eager, load_checkpoint(qat_state), "qat", qat=True)
    parts = {
        "float": bench.breakdown(eager, images, b.rounds),
        "int8": bench.breakdown(int8, images, b.rounds),
    }
    write_json(result, metrics)
    write_json({"environment": bench.environment(b.threads), "breakdown_ms": parts}, breakdown_out)
    map_vs_latency({k: (v["latency_ms_p50"], v["map50"]) for k, v in result.items()}, plot)
    with cli.tracker(cfg, "benchmark", params, metrics.parent) as run:
        for name, row in result.items():
            run.log_metrics({f"{name}_{k}": v for k, v in row.items()}, on_parent=True)
        run.set_tags({f"env.{k}": str(v) for k, v in bench.environment(b.threads).items()})
        for path in (metrics, breakdown_out, plot):
            run.log_artifact(path)
    for name, row in result.items():
        cli.console.print(
            f"{name:12s} p50 {row['latency_ms_p50']:7.1f} ms  p90 {row['latency_ms_p90']:7.1f} ms"
            f"  {row['fps']:5.2f} img/s  {row['size_mb']:6.1f} MB  +{row['model_rss_mb']:.0f} MB RSS"
            f"  x{row['speedup']:.2f}"
        )
    for name, row in parts.items():
        cli.console.print(f"{name} breakdown (ms): " + ", ".join(f"{k} {v:.1f}" for k, v in row.items()))


if __name__ == "__main__":
    app()
