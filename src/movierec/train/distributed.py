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
- :func:`average_sparse_gradients`, :func:`broadcast_tensors`: what the row-wise embedding
  optimiser needs under DDP. DDP's bucketed all-reduce is dense (and NCCL has no sparse
  all-reduce), so the tables stay out of DDP and each step all-gathers every rank's touched
  rows (indices and values), then sums duplicates: the traffic follows the batch, not the
  table size, and every rank ends with the same averaged gradient.
- :func:`kill_switch`: the trainer hook behind ``MOVIEREC_TEST_DIE_AT_STEP`` (below).
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
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass
from typing import Any

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


def any_rank(flag: bool, device: torch.device | None = None) -> bool:
    """True on every rank when ``flag`` is True on any (``flag`` itself in one process)."""
    if not is_distributed():
        return flag
    value = torch.tensor([1 if flag else 0], dtype=torch.int32, device=device)
    dist.all_reduce(value, op=dist.ReduceOp.MAX)
    return bool(value.item())


def barrier() -> None:
    if is_distributed():
        dist.barrier()


def broadcast_tensors(tensors: Sequence[torch.Tensor]) -> None:
    """Overwrite ``tensors`` on every rank with rank 0's values (nothing in one process)."""
    if not is_distributed():
        return
    with torch.no_grad():
        for tensor in tensors:
            dist.broadcast(tensor.data, src=0)


def average_sparse_gradients(params: Sequence[torch.Tensor]) -> None:
    """Replace each parameter's gradient by its mean over all ranks, exchanging only rows.

    Each ``param.grad`` is a sparse COO gradient of a ``[rows, dim]`` table (None counts as
    no rows). Three collectives per step for all tables together: the row counts, then the
    padded row indices and the padded flattened values (all-gather needs equal sizes). Every
    rank concatenates the pieces in rank order and coalesces, so every rank computes the same
    sum in the same order and the tables stay identical across ranks.

    Dense gradients are all-reduced as they are (a model that reads a table's weight
    directly); that costs the table size, as DDP would.
    """
    if not is_distributed():
        return
    size = dist.get_world_size()
    sparse = [p for p in params if p.grad is None or p.grad.is_sparse]
    for param in params:
        if param.grad is not None and not param.grad.is_sparse:
            dist.all_reduce(param.grad, op=dist.ReduceOp.SUM)
            param.grad.div_(size)
    if not sparse:
        return
    device = sparse[0].device
    pieces = []
    for param in sparse:
        if param.grad is None:
            rows = torch.empty(0, dtype=torch.int64, device=device)
            values = torch.empty(0, param.shape[1], dtype=param.dtype, device=device)
        else:
            grad = param.grad.coalesce()  # fewer rows to send
            rows, values = grad.indices()[0], grad.values()
        pieces.append((rows, values))
    counts = torch.tensor([rows.numel() for rows, _ in pieces], dtype=torch.int64, device=device)
    all_counts = [torch.empty_like(counts) for _ in range(size)]
    dist.all_gather(all_counts, counts)
    widths = [param.shape[1] for param in sparse]
    totals = torch.stack(all_counts)  # [size, tables]
    n_rows = int(totals.sum(1).max())
    n_values = int((totals * torch.tensor(widths, device=device)).sum(1).max())
    rows_out = torch.zeros(n_rows, dtype=torch.int64, device=device)
    values_out = torch.zeros(n_values, dtype=sparse[0].dtype, device=device)
    local_rows = torch.cat([rows for rows, _ in pieces])
    local_values = torch.cat([values.reshape(-1) for _, values in pieces])
    rows_out[: local_rows.numel()] = local_rows
    values_out[: local_values.numel()] = local_values
    gathered_rows = [torch.empty_like(rows_out) for _ in range(size)]
    gathered_values = [torch.empty_like(values_out) for _ in range(size)]
    dist.all_gather(gathered_rows, rows_out)
    dist.all_gather(gathered_values, values_out)
    counts_host = totals.tolist()
    per_table: list[tuple[list[torch.Tensor], list[torch.Tensor]]] = [([], []) for _ in sparse]
    for rank in range(size):
        row_at = value_at = 0
        for table, (count, width) in enumerate(zip(counts_host[rank], widths, strict=True)):
            per_table[table][0].append(gathered_rows[rank][row_at : row_at + count])
            flat = gathered_values[rank][value_at : value_at + count * width]
            per_table[table][1].append(flat.view(count, width))
            row_at += count
            value_at += count * width
    for param, (rows, values) in zip(sparse, per_table, strict=True):
        param.grad = torch.sparse_coo_tensor(
            torch.cat(rows).unsqueeze(0), torch.cat(values) / size, param.shape
        ).coalesce()


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


def kill_switch() -> list[Callable[[Any], None]]:
    """Before-step hooks for :func:`die_at_step`: one on the rank that dies, none elsewhere.

    The hook gets the :class:`movierec.train.trainer.Trainer` and ends the process abruptly
    (``os._exit``, no cleanup, as a crashed rank would) just before step ``trainer.step``.
    """
    die_at = die_at_step()
    if die_at is None:
        return []

    def die(trainer: Any) -> None:
        if trainer.step == die_at:
            os._exit(1)

    return [die]


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
