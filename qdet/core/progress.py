"""Progress bars: one look for every long loop (epochs, calibration, evaluation, benchmark
rounds) and a byte bar for downloads."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from rich.progress import (
    BarColumn,
    DownloadColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeRemainingColumn,
    TransferSpeedColumn,
)

from qdet.core.console import console


def progress_bar(**options: Any) -> Progress:
    """``options`` go to rich's Progress (``console``, ``transient``): off a terminal it draws nothing."""
    return Progress(
        TextColumn("[bold]{task.description}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("{task.fields[info]}"),
        TimeRemainingColumn(),
        **options,
    )


class download_progress:  # noqa: N801 - used as a context manager like rich's
    """A byte progress bar for ``progress(done, total)`` callbacks; shown only once called."""

    def __enter__(self) -> Callable[[int, int | None], None]:
        self.bar = Progress(
            *Progress.get_default_columns(),
            DownloadColumn(),
            TransferSpeedColumn(),
            console=console,
        )
        self.task = None

        def update(done: int, total: int | None) -> None:
            if self.task is None:
                self.bar.start()
                self.task = self.bar.add_task("download", total=total)
            self.bar.update(self.task, completed=done, total=total)

        return update

    def __exit__(self, *exc: object) -> None:
        if self.task is not None:
            self.bar.stop()
