"""register stage: float, PTQ and QAT as pyfunc models in the MLflow registry; the alias moves
to the fastest variant that passes the mAP-drop and speedup gate, or nowhere."""

from pathlib import Path

import typer

from qdet.config import ConfigError
from qdet.core.console import console, exit_on_error
from qdet.core.files import read_json, write_json
from qdet.data.digest import evaluation_digest
from qdet.pipeline import stage
from qdet.registry.champion import choose_champion
from qdet.registry.figures import summary, variant_metrics
from qdet.registry.publish import (
    RegistryUnreachable,
    candidates,
    model_name,
    publish,
    registered_rows,
)
from qdet.tracking import store_lock

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    exported: Path = typer.Argument(...),
    processed: Path = typer.Option(..., help="the processed dataset the variants were scored on"),
    eval_metrics: Path = typer.Option(...),
    bench_metrics: Path = typer.Option(...),
    out: Path = typer.Option(...),
    summary_out: Path = typer.Option(..., "--summary", help="the run's deciding figures (DVC metrics)"),
    params: Path = typer.Option(Path("params.yaml")),
) -> None:
    cfg = stage.load(params, "register")
    if not cfg.tracking.enabled:
        raise ConfigError("tracking.enabled: register needs MLflow; set it to true")
    r = cfg.register
    name = model_name(r.model_name, cfg.dataset, cfg.backbone)
    maps, bench = read_json(eval_metrics), read_json(bench_metrics)
    variants = candidates(exported, maps, bench)
    rows = {row: variant_metrics(row, maps, bench) for row in bench["variants"]}
    registered = registered_rows(exported)
    champion, why = choose_champion(variants, r.max_map_drop, r.min_speedup)
    with stage.tracker(cfg, "register", params, out.parent) as run:
        tags = {"dataset": cfg.dataset, "backbone": cfg.backbone, "run_id": str(run.run_id)}
        tags["evaluation"] = evaluation_digest(processed, "test")
        with store_lock(run.uri):  # parallel exps: one at a time
            versions, moved, reason = publish(
                name, r.alias, variants, registered, rows, champion, bench, tags, run
            )
        failed = list(run.failed)
    champion_name = champion.variant if champion else None
    result = {"model_name": name, "versions": versions, "alias": r.alias, "champion": champion_name}
    write_json({**result, "alias_moved": moved, "alias_reason": reason, "why": why}, out)
    write_json(summary(champion_name, rows, registered), summary_out)
    for variant, because in why.items():
        console.print(f"  {variant}: {because}")
    if failed:
        raise RegistryUnreachable(
            f"the model registry at {run.uri} could not be reached ({len(failed)} call(s) failed; "
            f"registered: {sorted(v for v, n in versions.items() if n)}); rerun `dvc repro` when it is back"
        )
    if moved:
        console.print(
            f"[green]{name}@{r.alias} -> version {versions[champion.variant]} ({champion.variant}, "
            f"x{champion.speedup:.2f} vs best float, mAP@.5 {champion.map50:.3f}): {reason}[/green]"
        )
    else:
        console.print(f"[yellow]{name}@{r.alias} not moved: {reason}[/yellow]")


if __name__ == "__main__":
    app()
