"""Training on several processes: ``train`` runs unchanged under ``torchrun`` (one machine or several).

``torchrun --nproc_per_node N -m recon_demo train …`` starts N processes and sets ``RANK``, ``LOCAL_RANK`` and
``WORLD_SIZE``; ``setup`` then joins them into one process group: NCCL on CUDA (each process on the GPU of its
local rank), gloo on the CPU. The trainer wraps its model in ``DistributedDataParallel``, which averages the
gradients of every step across processes. ``--batch-size`` is per process, so the global batch is
``batch_size × WORLD_SIZE``: every process draws that global batch from the same seeded generator and trains on
its own slice, so N processes with batch B follow exactly the run of one process with batch N·B (and resume
from the same state). Rank 0 alone validates and writes the checkpoint, the state and the manifest. A Ctrl-C
is agreed on between steps (``any_rank``), never in the middle of one, where the others would wait forever.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist


@dataclass(frozen=True)
class World:
    """This process's place: its rank, how many there are, and its rank on its own machine."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world_from_env() -> World:
    """The ``World`` that torchrun's environment describes (one process when it is absent)."""
    try:
        size = int(os.environ.get("WORLD_SIZE", "1"))
        rank = int(os.environ.get("RANK", "0"))
        local = int(os.environ.get("LOCAL_RANK", "0"))
    except ValueError:
        raise ValueError("RANK, LOCAL_RANK and WORLD_SIZE must be integers (torchrun sets them)") from None
    if not (size >= 1 and 0 <= rank < size and local >= 0):
        raise ValueError(f"inconsistent torchrun environment: RANK {rank}, WORLD_SIZE {size}, LOCAL_RANK {local}")
    return World(rank, size, local)


def setup(device: torch.device) -> tuple[World, torch.device]:
    """Join the process group torchrun describes (if any); returns the world and this process's device."""
    world = world_from_env()
    if not world.distributed:
        return world, device
    if device.type == "cuda":
        device = torch.device("cuda", world.local_rank)
        torch.cuda.set_device(device)
    if not dist.is_initialized():
        dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
    return world, device


def any_rank(flag: bool, world: World, device: torch.device) -> bool:
    """Whether ``flag`` is set on any process (every process must call it at the same point)."""
    if not world.distributed:
        return flag
    t = torch.tensor([1.0 if flag else 0.0], device=device if device.type == "cuda" else "cpu")
    dist.all_reduce(t, op=dist.ReduceOp.MAX)
    return bool(t.item() > 0)


def teardown(together: bool = False) -> None:
    """Leave the process group (once the run is over); ``together``: first wait until every process gets here."""
    if dist.is_available() and dist.is_initialized():
        if together:
            dist.barrier()
        dist.destroy_process_group()
