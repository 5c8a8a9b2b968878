"""A cheaper dropout for CPU training (``RunOptions.fast_dropout``, on by default).

The models keep plain ``nn.Dropout``; :func:`cheap_dropout` shadows the instances' ``forward``
for one fit only, so saved runs and evaluation never see it. ``--precision fp32`` turns it off
(with the other speed options): the exact path PyTorch's own dropout takes.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch

_HALF_TYPES = (torch.bfloat16, torch.float16)


def _dropout_forward(
    module: torch.nn.Dropout, half_masks: dict[torch.dtype, tuple[int, int]], x: torch.Tensor
) -> torch.Tensor:
    """Inverted dropout with masks cut from 64-bit random words, four per word.

    PyTorch's CPU dropout draws its mask with ``bernoulli_``, one generator call per element,
    which costs about as much as the layer's matrix product here. One ``random_()`` int64 word
    gives four 15-bit uniform numbers (a 16-bit slice with its top bit masked off, since the
    word's own top bit is always 0).

    Under autocast the input is cast to the autocast dtype first: the layer after a dropout is a
    matrix product that casts it anyway, and the mask then costs half the memory traffic forward
    and backward. A bf16/fp16 mask is built with integer operations on its bit pattern (0 or
    the scale), never through a bool tensor (whose conversion costs more than the product).
    Its scale is rounded to the half type, so the keep threshold is chosen to make the mask's
    mean exactly 1 (to ``2**-15``) and the dropped share differs from ``p`` by the scale's
    rounding (0.0229 for 0.02, 0.2515 for 0.25, exactly 0.5 for 0.5). In float32 an element is
    kept when its number is >= ``round(p * 2**15)``: the rate is ``p`` to within ``2**-16``.
    """
    if not module.training or module.p == 0.0:
        return x
    if module.p == 1.0:
        return x * 0.0
    device = x.device.type
    if torch.is_autocast_enabled(device) and x.is_floating_point():
        x = x.to(torch.get_autocast_dtype(device))
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()
    draws = words.view(torch.int16)[:n].view(x.shape) & 0x7FFF
    if x.dtype in half_masks:
        threshold, bits = half_masks[x.dtype]
        dropped = draws.sub_(threshold).bitwise_right_shift_(15)  # -1 (all ones) where dropped
        return x * dropped.bitwise_not_().bitwise_and_(bits).view(x.dtype)
    keep = draws >= round(module.p * 32768)
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - module.p))


def _half_masks(p: float) -> dict[torch.dtype, tuple[int, int]]:
    """Per half type, the keep threshold over 15-bit draws and the scale's int16 bit pattern.

    Worked out once per layer when the fit starts (not per step, and not where a compiled step
    would trace it): the scale ``1 / (1 - p)`` rounded to the type, and the threshold that keeps
    ``1 / scale`` of the elements, so that the mask's mean is 1.
    """
    if not 0.0 < p < 1.0:
        return {}
    out = {}
    for dtype in _HALF_TYPES:
        scale = torch.tensor(1.0 / (1.0 - p), dtype=dtype)
        threshold = round(32768 * (1.0 - 1.0 / float(scale)))
        out[dtype] = (threshold, int(scale.view(torch.int16)))
    return out


@contextlib.contextmanager
def cheap_dropout(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Give every ``nn.Dropout`` of ``model`` the cheaper mask draw inside the block.

    The models keep their plain ``nn.Dropout`` (saved runs and evaluation are unaffected);
    the instance's ``forward`` is shadowed for the fit and the class's restored afterwards.
    """
    modules = [m for m in model.modules() if type(m) is torch.nn.Dropout] if enabled else []
    for module in modules:
        module.forward = functools.partial(_dropout_forward, module, _half_masks(module.p))
    try:
        yield
    finally:
        for module in modules:
            del module.forward
