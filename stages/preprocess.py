"""preprocess stage: raw layout -> VOC XML + CSV + classes.txt, split by image."""

from pathlib import Path

import typer

from qdet.core.console import console, exit_on_error
from qdet.core.files import write_json
from qdet.data.preprocess import preprocess
from qdet.pipeline import stage

app = typer.Typer(add_completion=False)


@app.command()
@exit_on_error
def main(
    raw: Path = typer.Argument(..., help="raw datasets folder"),
    out: Path = typer.Argument(..., help="processed dataset folder"),
    summary: Path = typer.Option(..., help="summary JSON"),
    params: Path = typer.Option(Path("params.yaml"), help="params file"),
) -> None:
    cfg = stage.load(params, "preprocess")
    d = cfg.data
    fractions = (d.valid_fraction, d.test_fraction)
    result = preprocess(
        cfg.dataset,
        raw / cfg.dataset,
        out,
        d.classes,
        d.min_box_size,
        fractions,
        d.seed,
        d.strict,
    )
    write_json(result, summary)
    console.print(
        f"[green]{cfg.dataset}[/green]: train {result['train']}, valid {result['valid']}, "
        f"test {result['test']}, "
        f"{result['skipped_records']} records skipped, {result['clipped_boxes']} boxes clipped, "
        f"{result['warnings']} warnings (details in {summary})"
    )
    console.print(f"test split {result['test_split']}: {result['test_split_why']}", highlight=False)
    for line in [*result["skipped"], *result["warning_messages"]][:10]:
        console.print(f"  [yellow]{line}[/yellow]", highlight=False)


if __name__ == "__main__":
    app()
