"""The console every entry point writes to, the warnings it hides, and the error-to-exit guard.

Shared by the DVC stages and ``qdet-predict``; imports nothing of the training code.
"""

from __future__ import annotations

import functools
import logging
import os
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import Any

from rich.console import Console

from qdet.core.errors import QdetError

console = Console(stderr=True, soft_wrap=True)  # no hard wraps: logs stay greppable


DEPRECATED_UPSTREAM = (  # (message pattern, category) of what the FX engine's route warns on every call
    (r"torch\.ao\.quantization is deprecated", DeprecationWarning),
    (r"`torch\.jit\.\w+` is deprecated", FutureWarning),
    (r"`torch\.jit\.\w+` is deprecated", DeprecationWarning),
)


def quiet_warnings(deprecations: bool = True) -> None:
    """Hide warnings that are noise in stage output.

    ``deprecations``: the FX engine's torch.ao.quantization, quantized dtypes and torch.jit warn
    on every call that they are deprecated (the pinned versions still work; the PT2E engine is
    the way off them). The PT2E path passes False: a deprecation there is news and is shown."""
    if deprecations:
        for message, category in DEPRECATED_UPSTREAM:
            warnings.filterwarnings("ignore", message=message, category=category)
    warnings.filterwarnings("ignore", message=".*RCNN always returns.*")
    warnings.filterwarnings("ignore", message=".*quantized tensor creation functions.*")
    warnings.filterwarnings("ignore", message=".*TypedStorage.*")


LOGS = Path("logs")  # one file per stage, appended: what third-party code says, out of the console


def third_party_to_log(log: Path, uses_torch: bool = True) -> None:
    """What third-party code says goes to ``log``, ours stays on the console: MLflow's INFO
    lines and its "Downloading artifacts" bars, every library's log lines (torch's "No CUDA
    runtime is found" when Inductor looks for a compiler, its pytree "register_constant()"
    deprecation), the Python warnings not hidden by :func:`quiet_warnings`, and what C++ code
    writes straight to file descriptor 2 (:func:`native_stderr_to`). qdet itself never logs:
    it prints to :data:`console`. Call it before importing torchao (it logs at import).
    ``uses_torch``: torch is imported here, because it sets its loggers' own stderr handlers at
    import (the download stage's no-op run skips it: importing torch takes a second)."""
    os.environ.setdefault("MLFLOW_ENABLE_ARTIFACTS_PROGRESS_BAR", "false")
    os.environ.setdefault("MLFLOW_CONFIGURE_LOGGING", "false")  # else mlflow adds a stderr handler
    log.parent.mkdir(parents=True, exist_ok=True)
    handler = logging.FileHandler(log)
    handler.setFormatter(logging.Formatter("%(asctime)s %(levelname)s %(name)s: %(message)s"))
    handler.setLevel(logging.INFO)  # not torch's DEBUG trace records
    if uses_torch:
        import torch  # noqa: F401  (its loggers get their handlers at import: replaced below)

        for logger in _loggers_with_handlers("torch"):
            logger.handlers = [handler]
    logging.getLogger().handlers = [handler]  # every other library's logger propagates here
    for name in ("mlflow", "torch.utils.cpp_extension"):
        logging.getLogger(name).setLevel(logging.INFO)
    logging.captureWarnings(True)
    native_stderr_to(log)


def _loggers_with_handlers(package: str) -> list[logging.Logger]:
    """``package``'s loggers that write somewhere themselves instead of propagating."""
    loggers = [logging.getLogger(package)]
    for name, logger in logging.root.manager.loggerDict.items():
        if name.startswith(package + ".") and isinstance(logger, logging.Logger) and logger.handlers:
            loggers.append(logger)
    return loggers


def native_stderr_to(log: Path) -> None:
    """From here on, file descriptor 2 is ``log``: torch's C++ code writes its warnings there
    directly (the TorchScript runtime's "quantized tensor creation functions ... are
    deprecated"), out of reach of Python's warning filters. Python's ``sys.stderr`` (our
    console, progress bars, tracebacks) keeps the terminal through a duplicate of the original
    descriptor. Child processes inherit fd 2, the log: pass ``stderr=sys.stderr`` to those whose
    output is ours."""
    sys.stderr.flush()
    terminal = os.dup(2)
    target = os.open(log, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
    os.dup2(target, 2)
    os.close(target)
    encoding, errors = sys.stderr.encoding, sys.stderr.errors
    sys.stderr = open(terminal, "w", buffering=1, encoding=encoding, errors=errors)  # noqa: SIM115


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
            resume = "rerun it (training stages resume from their last checkpoint)"
            console.print(f"[yellow]{what}; {resume}[/yellow]")
            sys.exit(130)

    return wrapper
