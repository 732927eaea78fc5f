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
from collections.abc import Callable, Iterable, Iterator
from typing import Generic, TypeVar

from qdet.core.errors import QdetError
from qdet.core.lifeline import die_with_parent

T = TypeVar("T")


class AsideDied(QdetError):
    """The child ended without a result (killed, or out of memory)."""


K = TypeVar("K")
V = TypeVar("V")


def in_two_processes(
    work: Callable[[Iterable[K], bool], dict[K, V]], items: list[K], threads: int
) -> dict[K, V]:
    """``work`` over ``items`` in this process and a forked child, each on half of ``threads``,
    for jobs that scale worse across threads than across processes (scoring). Each process
    takes the next item when it is free (``work`` gets an iterable that hands them out), so a
    few heavy items do not leave one process waiting on the other; list the heavy ones first.
    The second argument says whether the call is the one here (the one that may show
    progress). The result follows ``items``' order."""
    import torch  # torch loads with the work that forks, not with qdet.core

    half = max(1, threads // 2)
    taken = multiprocessing.get_context("fork").Value("i", 0)  # shared with the child
    beside: Aside[dict[K, V]] = Aside(lambda: work(_claimed(items, taken), False), "the second process", half)
    torch.set_num_threads(half)
    try:
        mine = work(_claimed(items, taken), True)
    finally:
        torch.set_num_threads(threads)
    done = mine | beside.result()
    return {item: done[item] for item in items}


def _claimed(items: list[K], taken) -> Iterator[K]:
    """The items no process has taken yet, one at a time (``taken``: a shared counter)."""
    while True:
        with taken.get_lock():
            index = taken.value
            taken.value += 1
        if index >= len(items):
            return
        yield items[index]


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
    import torch  # torch loads with the work that forks, not with qdet.core

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
