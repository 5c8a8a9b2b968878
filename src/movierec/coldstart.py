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

import time
from collections.abc import Sequence
from dataclasses import dataclass
from math import isfinite
from typing import Any

import numpy as np
import torch

from movierec.errors import ConfigError, UnknownIdError
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


@dataclass(frozen=True)
class VisitorTopK:
    """A new visitor's top-k: item indices and scores best first, and how the fit went."""

    items: list[int]
    scores: list[float]
    method: str
    fit_seconds: float


def visitor_top_k(
    recommender: Recommender, item_ids: Sequence[Any], ratings: Sequence[float], k: int
) -> VisitorTopK:
    """:func:`fold_in_user`, then the ``k`` best items the visitor has not rated.

    Raises what :func:`fold_in_user` raises.
    """
    started = time.perf_counter()
    scores = fold_in_user(recommender, item_ids, ratings)
    fit_seconds = time.perf_counter() - started
    rated = recommender.encoder.encode_items(np.asarray(list(item_ids), dtype=object))
    with torch.inference_mode():
        scores = scores.clone()
        scores[torch.from_numpy(rated)] = float("-inf")
        top = torch.topk(scores, min(k, recommender.encoder.n_items - len(rated)))
    return VisitorTopK(
        top.indices.tolist(), top.values.tolist(), fold_in_method(recommender), fit_seconds
    )


class UnknownItemError(UnknownIdError):
    """An item the visitor rated that the model never saw; ``item`` is the raw ID as given."""

    def __init__(self, message: str, item: Any):
        super().__init__(message)
        self.item = item


class RatingScaleError(ConfigError):
    """A visitor's rating outside the model's rating scale (or not a number)."""


def _encode(
    recommender: Recommender, item_ids: Sequence[Any], ratings: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    """The visitor's ratings as index and value tensors, checked entry by entry.

    The one validation of a visitor's input, for HTTP and Python alike: the first entry at
    fault is reported, an unknown item before a repeated one before a rating off the scale.
    """
    if len(item_ids) != len(ratings):
        raise ConfigError(f"got {len(item_ids)} items but {len(ratings)} ratings to pair")
    if not 1 <= len(item_ids) <= MAX_RATINGS:
        raise ConfigError(f"give between 1 and {MAX_RATINGS} ratings, got {len(item_ids)}")
    index = recommender.encoder.encode_items(np.asarray(list(item_ids), dtype=object))
    values = np.asarray(ratings, dtype=np.float64)
    low, high = recommender.rating_scale
    rated: set[int] = set()
    for raw, idx, value in zip(item_ids, index.tolist(), values.tolist(), strict=True):
        if idx < 0:
            try:
                recommender.encoder.item_index(raw)
            except UnknownIdError as exc:  # the encoder's message, with the raw ID attached
                raise UnknownItemError(str(exc), raw) from None
        if idx in rated:
            raise ConfigError(f"item {raw} is rated more than once; give each item one rating")
        rated.add(idx)
        if not (isfinite(value) and low <= value <= high):
            raise RatingScaleError(
                f"rating {value:g} for item {raw} is outside the model's rating scale "
                f"{low:g}..{high:g}"
            )
    return torch.from_numpy(index), torch.from_numpy(values)
