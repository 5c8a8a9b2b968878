"""The training objectives of the one training loop, as plain loss functions.

- ``rating``: mean squared error between predicted and true ratings (the founding article's).
- ``bpr``: Bayesian personalised ranking: ``-log sigmoid(s_ui - s_uj)`` for a rated item ``i``
  and a sampled unrated item ``j`` of the same user, averaged over pairs.
- ``bce``: pointwise binary cross-entropy on logits, NCF-style: every rated pair is a positive,
  every sampled unrated pair a negative, averaged over all of them.
- ``softmax``: sampled softmax: each rated pair competes with its ``n`` sampled unrated items,
  ``-log(exp(s_ui) / (exp(s_ui) + sum_j exp(s_uj)))``; with tens of negatives it approximates
  the full-catalogue softmax, a listwise loss that ranks better than BCE on ml-100k (measured).
- ``joint``: the ``rating`` MSE on the batch's observed ratings plus ``ranking_weight`` times a
  ranking loss (``joint_ranking_loss``: ``bpr`` or ``bce``) of the same rated pairs against
  sampled negatives, so one model both predicts ratings and ranks unseen items.

Ranking objectives score with :meth:`RatingModel.logits` (the EmbeddingNet's pre-sigmoid output,
MF's dot product plus biases), so BCE-with-logits stays numerically sound and BPR differences do
not saturate. Which items are "unrated" comes from
:class:`movierec.train.negatives.NegativeSampler`.
A model trained with ``bpr`` or ``bce`` ranks items; its scores are not ratings. A model trained
with ``joint`` predicts ratings (``forward``) and ranks by the same scores before clipping
(which rank like its logits): :func:`predicts_ratings` is the one place that says which
objectives give ratings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

OBJECTIVES = ("rating", "bpr", "bce", "softmax", "joint")
RANKING_OBJECTIVES = ("bpr", "bce", "softmax")
SAMPLED_OBJECTIVES = ("bpr", "bce", "softmax", "joint")
"""Objectives whose step draws negatives (the trainer builds a sampler for them)."""
JOINT_RANKING_LOSSES = ("bpr", "bce", "softmax")


def predicts_ratings(objective: str) -> bool:
    """Whether a model trained with ``objective`` outputs ratings (``rating`` and ``joint``).

    Every rating-vs-ranking decision downstream (predict, RMSE, clipping, labels) asks this.
    """
    return objective in ("rating", "joint")


def selects_on_ndcg(objective: str) -> bool:
    """Whether early stopping picks epochs on validation NDCG@10 (else on RMSE).

    ``joint`` is selected on NDCG@10: the ranking half is what it adds over ``rating``, and its
    validation RMSE is still recorded in the history beside it.
    """
    return objective != "rating"


def rating_loss(predicted: torch.Tensor, rating: torch.Tensor) -> torch.Tensor:
    """Mean squared error; ``predicted`` and ``rating`` float ``[B]``."""
    return F.mse_loss(predicted, rating)


def bpr_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Mean of ``-log sigmoid(positive - negative)``.

    Args:
        positive: float ``[B]`` scores of rated pairs.
        negative: float ``[B, n]`` scores of ``n`` sampled unrated items per rated pair.
    """
    return -F.logsigmoid(positive[:, None] - negative).mean()


def bce_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Binary cross-entropy with logits: positives labelled 1, negatives 0, one mean over all.

    Args:
        positive: float ``[B]`` logits of rated pairs.
        negative: float ``[B, n]`` logits of sampled unrated pairs.
    """
    logits = torch.cat([positive, negative.reshape(-1)])
    labels = torch.cat([torch.ones_like(positive), torch.zeros_like(negative.reshape(-1))])
    return F.binary_cross_entropy_with_logits(logits, labels)


def softmax_loss(positive: torch.Tensor, negative: torch.Tensor) -> torch.Tensor:
    """Sampled softmax: the mean of ``-log softmax`` of each positive among its negatives.

    Args:
        positive: float ``[B]`` logits of rated pairs.
        negative: float ``[B, n]`` logits of ``n`` sampled unrated items per rated pair.
    """
    logits = torch.cat([positive[:, None], negative], dim=1)
    return -F.log_softmax(logits, dim=1)[:, 0].mean()


RANKING_LOSSES = {"bpr": bpr_loss, "bce": bce_loss, "softmax": softmax_loss}


def joint_loss(
    predicted: torch.Tensor,
    rating: torch.Tensor,
    positive: torch.Tensor,
    negative: torch.Tensor,
    ranking_weight: float,
    ranking: str = "bce",
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """``(total, mse, ranking)``: ``mse + ranking_weight * ranking``, both parts returned too.

    Args:
        predicted: float ``[B]`` predicted ratings of the rated pairs; ``rating`` their truth.
        positive: float ``[B]`` ranking logits of the rated pairs.
        negative: float ``[B, n]`` ranking logits of sampled unrated pairs.
        ranking_weight: Weight of the ranking part (>= 0).
        ranking: ``bpr`` or ``bce``.
    """
    mse = rating_loss(predicted, rating)
    rank = RANKING_LOSSES[ranking](positive, negative)
    return mse + ranking_weight * rank, mse, rank
