"""One base class for every error a user can cause (a bad param, a corrupt file, an unreachable
store): the stage boundary prints its message in one line and exits 1, anything else is a bug
and keeps its traceback."""

from __future__ import annotations


class QdetError(Exception):
    """An expected failure; the message names the file, line or params key at fault."""


def last_line(exc: BaseException) -> str:
    """The telling line of an error: TorchScript puts its traceback first and the cause last."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[-1] if lines else type(exc).__name__
