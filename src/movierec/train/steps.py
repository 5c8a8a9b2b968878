"""One optimiser step's loss for each objective, chosen by name from :data:`STEPS`.

A step function takes the :class:`StepModel` (the model as the step sees it: its ``forward``
and ``logits``, through DDP when distributed, and the negative sampler) and one batch of
training rows, and returns ``(loss, penalty)``: the objective's loss and the model's own
per-batch penalty (None when it has none). The trainer adds them, runs backward and steps; a new
objective is a loss in :mod:`movierec.train.objectives` and one entry here, not a branch in the
loop.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import torch

from movierec.models.base import RatingModel
from movierec.train.negatives import NegativeSampler
from movierec.train.objectives import RANKING_LOSSES, joint_loss, rating_loss

StepResult = tuple[torch.Tensor, torch.Tensor | None]


@dataclass(frozen=True)
class StepModel:
    """What a step function calls.

    Attributes:
        model: The model itself (its ``penalty``).
        forward: ``(user_idx, item_idx) -> predictions``: the model, or DDP around it, so that
            gradients are averaged across ranks.
        logits: ``(user_idx, item_idx) -> logits``: :meth:`RatingModel.logits`, or through DDP.
        sampler: Draws unrated items for the ranking objectives; None for ``rating``.
        negatives: Sampled negatives per rated pair (ranking objectives).
        ranking_weight: Weight of the ranking part of ``joint``.
        joint_ranking_loss: ``bpr`` or ``bce``: the ranking part of ``joint``.
    """

    model: RatingModel
    forward: Callable[..., torch.Tensor]
    logits: Callable[..., torch.Tensor]
    sampler: NegativeSampler | None
    negatives: int
    ranking_weight: float = 1.0
    joint_ranking_loss: str = "bce"


StepFunction = Callable[[StepModel, torch.Tensor, torch.Tensor, torch.Tensor], StepResult]


def rating_step(
    net: StepModel, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor
) -> StepResult:
    """MSE of the predicted ratings of int64 ``[B]`` pairs against float ``[B]`` ``ratings``."""
    loss = rating_loss(net.forward(users, items), ratings)
    return loss, net.model.penalty(users, items)


def _ranking_step(
    net: StepModel,
    users: torch.Tensor,
    items: torch.Tensor,
    loss_of: Callable[[torch.Tensor, torch.Tensor], torch.Tensor],
) -> StepResult:
    """Loss and penalty of one ranking batch: rated pairs against sampled unrated items.

    Positives and negatives go through one logits call, so dropout and the model's penalty see
    the whole batch.
    """
    assert net.sampler is not None  # the trainer builds one for every ranking objective
    n = net.negatives
    negatives = net.sampler.sample(users, n)  # [B, n]
    all_users = torch.cat([users, users.repeat_interleave(n)])
    all_items = torch.cat([items, negatives.reshape(-1)])
    logits = net.logits(all_users, all_items)
    positive, negative = logits[: users.shape[0]], logits[users.shape[0] :]
    loss = loss_of(positive, negative.view(-1, n))
    return loss, net.model.penalty(all_users, all_items)


def bpr_step(
    net: StepModel, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor
) -> StepResult:
    """BPR over rated pairs and sampled negatives (``ratings`` unused: only pairs count)."""
    return _ranking_step(net, users, items, RANKING_LOSSES["bpr"])


def bce_step(
    net: StepModel, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor
) -> StepResult:
    """Binary cross-entropy on rated pairs (1) and sampled negatives (0)."""
    return _ranking_step(net, users, items, RANKING_LOSSES["bce"])


def joint_step(
    net: StepModel, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor
) -> StepResult:
    """MSE on the batch's ratings plus ``ranking_weight`` x BPR/BCE against sampled negatives.

    The MSE half is exactly :func:`rating_step`'s loss (``forward``, the predicted rating); the
    ranking half scores the rated pairs and their negatives with ``logits`` (the model's
    ranking score). Two calls, so the rated pairs see two dropout masks: each half is the loss
    its own objective would compute.
    """
    assert net.sampler is not None  # the trainer builds one for every sampled objective
    n = net.negatives
    negatives = net.sampler.sample(users, n)  # [B, n]
    predicted = net.forward(users, items)
    all_users = torch.cat([users, users.repeat_interleave(n)])
    all_items = torch.cat([items, negatives.reshape(-1)])
    logits = net.logits(all_users, all_items)
    positive, negative = logits[: users.shape[0]], logits[users.shape[0] :]
    loss, _, _ = joint_loss(
        predicted,
        ratings,
        positive,
        negative.view(-1, n),
        net.ranking_weight,
        net.joint_ranking_loss,
    )
    return loss, net.model.joint_penalty((users, items), (all_users, all_items))


def softmax_step(
    net: StepModel, users: torch.Tensor, items: torch.Tensor, ratings: torch.Tensor
) -> StepResult:
    """Sampled softmax of each rated pair among its sampled unrated items."""
    return _ranking_step(net, users, items, RANKING_LOSSES["softmax"])


STEPS: dict[str, StepFunction] = {
    "rating": rating_step,
    "bpr": bpr_step,
    "bce": bce_step,
    "softmax": softmax_step,
    "joint": joint_step,
}
"""The step of each objective (``TrainConfig.objective``)."""

COMPILED_STEPS = frozenset({"rating"})
"""Objectives whose step ``RunOptions.compile`` compiles (the one measured; sampling is not)."""
