"""Signals: a SIGTERM during run creation waits for the block; the dvc ancestry is found."""

import os
import signal
import subprocess
import sys

import pytest

from qdet.core.lifeline import deferred_signal, dvc_ancestors


class Stopped(Exception):
    pass


def _stop(signum, _frame):
    raise Stopped(signum)


def test_a_signal_in_the_block_is_delivered_after_it():
    previous = signal.signal(signal.SIGUSR1, _stop)
    finished = []
    try:
        with pytest.raises(Stopped):
            with deferred_signal(signal.SIGUSR1):
                os.kill(os.getpid(), signal.SIGUSR1)
                finished.append("block")  # not interrupted halfway
        assert finished == ["block"]
        assert signal.getsignal(signal.SIGUSR1) is _stop  # the handler is back
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_no_signal_no_delivery():
    previous = signal.signal(signal.SIGUSR1, _stop)
    finished = []
    try:
        with deferred_signal(signal.SIGUSR1):
            finished.append("block")
        finished.append("after")  # nothing raised on the way out: no signal was made up
        assert finished == ["block", "after"]
        assert signal.getsignal(signal.SIGUSR1) is _stop
    finally:
        signal.signal(signal.SIGUSR1, previous)


def test_the_chain_up_to_dvc_goes_through_the_shell(tmp_path):
    """A fake ``dvc`` starts ``sh -c`` with two commands (so sh cannot exec), which runs python."""
    fake = tmp_path / "dvc"
    probe = "from qdet.core.lifeline import dvc_ancestors; print(len(dvc_ancestors()))"
    command = f'true; {sys.executable} -c "{probe}"'
    fake.write_text(f"import subprocess\nsubprocess.run(['/bin/sh', '-c', {command!r}])\n")
    done = subprocess.run([sys.executable, str(fake)], capture_output=True, text=True, timeout=60)
    assert done.stdout.strip() == "2", done.stderr  # sh, then dvc
    assert dvc_ancestors() == []  # pytest was not started by dvc


def test_a_second_sigterm_does_not_interrupt_the_shutdown_the_first_started():
    from qdet.pipeline.stage import Terminated, _terminated

    previous = signal.signal(signal.SIGTERM, _terminated)
    try:
        with pytest.raises(Terminated):
            os.kill(os.getpid(), signal.SIGTERM)
            signal.sigtimedwait([], 0.1)  # let the handler run here
        os.kill(os.getpid(), signal.SIGTERM)  # e.g. the parent-death signal after the watcher's
        signal.sigtimedwait([], 0.1)
    finally:
        signal.signal(signal.SIGTERM, previous)
