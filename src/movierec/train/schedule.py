"""The learning-rate schedule: a pure function of the optimiser step (nanoGPT's shape).

:class:`movierec.train.trainer.Trainer` wraps it in a ``LambdaLR`` so the scheduler's position
is the only state a checkpoint needs; tests call :func:`learning_rate` directly.
"""

from __future__ import annotations

import math

from movierec.config import TrainConfig


def learning_rate(step: int, total_steps: int, steps_per_epoch: int, config: TrainConfig) -> float:
    """The learning rate at optimiser step ``step`` (0-based): a pure function, easy to test.

    - ``constant``: ``lr`` throughout.
    - ``one-cycle``: cosine warm-up from ``lr/25`` to ``lr`` over the first 30% of the steps,
      then cosine annealing to ``lr/1e4``.
    - ``cosine-restarts``: cosine from ``lr`` to ``lr/100`` over ``restart_epochs`` epochs, then
      restart with a cycle twice as long (SGDR).
    """
    base = config.lr
    if config.schedule == "constant":
        return base
    if config.schedule == "one-cycle":
        warm = max(1, int(0.3 * total_steps))
        if step < warm:
            start = base / 25.0
            return start + (base - start) * (1 - math.cos(math.pi * step / warm)) / 2
        progress = min(1.0, (step - warm) / max(1, total_steps - warm))
        low = base / 1e4
        return low + (base - low) * (1 + math.cos(math.pi * progress)) / 2
    cycle = config.restart_epochs * steps_per_epoch
    position = step
    while position >= cycle:
        position -= cycle
        cycle *= 2
    low = base / 100.0
    return low + (base - low) * (1 + math.cos(math.pi * position / cycle)) / 2
