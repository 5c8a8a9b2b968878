"""The one training loop every trainable model goes through.

The objective (:mod:`movierec.objectives`: MSE on ratings, or BPR / BCE with sampled negatives)
plus the model's own per-batch penalty, if any; Adam with weight decay; mini-batches sliced from a
shuffled permutation of whole tensors (no per-sample Dataset); a learning-rate schedule that is a
pure function of the step; early stopping with the best weights restored, on validation RMSE for
the ``rating`` objective and on validation NDCG@10 (training items masked, every validation item
relevant) for the ranking objectives; and a per-epoch history.

Under torchrun (:mod:`movierec.distributed`) the same loop runs data-parallel: the model is
wrapped in ``DistributedDataParallel``, every rank draws the same permutation and trains on its
own shard with ``batch_size // world_size`` rows per step (so the global batch is the
single-process one and the learning rate is left unchanged), validation runs on the whole
validation split on every rank, rank 0 decides early stopping, and only rank 0 checkpoints.

Fast paths, all opt-in so the defaults keep today's results: ``TrainConfig.embedding_optimizer
= "row-wise"`` (sparse embedding gradients and a lazy row-wise Adam, :mod:`movierec.optim`; under
DDP the tables stay out of DDP's buckets and their touched rows are exchanged by
:func:`movierec.distributed.average_sparse_gradients`), ``RunOptions.precision`` (bf16 autocast
of the forward and loss, :mod:`movierec.precision`) and ``RunOptions.compile``
(``torch.compile`` of the forward and loss). On CUDA the data stays on the device and the loop
synchronises with the host once per epoch.
"""

from __future__ import annotations

import contextlib
import copy
import functools
import inspect
import math
import os
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

from movierec import distributed, metrics, optim, precision
from movierec.checkpoint import TrainingState, save_checkpoint
from movierec.config import RunOptions, TrainConfig
from movierec.data.negatives import NegativeSampler
from movierec.data.tensors import RatingTensors, SeenItems
from movierec.errors import ConfigError, TrainingInterrupted
from movierec.models.base import RatingModel
from movierec.objectives import RANKING_LOSSES, rating_loss

PREDICT_BATCH = 1 << 16
VALID_SCORE_ROWS = 1 << 18  # users x items scored per batch for validation NDCG
VALID_K = 10


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


@dataclass
class FitResult:
    """What training produced besides the weights (which stay in the model)."""

    history: list[EpochRecord] = field(default_factory=list)
    best_epoch: int | None = None
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


@torch.inference_mode()
def predict_tensors(model: RatingModel, data: RatingTensors) -> torch.Tensor:
    """Model predictions for every row, in large eval-mode batches, clipped to the rating scale."""
    was_training = model.training
    model.eval()
    low, high = model.rating_scale
    outputs = [
        model(
            data.user_idx[start : start + PREDICT_BATCH],
            data.item_idx[start : start + PREDICT_BATCH],
        )
        for start in range(0, len(data), PREDICT_BATCH)
    ]
    model.train(was_training)
    if not outputs:
        return torch.empty(0, device=data.rating.device)
    return torch.cat(outputs).float().clamp(low, high)


@torch.inference_mode()
def validation_ndcg(
    model: RatingModel, train: RatingTensors, valid: RatingTensors, k: int = VALID_K
) -> float:
    """NDCG@k of ``model`` on ``valid``: every validation item is relevant, training items masked.

    Candidates are all items but the user's ``train`` items; users with no validation item are
    left out. Scores come from :meth:`RatingModel.score_items` in eval mode, batched over users.
    """
    was_training = model.training
    model.eval()
    device = valid.user_idx.device
    n_users, n_items = model.n_users, model.n_items
    seen = SeenItems.from_tensors(train.to("cpu"), n_users, n_items)
    users = torch.unique(valid.user_idx).cpu()
    relevant_keys = torch.unique(valid.user_idx * n_items + valid.item_idx)
    n_relevant = torch.bincount(valid.user_idx, minlength=n_users)[users.to(device)]
    item_side = model.item_side()
    per_batch = max(1, VALID_SCORE_ROWS // max(1, n_items))
    k = min(k, n_items)
    hits = []
    for start in range(0, users.numel(), per_batch):
        batch = users[start : start + per_batch]
        on_device = batch.to(device)
        scores = model.score_items(on_device, item_side).float()
        scores = scores.masked_fill(seen.mask(batch).to(device), float("-inf"))
        top = torch.topk(scores, k, dim=1)
        keys = on_device[:, None] * n_items + top.indices
        found = torch.isin(keys, relevant_keys) & torch.isfinite(top.values)
        hits.append(found.cpu())
    model.train(was_training)
    if not hits:
        return 0.0
    return metrics.ndcg_at_k(torch.cat(hits).numpy(), n_relevant.cpu().numpy())


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

    Returns:
        The history, best epoch and timing. The model ends on its best validation weights.
    """
    options = options or RunOptions()
    if getattr(config, "embedding_optimizer", "dense") == "row-wise" and options.compile:
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
    row_wise = getattr(config, "embedding_optimizer", "dense") == "row-wise"
    # The tables' gradients are sparse for this fit only; the flags are restored on exit.
    fast = bool(getattr(options, "fast_dropout", False))
    with optim.sparse_embeddings(model, enabled=row_wise), cheap_dropout(model, enabled=fast):
        return _train(
            model, train, valid, config, options, on_epoch, checkpoint, resume, context,
            device=device, ranks=ranks, result=result, row_wise=row_wise,
        )  # fmt: skip


def _train(
    model: RatingModel,
    train: RatingTensors,
    valid: RatingTensors | None,
    config: TrainConfig,
    options: RunOptions,
    on_epoch: Callable[[EpochRecord], None] | None,
    checkpoint: Path | None,
    resume: TrainingState | None,
    context: dict[str, Any] | None,
    *,
    device: torch.device,
    ranks: distributed.World,
    result: FitResult,
    row_wise: bool,
) -> FitResult:
    """The epochs of :func:`fit`, once the model is on its device and initialised."""
    optimizer = optim.build_optimizer(
        model,
        "row-wise" if row_wise else "dense",
        config.lr,
        config.weight_decay,
        # None is PyTorch's own choice (the single-tensor loop on the CPU): today's results.
        fused=True if getattr(options, "fused_adam", False) else None,
    )
    tables = optim.embedding_parameters(model) if row_wise else []
    autocast_dtype = precision.resolve_precision(getattr(options, "precision", "fp32"), device)
    if autocast_dtype is not None:
        precision.enable_tf32(device)
    # Each rank steps through its shard in batches of local_batch; with one process that is
    # the whole permutation in batches of batch_size.
    local_batch = max(1, config.batch_size // ranks.size)
    shard_rows = len(train) // ranks.size
    steps_per_epoch = math.ceil(shard_rows / local_batch)
    if ranks.distributed:
        result.effective_batch_size = local_batch * ranks.size
    total_steps = steps_per_epoch * config.epochs
    scheduler = torch.optim.lr_scheduler.LambdaLR(
        optimizer,
        lambda step: learning_rate(step, total_steps, steps_per_epoch, config) / config.lr,
    )
    generator = torch.Generator().manual_seed(options.seed)
    ranking = config.objective in RANKING_LOSSES
    sampler = None
    if ranking:
        sampler = NegativeSampler(
            train.user_idx,
            train.item_idx,
            model.n_items,
            sampling=config.negative_sampling,
            # Each rank its own negatives stream (rank 0's is the single-process one).
            generator=torch.Generator(device=device).manual_seed(options.seed + 1 + ranks.rank),
        )
    # Early stopping minimises: RMSE for ratings, -NDCG for ranking objectives.
    best_score, best_state, stale = math.inf, None, 0
    first_epoch, first_position, resumed_loss = 1, 0, 0.0
    if resume is not None:
        model.load_state_dict(resume.model)
        optimizer.load_state_dict(resume.optimizer)
        scheduler.load_state_dict({**resume.scheduler, "lr_lambdas": [None]})
        generator.set_state(resume.epoch_generator)
        torch.set_rng_state(resume.torch_rng)
        if resume.cuda_rng and device.type == "cuda":
            torch.cuda.set_rng_state_all(resume.cuda_rng)
        # The checkpoint holds rank 0's negatives stream: other ranks keep their own seeding.
        if sampler is not None and resume.sampler_rng is not None and ranks.rank == 0:
            sampler.generator.set_state(resume.sampler_rng.to(sampler.generator.device))
        result.history = [EpochRecord(**row) for row in resume.history]
        result.best_epoch, stale = resume.best_epoch, resume.stale
        best_score = math.inf if resume.best_metric is None else resume.best_metric
        best_state = resume.best_model
        result.ratings_seen, result.train_seconds = resume.ratings_seen, resume.train_seconds
        first_epoch, first_position, resumed_loss = resume.epoch, resume.position, resume.loss_sum

    # The forward that produces the loss goes through DDP so that gradients are averaged.
    forward: Callable[..., torch.Tensor] = model
    logits: Callable[..., torch.Tensor] = model.logits
    if ranks.distributed:
        from torch.nn.parallel import DistributedDataParallel

        # Buffers are constants set alike by init_from_data on every rank: no per-step sync.
        sync = "forward_sync_buffers"
        if sync not in inspect.signature(DistributedDataParallel).parameters:
            sync = "broadcast_buffers"  # the older name
        wrapper = _Forward(model)
        if tables:
            # Sparse gradients do not fit DDP's dense buckets (and NCCL has no sparse
            # all-reduce): the tables stay out of DDP, their touched rows are averaged by hand.
            names = {id(p): n for n, p in wrapper.named_parameters()}
            DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
                wrapper, [names[id(p)] for p in tables]
            )
            distributed.broadcast_tensors(tables)  # DDP broadcasts only what it holds
        wrapped = DistributedDataParallel(
            wrapper,
            device_ids=[device] if device.type == "cuda" else None,
            **{sync: False},
        )
        forward = wrapped
        logits = functools.partial(wrapped, logits=True)
    die_at = distributed.die_at_step()

    def rating_step(users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> tuple:
        with precision.autocast(device, autocast_dtype):
            loss = rating_loss(forward(users, items), ratings)
            penalty = model.penalty(users, items)
        return loss, penalty

    if getattr(options, "compile", False):
        # Fuses the element-wise work (dropout, ReLU, sigmoid, loss) around the matrix products.
        rating_step = torch.compile(rating_step)

    def snapshot(epoch: int, position: int, epoch_state: torch.Tensor, loss: float) -> None:
        if checkpoint is None or not distributed.is_main():
            return
        save_checkpoint(
            checkpoint,
            TrainingState(
                epoch=epoch,
                position=position,
                epoch_generator=epoch_state,
                loss_sum=loss,
                model=model.state_dict(),
                optimizer=optimizer.state_dict(),
                scheduler=scheduler.state_dict(),
                torch_rng=torch.get_rng_state(),
                cuda_rng=torch.cuda.get_rng_state_all() if device.type == "cuda" else [],
                sampler_rng=sampler.generator.get_state() if sampler is not None else None,
                history=[asdict(r) for r in result.history],
                best_metric=None if math.isinf(best_score) else best_score,
                best_epoch=result.best_epoch,
                best_model=best_state,
                stale=stale,
                ratings_seen=result.ratings_seen,
                train_seconds=result.train_seconds,
                context=context or {},
            ),
        )

    every = options.checkpoint_minutes * 60.0
    last_saved = time.monotonic()
    stop = _StopFlag()
    with stop.watch(enabled=checkpoint is not None):
        for epoch in range(first_epoch, config.epochs + 1):
            epoch_start = epoch_wall_start = time.perf_counter()
            model.train()
            epoch_state = generator.get_state()  # re-drawn on resume: the same permutation
            order = torch.randperm(len(train), generator=generator).to(device)
            if ranks.distributed:
                order = distributed.shard(order, ranks.rank, ranks.size)
            # Positions in checkpoints count ratings over all ranks; ranks step in lockstep.
            position = (first_position if epoch == first_epoch else 0) // ranks.size
            loss_sum = torch.full((), resumed_loss if epoch == first_epoch else 0.0, device=device)
            lr_now = scheduler.get_last_lr()[0]
            bar = tqdm(
                range(position, len(order), local_batch),
                desc=f"epoch {epoch}/{config.epochs}",
                unit="batch",
                leave=False,
                disable=not options.progress,
            )
            for start in bar:
                if die_at is not None and scheduler.last_epoch == die_at:
                    os._exit(1)  # test hook (MOVIEREC_TEST_DIE_AT_STEP): a rank dies abruptly
                batch = order[start : start + local_batch]
                users, items = train.user_idx[batch], train.item_idx[batch]
                if sampler is None:
                    loss, penalty = rating_step(users, items, train.rating[batch])
                else:
                    with precision.autocast(device, autocast_dtype):
                        loss, penalty = _ranking_step(model, logits, sampler, users, items, config)
                total = loss if penalty is None else loss + penalty
                optimizer.zero_grad(set_to_none=True)
                total.backward()
                if tables and ranks.distributed:
                    distributed.average_sparse_gradients(tables)
                optimizer.step()
                scheduler.step()
                loss_sum += loss.detach().float() * batch.shape[0]
                done = start + batch.shape[0]
                if stop.requested or (checkpoint and time.monotonic() - last_saved > every):
                    if done < len(order):
                        result.train_seconds += time.perf_counter() - epoch_start
                        epoch_start = time.perf_counter()
                        snapshot(epoch, done * ranks.size, epoch_state, float(loss_sum))
                        last_saved = time.monotonic()
                    if stop.requested:
                        seen = done * ranks.size
                        where = f"in epoch {epoch} after {seen:,} of {len(train):,} ratings"
                        raise _interrupted(stop.requested, where, checkpoint)
            epoch_rows = len(order) * ranks.size  # len(train) in one process
            if ranks.distributed:
                distributed.all_reduce_sum(loss_sum)
            train_loss = float(loss_sum) / epoch_rows  # one host sync per epoch, not per step
            result.train_seconds += time.perf_counter() - epoch_start
            result.ratings_seen += epoch_rows - (first_position if epoch == first_epoch else 0)

            valid_loss = valid_rmse = valid_ndcg = None
            if valid is not None and ranking:
                valid_ndcg = validation_ndcg(model, train, valid)
            elif valid is not None:
                valid_loss = float(torch.mean((predict_tensors(model, valid) - valid.rating) ** 2))
                valid_rmse = math.sqrt(valid_loss)
            record = EpochRecord(
                epoch,
                train_loss,
                valid_loss,
                valid_rmse,
                lr_now,
                time.perf_counter() - epoch_wall_start,
                valid_ndcg,
            )
            result.history.append(record)
            if on_epoch is not None:
                on_epoch(record)
            if options.progress:
                shown = f"valid RMSE {valid_rmse:.4f}" if valid_rmse is not None else ""
                if valid_ndcg is not None:
                    shown = f"valid NDCG@{VALID_K} {valid_ndcg:.4f}"
                name = "MSE" if sampler is None else config.objective.upper()
                tqdm.write(
                    f"epoch {epoch:3d}  train {name} {train_loss:.4f}  {shown}", file=sys.stderr
                )

            score = valid_rmse if valid_ndcg is None else -valid_ndcg
            finished = False
            if score is not None:
                if score < best_score:
                    best_score, stale, result.best_epoch = score, 0, epoch
                    best_state = copy.deepcopy(model.state_dict())
                else:
                    stale += 1
                    finished = bool(config.patience and stale >= config.patience)
            if ranks.distributed:
                # Every rank validated the same weights on the whole split; rank 0 decides.
                finished = distributed.broadcast_flag(finished, device)
            # The next epoch's start: its generator state is the current one.
            snapshot(epoch + 1, 0, generator.get_state(), 0.0)
            last_saved = time.monotonic()
            if stop.requested:
                raise _interrupted(stop.requested, f"after epoch {epoch}", checkpoint)
            if finished:
                break

    if best_state is not None:
        model.load_state_dict(best_state)
    model.eval()
    return result


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


class _Forward(torch.nn.Module):
    """What DDP wraps: the model's ``forward``, or its ``logits`` with ``logits=True``."""

    def __init__(self, model: RatingModel) -> None:
        super().__init__()
        self.model = model

    def forward(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, logits: bool = False
    ) -> torch.Tensor:
        if logits:
            return self.model.logits(user_idx, item_idx)
        return self.model(user_idx, item_idx)


def _ranking_step(
    model: RatingModel,
    logits_of: Callable[..., torch.Tensor],
    sampler: NegativeSampler,
    users: torch.Tensor,
    items: torch.Tensor,
    config: TrainConfig,
) -> tuple[torch.Tensor, torch.Tensor | None]:
    """Loss and penalty of one ranking batch: rated pairs against sampled unrated items.

    Positives and negatives go through one :meth:`RatingModel.logits` call (``logits_of``: the
    model's own, or through DDP), so dropout and the model's penalty see the whole batch.
    """
    negatives = sampler.sample(users, config.negatives)  # [B, n]
    all_users = torch.cat([users, users.repeat_interleave(config.negatives)])
    all_items = torch.cat([items, negatives.reshape(-1)])
    logits = logits_of(all_users, all_items)
    positive, negative = logits[: users.shape[0]], logits[users.shape[0] :]
    loss = RANKING_LOSSES[config.objective](positive, negative.view(-1, config.negatives))
    return loss, model.penalty(all_users, all_items)
