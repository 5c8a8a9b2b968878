"""Data-parallel training on PyTorch's own engine: torchrun + ``DistributedDataParallel``.

What this module holds:

- :func:`world`: rank, world size and local rank as torchrun's environment gives them
  (``RANK``, ``WORLD_SIZE``, ``LOCAL_RANK``); one process of one when run plainly.
- :func:`setup` / :func:`cleanup` / :func:`session`: ``init_process_group`` (``gloo`` on the
  CPU, ``nccl`` on CUDA, with a timeout so a dead or hung peer makes the others fail instead
  of waiting forever) and ``destroy_process_group``. No-ops outside torchrun.
- :func:`is_main`, :func:`all_reduce_sum`, :func:`broadcast_flag`, :func:`barrier`: the few
  collectives the training loop needs; each is a no-op (or the identity) in one process.
- :func:`shard`: which ratings one rank trains on in one epoch (a pure function).
- :func:`launch`: re-run ``movierec`` under ``torch.distributed.run`` (``train --nproc N``).

Environment knobs: ``MOVIEREC_DIST_TIMEOUT`` (seconds a collective may wait for a peer, default
60) and ``MOVIEREC_TEST_DIE_AT_STEP`` (a test hook: rank 1 exits with status 1 just before
that 0-based optimiser step, to check that a lost rank ends the whole job).
"""

from __future__ import annotations

import contextlib
import datetime
import os
import subprocess
import sys
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import torch
import torch.distributed as dist

DEFAULT_TIMEOUT_S = 60.0


@dataclass(frozen=True)
class World:
    """Where this process stands: ``rank`` of ``size`` processes, ``local_rank`` on its node."""

    rank: int = 0
    size: int = 1
    local_rank: int = 0

    @property
    def distributed(self) -> bool:
        return self.size > 1


def world() -> World:
    """The process group if one is up, else torchrun's environment, else one process of one."""
    if dist.is_available() and dist.is_initialized():
        local = int(os.environ.get("LOCAL_RANK", "0"))
        return World(dist.get_rank(), dist.get_world_size(), local)
    return World(
        int(os.environ.get("RANK", "0")),
        int(os.environ.get("WORLD_SIZE", "1")),
        int(os.environ.get("LOCAL_RANK", "0")),
    )


def is_distributed() -> bool:
    """True while a process group of more than one process is up."""
    return dist.is_available() and dist.is_initialized() and dist.get_world_size() > 1


def is_main() -> bool:
    """True on rank 0 (and in a plain single process): the one that writes and prints."""
    return world().rank == 0


def local_device(device: torch.device) -> torch.device:
    """Under torchrun, a bare ``cuda`` means this process's GPU: ``cuda:LOCAL_RANK``."""
    here = world()
    if device.type == "cuda" and device.index is None and here.distributed:
        return torch.device("cuda", here.local_rank)
    return device


def timeout_seconds() -> float:
    return float(os.environ.get("MOVIEREC_DIST_TIMEOUT", DEFAULT_TIMEOUT_S))


def setup(device: torch.device) -> bool:
    """Join torchrun's process group; returns whether this process is now distributed.

    ``gloo`` for the CPU, ``nccl`` for CUDA (each process on ``cuda:LOCAL_RANK``). Does nothing
    when ``WORLD_SIZE`` is absent or 1, or when a group is already up.
    """
    here = world()
    if not here.distributed or not dist.is_available():
        return False
    if dist.is_initialized():
        return True
    backend = "gloo"
    if device.type == "cuda":
        backend = "nccl"
        torch.cuda.set_device(local_device(device))
    dist.init_process_group(backend=backend, timeout=datetime.timedelta(seconds=timeout_seconds()))
    return True


def cleanup() -> None:
    """Leave the process group, if one is up."""
    if dist.is_available() and dist.is_initialized():
        dist.destroy_process_group()


@contextlib.contextmanager
def session(device: torch.device) -> Iterator[bool]:
    """:func:`setup` on entry and :func:`cleanup` on exit (only if this call set it up)."""
    already = dist.is_available() and dist.is_initialized()
    active = setup(device)
    try:
        yield active
    finally:
        if active and not already:
            cleanup()


def all_reduce_sum(tensor: torch.Tensor) -> torch.Tensor:
    """Sum ``tensor`` over all ranks, in place, and return it (unchanged in one process)."""
    if is_distributed():
        dist.all_reduce(tensor, op=dist.ReduceOp.SUM)
    return tensor


def broadcast_flag(flag: bool, device: torch.device | None = None) -> bool:
    """Rank 0's ``flag`` on every rank (``flag`` itself in one process)."""
    if not is_distributed():
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.broadcast(value, src=0)
    return bool(value.item())


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def shard(order: torch.Tensor, rank: int, size: int) -> torch.Tensor:
    """The rows of an epoch's permutation ``order`` that rank ``rank`` of ``size`` trains on.

    Every rank draws the same permutation and takes every ``size``-th row from its own
    offset: ``order[rank::size]``, cut to ``len(order) // size`` rows so all ranks take the
    same number of optimiser steps. The ragged tail (fewer than ``size`` rows, a different
    random few each epoch) is dropped rather than repeated, so no rating counts twice.
    Slicing each shard into batches of ``b`` rows makes global step ``k`` train on exactly
    ``order[k*b*size : (k+1)*b*size]``: the single-process batch of ``b*size`` rows.

    Args:
        order: ``[N]`` int64, a permutation of the training rows.
        rank: This process's rank, ``0 <= rank < size``.
        size: The world size.

    Returns:
        ``[N // size]`` int64: disjoint across ranks.
    """
    per_rank = len(order) // size
    return order[rank::size][:per_rank]


def die_at_step() -> int | None:
    """Test hook: the step at which rank 1 exits (``MOVIEREC_TEST_DIE_AT_STEP``), else None."""
    value = os.environ.get("MOVIEREC_TEST_DIE_AT_STEP")
    if value is None or world().rank != 1:
        return None
    return int(value)


def without_option(argv: Sequence[str], option: str) -> list[str]:
    """``argv`` less ``option VALUE`` and ``option=VALUE``."""
    kept: list[str] = []
    skip = False
    for arg in argv:
        if skip:
            skip = False
        elif arg == option:
            skip = True
        elif not arg.startswith(option + "="):
            kept.append(arg)
    return kept


def launch_command(nproc: int, argv: Sequence[str]) -> list[str]:
    """The ``torch.distributed.run`` command line that runs ``movierec *argv`` on ``nproc``."""
    return [
        sys.executable,
        "-m",
        "torch.distributed.run",
        "--standalone",
        "--nproc_per_node",
        str(nproc),
        "-m",
        "movierec",
        *argv,
    ]


def launch(nproc: int, argv: Sequence[str]) -> int:
    """Run ``movierec *argv`` as ``nproc`` local processes under torchrun; its exit status."""
    return subprocess.call(launch_command(nproc, argv))
