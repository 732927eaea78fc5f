"""preprocess stage: raw layout -> VOC XML + CSV + classes.txt, split by image."""

from pathlib import Path

import typer

from qdet import cli
from qdet.data.prepare import preprocess
from qdet.metrics import write_json

app = typer.Typer(add_completion=False)


@app.command()
@cli.stage_main
def main(
    raw: Path = typer.Argument(Path("data/raw"), help="raw datasets folder"),
    out: Path = typer.Argument(Path("data/processed"), help="processed dataset folder"),
    summary: Path = typer.Option(Path("metrics/preprocess.json"), help="summary JSON"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    cfg = cli.load(params)
    d = cfg.data
    result = preprocess(
        cfg.dataset,
        raw / cfg.dataset,
        out,
        d.classes,
        d.min_box_size,
        d.valid_fraction,
        cfg.seed,
        d.strict,
    )
    write_json(result, summary)
    cli.console.print(
        f"[green]{cfg.dataset}[/green]: train {result['train']}, valid {result['valid']}, "
        f"{result['skipped_records']} records skipped, {result['clipped_boxes']} boxes clipped, "
        f"{result['warnings']} warnings (details in {summary})"
    )
    for line in [*result["skipped"], *result["warning_messages"]][:10]:
        cli.console.print(f"  [yellow]{line}[/yellow]", highlight=False)


if __name__ == "__main__":
    app()
