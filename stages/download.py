"""download stage: raw dataset -> data/raw/<dataset>/ in its published layout."""

from pathlib import Path

import typer

from qdet.core.console import console, exit_on_error
from qdet.core.files import write_json
from qdet.core.progress import download_progress
from qdet.data.download import acquire
from qdet.pipeline import stage

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    raw: Path = typer.Argument(..., help="output folder for raw datasets"),
    downloads: Path = typer.Option(..., help="where archives are downloaded (kept for resume)"),
    summary: Path = typer.Option(..., help="summary JSON"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    cfg = stage.load(params, "download", uses_torch=False)
    with download_progress() as progress:
        result, fresh = acquire(cfg, raw, downloads, progress)
    write_json({"dataset": cfg.dataset, **result}, summary)
    state = "ready" if fresh else "unchanged (same source content)"
    console.print(f"[green]raw {cfg.dataset} {state} in {raw / cfg.dataset}[/green] ({result})")


if __name__ == "__main__":
    app()
