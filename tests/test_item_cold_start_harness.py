"""The pure pieces of benchmarks/item_cold_start.py: the held-out-items split, NDCG and the
genre-mean baseline, checked by hand."""

import sys
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import item_cold_start as cold  # the harness lives in benchmarks/, not in the package

from movierec.data import RatingsData


def _data() -> RatingsData:
    ratings = pd.DataFrame(
        {
            "user_id": np.repeat(np.arange(4), 20),
            "item_id": np.tile(np.arange(20), 4),
            "rating": np.float32(3.0),
            "timestamp": 0,
        }
    )
    ratings.loc[ratings["item_id"] < 10, "rating"] = 5.0  # Drama films rated 5, Comedy 3
    items = pd.DataFrame(
        {
            "item_id": np.arange(20),
            "title": [f"M{i}" for i in range(20)],
            "year": 1990,
            "genres": ["Drama"] * 10 + ["Comedy"] * 10,
        }
    )
    return RatingsData("tiny", ratings, items, None, "dataframe", (1.0, 5.0), Path("."))


def test_the_split_holds_out_a_tenth_of_the_items_with_every_rating_of_them():
    split = cold.cold_split(_data(), seed=0)
    held = set(split.test["item_id"])
    assert len(held) == 2
    assert not held & set(split.train["item_id"])
    assert len(split.test) == 2 * 4


def test_genre_mean_predicts_the_genres_mean_residual():
    data = _data()
    split = cold.cold_split(data, seed=0)
    base = cold.Baselines(data, split)
    effect = base.per_genre(base.genre_effect, np.array([0, 15]))
    drama = split.train[split.train["item_id"] < 10]["rating"].mean()
    assert effect[0] == pytest.approx(drama - base.mu, abs=1e-6)  # users' biases are all 0
    assert effect[0] > 0 > effect[1]


def test_ndcg_ranks_each_users_held_out_items_by_hand():
    scores = np.array([[0.9, 0.1, 0.5], [0.2, 0.3, 0.1], [0.0, 0.0, 0.0]])
    relevant = np.array([[False, True, False], [False, True, False], [False, False, False]])
    # User 0 finds its item third (1/log2(4) = 0.5), user 1 first; user 2 has none: left out.
    assert cold.ndcg(scores, relevant) == pytest.approx((0.5 + 1.0) / 2)
