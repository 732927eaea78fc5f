"""register stage: float, PTQ and QAT as pyfunc models in the MLflow registry; the alias moves
to the fastest variant that passes the mAP-drop and speedup gate, or nowhere."""

from pathlib import Path

import typer

from qdet import stage
from qdet.config import ConfigError
from qdet.console import console, exit_on_error
from qdet.files import read_json, write_json
from qdet.serving.registry import (
    RegistryUnreachable,
    candidates,
    choose_champion,
    describe_parent,
    log_reference,
    model_name,
    register_variant,
    registered_rows,
    set_alias,
    summary,
    variant_metrics,
)
from qdet.tracking import store_lock
from qdet.variants import label

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    exported: Path = typer.Argument(...),
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
        with store_lock(run.uri):  # parallel exps: one at a time
            versions = {
                c.variant: register_variant(name, c, tags, run, rows[registered[c.variant]], step)
                for step, c in enumerate(variants)
            }
            for step, row in enumerate(r for r in rows if r not in registered.values()):
                log_reference(row, label(row), rows[row], len(variants) + step, run)
            describe_parent(champion.variant if champion else None, rows, bench, run)
            moved = champion is not None and versions[champion.variant] is not None
            moved = moved and set_alias(name, r.alias, versions[champion.variant], run)
        failed = list(run.failed)
    champion_name = champion.variant if champion else None
    result = {"model_name": name, "versions": versions, "alias": r.alias, "champion": champion_name}
    write_json({**result, "alias_moved": moved, "why": why}, out)
    write_json(summary(champion_name, rows, registered), summary_out)
    for variant, reason in why.items():
        console.print(f"  {variant}: {reason}")
    if failed:
        raise RegistryUnreachable(
            f"the model registry at {run.uri} could not be reached ({len(failed)} call(s) failed; "
            f"registered: {sorted(v for v, n in versions.items() if n)}); rerun `dvc repro` when it is back"
        )
    if champion:
        console.print(
            f"[green]{name}@{r.alias} -> version {versions[champion.variant]} "
            f"({champion.variant}, x{champion.speedup:.2f}, mAP@.5 {champion.map50:.3f})[/green]"
        )
    else:
        console.print(f"[yellow]no variant passes the gate; {r.alias} not moved[/yellow]")


if __name__ == "__main__":
    app()
