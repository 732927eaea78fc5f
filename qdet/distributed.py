"""Data-parallel training under torchrun: relaunch, join the process group, die with the parent.

``train.nproc`` > 1 makes the train and qat stages relaunch themselves under
``torchrun --standalone``; inside, each rank joins the group (gloo on CPU, nccl with CUDA).
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from dataclasses import dataclass

import torch

from qdet.console import console

PR_SET_PDEATHSIG = 1  # linux/prctl.h


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in a DDP job (rank 0 of 1 when there is none)."""

    rank: int = 0
    world: int = 1

    @property
    def main(self) -> bool:
        return self.rank == 0


def die_with_parent(sig: int) -> None:
    """Linux: ask the kernel to send ``sig`` to this process when its parent dies.

    torchrun starts its ranks in new sessions and does not watch for its own parent, so a
    kill -9 of the stage (or of torchrun) would leave ranks training on and writing checkpoints
    under the rerun that is meant to resume from them.
    """
    if not sys.platform.startswith("linux"):
        return
    import ctypes

    libc = ctypes.CDLL(None, use_errno=True)
    if libc.prctl(PR_SET_PDEATHSIG, sig) != 0:
        raise OSError(ctypes.get_errno(), "prctl(PR_SET_PDEATHSIG) failed")


def distributed(nproc: int, threads: int, argv: list[str]) -> Ranks:
    """``nproc`` > 1: relaunch ``argv`` (this stage's command line) under torchrun and exit with
    its code, or, inside torchrun, join the process group. Threads are shared out among the ranks."""
    if nproc == 1:
        torch.set_num_threads(threads)
        return Ranks()
    if "LOCAL_RANK" not in os.environ:
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            "--standalone",
            f"--nproc_per_node={nproc}",
            *argv,
        ]
        console.print(f"launching {nproc} processes: {' '.join(command[1:4])} ...")
        # SIGTERM lets torchrun stop its ranks before it goes
        code = subprocess.call(command, preexec_fn=lambda: die_with_parent(signal.SIGTERM))
        if code != 0:
            console.print(
                f"[bold red]error:[/bold red] a training process failed (torchrun exit {code}); "
                "rerun to resume from the last checkpoint",
                highlight=False,
            )
        sys.exit(code)
    die_with_parent(signal.SIGKILL)
    import torch.distributed as dist

    torch.set_num_threads(max(1, threads // nproc))
    dist.init_process_group("nccl" if torch.cuda.is_available() else "gloo")
    return Ranks(dist.get_rank(), dist.get_world_size())


def finish_distributed(ranks: Ranks) -> None:
    if ranks.world > 1:
        import torch.distributed as dist

        dist.destroy_process_group()
