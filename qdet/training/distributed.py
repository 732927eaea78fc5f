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
from pathlib import Path
from typing import TYPE_CHECKING

from qdet.core.console import console
from qdet.core.device import backend, resolve
from qdet.core.lifeline import die_with_parent

if TYPE_CHECKING:
    from qdet.config import TrainConfig


@dataclass(frozen=True)
class Ranks:
    """Where this process stands in a DDP job (rank 0 of 1 on the CPU when there is none)."""

    rank: int = 0
    world: int = 1
    local_rank: int = 0
    device: str = "cpu"

    @property
    def main(self) -> bool:
        """Global rank 0: logs to MLflow and prints the job's progress."""
        return self.rank == 0

    @property
    def writer(self) -> bool:
        """Local rank 0 of each node: validates and writes checkpoints and outputs, so every
        node's ``dvc repro`` finds its outputs (DDP keeps the weights equal on all ranks)."""
        return self.local_rank == 0


def distributed(train: TrainConfig, argv: list[str]) -> Ranks:
    """``train.nproc`` > 1 or ``train.nnodes`` > 1: relaunch ``argv`` (this stage's command line)
    under torchrun and exit with its code, or, inside torchrun, join the process group. One node:
    ``--standalone``; several: c10d rendezvous at ``train.rdzv_endpoint`` (run the same stage on
    every node). Threads are shared out among a node's ranks; the device is chosen by
    :mod:`qdet.core.device`."""
    import torch  # here: importing this module (for Ranks) must stay cheap

    if train.nproc == 1 and train.nnodes == 1:
        torch.set_num_threads(train.threads)
        return Ranks(device=str(resolve(train.device)))
    if "LOCAL_RANK" not in os.environ:
        if train.nnodes == 1:
            where = ["--standalone"]
        else:
            where = [
                f"--nnodes={train.nnodes}",
                "--rdzv-backend=c10d",
                f"--rdzv-endpoint={train.rdzv_endpoint}",
            ]
            where.append(f"--rdzv-id=qdet-{Path(argv[0]).stem}")
        command = [
            sys.executable,
            "-m",
            "torch.distributed.run",
            *where,
            f"--nproc-per-node={train.nproc}",
            *argv,
        ]
        console.print(
            f"launching {train.nproc} processes on this node: {' '.join(command[1 : 4 + len(where)])} ..."
        )
        # SIGTERM lets torchrun stop its ranks before it goes; their console is ours, not the log
        code = subprocess.call(command, stderr=sys.stderr, preexec_fn=lambda: die_with_parent(signal.SIGTERM))
        if code != 0:
            console.print(
                f"[bold red]error:[/bold red] a training process failed (torchrun exit {code}); "
                "rerun to resume from the last checkpoint",
                highlight=False,
            )
        sys.exit(code)
    die_with_parent(signal.SIGKILL)
    import torch.distributed as dist  # after the launcher's fork, in the worker

    local_rank = int(os.environ["LOCAL_RANK"])
    device = resolve(train.device, local_rank)
    if device.type == "cuda":
        torch.cuda.set_device(device)
    torch.set_num_threads(max(1, train.threads // train.nproc))
    dist.init_process_group(backend(device))
    return Ranks(dist.get_rank(), dist.get_world_size(), local_rank, str(device))


def finish_distributed(ranks: Ranks) -> None:
    if ranks.world > 1:
        import torch.distributed as dist  # after the launcher's fork, in the worker

        dist.destroy_process_group()
