"""One base class for every error a user can cause (a bad param, a corrupt file, an unreachable
store): the stage boundary prints its message in one line and exits 1, anything else is a bug
and keeps its traceback."""

from __future__ import annotations


class QdetError(Exception):
    """An expected failure; the message names the file, line or params key at fault."""
