"""register stage: float, PTQ and QAT as pyfunc models in the MLflow registry; the alias moves
to the fastest variant that passes the mAP-drop and speedup gate, or nowhere."""

import json
from pathlib import Path

import typer

from qdet import cli
from qdet.metrics import write_json
from qdet.serving.registry import Candidate, choose_champion, register_variant, set_alias
from qdet.tracking import store_lock

app = typer.Typer(add_completion=False)
BENCH_NAME = {"float": "float_ts", "ptq": "ptq", "qat": "qat"}


@app.command()
@cli.stage_main
def main(
    exported: Path = typer.Argument(Path("models/export")),
    eval_metrics: Path = typer.Option(Path("metrics/eval.json")),
    bench_metrics: Path = typer.Option(Path("metrics/benchmark.json")),
    out: Path = typer.Option(Path("metrics/register.json")),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = cli.load(params)
    if not cfg.tracking.enabled:
        raise ValueError("tracking.enabled: register needs MLflow; set it to true")
    r = cfg.register
    name = r.model_name if r.model_name != "auto" else f"qdet-{cfg.dataset}-{cfg.backbone}"
    maps, bench = json.loads(eval_metrics.read_text()), json.loads(bench_metrics.read_text())
    candidates = [
        Candidate(
            v,
            exported / f"{v}.ts",
            maps[v]["map50"],
            maps[v].get("map50_drop", 0.0),
            bench[BENCH_NAME[v]]["speedup"],
            bench[BENCH_NAME[v]]["latency_ms_p50"],
        )
        for v in ("float", "ptq", "qat")
    ]
    champion, reasons = choose_champion(candidates, r.max_map_drop, r.min_speedup)
    with cli.tracker(cfg, "register", params, out.parent) as run:
        tags = {"dataset": cfg.dataset, "backbone": cfg.backbone, "run_id": str(run.run_id)}
        with store_lock(run.uri):  # parallel experiments may register the same model name
            versions = {c.variant: register_variant(name, c, tags) for c in candidates}
            if champion is not None:
                set_alias(name, r.alias, versions[champion.variant])
    result = {
        "model_name": name,
        "versions": versions,
        "alias": r.alias,
        "champion": champion.variant if champion else None,
        "rejected": reasons,
    }
    write_json(result, out)
    for line in reasons:
        cli.console.print(f"  not eligible: {line}")
    if champion:
        cli.console.print(
            f"[green]{name}@{r.alias} -> version {versions[champion.variant]} "
            f"({champion.variant}, x{champion.speedup:.2f}, mAP@.5 {champion.map50:.3f})[/green]"
        )
    else:
        cli.console.print(f"[yellow]no variant passes the gate; {r.alias} not moved[/yellow]")


if __name__ == "__main__":
    app()
