"""A cheaper dropout for CPU training (``RunOptions.fast_dropout``, on by default).

The models keep plain ``nn.Dropout``; :func:`cheap_dropout` shadows the instances' ``forward``
for one fit only, so saved runs and evaluation never see it. A ``ReLU`` followed by a
``Dropout`` in an ``nn.Sequential`` (the EmbeddingNet's hidden layers) becomes one mask: the
ReLU passes its input through and the dropout also zeroes what the ReLU would have, which saves
the ReLU's forward and backward kernels with the same values and gradients. ``--precision fp32``
turns it all off (with the other speed options): the exact path PyTorch's own modules take.
"""

from __future__ import annotations

import contextlib
import functools
import itertools
from collections.abc import Iterator
from typing import TYPE_CHECKING

import torch

if TYPE_CHECKING:
    from movierec.config import RunOptions

_HALF_TYPES = (torch.bfloat16, torch.float16)
# Each float type's mask is built on its bit pattern, read as the signed integer of its width.
_BIT_VIEWS = {torch.bfloat16: torch.int16, torch.float16: torch.int16, torch.float32: torch.int32}


def _dropout_forward(
    module: torch.nn.Dropout,
    masks: dict[torch.dtype, tuple[int, int]],
    x: torch.Tensor,
    *,
    rectify: bool = False,
) -> torch.Tensor:
    """Inverted dropout with masks cut from 64-bit random words, four per word.

    PyTorch's CPU dropout draws its mask with ``bernoulli_``, one generator call per element,
    which costs about as much as the layer's matrix product here. One ``random_()`` int64 word
    gives four 15-bit uniform numbers (a 16-bit slice with its top bit masked off, since the
    word's own top bit is always 0).

    Under autocast the input is cast to the autocast dtype first: the layer after a dropout is a
    matrix product that casts it anyway, and the mask then costs half the memory traffic forward
    and backward. The mask is built with integer operations on its bit pattern (0 or the
    scale), never through a bool tensor (whose conversion to float costs more than the mask's
    other passes together). A bf16/fp16 scale is rounded to the half type, so the keep threshold
    is chosen to make the mask's mean exactly 1 (to ``2**-15``) and the dropped share differs
    from ``p`` by the scale's rounding (0.0229 for 0.02, 0.2515 for 0.25, exactly 0.5 for 0.5).
    In float32 an element is kept when its number is >= ``round(p * 2**15)``: the rate is ``p``
    to within ``2**-16``.

    With ``rectify`` the input is the pre-activation of a ReLU that now passes it through: the
    mask also drops every element whose sign bit is set (a float's pattern read as a signed
    integer is negative exactly then). Forward values and gradients equal ReLU-then-dropout's,
    except at a pre-activation of exactly -0.0 or +0.0, where the gradient is the scale
    instead of 0 (a subgradient of the ReLU there).
    """
    if not module.training or module.p == 0.0:
        return torch.relu(x) if rectify else x
    if module.p == 1.0:
        return x * 0.0
    device = x.device.type
    if torch.is_autocast_enabled(device) and x.is_floating_point():
        x = x.to(torch.get_autocast_dtype(device))
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()
    draws = words.view(torch.int16)[:n].view(x.shape) & 0x7FFF
    if x.dtype in masks:
        threshold, bits = masks[x.dtype]
        view = _BIT_VIEWS[x.dtype]
        dropped = draws.sub_(threshold).bitwise_right_shift_(15)  # -1 (all ones) where dropped
        if view is not torch.int16:
            dropped = dropped.to(view)  # widening stays -1 / 0
        if rectify:  # and where the sign bit is set
            dropped.bitwise_or_(x.view(view).bitwise_right_shift(8 * x.element_size() - 1))
        return x * dropped.bitwise_not_().bitwise_and_(bits).view(x.dtype)
    keep = draws >= round(module.p * 32768)  # float64: through a bool mask
    if rectify:
        keep.logical_and_(x > 0)
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - module.p))


def _masks(p: float) -> dict[torch.dtype, tuple[int, int]]:
    """Per float type, the keep threshold over 15-bit draws and the scale's bit pattern (as the
    signed integer of the type's width).

    Worked out once per layer when the fit starts (not per step, and not where a compiled step
    would trace it). Half types: the scale ``1 / (1 - p)`` rounded to the type, and the threshold
    that keeps ``1 / scale`` of the elements, so that the mask's mean is 1. Float32: the
    threshold ``round(p * 2**15)`` and the scale in float32, as PyTorch's dropout scales.
    """
    if not 0.0 < p < 1.0:
        return {}
    out = {}
    for dtype in _HALF_TYPES:
        scale = torch.tensor(1.0 / (1.0 - p), dtype=dtype)
        threshold = round(32768 * (1.0 - 1.0 / float(scale)))
        out[dtype] = (threshold, int(scale.view(torch.int16)))
    scale = torch.tensor(1.0 / (1.0 - p), dtype=torch.float32)
    out[torch.float32] = (round(p * 32768), int(scale.view(torch.int32)))
    return out


def _pass_through(x: torch.Tensor) -> torch.Tensor:
    """A fused ReLU's forward: the dropout after it applies the rectification."""
    return x


def _fusable_relus(model: torch.nn.Module) -> dict[torch.nn.Dropout, torch.nn.ReLU]:
    """Each ``Dropout`` that directly follows a ``ReLU`` in an ``nn.Sequential``, with the ReLU.

    Only modules used once in ``model``: a ReLU instance shared by two places must keep its own
    forward for the place not followed by a dropout.
    """
    uses: dict[int, int] = {}
    for _, module in model.named_modules(remove_duplicate=False):
        uses[id(module)] = uses.get(id(module), 0) + 1
    pairs = {}
    for sequence in model.modules():
        if not isinstance(sequence, torch.nn.Sequential):
            continue
        for first, second in itertools.pairwise(sequence):
            if (
                type(first) is torch.nn.ReLU
                and type(second) is torch.nn.Dropout
                and uses[id(first)] == uses[id(second)] == 1
            ):
                pairs[second] = first
    return pairs


def compiles_safely(options: RunOptions, device: torch.device) -> bool:
    """Whether the cheap masks may run in this fit: not inside a ``torch.compile``'d step on a
    CPU that PyTorch runs with AVX2 kernels.

    Measured (torch 2.13, ml-100k u1, the article net, ``ATEN_CPU_CAPABILITY=avx2``): the
    compiled step with these masks gives a NaN loss in the first epoch, with PyTorch's dropout
    or with Inductor's vectorisation off it trains; on AVX-512 kernels both train. So a compiled
    fit there keeps PyTorch's dropout (slower masks, right numbers).
    """
    if not options.compile or device.type != "cpu":
        return True
    return torch.backends.cpu.get_cpu_capability().startswith("AVX512")


@contextlib.contextmanager
def cheap_dropout(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Give every ``nn.Dropout`` of ``model`` the cheaper mask draw inside the block, and fold
    the ``ReLU`` just before one into its mask.

    The models keep their plain modules (saved runs and evaluation are unaffected); the
    instances' ``forward`` is shadowed for the fit and the class's restored afterwards.
    """
    modules = [m for m in model.modules() if type(m) is torch.nn.Dropout] if enabled else []
    relus = _fusable_relus(model) if enabled else {}
    for module in modules:
        module.forward = functools.partial(
            _dropout_forward, module, _masks(module.p), rectify=module in relus
        )
    for relu in relus.values():
        relu.forward = _pass_through
    try:
        yield
    finally:
        for module in (*modules, *relus.values()):
            del module.forward
