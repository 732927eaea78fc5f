"""The console every entry point writes to, the warnings it hides, and the error-to-exit guard.

Shared by the DVC stages and ``qdet-predict``; imports nothing of the training code.
"""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable
from typing import Any

from rich.console import Console

from qdet.errors import QdetError

console = Console(stderr=True, soft_wrap=True)  # no hard wraps: logs stay greppable


def quiet_warnings(deprecations: bool = True) -> None:
    """Hide warnings that are noise in stage output.

    ``deprecations``: the FX engine's torch.ao.quantization, quantized dtypes and torch.jit warn
    on every call that they are deprecated (the pinned versions still work; the PT2E engine is
    the way off them). The PT2E path passes False: a deprecation there is news and is shown."""
    if deprecations:
        for category in (DeprecationWarning, FutureWarning):
            warnings.filterwarnings("ignore", category=category)
    warnings.filterwarnings("ignore", message=".*RCNN always returns.*")
    warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
    warnings.filterwarnings("ignore", message=".*TypedStorage.*")


def exit_on_error(fn: Callable[..., Any]) -> Callable[..., Any]:
    """Expected failures print one clear line (file, line or key named) and exit 1; OSError is
    expected too (unreadable input, unwritable output, disk full: its message names the path)."""

    @functools.wraps(fn)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return fn(*args, **kwargs)
        except (QdetError, OSError) as exc:
            console.print(f"[bold red]error:[/bold red] {exc}", highlight=False, soft_wrap=True)
            sys.exit(1)
        except KeyboardInterrupt as exc:
            what = "terminated (SIGTERM)" if type(exc).__name__ == "Terminated" else "interrupted"
            console.print(f"[yellow]{what}; rerun to resume from the last checkpoint[/yellow]")
            sys.exit(130)

    return wrapper
