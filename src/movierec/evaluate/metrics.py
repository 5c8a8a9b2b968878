"""Pure metric functions on arrays: they print nothing and know nothing of models.

Rating-error metrics take predictions and true ratings. Ranking metrics take ``hits``, a bool
array ``[U, K]`` whose ``[u, j]`` is True when the ``j``-th item recommended to user ``u`` is one
of that user's relevant test items, and ``n_relevant`` ``[U]``, how many relevant items each user
has. Users with no relevant items must be left out by the caller (their recall is undefined).
All ranking metrics are means over users.
"""

from __future__ import annotations

import numpy as np
import numpy.typing as npt

ArrayLike = npt.ArrayLike


def rmse(predicted: ArrayLike, actual: ArrayLike) -> float:
    """Root mean squared error."""
    error = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.sqrt(np.mean(error**2)))


def mae(predicted: ArrayLike, actual: ArrayLike) -> float:
    """Mean absolute error."""
    error = np.asarray(predicted, dtype=np.float64) - np.asarray(actual, dtype=np.float64)
    return float(np.mean(np.abs(error)))


def _check(hits: ArrayLike, n_relevant: ArrayLike) -> tuple[np.ndarray, np.ndarray]:
    hits = np.asarray(hits, dtype=bool)
    n_relevant = np.asarray(n_relevant, dtype=np.float64)
    if hits.ndim != 2 or n_relevant.shape != (hits.shape[0],):
        raise ValueError(
            f"hits must be [U, K] and n_relevant [U]; got {hits.shape}, {n_relevant.shape}"
        )
    if np.any(n_relevant < 1):
        raise ValueError("every user passed to a ranking metric needs at least one relevant item")
    return hits, n_relevant


def precision_at_k(hits: ArrayLike, n_relevant: ArrayLike) -> float:
    """Mean fraction of the ``K`` recommendations that are relevant."""
    hits, _ = _check(hits, n_relevant)
    return float(np.mean(hits.sum(axis=1) / hits.shape[1]))


def recall_at_k(hits: ArrayLike, n_relevant: ArrayLike) -> float:
    """Mean fraction of each user's relevant items found in the top ``K``."""
    hits, n_relevant = _check(hits, n_relevant)
    return float(np.mean(hits.sum(axis=1) / n_relevant))


def hit_rate_at_k(hits: ArrayLike, n_relevant: ArrayLike) -> float:
    """Fraction of users with at least one relevant item in their top ``K``."""
    hits, _ = _check(hits, n_relevant)
    return float(np.mean(hits.any(axis=1)))


def ndcg_at_k(hits: ArrayLike, n_relevant: ArrayLike) -> float:
    """Normalised discounted cumulative gain with binary relevance and ``1/log2(rank+1)`` gains."""
    hits, n_relevant = _check(hits, n_relevant)
    k = hits.shape[1]
    discounts = 1.0 / np.log2(np.arange(2, k + 2))
    dcg = (hits * discounts).sum(axis=1)
    ideal_counts = np.minimum(n_relevant, k).astype(int)
    idcg = np.cumsum(discounts)[ideal_counts - 1]
    return float(np.mean(dcg / idcg))


def map_at_k(hits: ArrayLike, n_relevant: ArrayLike) -> float:
    """Mean average precision: precision at each hit's rank, summed, over ``min(n_relevant, K)``."""
    hits, n_relevant = _check(hits, n_relevant)
    k = hits.shape[1]
    precision_at_rank = np.cumsum(hits, axis=1) / np.arange(1, k + 1)
    average_precision = (precision_at_rank * hits).sum(axis=1) / np.minimum(n_relevant, k)
    return float(np.mean(average_precision))


def coverage(recommended: ArrayLike, n_items: int) -> float:
    """Fraction of the catalogue that appears in at least one user's recommendations."""
    recommended = np.asarray(recommended)
    if n_items < 1:
        raise ValueError("coverage needs a catalogue of at least one item")
    return float(np.unique(recommended).size / n_items)


def popularity_rank(item_counts: ArrayLike) -> np.ndarray:
    """Each item's popularity rank: 1 for the most rated item, ties sharing their average rank.

    Args:
        item_counts: ``[n_items]`` training ratings per item.

    Returns:
        float64 ``[n_items]``; an item rated by as many users as two others and fewer than none
        gets ``(1 + 3) / 2 = 2`` (it shares ranks 1..3).
    """
    counts = np.asarray(item_counts, dtype=np.float64)
    ascending = np.sort(counts)
    n = counts.size
    more = n - np.searchsorted(ascending, counts, side="right")  # items strictly more popular
    at_least = n - np.searchsorted(ascending, counts, side="left")  # items as popular or more
    return (more + 1 + at_least) / 2.0


def novelty(recommended: ArrayLike, item_counts: ArrayLike) -> float:
    """Mean popularity rank (see :func:`popularity_rank`) of the recommended items.

    Higher is more novel: 1 would mean recommending only the most popular item. Every entry of
    ``recommended`` (any shape of item indices) counts once.
    """
    recommended = np.asarray(recommended, dtype=np.int64).ravel()
    if recommended.size == 0:
        raise ValueError("novelty needs at least one recommended item")
    return float(np.mean(popularity_rank(item_counts)[recommended]))


LONG_TAIL_RATINGS = 10  # an item with fewer training ratings than this is in the long tail


def long_tail_share(
    recommended: ArrayLike, item_counts: ArrayLike, threshold: int = LONG_TAIL_RATINGS
) -> float:
    """Share of the recommended entries whose item has fewer than ``threshold`` training ratings.

    What a person notices first in a bad list: films almost nobody rated, whose predicted means
    rest on one or two ratings. Every entry of ``recommended`` counts once.
    """
    recommended = np.asarray(recommended, dtype=np.int64).ravel()
    if recommended.size == 0:
        raise ValueError("long_tail_share needs at least one recommended item")
    return float(np.mean(np.asarray(item_counts)[recommended] < threshold))


def median_item_ratings(recommended: ArrayLike, item_counts: ArrayLike) -> float:
    """Median number of training ratings of the recommended entries' items."""
    recommended = np.asarray(recommended, dtype=np.int64).ravel()
    if recommended.size == 0:
        raise ValueError("median_item_ratings needs at least one recommended item")
    return float(np.median(np.asarray(item_counts)[recommended]))
