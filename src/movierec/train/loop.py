"""The one training loop every trainable model goes through: :func:`fit`, the epoch driver.

:class:`movierec.train.trainer.Trainer` owns the optimiser, schedule, sampler and the steps of an
epoch (the objective, :mod:`movierec.train.steps`, plus the model's own per-batch penalty; Adam
with weight decay; mini-batches sliced from a shuffled permutation of whole tensors). This module
only drives it: epochs, validation, early stopping with the best weights restored (on validation
RMSE for the ``rating`` objective, on validation NDCG@10 with training items masked for the
ranking objectives; for ``joint`` with a ranking tower, each half on its own measure), the
per-epoch history, checkpoints (after every epoch, every
``RunOptions.checkpoint_minutes`` within one, and on Ctrl-C/SIGTERM) and the ``on_epoch``
callback. A fit whose epoch counts were chosen beforehand (a refit on the whole training part,
:class:`ChosenEpochs`) keeps the weights of those epochs instead of judging a validation score.

Under torchrun (:mod:`movierec.train.distributed`) the same loop runs data-parallel: validation
runs on the whole validation split on every rank, rank 0 decides early stopping, and only rank 0
checkpoints.

Speed: by default (``RunOptions.precision = "auto"``) the step autocasts to bf16 where the device
has native bf16, uses PyTorch's fused Adam and the cheaper dropout masks
(:mod:`movierec.train.dropout`); ``precision = "fp32"`` is the exact path of PyTorch's plain
modules. Opt-in: ``TrainConfig.embedding_optimizer = "row-wise"`` (sparse embedding gradients
and a lazy row-wise Adam, :mod:`movierec.train.optim`; under DDP the tables stay out of DDP's
buckets and their touched rows are exchanged by
:func:`movierec.train.distributed.average_sparse_gradients`) and ``RunOptions.compile``
(``torch.compile`` of the forward and loss). On CUDA the data stays on the device and the loop
synchronises with the host once per epoch.
"""

from __future__ import annotations

import contextlib
import copy
import logging
import math
import signal
import sys
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

import torch
from tqdm.auto import tqdm

from movierec.config import RunOptions, TrainConfig
from movierec.data.tensors import RatingTensors
from movierec.errors import ConfigError, TrainingError, TrainingInterrupted
from movierec.models.base import RatingModel
from movierec.train import distributed, optim
from movierec.train.checkpoint import TrainingState, save_checkpoint
from movierec.train.device import resolve_device
from movierec.train.dropout import cheap_dropout, compiles_safely
from movierec.train.objectives import predicts_ratings, selects_on_ndcg
from movierec.train.trainer import Trainer
from movierec.train.validation import VALID_K, validate

# A child of the "movierec" logger: handlers set there see every epoch line.
log = logging.getLogger(__name__)


@dataclass(frozen=True)
class EpochRecord:
    """One row of the training history."""

    epoch: int
    train_loss: float
    valid_loss: float | None
    valid_rmse: float | None
    lr: float
    seconds: float
    valid_ndcg: float | None = None


@dataclass(frozen=True)
class ChosenEpochs:
    """Epoch counts chosen by an earlier validation run, for a fit with nothing to judge.

    The refit on the whole training part (:func:`movierec.pipeline.fit_recommender`) trains
    :attr:`total` epochs and keeps the weights after ``best`` of them; with a ranking tower the
    rating half keeps its weights after ``rating`` epochs, so each half ends at the count its
    own validation measure chose, as in the validation run.
    """

    best: int
    rating: int | None = None

    @property
    def total(self) -> int:
        """How many epochs the fit trains."""
        return max(self.best, self.rating or 0)

    def scores(self, epoch: int) -> tuple[float | None, float | None]:
        """The (score, rating-half score) the loop judges at ``epoch``: 0 at a chosen epoch
        (better than any earlier, so its weights are kept), None (not judged) elsewhere."""
        return (0.0 if epoch == self.best else None, 0.0 if epoch == self.rating else None)


@dataclass
class FitResult:
    """What training produced besides the weights (which stay in the model)."""

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
    rating_best_epoch: int | None = None
    train_seconds: float = 0.0
    ratings_seen: int = 0
    world_size: int = 1
    effective_batch_size: int = 0

    @property
    def ratings_per_second(self) -> float:
        """Training throughput: ratings through optimiser steps per second of stepping."""
        return self.ratings_seen / self.train_seconds if self.train_seconds > 0 else 0.0

    def history_rows(self) -> list[dict[str, float | int | None]]:
        return [asdict(record) for record in self.history]


def fit(
    model: RatingModel,
    train: RatingTensors,
    valid: RatingTensors | None,
    config: TrainConfig,
    options: RunOptions | None = None,
    on_epoch: Callable[[EpochRecord], None] | None = None,
    *,
    checkpoint: Path | None = None,
    resume: TrainingState | None = None,
    context: dict[str, Any] | None = None,
    chosen: ChosenEpochs | None = None,
) -> FitResult:
    """Train ``model`` in place and return its history.

    Args:
        model: Any :class:`RatingModel`; ``init_from_data`` runs first, and models without
            trainable parameters stop there.
        train: Encoded training ratings.
        valid: Encoded validation ratings (carved from the training part) for early stopping,
            or None to train for ``config.epochs`` without stopping early.
        config: Hyperparameters, the objective among them.
        options: Seed, device and progress display.
        on_epoch: Called with each epoch's record after validation.
        checkpoint: Where to write checkpoints: after every epoch, every
            ``options.checkpoint_minutes`` within an epoch, and on Ctrl-C/SIGTERM (then
            :class:`TrainingInterrupted` is raised). None: no checkpoints.
        resume: A checkpoint's state to continue from, exactly where it stopped (same
            permutation, position, optimiser moments and RNG streams).
        context: What is being trained, stored in checkpoints for ``--resume``.
        chosen: Epoch counts chosen beforehand (``valid`` is then None and ``config.epochs``
            is ``chosen.total``): the weights kept are those after ``chosen.best`` epochs
            (the rating half's after ``chosen.rating`` with a ranking tower), and
            ``best_epoch`` / ``rating_best_epoch`` report them.

    Returns:
        The history, best epoch and timing. The model ends on its best validation weights
        (or those of the chosen epochs).
    """
    options = options or RunOptions()
    row_wise = config.embedding_optimizer == "row-wise"
    if row_wise and options.compile:
        # Measured: inductor's compiled backward fails on sparse embedding gradients (a stride
        # assertion in fp32, an internal assert in bf16) for every model with embeddings.
        raise ConfigError(
            "torch.compile cannot train with embedding_optimizer = 'row-wise' (PyTorch's "
            "compiled backward fails on sparse embedding gradients); drop --compile, or use "
            "embedding_optimizer = 'dense'"
        )
    device = distributed.local_device(resolve_device(options.device))
    ranks = distributed.world() if distributed.is_distributed() else distributed.World()
    result = FitResult(world_size=ranks.size, effective_batch_size=config.batch_size)
    started = time.perf_counter()
    model.to(device)
    train = train.to(device)
    valid = valid.to(device) if valid is not None and len(valid) else None
    model.init_from_data(train.user_idx, train.item_idx, train.rating)
    result.train_seconds = time.perf_counter() - started
    if not model.trainable or config.epochs == 0 or len(train) == 0:
        model.eval()
        return result
    log.info(
        "training %s on %s ratings (%s validation) for up to %d epochs, objective %s, on %s",
        model.name, f"{len(train):,}", f"{len(valid):,}" if valid is not None else "no",
        config.epochs, config.objective, device,
    )  # fmt: skip
    split_at = model.ranking_only_prefix() if config.objective == "joint" else None
    every = options.checkpoint_minutes * 60.0
    run = _Run(result, checkpoint, context or {}, every, split_at, chosen)
    # The tables' gradients are sparse for this fit only; the flags are restored on exit.
    with (
        optim.sparse_embeddings(model, enabled=row_wise),
        cheap_dropout(model, enabled=options.use_fast_dropout and compiles_safely(options, device)),
    ):
        trainer = Trainer(
            model, train, config, options, device, ranks,
            before_step=distributed.kill_switch(), after_step=[run.after_step],
        )  # fmt: skip
        if ranks.distributed:
            result.effective_batch_size = trainer.local_batch * ranks.size
        if resume is not None:
            trainer.load_state_dict(vars(resume))
            run.restore(resume)
        with run.stop.watch(enabled=checkpoint is not None):
            _epochs(trainer, valid, run, on_epoch)
    best = run.final_state()
    if best is not None:
        model.load_state_dict(best)
    elif trainer.average is not None:  # no epoch was judged: the average of the last steps
        trainer.average.copy_to_model()
    log.info(
        "trained %d epochs in %.1f s; best epoch %s",
        len(result.history), result.train_seconds, result.best_epoch,
    )  # fmt: skip
    model.eval()
    return result


def _epochs(
    trainer: Trainer,
    valid: RatingTensors | None,
    run: _Run,
    on_epoch: Callable[[EpochRecord], None] | None,
) -> None:
    """Train epoch after epoch until ``config.epochs`` or early stopping."""
    config, result = trainer.config, run.result
    ranking = selects_on_ndcg(config.objective)
    rmse = predicts_ratings(config.objective)
    for epoch in range(trainer.epoch, config.epochs + 1):
        wall_start = run.segment_start = time.perf_counter()
        first_position, lr_now = trainer.position, trainer.lr
        train_loss = trainer.train_epoch()
        _check_finite(trainer, epoch, train_loss)
        result.train_seconds += time.perf_counter() - run.segment_start
        result.ratings_seen += trainer.epoch_rows - first_position
        with trainer.averaged():  # with ema_decay: the averaged weights are judged and kept
            valid_loss, valid_rmse, valid_ndcg = validate(
                trainer.model, trainer.train, valid, ranking, rmse=rmse
            )
            seconds = time.perf_counter() - wall_start
            record = EpochRecord(
                epoch, train_loss, valid_loss, valid_rmse, lr_now, seconds, valid_ndcg
            )
            result.history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            _show(
                record, "MSE" if not ranking else config.objective.upper(), trainer.options.progress
            )
            score = valid_rmse if valid_ndcg is None else -valid_ndcg
            rating_score = valid_rmse
            if run.chosen is not None:  # a refit: keep the weights of the chosen epochs
                score, rating_score = run.chosen.scores(epoch)
            finished = run.judge(score, epoch, trainer.model, config.patience)
            if run.rating is not None:  # a ranking tower: the rating half stops on its own
                rating_finished = run.rating.judge(
                    rating_score, epoch, trainer.model, config.patience
                )
                finished = finished and rating_finished
        if trainer.world.distributed:
            # Every rank validated the same weights on the whole split; rank 0 decides.
            finished = distributed.broadcast_flag(finished, trainer.device)
        run.save(trainer)  # the next epoch's start
        if run.stop.requested:
            raise _interrupted(run.stop.requested, f"after epoch {epoch}", run.checkpoint)
        if finished:
            break


def _check_finite(trainer: Trainer, epoch: int, train_loss: float) -> None:
    """A TrainingError when the epoch's loss or any weight is NaN or infinite: a diverged model
    answers NaN to every question, so it is stopped here rather than evaluated and saved.

    Under torchrun every rank stops together when any rank's loss diverged (no rank is left
    waiting in a collective).
    """
    what = None
    if math.isfinite(train_loss):
        broken = [n for n, p in trainer.model.named_parameters() if not bool(p.isfinite().all())]
        if broken:
            what = f"weights {', '.join(broken[:3])} are no longer finite numbers"
    else:
        what = f"the training loss is {train_loss}"
    if trainer.world.distributed and distributed.any_rank(what is not None, trainer.device):
        what = what or "another process's training loss or weights are no longer finite"
    if what is None:
        return
    config = trainer.config
    raise TrainingError(
        f"training diverged in epoch {epoch}: {what}; try a smaller lr in [train] (now "
        f"{config.lr:g}) or a larger batch_size; nothing was saved as a run"
    )


def _show(record: EpochRecord, loss_name: str, progress: bool) -> None:
    """The one progress line of an epoch: on stderr beside the progress bars (with
    ``progress``), and always to the ``movierec`` logger at INFO, for notebooks and services
    that configure logging rather than read stderr."""
    shown = f"valid RMSE {record.valid_rmse:.4f}" if record.valid_rmse is not None else ""
    if record.valid_ndcg is not None:  # joint runs show both
        shown = f"{shown}  valid NDCG@{VALID_K} {record.valid_ndcg:.4f}".lstrip()
    line = f"epoch {record.epoch:3d}  train {loss_name} {record.train_loss:.4f}  {shown}".rstrip()
    log.info(line)
    if progress:
        tqdm.write(line, file=sys.stderr)


class _Best:
    """Early stopping on one measure (minimised): the best score, its epoch and weights."""

    def __init__(self) -> None:
        self.score, self.stale, self.epoch = math.inf, 0, None
        self.state: dict[str, torch.Tensor] | None = None

    def judge(self, score: float | None, epoch: int, model: RatingModel, patience: int) -> bool:
        """Record the epoch's ``score``; True when patience has run out."""
        if score is None:
            return False
        if score < self.score:
            self.score, self.stale, self.epoch = score, 0, epoch
            self.state = copy.deepcopy(model.state_dict())
            return False
        self.stale += 1
        return bool(patience and self.stale >= patience)


class _Run:
    """The loop's own state: history and timing, early stopping, checkpoint cadence, signals.

    Early stopping minimises: RMSE for ratings, -NDCG for ranking objectives. With a ranking
    tower (``split_at``, the prefix of its parameters) ``joint`` training tracks the rating half
    on RMSE beside it (``rating``), stops when both have run out of patience, and ends with each
    half's weights from its own best epoch. With ``chosen`` the epochs are not judged: the
    weights kept are those of the chosen epochs.
    """

    def __init__(
        self,
        result: FitResult,
        checkpoint: Path | None,
        context: dict[str, Any],
        every: float,
        split_at: str | None = None,
        chosen: ChosenEpochs | None = None,
    ) -> None:
        self.result, self.checkpoint, self.context, self.every = result, checkpoint, context, every
        self.best_score, self.stale = math.inf, 0
        self.best_state: dict[str, torch.Tensor] | None = None
        self.split_at = split_at
        self.rating = _Best() if split_at is not None else None
        self.chosen = chosen  # epochs chosen beforehand: kept by epoch, not by a score
        self.stop = _StopFlag()
        self.last_saved = time.monotonic()
        self.segment_start = time.perf_counter()  # where the epoch's unbooked stepping began

    def restore(self, resume: TrainingState) -> None:
        """Take the history, early-stopping state and timing from a checkpoint."""
        result = self.result
        result.history = [EpochRecord(**row) for row in resume.history]
        result.best_epoch, self.stale = resume.best_epoch, resume.stale
        self.best_score = math.inf if resume.best_metric is None else resume.best_metric
        self.best_state = resume.best_model
        result.ratings_seen, result.train_seconds = resume.ratings_seen, resume.train_seconds
        if self.rating is not None and resume.rating_best_model is not None:
            rating = self.rating
            rating.score, rating.epoch = resume.rating_best_metric, resume.rating_best_epoch
            rating.state, rating.stale = resume.rating_best_model, resume.rating_stale
            result.rating_best_epoch = rating.epoch

    def final_state(self) -> dict[str, torch.Tensor] | None:
        """The weights training ends on: the best epoch's, or with a tower each half's best."""
        rating = self.rating
        if rating is None or rating.state is None or self.best_state is None:
            return self.best_state
        self.result.rating_best_epoch = rating.epoch
        prefix = self.split_at or ""
        return {
            key: (self.best_state if key.startswith(prefix) else rating.state)[key]
            for key in rating.state
        }

    def judge(self, score: float | None, epoch: int, model: RatingModel, patience: int) -> bool:
        """Record the epoch's validation ``score``; True when patience has run out."""
        if score is None:
            return False
        if score < self.best_score:
            self.best_score, self.stale, self.result.best_epoch = score, 0, epoch
            self.best_state = copy.deepcopy(model.state_dict())
            return False
        self.stale += 1
        return bool(patience and self.stale >= patience)

    def save(self, trainer: Trainer) -> None:
        """Write the trainer's and the loop's state (rank 0 only; nothing without a path)."""
        if self.checkpoint is not None and distributed.is_main():
            result = self.result
            state = TrainingState(
                **trainer.state_dict(),
                history=[asdict(r) for r in result.history],
                best_metric=None if math.isinf(self.best_score) else self.best_score,
                best_epoch=result.best_epoch,
                best_model=self.best_state,
                stale=self.stale,
                **self._rating_state(),
                ratings_seen=result.ratings_seen,
                train_seconds=result.train_seconds,
                context=self.context,
            )
            save_checkpoint(self.checkpoint, state)
        self.last_saved = time.monotonic()

    def _rating_state(self) -> dict[str, Any]:
        """The rating half's early-stopping state for a checkpoint (nothing without a tower)."""
        rating = self.rating
        if rating is None or rating.state is None:
            return {}
        return {
            "rating_best_metric": rating.score,
            "rating_best_epoch": rating.epoch,
            "rating_best_model": rating.state,
            "rating_stale": rating.stale,
        }

    def after_step(self, trainer: Trainer) -> None:
        """Mid-epoch: checkpoint when one is due or a signal came, and stop on the signal."""
        due = self.checkpoint and time.monotonic() - self.last_saved > self.every
        if not (self.stop.requested or due):
            return
        if trainer.position < trainer.epoch_rows:
            self.result.train_seconds += time.perf_counter() - self.segment_start
            self.segment_start = time.perf_counter()
            self.save(trainer)
        if self.stop.requested:
            seen, total = trainer.position, len(trainer.train)
            where = f"in epoch {trainer.epoch} after {seen:,} of {total:,} ratings"
            raise _interrupted(self.stop.requested, where, self.checkpoint)


def _interrupted(signal_name: str, where: str, checkpoint: Path | None) -> TrainingInterrupted:
    """The one message for a stop on a signal: where it stopped and how to continue."""
    return TrainingInterrupted(
        f"training stopped by {signal_name} {where}; checkpoint saved to {checkpoint}; "
        f"continue with `movierec train --resume {Path(checkpoint).parent}`"
    )


class _StopFlag:
    """Turns Ctrl-C / SIGTERM into a request the loop honours at the next step boundary."""

    def __init__(self) -> None:
        self.requested: str | None = None

    def _handle(self, signum: int, _frame: Any) -> None:
        self.requested = signal.Signals(signum).name

    @contextlib.contextmanager
    def watch(self, enabled: bool) -> Iterator[None]:
        if not enabled or threading.current_thread() is not threading.main_thread():
            yield
            return
        previous = {
            sig: signal.signal(sig, self._handle) for sig in (signal.SIGINT, signal.SIGTERM)
        }
        try:
            yield
        finally:
            for sig, handler in previous.items():
                signal.signal(sig, handler)
