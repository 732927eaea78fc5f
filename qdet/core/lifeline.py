"""A stage process ends when the ``dvc`` that started it ends.

DVC runs each stage command through ``$SHELL -c`` (``/bin/sh`` when ``SHELL`` is unset). bash
execs a single command, so the stage's parent is ``dvc``; dash (Debian's ``/bin/sh``) does not,
so the parent is a shell that outlives a killed ``dvc``, and the kernel's parent-death signal
never fires. Hence two mechanisms: the kernel signal for the direct parent, and a watcher thread
for every process between this one and ``dvc``.
"""

from __future__ import annotations

import ctypes
import os
import signal
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

PR_SET_PDEATHSIG = 1  # linux/prctl.h
MAX_ANCESTORS = 8  # dvc -> shell -> (env, nice, ...) -> stage: never deeper in practice


def die_with_parent(sig: int) -> None:
    """Linux: ask the kernel to send ``sig`` to this process when its parent dies.

    torchrun starts its ranks in new sessions and does not watch for its own parent, so a
    kill -9 of the stage (or of torchrun) would leave ranks training on and writing checkpoints
    under the rerun that is meant to resume from them.
    """
    if not sys.platform.startswith("linux"):
        return

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def _identity(pid: int) -> tuple[int, str] | None:
    """(parent pid, start time) of a live process; the start time tells a reused pid apart."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return None
    fields = stat[stat.rindex(")") + 2 :].split()  # the command name may hold spaces and ')'
    return int(fields[1]), fields[19]


def _is_dvc(pid: int) -> bool:
    try:
        argv = Path(f"/proc/{pid}/cmdline").read_bytes().split(b"\0")
    except OSError:
        return False
    return any(Path(a.decode(errors="replace")).name == "dvc" for a in argv[:3])


def dvc_ancestors(pid: int | None = None) -> list[tuple[int, str]]:
    """(pid, start time) of each process from this one's parent up to the nearest ``dvc``;
    empty when no ``dvc`` started us (a stage run by hand)."""
    chain: list[tuple[int, str]] = []
    current = os.getpid() if pid is None else pid
    for _ in range(MAX_ANCESTORS):
        me = _identity(current)
        if me is None or me[0] <= 1:
            return []
        parent = me[0]
        ident = _identity(parent)
        if ident is None:
            return []
        chain.append((parent, ident[1]))
        if _is_dvc(parent):
            return chain
        current = parent
    return []


def die_with_dvc(sig: int = signal.SIGTERM, every: float = 0.5) -> None:
    """Send ``sig`` to this process as soon as its parent, or any process between it and the
    ``dvc`` that started it, is gone."""
    if not sys.platform.startswith("linux"):
        return
    die_with_parent(sig)
    chain = dvc_ancestors()
    if len(chain) < 2:  # no dvc, or dvc is the parent: the kernel signal covers it
        return

    def watch() -> None:
        stop = threading.Event()
        while not stop.wait(every):
            if any((_identity(pid) or (0, ""))[1] != start for pid, start in chain):
                os.kill(os.getpid(), sig)
                return

    threading.Thread(target=watch, name="qdet-die-with-dvc", daemon=True).start()


@contextmanager
def deferred_signal(sig: int = signal.SIGTERM) -> Iterator[None]:
    """Hold ``sig`` until the block is done, then deliver it to the handler that was in place.

    For the few lines that create MLflow runs: a SIGTERM in the middle would leave a run that
    no ``with`` block ends (its ``__exit__`` never runs), RUNNING until the next stage notices.
    Only the main thread can swap handlers; elsewhere the block runs unprotected.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    caught: list[int] = []
    previous = signal.signal(sig, lambda signum, _frame: caught.append(signum))
    try:
        yield
    finally:
        signal.signal(sig, previous)
        if caught and callable(previous):
            previous(caught[0], None)
