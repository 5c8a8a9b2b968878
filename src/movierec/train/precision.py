"""Mixed precision for the training step: which dtype to autocast to, and the context for it.

What this module holds:

- :func:`native_bf16`: whether a device multiplies bfloat16 matrices in hardware (CUDA with
  bf16 support; a CPU with AMX tiles or AVX-512 BF16 instructions that PyTorch dispatches
  AVX-512 kernels on).
- :func:`resolve_precision`: ``fp32`` / ``bf16`` / ``auto`` -> the autocast dtype or None,
  with a one-line warning when bf16 was asked for and the device cannot do it natively.
- :func:`autocast`: the ``torch.autocast`` context for the training forward and loss (a no-op
  for fp32). Parameters, optimiser state and evaluation stay fp32: only the matrix products
  of the training step run in bf16, with fp32 accumulation.
- :func:`enable_tf32`: TF32 matrix products on CUDA (Ampere and later), where they are free.

Emulated bf16 (a CPU without AVX-512 BF16 or AMX) is slower than fp32, hence the fall-back.
"""

from __future__ import annotations

import contextlib
import warnings
from collections.abc import Iterator

import torch

from movierec.errors import ConfigError

PRECISIONS = ("fp32", "bf16", "auto")  # kept in step with movierec.config


def native_bf16(device: torch.device) -> bool:
    """Whether ``device`` has bfloat16 matrix units (not emulation)."""
    if device.type == "cuda":
        return bool(torch.cuda.is_available() and torch.cuda.is_bf16_supported())
    if device.type == "cpu":
        # ATEN_CPU_CAPABILITY=avx2 (or default) confines PyTorch to AVX2 kernels: the units
        # may exist but this process is told not to use them (how an AVX-512 machine stands in
        # for an AVX2-only one: benchmarks/bench.py --isa avx2).
        if not torch.backends.cpu.get_cpu_capability().startswith("AVX512"):
            return False
        cpu = getattr(torch, "cpu", None)
        checks = ("_is_amx_tile_supported", "_is_avx512_bf16_supported")
        return any(bool(getattr(cpu, name, lambda: False)()) for name in checks)
    return False


def resolve_precision(precision: str, device: torch.device) -> torch.dtype | None:
    """The dtype to autocast the training step to, or None for plain fp32.

    Args:
        precision: ``fp32``, ``bf16`` or ``auto`` (bf16 where :func:`native_bf16`).
        device: Where training runs.

    Raises:
        ConfigError: For an unknown precision.
    """
    if precision not in PRECISIONS:
        raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)} (got {precision!r})")
    if precision == "fp32":
        return None
    if native_bf16(device):
        return torch.bfloat16
    if precision == "bf16":
        warnings.warn(
            f"precision bf16 asked for, but {device.type} has no native bf16 matrix unit; "
            "training in fp32",
            RuntimeWarning,
            stacklevel=2,
        )
    return None


@contextlib.contextmanager
def autocast(device: torch.device, dtype: torch.dtype | None) -> Iterator[None]:
    """``torch.autocast`` to ``dtype`` on ``device``; nothing when ``dtype`` is None."""
    if dtype is None:
        yield
        return
    with torch.autocast(device_type=device.type, dtype=dtype):
        yield


def enable_tf32(device: torch.device) -> None:
    """Let fp32 matrix products use TF32 on CUDA (10-bit mantissa inputs, fp32 accumulate)."""
    if device.type == "cuda":
        torch.backends.cuda.matmul.allow_tf32 = True
        torch.backends.cudnn.allow_tf32 = True
