"""Where training runs: the device a run asks for and how many CPU threads it takes."""

from __future__ import annotations

import os

import torch

from movierec.errors import ConfigError


def resolve_device(name: str) -> torch.device:
    """``auto`` picks CUDA when PyTorch sees a GPU, else the CPU."""
    if name == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    try:
        device = torch.device(name)
    except RuntimeError:
        raise ConfigError(f"unknown device {name!r}; use auto, cpu, cuda or cuda:N") from None
    if device.type == "cuda" and not torch.cuda.is_available():
        raise ConfigError(
            f"device {name!r} asked for, but PyTorch sees no CUDA GPU; use --device cpu"
        )
    return device


def configure_threads(threads: int | None) -> None:
    """Use every core by default (PyTorch sometimes guesses fewer inside containers).

    Under torchrun, the processes on one node share its cores: each takes its share.
    """
    local_world = int(os.environ.get("LOCAL_WORLD_SIZE", "1"))
    count = threads or (len(os.sched_getaffinity(0)) or 1) // max(1, local_world)
    torch.set_num_threads(max(1, count))
