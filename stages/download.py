"""download stage: raw dataset -> data/raw/<dataset>/ in its published layout."""

from pathlib import Path

import typer

from qdet import cli
from qdet.data.acquire import acquire
from qdet.metrics import write_json

app = typer.Typer(add_completion=False)


@app.command()
@cli.stage_main
def main(
    raw: Path = typer.Argument(Path("data/raw"), help="output folder for raw datasets"),
    downloads: Path = typer.Option(
        Path("data/downloads"), help="where archives are downloaded (kept for resume)"
    ),
    summary: Path = typer.Option(Path("metrics/download.json"), help="summary JSON"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    cfg = cli.load(params)
    with cli.download_progress() as progress:
        result = acquire(cfg, raw, downloads, progress)
    write_json({"dataset": cfg.dataset, **result}, summary)
    cli.console.print(f"[green]raw {cfg.dataset} ready in {raw / cfg.dataset}[/green] ({result})")


if __name__ == "__main__":
    app()
