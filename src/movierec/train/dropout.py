"""A cheaper dropout mask for CPU training (``RunOptions.fast_dropout``, opt-in).

The models keep plain ``nn.Dropout``; :func:`cheap_dropout` shadows the instances' ``forward``
for one fit only, so saved runs and evaluation never see it.
"""

from __future__ import annotations

import contextlib
import functools
from collections.abc import Iterator

import torch


def _dropout_forward(module: torch.nn.Dropout, x: torch.Tensor) -> torch.Tensor:
    """Inverted dropout with masks cut from 64-bit random words, four per word.

    PyTorch's CPU dropout draws its mask with ``bernoulli_``, one generator call per element,
    which costs about as much as the layer's matrix product here. One ``random_()`` int64 word
    gives four 15-bit uniform numbers (a 16-bit slice with its top bit masked off); an element
    is kept when its number is >= ``round(p * 2**15)``, so the rate is ``p`` to within
    ``2**-16``. Multiplying by a float mask (not a bool one) keeps the product on the fast
    same-dtype path.
    """
    if not module.training or module.p == 0.0:
        return x
    if module.p == 1.0:
        return x * 0.0
    n = x.numel()
    words = torch.empty((n + 3) // 4, dtype=torch.int64, device=x.device).random_()
    draws = words.view(torch.int16)[:n].view(x.shape)
    keep = (draws & 0x7FFF) >= round(module.p * 32768)
    return x * keep.to(x.dtype).mul_(1.0 / (1.0 - module.p))


@contextlib.contextmanager
def cheap_dropout(model: torch.nn.Module, enabled: bool = True) -> Iterator[None]:
    """Give every ``nn.Dropout`` of ``model`` the cheaper mask draw inside the block.

    The models keep their plain ``nn.Dropout`` (saved runs and evaluation are unaffected);
    the instance's ``forward`` is shadowed for the fit and the class's restored afterwards.
    """
    modules = [m for m in model.modules() if type(m) is torch.nn.Dropout] if enabled else []
    for module in modules:
        module.forward = functools.partial(_dropout_forward, module)
    try:
        yield
    finally:
        for module in modules:
            del module.forward
