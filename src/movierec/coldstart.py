"""Cold start: scores for a visitor the model has never seen, from a handful of their ratings.

The trained model stays frozen; only a fresh user representation is fitted to the visitor
(``fold-in``), then every item is scored with it. Which fit depends on how the run was trained
(:attr:`Recommender.objective`) and on what the model declares
(:mod:`movierec.models.base`):

- a ``rating`` run: the model's :meth:`~movierec.models.base.RatingModel.fold_in`, named by
  its ``fold_in_method``: a ridge solve for MF, capped Adam steps for the EmbeddingNet, the
  visitor's bias for the rest;
- a run that ranks (``bpr``, ``bce``, ``softmax``, ``joint``, or a ranking-only model): the
  closed form where the model has one (``fold_in_history``: EASE's exact ``x B``, popularity),
  else a few Adam steps of the run's ranking loss (:data:`RANKING_FOLD_IN_LOSS`) on the fresh
  vector the model's ranking score reads (``visitor_ranker``: MF's user factors, a ranking
  tower's user factors, the EmbeddingNet's user embedding): every rated item a positive
  against every unrated item, as training treats rated pairs; a ``joint`` run also takes the
  rating fold-in, for the ratings its lists show;
- a visitor who liked nothing (every rating below the middle of the scale): no fold-in, the
  shrunk baseline list (:func:`baseline_scores`, ``method="baseline"``).

Lists rank on the unclipped key and show the clipped rating; equal keys go to the item with
the better training baseline, then the lower index
(:func:`movierec.recommend.visitor.rank_visitor`).

This module validates the visitor's input (the one place that does, for HTTP, the command line
and Python alike), encodes it and asks the model. :meth:`Recommender.recommend_for_ratings`
ranks what :func:`visitor_scores` returns; :func:`fold_in_user` is the rating fold-in alone.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from dataclasses import dataclass
from math import isfinite
from typing import TYPE_CHECKING, Any

import numpy as np
import torch

from movierec.errors import ConfigError, UnknownIdError
from movierec.models.base import FoldInOptions, VisitorRanker
from movierec.train.objectives import RANKING_LOSSES

if TYPE_CHECKING:
    from movierec.recommend import Recommender

MAX_RATINGS = 1000  # a visitor's ratings in one request; keeps fold-in cheap and bounded


RANKING_FOLD_IN_LOSS = {"bpr": "bpr", "bce": "bce", "softmax": "softmax", "joint": "bce"}
"""The loss a ranking fold-in fits, by the run's objective (``joint``: its default ranking
half; a ranking-only model trained in closed form, objective ``rating``: BPR)."""


def fold_in_method(recommender: Recommender) -> str:
    """A short name of the fold-in :func:`visitor_scores` uses for this recommender: the
    model's ``fold_in_method`` for a rating run, its ``ranking_fold_in_method`` for a run that
    ranks (``adam`` named with its loss, e.g. ``bpr-adam``), both for ``joint``."""
    model = recommender.model
    if recommender.objective == "rating" and recommender.predicts_ratings:
        return model.fold_in_method
    ranking = model.ranking_fold_in_method
    if ranking == "adam":
        ranking = f"{RANKING_FOLD_IN_LOSS.get(recommender.objective, 'bpr')}-adam"
    return f"{model.fold_in_method}+{ranking}" if recommender.predicts_ratings else ranking


@dataclass(frozen=True)
class VisitorScores:
    """A visitor's scores of the whole catalogue, in item-index order.

    Attributes:
        rated: int64 ``[m]`` the items the visitor rated.
        key: float32 ``[n_items]`` what ranks: the unclipped predicted rating of a ``rating``
            run, the ranking score of a run that ranks, the shrunk baseline for a visitor who
            liked nothing.
        shown: float32 ``[n_items]`` what a list shows: the predicted rating clipped to the
            scale where the run predicts ratings (the baseline rating for a visitor who liked
            nothing), else ``key``.
        tie_break: float32 ``[n_items]`` what orders items whose keys are equal (a saturated
            sigmoid gives many): the item's baseline, higher first; then the lower index.
        method: How the scores came: :func:`fold_in_method`, or ``"baseline"``.
    """

    rated: torch.Tensor
    key: torch.Tensor
    shown: torch.Tensor
    tie_break: torch.Tensor
    method: str


def visitor_scores(
    recommender: Recommender,
    item_ids: Sequence[Any],
    ratings: Sequence[float],
    options: FoldInOptions | None = None,
) -> VisitorScores:
    """Fold a visitor in as the run was trained (module doc) and score every item.

    A visitor who liked nothing (every rating below the middle of the scale: 1s and 2s on
    1-5) gives the fold-in no taste to follow, only a low level: every prediction clips to
    the bottom of the scale and a ranking fold-in, which takes every rated item as a positive,
    would list films like the ones they disliked. They get :func:`baseline_scores` instead
    (``method="baseline"``): the films rated best in training, shrunk as ``rank_by="shrunk"``
    shrinks, each showing its baseline rating.

    Raises:
        UnknownItemError: An item the model never saw (the message names it).
        ConfigError: No ratings, too many, lengths that differ, a duplicate item or a rating
            outside the scale (:class:`RatingScaleError`).
    """
    items, values = _encode(recommender, item_ids, ratings)
    if liked_nothing(recommender, values.tolist()):
        return baseline_scores(recommender, items)
    options = options or FoldInOptions()
    model = recommender.model
    rating = None
    if recommender.predicts_ratings:
        rating = model.fold_in(
            items, values, recommender.fallback, options, recommender.item_side()
        ).float()
    if rating is not None and recommender.objective == "rating":
        key = rating
    else:
        key = ranking_fold_in(recommender, items, values, options)
    shown = key if rating is None else rating.clamp(*recommender.rating_scale)
    tie_break = _item_baseline(recommender)
    return VisitorScores(items, key, shown, tie_break, fold_in_method(recommender))


def liked_nothing(recommender: Recommender, ratings: Sequence[float]) -> bool:
    """Whether every one of a visitor's ratings is below the middle of the run's scale (they
    get :func:`baseline_scores`, not a fold-in)."""
    low, high = recommender.rating_scale
    return max(ratings) < (low + high) / 2


def visitor_method(recommender: Recommender, ratings: Sequence[float]) -> str:
    """How a visitor with these (valid) ratings is scored: ``"baseline"`` for one who liked
    nothing, else the run's :func:`fold_in_method`."""
    return "baseline" if liked_nothing(recommender, ratings) else fold_in_method(recommender)


def baseline_scores(recommender: Recommender, rated: torch.Tensor) -> VisitorScores:
    """The non-personal list: each item's baseline rating ``mu + b_i`` (the fallback
    :meth:`Recommender.predict` gives an unknown user), clipped to the scale and shown;
    ranked less :meth:`Recommender.shrink_penalty`, so films rated by one or two people do
    not top it."""
    baseline = _item_baseline(recommender).clamp(*recommender.rating_scale)
    key = baseline - recommender.shrink_penalty()
    return VisitorScores(rated, key, baseline, baseline, "baseline")


def _item_baseline(recommender: Recommender) -> torch.Tensor:
    """``mu + b_i`` per item, float32 ``[n_items]``: the bias baseline fitted on training."""
    fallback = recommender.fallback
    return (fallback.global_mean + fallback.item_bias.double()).float()


def ranking_fold_in(
    recommender: Recommender, items: torch.Tensor, values: torch.Tensor, options: FoldInOptions
) -> torch.Tensor:
    """A visitor's ranking scores ``[n_items]`` (float32) for a run that ranks (module doc)."""
    model = recommender.model
    with torch.inference_mode():
        exact = model.fold_in_history(items)
    if exact is not None:
        return exact.float()
    ranker = model.visitor_ranker(recommender.item_side())
    if ranker is None:  # no user vector: the rating fold-in's order (biases)
        return model.fold_in(
            items, values, recommender.fallback, options, recommender.item_side()
        ).float()
    loss = RANKING_FOLD_IN_LOSS.get(recommender.objective, "bpr")
    user = fit_visitor_vector(ranker, items, loss, options)
    with torch.no_grad():
        return ranker.scores(user).float()


def fit_visitor_vector(
    ranker: VisitorRanker, items: torch.Tensor, loss: str, options: FoldInOptions
) -> torch.Tensor:
    """Adam steps of ``loss`` (rated items vs every unrated one) on a fresh user vector.

    The vector starts at ``ranker.start`` and is pulled back toward it by the larger of the
    model's L2 and ``options.l2``; the vector with the lowest loss is kept. Deterministic: no
    sampling (every unrated item is a negative) and no wall-clock cap (``options.max_seconds``
    is ignored: all ``options.steps`` run), so a visitor's list is the same from Python, the
    command line and HTTP whatever the machine's load.

    Returns:
        float32 ``[d]`` the fitted vector (detached).
    """
    start = ranker.start.detach().clone().float()
    with torch.no_grad():
        unrated = torch.ones(ranker.scores(start).shape[0], dtype=torch.bool)
    unrated[items] = False
    if not unrated.any():  # nothing left to rank above or below
        return start
    criterion, reg = RANKING_LOSSES[loss], max(ranker.reg, options.l2)
    user = start.clone().requires_grad_(True)
    optimiser = torch.optim.Adam([user], lr=options.lr)
    best, best_loss = start.clone(), float("inf")
    for _ in range(options.steps):
        with torch.enable_grad():
            scores = ranker.scores(user)
            negative = scores[unrated][None, :]
            if loss == "softmax":  # each rated item against the whole unrated catalogue
                negative = negative.expand(len(items), -1)
            value = criterion(scores[items], negative) + reg * torch.sum((user - start) ** 2)
            # Gradients for the visitor only: nothing accumulates on the frozen weights.
            (grad,) = torch.autograd.grad(value, [user])
        if float(value.detach()) < best_loss:
            best_loss, best = float(value.detach()), user.detach().clone()
        user.grad = grad
        optimiser.step()
    return best


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
    """The ``k`` best items the visitor has not rated, as
    :meth:`Recommender.recommend_for_ratings` ranks them, with how the fit went (``method``:
    :func:`fold_in_method`, or ``"baseline"`` for a visitor who liked nothing).

    Raises what :func:`visitor_scores` raises.
    """
    from movierec.recommend.results import check_k
    from movierec.recommend.visitor import rank_visitor

    check_k(k)
    started = time.perf_counter()
    found = visitor_scores(recommender, item_ids, ratings)
    items, scores = rank_visitor(found, k)
    fit_seconds = time.perf_counter() - started
    return VisitorTopK(items.tolist(), scores.tolist(), found.method, fit_seconds)


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
