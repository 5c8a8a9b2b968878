"""Training: one loop for every trainable model.

What the package holds:

- :mod:`~movierec.train.loop`: :func:`fit`, the epoch driver (early stopping, history,
  checkpoints, signals, the ``on_epoch`` callback), :class:`EpochRecord`, :class:`FitResult`,
  :class:`ChosenEpochs` (a refit's epoch counts).
- :mod:`~movierec.train.trainer`: :class:`Trainer`: optimiser, schedule, precision, negative
  sampler and DDP wrapper of one fit; ``train_epoch()``; ``state_dict()`` / ``load_state_dict()``.
- :mod:`~movierec.train.steps`: each objective's step, by name; :mod:`~movierec.train.objectives`:
  the losses; :mod:`~movierec.train.negatives`: the negative sampler.
- :mod:`~movierec.train.optim` (row-wise Adam), :mod:`~movierec.train.precision` (bf16
  autocast), :mod:`~movierec.train.dropout` (the cheaper dropout mask),
  :mod:`~movierec.train.schedule` (the learning rate as a function of the step).
- :mod:`~movierec.train.checkpoint` (the checkpoint file), :mod:`~movierec.train.distributed`
  (torchrun + DDP), :mod:`~movierec.train.device` (device and threads),
  :mod:`~movierec.train.validation` (what early stopping measures).
"""

from movierec.errors import TrainingInterrupted
from movierec.train.checkpoint import TrainingState, load_checkpoint, save_checkpoint
from movierec.train.device import configure_threads, resolve_device
from movierec.train.dropout import cheap_dropout
from movierec.train.loop import ChosenEpochs, EpochRecord, FitResult, fit
from movierec.train.schedule import learning_rate
from movierec.train.trainer import Trainer
from movierec.train.validation import predict_tensors, validation_ndcg

__all__ = [
    "ChosenEpochs",
    "EpochRecord",
    "FitResult",
    "Trainer",
    "TrainingInterrupted",
    "TrainingState",
    "cheap_dropout",
    "configure_threads",
    "fit",
    "learning_rate",
    "load_checkpoint",
    "predict_tensors",
    "resolve_device",
    "save_checkpoint",
    "validation_ndcg",
]
