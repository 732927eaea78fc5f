"""Work beside the main process: the child's result, its error, its death."""

import os
import signal
import time

import pytest
import torch

from qdet.core.aside import Aside, AsideDied
from qdet.core.errors import QdetError


def test_the_child_runs_apart_on_one_thread_and_hands_back_its_result():
    parent = os.getpid()
    model = torch.nn.Linear(2, 1)  # what the child uses without pickling
    job = Aside(lambda: (os.getpid(), torch.get_num_threads(), model.weight.shape), "probe")
    pid, threads, shape = job.result()
    assert pid != parent and threads == 1 and shape == (1, 2)


def test_the_childs_error_is_raised_in_the_parent():
    def fails():
        raise QdetError("no compiler here")

    with pytest.raises(QdetError, match="no compiler here"):
        Aside(fails, "compile").result()


def test_an_error_that_does_not_pickle_arrives_as_its_text():
    class Local(ValueError):  # defined in a function: pickle cannot find it
        pass

    def fails():
        raise Local("bad shape")

    with pytest.raises(RuntimeError, match="Local: bad shape"):
        Aside(fails, "compile").result()


def test_a_child_killed_without_a_result_is_named():
    job = Aside(lambda: os.kill(os.getpid(), signal.SIGKILL), "compiling the float model")
    with pytest.raises(AsideDied, match="compiling the float model: its process ended with code -9"):
        job.result()


def test_tensors_come_back_by_value_after_the_child_is_gone():
    """A child exits once it has sent: its tensors must not stay behind as shared-memory handles
    for the parent to fetch (torch's Connection pickling), or the parent reads a dead socket."""
    job = Aside(lambda: {"boxes": torch.arange(6.0).reshape(3, 2)}, "scoring")
    job._process.join()  # gone before the parent reads
    assert torch.equal(job.result()["boxes"], torch.arange(6.0).reshape(3, 2))


def test_in_two_processes_shares_the_items_and_keeps_their_order():
    from qdet.core.aside import in_two_processes

    def work(items, here: bool) -> dict[int, tuple[int, bool, int]]:
        return {i: (os.getpid(), here, torch.get_num_threads()) for i in items}

    before = torch.get_num_threads()
    done = in_two_processes(work, [5, 3, 9, 1], 4)
    after = torch.get_num_threads()
    torch.set_num_threads(before)
    assert list(done) == [5, 3, 9, 1]
    assert all(here == (pid == os.getpid()) for pid, here, _ in done.values())
    assert {v[2] for v in done.values()} == {2}  # each process on half the threads
    assert after == 4  # the caller's threads again


def test_a_free_process_takes_the_next_item():
    """One heavy item first, then light ones: the process that took the heavy one does nothing
    else (a fixed split, every other item, would queue two light ones behind it)."""
    from qdet.core.aside import in_two_processes

    def work(items, here: bool) -> dict[str, int]:
        out = {}
        for item in items:
            time.sleep(1.5 if item == "heavy" else 0.05)
            out[item] = os.getpid()
        return out

    done = in_two_processes(work, ["heavy", "a", "b", "c", "d"], 2)
    assert list(done) == ["heavy", "a", "b", "c", "d"]
    assert done["heavy"] not in {done[k] for k in "abcd"}
    assert len({done[k] for k in "abcd"}) == 1
