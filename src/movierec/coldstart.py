"""Cold start: scores for a visitor the model has never seen, from a handful of their ratings.

The trained model stays frozen; only a fresh user representation is fitted to the visitor's
ratings (``fold-in``), then every item is scored with it. How is the model's business
(:meth:`movierec.models.base.RatingModel.fold_in`, named by its ``fold_in_method``): a ridge
solve for MF, capped Adam steps for the EmbeddingNet, the visitor's bias for the rest. This
module validates the visitor's input (the one place that does, for HTTP and Python alike),
encodes it and asks the model.

Every function returns predicted ratings for the whole catalogue, clipped to the rating scale;
the caller leaves the items the visitor rated out of the ranking.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from movierec.errors import ConfigError
from movierec.models.base import FoldInOptions
from movierec.recommend import Recommender

MAX_RATINGS = 1000  # a visitor's ratings in one request; keeps fold-in cheap and bounded


def fold_in_method(recommender: Recommender) -> str:
    """A short name of the fold-in :func:`fold_in_user` uses for this recommender's model."""
    return recommender.model.fold_in_method


def fold_in_user(
    recommender: Recommender,
    item_ids: Sequence[Any],
    ratings: Sequence[float],
    *,
    steps: int = 60,
    lr: float = 0.05,
    l2: float = 1e-3,
    max_seconds: float = 0.25,
) -> torch.Tensor:
    """Predicted ratings of every item for a new visitor who rated ``item_ids``.

    Args:
        recommender: The trained recommender (its model is not modified).
        item_ids: Raw IDs of the items the visitor rated (distinct, known to the model).
        ratings: The visitor's ratings, within the model's rating scale.
        steps: Adam steps for the EmbeddingNet (ignored by the closed forms).
        lr: Adam's learning rate for the EmbeddingNet's user embedding.
        l2: Pull of the EmbeddingNet's user embedding toward the mean user, per unit distance.
        max_seconds: Wall-clock cap on the EmbeddingNet's steps; it stops early, keeping the best
            embedding so far.

    Returns:
        float32 ``[n_items]`` predicted ratings in item-index order, clipped to the rating scale.

    Raises:
        UnknownIdError: An item the model never saw (the message names it).
        ConfigError: No ratings, too many, lengths that differ, a duplicate item or a rating
            outside the scale.
    """
    items, values = _encode(recommender, item_ids, ratings)
    options = FoldInOptions(steps=steps, lr=lr, l2=l2, max_seconds=max_seconds)
    scores = recommender.model.fold_in(
        items, values, recommender.fallback, options, recommender.item_side()
    )
    return scores.float().clamp(*recommender.rating_scale)


def _encode(
    recommender: Recommender, item_ids: Sequence[Any], ratings: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    if len(item_ids) != len(ratings):
        raise ConfigError(f"got {len(item_ids)} items but {len(ratings)} ratings to pair")
    if not 1 <= len(item_ids) <= MAX_RATINGS:
        raise ConfigError(f"give between 1 and {MAX_RATINGS} ratings, got {len(item_ids)}")
    index = recommender.encoder.encode_items(np.asarray(list(item_ids), dtype=object))
    for raw, idx in zip(item_ids, index, strict=True):
        if idx < 0:
            recommender.encoder.item_index(raw)  # raises UnknownIdError naming the item
    unique, counts = np.unique(index, return_counts=True)
    if (counts > 1).any():
        twice = recommender.encoder.decode_items([unique[counts > 1][0]])[0]
        raise ConfigError(f"item {twice} is rated more than once; give each item one rating")
    values = np.asarray(ratings, dtype=np.float64)
    low, high = recommender.rating_scale
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    if bad.any():
        raise ConfigError(
            f"rating {values[bad][0]} is outside the model's rating scale {low:g}..{high:g}"
        )
    return torch.from_numpy(index), torch.from_numpy(values)
