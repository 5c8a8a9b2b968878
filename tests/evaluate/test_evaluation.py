"""Ranking evaluation on large catalogues: the seeded user sample and what it reports."""

import numpy as np
import pandas as pd

from movierec.evaluate.evaluation import ranking_metrics, sample_users
from tests.factories import build_recommender


def test_sample_users_keeps_everyone_within_budget():
    users = np.arange(50)
    assert np.array_equal(sample_users(users, n_items=10, max_scores=500), users)


def test_sample_users_caps_and_is_reproducible():
    users = np.arange(0, 10_000, 3)
    first = sample_users(users, n_items=100, max_scores=5_000)
    assert first.size == 50
    assert np.all(np.isin(first, users)) and np.all(np.diff(first) > 0)
    assert np.array_equal(first, sample_users(users, n_items=100, max_scores=5_000))


def _ratings(n_users: int, n_items: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    pairs = {(int(u), int(i)) for u, i in rng.integers(0, [n_users, n_items], size=(3000, 2))}
    users, items = map(np.array, zip(*sorted(pairs), strict=True))
    return pd.DataFrame(
        {
            "user_id": users + 1,
            "item_id": items + 1,
            "rating": rng.integers(1, 6, size=users.size).astype("float32"),
            "timestamp": np.arange(users.size),
        }
    )


def test_ranking_metrics_report_a_sample_when_over_budget():
    ratings = _ratings(60, 40, seed=1)
    test = ratings.sample(frac=0.2, random_state=0)
    train = ratings.drop(test.index)
    rec = build_recommender("mf", train)
    whole = ranking_metrics(rec, train, test, threshold=None)
    assert whole["ranking_users"] == whole["ranking_users_eligible"] > 10
    sampled = ranking_metrics(rec, train, test, threshold=None, max_scores=10 * 40)
    assert sampled["ranking_users"] == 10
    assert sampled["ranking_users_eligible"] == whole["ranking_users_eligible"]
    assert 0.0 <= sampled["ndcg@10"] <= 1.0
