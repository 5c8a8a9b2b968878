"""Synthetic ratings with a MovieLens-like shape, for tests and scale experiments.

Users and items have long-tailed activity and popularity (Zipf-like weights), and each rating is
``mu + b_u + b_i + p_u . q_i + noise``, rounded to the rating step and clipped to the scale, so a
model that learns the low-rank structure beats the biases: learnability can be checked.
"""

from __future__ import annotations

import numpy as np
import pandas as pd


def synthetic_ratings(
    n_users: int,
    n_items: int,
    n_ratings: int,
    *,
    seed: int = 0,
    rank: int = 8,
    noise: float = 0.5,
    rating_scale: tuple[float, float] = (1.0, 5.0),
    step: float = 1.0,
) -> pd.DataFrame:
    """A canonical ratings frame (``user_id, item_id, rating, timestamp``) of distinct pairs.

    Args:
        n_users: Users (IDs ``1..n_users``).
        n_items: Items (IDs ``1..n_items``).
        n_ratings: Ratings wanted; fewer come back if sampling repeats pairs (deduplicated).
        seed: Seed of every random draw.
        rank: Dimension of the latent factors.
        noise: Standard deviation of the rating noise.
        rating_scale: ``(min, max)`` of the ratings.
        step: Rating granularity (1 for whole stars, 0.5 for half stars).
    """
    rng = np.random.default_rng(seed)
    user_weight = 1.0 / np.arange(1, n_users + 1) ** 0.6
    item_weight = 1.0 / np.arange(1, n_items + 1) ** 0.9
    users = rng.choice(n_users, size=n_ratings, p=user_weight / user_weight.sum())
    items = rng.choice(n_items, size=n_ratings, p=item_weight / item_weight.sum())
    keys = np.unique(users.astype(np.int64) * n_items + items)
    users, items = keys // n_items, keys % n_items
    factor_std = (0.5 / rank) ** 0.25  # the dot product's variance is 0.5: a learnable signal
    users_f = rng.normal(0, factor_std, (n_users, rank))
    items_f = rng.normal(0, factor_std, (n_items, rank))
    low, high = rating_scale
    mid = (low + high) / 2 + 0.3
    value = (
        mid
        + rng.normal(0, 0.4, n_users)[users]
        + rng.normal(0, 0.5, n_items)[items]
        + (users_f[users] * items_f[items]).sum(axis=1)
        + rng.normal(0, noise, users.size)
    )
    rating = np.clip(np.round(value / step) * step, low, high)
    order = rng.permutation(users.size)  # files are not sorted by user
    return pd.DataFrame(
        {
            "user_id": users[order] + 1,
            "item_id": items[order] + 1,
            "rating": rating[order].astype(np.float32),
            "timestamp": (880_000_000 + rng.integers(0, 10_000_000, users.size)).astype(np.int64),
        }
    )
