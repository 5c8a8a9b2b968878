"""How good "similar movies" are, on held-out ratings: the item-to-item hit rate.

For each user and each training item they rated >= ``threshold``, the share of that item's
top-``k`` similar items (itself excluded) that the same user rated >= ``threshold`` in the test
part. A neighbour list a fan would click on is one the fans of the item go on to like. Beside
it: the mean genre overlap (Jaccard of genre sets) of an item and its neighbours, and the
median training rating count of the neighbours (how obscure they are).
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from movierec.similarity import neighbours

if TYPE_CHECKING:
    from movierec.recommend import Recommender


def item_to_item_quality(
    recommender: Recommender,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    similarity: str | None = None,
    k: int = 10,
    threshold: float = 4.0,
) -> dict[str, Any]:
    """Item-to-item hit rate, genre overlap and neighbour popularity (see the module doc)."""
    encoder = recommender.encoder
    n_items = encoder.n_items
    near = neighbours(recommender.similarity_source(similarity), n_items, k).numpy()
    liked_train = train[train["rating"] >= threshold]
    liked_test = test[test["rating"] >= threshold]
    tu = encoder.encode_users(liked_train["user_id"].to_numpy())
    ti = encoder.encode_items(liked_train["item_id"].to_numpy())
    keep = (tu >= 0) & (ti >= 0)
    tu, ti = tu[keep], ti[keep]
    hu = encoder.encode_users(liked_test["user_id"].to_numpy())
    hi = encoder.encode_items(liked_test["item_id"].to_numpy())
    keep = (hu >= 0) & (hi >= 0)
    liked_keys = np.unique(hu[keep].astype(np.int64) * n_items + hi[keep])
    has_test = np.isin(tu, np.unique(hu[keep]))
    tu, ti = tu[has_test], ti[has_test]
    keys = tu[:, None].astype(np.int64) * n_items + near[ti]  # [pairs, k]
    hits = np.isin(keys, liked_keys).mean(axis=1) if len(tu) else np.array([])
    counts = recommender.similarity_source("jaccard").counts.numpy()
    return {
        "similarity": similarity or "jaccard",
        "item_to_item_hit_rate": float(hits.mean()) if hits.size else None,
        "pairs": len(tu),
        "genre_overlap": _genre_overlap(recommender, near),
        "median_neighbour_ratings": float(np.median(counts[near])),
    }


def _genre_overlap(recommender: Recommender, near: np.ndarray) -> float | None:
    """Mean Jaccard overlap of an item's genres with each neighbour's (items with genres)."""
    genres = [set(filter(None, str(g).split("|"))) for g in recommender.genres_by_index]
    if not any(genres):
        return None
    scores = [
        len(genres[i] & genres[j]) / len(genres[i] | genres[j])
        for i in range(len(genres))
        for j in near[i]
        if genres[i] and genres[j]
    ]
    return float(np.mean(scores)) if scores else None
