"""Run a recommender over a test split and compute its metrics.

Rating error (RMSE, MAE) covers every test rating: pairs the model never saw get the documented
bias fallback (see :mod:`movierec.recommend`), and their count is reported. Runs that predict
ranking scores rather than ratings (``bpr``/``bce`` objectives, ``ease``, ``popularity``) report
RMSE and MAE as None: a number there would be meaningless.

Ranking metrics at ``k``: a user's relevant items are their test items rated at or above
``threshold``, or every test item whatever its rating when ``threshold`` is None (the output's
``relevance`` key says which: ``"rated >= 4"`` or ``"any rated test item"``). Candidates are all
items the model knows minus those the user rated in the training part. Users with no relevant
test item, or unknown to the model, are left out (counted). A relevant item the model never saw
still counts in the user's recall denominator. Besides precision, recall, NDCG, MAP and hit rate
at ``k``, the quality of the lists as a person sees it: catalogue coverage, novelty (mean
popularity rank, by training ratings, of the recommended items; 1 is the most rated item), the
long-tail share (recommended entries whose item has fewer than 10 training ratings) and the
median number of training ratings of the recommended items.

Default relevance (:func:`default_relevance`): any rated test item for the ``stratified`` split
(as the published ml-100k benchmark tables), rated >= 4 for every other split.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pandas as pd
import torch

from movierec.data.tensors import RatingTensors, SeenItems
from movierec.evaluate import metrics
from movierec.recommend import Recommender

DEFAULT_THRESHOLD = 4.0
# Ranking metrics score every candidate item for every evaluated user. Above this many
# (user, item) scores (ml-1m: 22M, fine; 25M ratings: 9.6e9, hours on a CPU) they are computed
# on a seeded random sample of users, and the output says so.
RANKING_SCORE_BUDGET = 50_000_000
RANKING_SAMPLE_SEED = 0


def default_relevance(split_name: str) -> float | None:
    """The relevance threshold a split uses by default: None (any rating) for ``stratified``."""
    return None if split_name.startswith("stratified") else DEFAULT_THRESHOLD


def parse_relevance(text: str | None) -> float | str | None:
    """``any`` -> None, ``>=4`` or ``4`` -> 4.0, None -> ``"default"`` (chosen by the split)."""
    from movierec.errors import ConfigError

    if text is None or text.strip() == "" or text.strip() == "default":
        return "default"
    value = text.strip().removeprefix(">=").strip()
    if value == "any":
        return None
    try:
        return float(value)
    except ValueError:
        raise ConfigError(
            f"unknown relevance {text!r}; use any (every rated test item) or >=R, e.g. >=4"
        ) from None


def relevance_label(threshold: float | None) -> str:
    return "any rated test item" if threshold is None else f"rated >= {threshold:g}"


def evaluate(
    recommender: Recommender,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    k: int = 10,
    threshold: float | None = DEFAULT_THRESHOLD,
) -> dict[str, Any]:
    """All metrics of ``recommender`` on ``test``; ``train`` says which items each user has seen.

    ``threshold`` None counts every test item as relevant (see the module doc).
    """
    encoder = recommender.encoder
    known = (encoder.encode_users(test["user_id"].to_numpy()) >= 0) & (
        encoder.encode_items(test["item_id"].to_numpy()) >= 0
    )
    result: dict[str, Any] = {"rmse": None, "mae": None}
    if recommender.predicts_ratings:
        predicted = recommender.predict(test["user_id"].to_numpy(), test["item_id"].to_numpy())
        actual = test["rating"].to_numpy(dtype=np.float64)
        result = {"rmse": metrics.rmse(predicted, actual), "mae": metrics.mae(predicted, actual)}
    result.update({"test_ratings": len(test), "test_ratings_fallback": int((~known).sum())})
    result.update(ranking_metrics(recommender, train, test, k=k, threshold=threshold))
    return result


# What a person sees in the lists beside whether they hit: how much of the catalogue they use,
# how obscure their items are.
LIST_QUALITY = ("coverage", "novelty", "long_tail_share", "median_item_ratings")


def ranking_metrics(
    recommender: Recommender,
    train: pd.DataFrame,
    test: pd.DataFrame,
    *,
    k: int = 10,
    threshold: float | None = DEFAULT_THRESHOLD,
    max_scores: int = RANKING_SCORE_BUDGET,
) -> dict[str, Any]:
    """Precision, recall, NDCG, MAP and hit rate at ``k``, plus the lists' quality
    (:data:`LIST_QUALITY`: coverage, novelty, long-tail share, median ratings per shown item).

    ``ranking_users`` is how many users were evaluated, ``ranking_users_eligible`` how many had
    a relevant test item: they differ only when the work exceeds ``max_scores`` (see
    :func:`sample_users`).
    """
    encoder = recommender.encoder
    relevant = test if threshold is None else test[test["rating"] >= threshold]
    rel_users = encoder.encode_users(relevant["user_id"].to_numpy())
    rel_items = encoder.encode_items(relevant["item_id"].to_numpy())
    known_user = rel_users >= 0
    rel_users, rel_items = rel_users[known_user], rel_items[known_user]
    n_relevant_all = np.bincount(rel_users, minlength=encoder.n_users)
    users = np.flatnonzero(n_relevant_all)
    eligible = int(users.size)
    users = sample_users(users, encoder.n_items, max_scores)
    out: dict[str, Any] = {
        "ranking_users": int(users.size),
        "ranking_users_eligible": eligible,
        "relevance": relevance_label(threshold),
        "relevance_threshold": threshold,
    }
    if users.size == 0:
        for name in ("precision", "recall", "ndcg", "map", "hit_rate"):
            out[f"{name}@{k}"] = None
        for name in LIST_QUALITY:
            out[name] = None
        return out

    train_tensors = RatingTensors.from_frame(train, encoder)
    seen = SeenItems.from_tensors(train_tensors, encoder.n_users, encoder.n_items)
    top_items, top_scores = recommender.top_indices(torch.from_numpy(users), k, exclude=seen)
    position = np.full(encoder.n_users, -1, dtype=np.int64)
    position[users] = np.arange(users.size)
    n_items = encoder.n_items
    # A (user, item) pair as one int64 key: membership of the top-k in the relevant set is one
    # vectorised isin instead of a loop over users.
    known_item = rel_items >= 0
    relevant_keys = np.unique(position[rel_users[known_item]] * n_items + rel_items[known_item])
    top = top_items.numpy()
    top_keys = np.arange(users.size)[:, None] * n_items + top
    hits = np.isin(top_keys, relevant_keys) & np.isfinite(top_scores.numpy())
    n_relevant = n_relevant_all[users]
    shown = top[np.isfinite(top_scores.numpy())]
    item_counts = torch.bincount(train_tensors.item_idx, minlength=n_items).numpy()
    out.update(
        {
            f"precision@{k}": metrics.precision_at_k(hits, n_relevant),
            f"recall@{k}": metrics.recall_at_k(hits, n_relevant),
            f"ndcg@{k}": metrics.ndcg_at_k(hits, n_relevant),
            f"map@{k}": metrics.map_at_k(hits, n_relevant),
            f"hit_rate@{k}": metrics.hit_rate_at_k(hits, n_relevant),
            "coverage": metrics.coverage(shown, n_items),
            "novelty": metrics.novelty(shown, item_counts) if shown.size else None,
            "long_tail_share": (
                metrics.long_tail_share(shown, item_counts) if shown.size else None
            ),
            "median_item_ratings": (
                metrics.median_item_ratings(shown, item_counts) if shown.size else None
            ),
        }
    )
    return out


def sample_users(users: np.ndarray, n_items: int, max_scores: int) -> np.ndarray:
    """``users`` if scoring them all costs at most ``max_scores`` (user, item) scores, else a
    seeded random sample (sorted) of ``max_scores // n_items`` of them (at least one).

    The same data and split always give the same sample, so runs stay comparable.
    """
    cap = max(1, max_scores // max(1, n_items))
    if users.size <= cap:
        return users
    rng = np.random.default_rng(RANKING_SAMPLE_SEED)
    return np.sort(rng.choice(users, size=cap, replace=False))
