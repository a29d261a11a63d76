"""Run a function as the ranks of a gloo process group in forked processes (env:// rendezvous
like torchrun; forking avoids re-importing torch, which takes seconds on a busy machine)."""

from __future__ import annotations

import multiprocessing as mp
import os
import socket
from collections.abc import Callable

import torch


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _preimport() -> None:
    """Import what the children would import lazily (torch._dynamo via the optimizer: ~4 s)."""
    import safetensors.torch  # noqa: F401
    import torch._dynamo  # noqa: F401
    import torch.distributed.checkpoint.state_dict  # noqa: F401
    import torch.distributed.fsdp  # noqa: F401
    import torch.nn.parallel  # noqa: F401


def _rank_main(target: Callable[..., int | None], args: tuple[object, ...], rank: int, world: int, port: int) -> None:
    os.environ.update(
        RANK=str(rank),
        WORLD_SIZE=str(world),
        LOCAL_RANK=str(rank),
        MASTER_ADDR="127.0.0.1",
        MASTER_PORT=str(port),
    )
    torch.set_num_threads(1)
    os._exit(target(*args) or 0)


def run_ranks(
    target: Callable[..., int | None], *args: object, nproc: int = 1, timeout: float = 120
) -> list[int | None]:
    """``target(*args)`` in ``nproc`` forked processes (RANK, WORLD_SIZE, MASTER_* set, one torch
    thread each); its return value is the exit code. A process still running after ``timeout``
    seconds is killed. Returns the exit codes (negative: killed by that signal)."""
    _preimport()
    ctx = mp.get_context("fork")
    port = free_port()
    procs = [
        ctx.Process(target=_rank_main, args=(target, args, r, nproc, port)) for r in range(nproc)
    ]
    for p in procs:
        p.start()
    for p in procs:
        p.join(timeout=timeout)
        if p.is_alive():
            p.kill()
            p.join()
    return [p.exitcode for p in procs]
