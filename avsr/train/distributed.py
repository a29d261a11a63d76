"""Process-group set-up from torchrun environment variables, and small collectives."""

from __future__ import annotations

import os
from dataclasses import dataclass

import torch
import torch.distributed as dist

SINGLE_GROUP_ENV = "AVSR_PROCESS_GROUP"
"""Set to ``1``: a world of one process also joins a process group, so DDP/FSDP2 wrap the
model (how one GPU runs the nccl DDP/FSDP2 paths: ``avsr env --gpu-check``)."""


@dataclass(frozen=True, kw_only=True)
class DistInfo:
    """Where this process sits: ``rank`` of ``world_size``, its ``device``."""

    rank: int = 0
    """Global rank of this process."""
    world_size: int = 1
    """Number of processes."""
    local_rank: int = 0
    """Rank on this machine (selects the GPU)."""
    device: torch.device = torch.device("cpu")
    """Device this process trains on."""
    backend: str | None = None
    """Process-group backend (gloo, nccl); None: a single process."""

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @property
    def distributed(self) -> bool:
        """Several processes, or a process group of one (``AVSR_PROCESS_GROUP=1``)."""
        return self.world_size > 1 or self.backend is not None


def init_distributed(device: str | None = None) -> DistInfo:
    """Join the process group torchrun describes (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``, ...).

    nccl on CUDA, gloo on CPU. Without torchrun variables (or ``WORLD_SIZE=1``)
    no process group is created, unless ``AVSR_PROCESS_GROUP=1`` (then ``MASTER_ADDR`` and
    ``MASTER_PORT`` must be set, as torchrun does). ``device`` overrides the automatic
    choice (``cuda:LOCAL_RANK`` when CUDA is available, else ``cpu``).
    """
    world = int(os.environ.get("WORLD_SIZE", "1"))
    rank = int(os.environ.get("RANK", "0"))
    local = int(os.environ.get("LOCAL_RANK", "0"))
    if device is None:
        dev = torch.device(f"cuda:{local}") if torch.cuda.is_available() else torch.device("cpu")
    else:
        dev = torch.device(device)
        if dev.type == "cuda" and dev.index is None:
            dev = torch.device(f"cuda:{local}")
    if dev.type == "cuda":
        torch.cuda.set_device(dev)
    backend = None
    if world > 1 or os.environ.get(SINGLE_GROUP_ENV) == "1":
        backend = "nccl" if dev.type == "cuda" else "gloo"
        if not dist.is_initialized():
            kwargs = {"device_id": dev} if dev.type == "cuda" else {}
            dist.init_process_group(backend=backend, **kwargs)
        rank, world = dist.get_rank(), dist.get_world_size()
    return DistInfo(rank=rank, world_size=world, local_rank=local, device=dev, backend=backend)


def cleanup_distributed() -> None:
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


def is_dist() -> bool:
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def all_reduce_sum(t: torch.Tensor) -> torch.Tensor:
    """In-place sum over ranks (no-op in one process); returns ``t``."""
    if is_dist():
        dist.all_reduce(t, op=dist.ReduceOp.SUM)
    return t


def barrier() -> None:
    if is_dist():
        dist.barrier()


def broadcast_object(obj: object, src: int = 0) -> object:
    """``obj`` of rank ``src`` on every rank."""
    if not is_dist():
        return obj
    box = [obj]
    dist.broadcast_object_list(box, src=src)
    return box[0]
