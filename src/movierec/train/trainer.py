"""The trainer of one fit (LensKit's ``ModelTrainer`` shape): setup, one epoch, its state.

:class:`Trainer` owns what training mutates besides the weights: the optimiser, the learning-rate
schedule, the shuffling generator, the negative sampler and the position within the epoch. It
builds them in small methods (optimiser, schedule, precision, sampler, DDP wrapper, step);
:meth:`Trainer.train_epoch` runs one epoch of optimiser steps and returns its mean loss; and
:meth:`Trainer.state_dict` / :meth:`Trainer.load_state_dict` are what a checkpoint stores of it,
so a resumed trainer draws the same permutation, continues at the same position and replays the
same RNG streams. The epochs, early stopping, history and checkpoint files are
:func:`movierec.train.loop.fit`'s.

With ``TrainConfig.optimizer = "lbfgs"`` an epoch is one L-BFGS step over the whole training
set (:meth:`Trainer._lbfgs_batch`): the step function is the closure the line search evaluates,
every evaluation starts from the buffers the step started with (a model that counts its
training forwards, as GLocal-K counts its way to fine-tuning, sees one forward per epoch and
the same function at every evaluation), and the L-BFGS memory starts afresh each epoch, as in
the papers' code (a SciPy minimise per epoch); so an epoch boundary holds no optimiser state
and a checkpoint there resumes exactly. Dropout makes every evaluation another function, which
a line search does not expect: train such models with Adam, or without dropout.

Under torchrun the model is wrapped in ``DistributedDataParallel``; every rank draws the same
permutation and trains on its own shard with ``batch_size // world_size`` rows per step, so the
global batch is the single-process one and the learning rate is left unchanged.
"""

from __future__ import annotations

import contextlib
import functools
import inspect
import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from tqdm.auto import tqdm

from movierec.config import RunOptions, TrainConfig
from movierec.data.tensors import RatingTensors
from movierec.errors import ConfigError
from movierec.models.base import RatingModel
from movierec.train import distributed, optim, precision
from movierec.train.averaging import WeightAverage
from movierec.train.negatives import NegativeSampler
from movierec.train.objectives import SAMPLED_OBJECTIVES
from movierec.train.schedule import learning_rate
from movierec.train.steps import COMPILED_STEPS, STEPS, StepModel, StepResult

StepHook = Callable[["Trainer"], None]
"""Called with the trainer around each optimiser step (``before_step`` / ``after_step``)."""


class Trainer:
    """Trains one model on one set of training tensors, one epoch at a time.

    Args:
        model: The model, already on ``device`` and initialised (``init_from_data``); trained in
            place. With ``embedding_optimizer = "row-wise"`` its tables must already have sparse
            gradients (:func:`movierec.train.optim.sparse_embeddings`).
        train: Encoded training ratings, on ``device``.
        config: Hyperparameters: objective, batch size, learning rate and schedule, epochs.
        options: Seed, precision, compile and fused-Adam choices, progress display.
        device: Where the model and the data live.
        world: This process's place among the ranks (one process of one by default).
        before_step: Hooks called before every optimiser step (``trainer.step`` is the 0-based
            index of the step about to run); a test kill-switch is one.
        after_step: Hooks called after every optimiser step (``trainer.position`` counts the
            epoch's rows done); the loop's mid-epoch checkpoints and signal stops are one.
    """

    def __init__(
        self,
        model: RatingModel,
        train: RatingTensors,
        config: TrainConfig,
        options: RunOptions,
        device: torch.device,
        world: distributed.World | None = None,
        *,
        before_step: Sequence[StepHook] = (),
        after_step: Sequence[StepHook] = (),
    ) -> None:
        self.model, self.train, self.config, self.options = model, train, config, options
        self.device = device
        self.world = world or distributed.World()
        self.before_step, self.after_step = list(before_step), list(after_step)
        self.row_wise = config.embedding_optimizer == "row-wise"
        self.lbfgs = config.optimizer == "lbfgs"
        self._check_lbfgs()
        self.optimizer = self._build_optimizer()
        self.tables = optim.embedding_parameters(model) if self.row_wise else []
        self.autocast_dtype = self._build_precision()
        # Each rank steps through its shard in batches of local_batch; with one process that is
        # the whole permutation in batches of batch_size.
        self.local_batch = max(1, config.batch_size // self.world.size)
        self.shard_rows = len(train) // self.world.size
        self.steps_per_epoch = math.ceil(self.shard_rows / self.local_batch)
        self.scheduler = self._build_schedule()
        # The shuffling generator lives where the data does: on CUDA a CPU randperm of 25M rows
        # (then copied over) takes ~2.5 s, longer than the epoch's optimiser steps.
        self.generator = torch.Generator(device=_generator_device(device))
        self.generator.manual_seed(options.seed)
        self.sampler = self._build_sampler()
        self.epoch = 1  # the epoch in progress, or the next one at an epoch boundary
        self.position = 0  # ratings of this epoch's permutation done, over all ranks
        self._epoch_generator = self.generator.get_state()  # draws this epoch's permutation
        self._loss_sum = torch.full((), 0.0, device=device)
        self._step = self._build_step(*self._build_forward())
        self.average = WeightAverage(model, config.ema_decay) if config.ema_decay else None

    # --- setup ---------------------------------------------------------------------------------

    def _check_lbfgs(self) -> None:
        """A ConfigError where L-BFGS cannot train: mini-batches or several processes (what
        :class:`TrainConfig` alone cannot see)."""
        if not self.lbfgs:
            return
        n_train = len(self.train)
        if self.config.batch_size < n_train:
            raise ConfigError(
                f"optimizer = 'lbfgs' takes every training rating in one batch, but batch_size "
                f"is {self.config.batch_size:,} for {n_train:,} ratings; set [train] "
                f"batch_size >= {n_train:,}, or use optimizer = 'adam' for mini-batches"
            )
        if self.world.distributed:
            raise ConfigError(
                "optimizer = 'lbfgs' runs in one process (its line search needs the whole "
                "loss at once); run without torchrun, or use optimizer = 'adam'"
            )

    def _build_optimizer(self) -> torch.optim.Optimizer:
        """Adam with coupled weight decay, row-wise Adam for the embedding tables, or L-BFGS."""
        if self.lbfgs:
            return optim.build_lbfgs(self.model, self.config.lr, self.config.lbfgs_iterations)
        return optim.build_optimizer(
            self.model,
            self.config.embedding_optimizer,
            self.config.lr,
            self.config.weight_decay,
            # None is PyTorch's own choice (the single-tensor loop on the CPU): today's results.
            fused=True if self.options.use_fused_adam else None,
            ranking_lr=self.config.ranking_lr,
        )

    def _build_precision(self) -> torch.dtype | None:
        """The autocast dtype (None: fp32 throughout); TF32 matmuls come with bf16."""
        dtype = precision.resolve_precision(self.options.precision, self.device)
        if dtype is not None:
            precision.enable_tf32(self.device)
        return dtype

    def _build_schedule(self) -> torch.optim.lr_scheduler.LambdaLR:
        """``LambdaLR`` over :func:`learning_rate`: its position is the schedule's only state."""
        config, per_epoch = self.config, self.steps_per_epoch
        total = per_epoch * config.epochs
        return torch.optim.lr_scheduler.LambdaLR(
            self.optimizer, lambda step: learning_rate(step, total, per_epoch, config) / config.lr
        )

    def _build_sampler(self) -> NegativeSampler | None:
        """The negative sampler of the ranking and joint objectives (None for ``rating``)."""
        if self.config.objective not in SAMPLED_OBJECTIVES:
            return None
        seed = self.options.seed + 1 + self.world.rank
        return NegativeSampler(
            self.train.user_idx,
            self.train.item_idx,
            self.model.n_items,
            sampling=self.config.negative_sampling,
            # Each rank its own negatives stream (rank 0's is the single-process one).
            generator=torch.Generator(device=self.device).manual_seed(seed),
        )

    def _build_forward(self) -> tuple[Callable[..., torch.Tensor], Callable[..., torch.Tensor]]:
        """The loss's ``forward`` and ``logits``: the model's own, or through DDP when distributed.

        DDP's buffer sync is off: buffers are constants set alike by ``init_from_data`` on every
        rank. Row-wise tables have sparse gradients, which fit neither DDP's dense buckets nor
        NCCL (no sparse all-reduce): they stay out of DDP (:func:`_ddp_ignore`) and their touched
        rows are averaged by :func:`movierec.train.distributed.average_sparse_gradients`.
        """
        if not self.world.distributed:
            return self.model, self.model.logits
        from torch.nn.parallel import DistributedDataParallel

        sync = "forward_sync_buffers"
        if sync not in inspect.signature(DistributedDataParallel).parameters:
            sync = "broadcast_buffers"  # the older name
        wrapper = _Forward(self.model)
        if self.tables:
            _ddp_ignore(wrapper, self.tables)
            distributed.broadcast_tensors(self.tables)  # DDP broadcasts only what it holds
        wrapped = DistributedDataParallel(
            wrapper,
            device_ids=[self.device] if self.device.type == "cuda" else None,
            **{sync: False},
        )
        return wrapped, functools.partial(wrapped, logits=True)

    def _build_step(
        self, forward: Callable[..., torch.Tensor], logits: Callable[..., torch.Tensor]
    ) -> Callable[[torch.Tensor, torch.Tensor, torch.Tensor], StepResult]:
        """The objective's step function, under autocast, compiled when asked (rating only)."""
        config = self.config
        net = StepModel(
            self.model,
            forward,
            logits,
            self.sampler,
            config.negatives,
            config.ranking_weight,
            config.joint_ranking_loss,
        )
        step = STEPS[self.config.objective]
        device, dtype = self.device, self.autocast_dtype

        def run(users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> StepResult:
            with precision.autocast(device, dtype):
                return step(net, users, items, ratings)

        if self.options.compile and self.config.objective in COMPILED_STEPS:
            # Fuses the element-wise work (dropout, ReLU, sigmoid, loss) around the matmuls.
            return torch.compile(run)
        return run

    # --- training ------------------------------------------------------------------------------

    @property
    def step(self) -> int:
        """The 0-based index of the next optimiser step (the scheduler's position)."""
        return self.scheduler.last_epoch

    @property
    def lr(self) -> float:
        """The learning rate of the next step."""
        return self.scheduler.get_last_lr()[0]

    @property
    def epoch_rows(self) -> int:
        """Ratings one epoch steps through over all ranks (``len(train)`` in one process)."""
        return self.shard_rows * self.world.size

    def train_epoch(self) -> float:
        """Run the rest of epoch ``self.epoch`` and return its mean training loss.

        One host sync per epoch (the loss), none per step. At the end ``epoch`` moves on and
        ``position`` is 0: the state is the next epoch's start.
        """
        self.model.train()
        self._epoch_generator = self.generator.get_state()  # re-drawn on resume: same order
        order = torch.randperm(
            len(self.train), generator=self.generator, device=self.generator.device
        ).to(self.device)
        if self.world.distributed:
            order = distributed.shard(order, self.world.rank, self.world.size)
        # Positions count ratings over all ranks; ranks step in lockstep.
        first = self.position // self.world.size
        bar = tqdm(
            range(first, len(order), self.local_batch),
            desc=f"epoch {self.epoch}/{self.config.epochs}",
            unit="batch",
            leave=False,
            disable=not self.options.progress,
        )
        for start in bar:
            for hook in self.before_step:
                hook(self)
            batch = order[start : start + self.local_batch]
            self._train_batch(batch)
            if self.average is not None:
                self.average.update()
            self.position = (start + batch.shape[0]) * self.world.size
            for hook in self.after_step:
                hook(self)
        if self.world.distributed:
            distributed.all_reduce_sum(self._loss_sum)
        mean = float(self._loss_sum) / (len(order) * self.world.size)
        self.epoch, self.position = self.epoch + 1, 0
        self._epoch_generator = self.generator.get_state()
        self._loss_sum = torch.full((), 0.0, device=self.device)
        return mean

    def _train_batch(self, batch: torch.Tensor) -> None:
        """One optimiser step on the training rows ``batch`` (int64 ``[B]``)."""
        train = self.train
        users, items = train.user_idx[batch], train.item_idx[batch]
        if self.lbfgs:
            self._lbfgs_batch(users, items, train.rating[batch])
            return
        loss, penalty = self._step(users, items, train.rating[batch])
        total = loss if penalty is None else loss + penalty
        self.optimizer.zero_grad(set_to_none=True)
        total.backward()
        if self.tables and self.world.distributed:
            distributed.average_sparse_gradients(self.tables)
        self.optimizer.step()
        self.scheduler.step()
        self._loss_sum += loss.detach().float() * batch.shape[0]

    def _lbfgs_batch(self, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor) -> None:
        """One L-BFGS step (``lbfgs_iterations`` iterations) on the whole training set.

        The epoch's loss is that of the first evaluation, at the weights the epoch started
        from, as Adam's epoch loss is its step's forward before the update.
        """
        buffers = list(self.model.buffers())
        start = [buffer.detach().clone() for buffer in buffers]
        first: list[torch.Tensor] = []

        def closure() -> torch.Tensor:
            with torch.no_grad():
                for buffer, value in zip(buffers, start, strict=True):
                    buffer.copy_(value)
            loss, penalty = self._step(users, items, ratings)
            total = loss if penalty is None else loss + penalty
            self.optimizer.zero_grad(set_to_none=True)
            total.backward()
            if not first:
                first.append(loss.detach().float())
            return total

        self.optimizer.step(closure)
        self.optimizer.state.clear()  # a fresh memory each epoch: nothing to checkpoint
        self.scheduler.step()
        self._loss_sum += first[0] * users.shape[0]

    # --- state ---------------------------------------------------------------------------------

    def state_dict(self) -> dict[str, Any]:
        """What a checkpoint stores of the trainer, keyed as :class:`TrainingState`'s fields.

        Like ``nn.Module.state_dict`` the tensors are the live ones: save or copy them before
        training on. The loss so far costs one host sync.
        """
        return {
            "epoch": self.epoch,
            "position": self.position,
            "epoch_generator": self._epoch_generator,
            "loss_sum": float(self._loss_sum),
            "model": self.model.state_dict(),
            "optimizer": self.optimizer.state_dict(),
            "scheduler": self.scheduler.state_dict(),
            "torch_rng": torch.get_rng_state(),
            "cuda_rng": torch.cuda.get_rng_state_all() if self.device.type == "cuda" else [],
            "sampler_rng": self.sampler.generator.get_state() if self.sampler is not None else None,
            "average": self.average.state_dict() if self.average is not None else None,
        }

    def load_state_dict(self, state: Mapping[str, Any]) -> None:
        """Continue from ``state`` (:meth:`state_dict`'s keys; other keys are ignored).

        Also sets the global CPU RNG (dropout draws) and the CUDA ones when on CUDA. The saved
        negatives stream is rank 0's: other ranks keep their own seeding.
        """
        self.model.load_state_dict(state["model"])
        self.optimizer.load_state_dict(state["optimizer"])
        self.scheduler.load_state_dict({**state["scheduler"], "lr_lambdas": [None]})
        self.generator.set_state(state["epoch_generator"])
        self._epoch_generator = self.generator.get_state()
        torch.set_rng_state(state["torch_rng"])
        if state["cuda_rng"] and self.device.type == "cuda":
            torch.cuda.set_rng_state_all(state["cuda_rng"])
        sampler_rng = state["sampler_rng"]
        if self.sampler is not None and sampler_rng is not None and self.world.rank == 0:
            self.sampler.generator.set_state(sampler_rng.to(self.sampler.generator.device))
        self.epoch, self.position = state["epoch"], state["position"]
        self._loss_sum = torch.full((), state["loss_sum"], device=self.device)
        if self.average is not None and state.get("average") is not None:
            self.average.load_state_dict(state["average"])

    def averaged(self) -> contextlib.AbstractContextManager[None]:
        """The weights to validate and keep inside the block: the average with ``ema_decay``,
        else the raw ones (a no-op)."""
        return self.average.swapped_in() if self.average is not None else contextlib.nullcontext()


def _generator_device(device: torch.device) -> torch.device:
    """Where the shuffling generator draws: the CUDA device itself, else the CPU."""
    return device if device.type == "cuda" else torch.device("cpu")


def _ddp_ignore(wrapper: torch.nn.Module, params: Sequence[torch.Tensor]) -> None:
    """Keep ``params`` out of DDP's buckets (PyTorch has no public API for this yet)."""
    from torch.nn.parallel import DistributedDataParallel

    names = {id(p): n for n, p in wrapper.named_parameters()}
    DistributedDataParallel._set_params_and_buffers_to_ignore_for_model(
        wrapper, [names[id(p)] for p in params]
    )


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
