"""Work beside the main process: one job in a forked child, on a core of its own.

Compiling with AOTInductor is single-threaded Python and g++ for most of its time, so on the 2
cores of the machines we measure on a second compile beside the first takes little from it. A
forked child needs no pickling of the model it compiles; it dies with its parent (a kill -9 of
the stage leaves no compile running) and hands back its result or its error.
"""

from __future__ import annotations

import multiprocessing
import os
import pickle
import signal
from collections.abc import Callable
from typing import Generic, TypeVar

from qdet.core.errors import QdetError
from qdet.core.lifeline import die_with_parent

T = TypeVar("T")


class AsideDied(QdetError):
    """The child ended without a result (killed, or out of memory)."""


class Aside(Generic[T]):
    """``fn`` running in a forked child with ``threads`` torch threads; :meth:`result` waits."""

    def __init__(self, fn: Callable[[], T], what: str, threads: int = 1) -> None:
        self.what = what
        context = multiprocessing.get_context("fork")
        self._receive, send = context.Pipe(duplex=False)
        self._process = context.Process(target=_child, args=(fn, send, threads), daemon=True)
        self._process.start()
        send.close()

    def result(self) -> T:
        """The child's return value; its exception re-raised here."""
        try:
            kind, value = pickle.loads(self._receive.recv_bytes())
        except EOFError:
            self._process.join()
            code = self._process.exitcode
            raise AsideDied(f"{self.what}: its process ended with code {code} and no result") from None
        finally:
            self._receive.close()
        self._process.join()
        if kind == "error":
            raise value
        return value


def _child(fn: Callable[[], object], send, threads: int) -> None:
    import torch

    die_with_parent(signal.SIGKILL)
    torch.set_num_threads(threads)  # one thread: no OpenMP pool inherited from the parent is used
    # plain pickle, tensors by value: the child exits once it has sent, so nothing may be left
    # for the parent to fetch from it (a Connection's send passes tensors as shared-memory handles)
    try:
        send.send_bytes(pickle.dumps(("ok", fn())))
    except BaseException as error:  # handed to the parent, which raises it
        try:
            send.send_bytes(pickle.dumps(("error", error)))
        except Exception:  # one that does not pickle: its text instead
            send.send_bytes(pickle.dumps(("error", RuntimeError(f"{type(error).__name__}: {error}"))))
    finally:
        send.close()
        os._exit(0)  # not the parent's atexit handlers (MLflow runs, temp folders)
