"""report stage: reports/results.md from the run's metric files (machine, accuracy, speed against
every row, the champion and why, the plots), so the README links results instead of copying them."""

from pathlib import Path

import typer
import yaml

from qdet.core.checkpoint import recipe_digest
from qdet.core.console import console, exit_on_error
from qdet.core.files import read_json, write_atomically
from qdet.report.page import render
from qdet.report.plots import map_vs_latency
from qdet.tracking import git_commit
from qdet.variants.table import label

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    metrics: Path = typer.Option(Path("metrics"), help="the run's metric files"),
    breakdown: Path = typer.Option(
        Path("reports/breakdown.json"), help="the benchmark's machine record and time per part"
    ),
    plots: Path = typer.Option(Path("plots"), help="the run's PNGs, linked from the page"),
    seeds: Path = typer.Option(Path("reports/seeds.json"), help="the float recipe across seeds, if measured"),
    params: Path = typer.Option(Path("params.yaml"), help="this run's recipe, to tell a stale seed table"),
    out: Path = typer.Option(Path("reports/results.md")),
    headline: Path = typer.Option(Path("reports/map_vs_latency.png"), help="the README's picture"),
) -> None:
    text = render(
        commit=git_commit(Path.cwd()),
        breakdown=read_json(breakdown),
        preprocess=read_json(metrics / "preprocess.json"),
        train=read_json(metrics / "train.json"),
        convert=read_json(metrics / "convert.json"),
        evaluation=read_json(metrics / "eval.json"),
        benchmark=read_json(metrics / "benchmark.json"),
        register=read_json(metrics / "register.json"),
        search=read_json(metrics / "quant_search.json"),
        plots=sorted(p.relative_to(plots).as_posix() for p in plots.rglob("*.png")),
        seeds=read_json(seeds) if seeds.exists() else None,
        recipe=recipe_digest(yaml.safe_load(params.read_text())),
    )
    write_atomically(out, lambda partial: partial.write_text(text))
    rows = read_json(metrics / "benchmark.json")["variants"]
    map_vs_latency({label(name): row for name, row in rows.items()}, headline)  # committed beside results.md
    console.print(f"results written to {out} and {headline}")


if __name__ == "__main__":
    app()
