"""The training objectives of the one training loop, as plain loss functions.

- ``rating``: mean squared error between predicted and true ratings (the founding article's).
- ``bpr``: Bayesian personalised ranking: ``-log sigmoid(s_ui - s_uj)`` for a rated item ``i``
  and a sampled unrated item ``j`` of the same user, averaged over pairs.
- ``bce``: pointwise binary cross-entropy on logits, NCF-style: every rated pair is a positive,
  every sampled unrated pair a negative, averaged over all of them.

Ranking objectives score with :meth:`RatingModel.logits` (the EmbeddingNet's pre-sigmoid output,
MF's dot product plus biases), so BCE-with-logits stays numerically sound and BPR differences do
not saturate. Which items are "unrated" comes from
:class:`movierec.train.negatives.NegativeSampler`.
A model trained with ``bpr`` or ``bce`` ranks items; its scores are not ratings.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F

OBJECTIVES = ("rating", "bpr", "bce")
RANKING_OBJECTIVES = ("bpr", "bce")


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


RANKING_LOSSES = {"bpr": bpr_loss, "bce": bce_loss}
