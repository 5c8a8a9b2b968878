"""Shared helpers of the serving tests: tiny trained runs written to disk."""

from __future__ import annotations

from pathlib import Path

import pandas as pd

from movierec.artifacts import save_run
from movierec.config import TrainConfig
from movierec.data.synthetic import synthetic_ratings
from tests.factories import build_recommender

TITLES = ["Toy Story (1995)", "GoldenEye (1995)", "Four Rooms (1995)", "Get Shorty (1995)"]


def make_run(
    path: Path,
    model: str = "embedding-net",
    *,
    seed: int = 5,
    titles: list[str] = TITLES,
    **options,
) -> Path:
    """Train a tiny model on synthetic ratings and save it as a run directory at ``path``
    (its first items titled ``titles``, the others ``Movie <id>``)."""
    ratings = synthetic_ratings(60, 40, 1500, seed=seed)
    recommender = build_recommender(model, ratings, **options)
    # Real-looking titles for the first items, so the title search has something to find.
    items = recommender.items.copy()
    items["title"] = [
        titles[i] if i < len(titles) else f"Movie {item}" for i, item in enumerate(items["item_id"])
    ]
    items["year"] = 1995
    recommender.items = items
    return save_run(
        path,
        recommender,
        model_config=recommender.model.config,
        train_config=TrainConfig(),
        info={"dataset": "synthetic", "split": "none", "seed": seed},
        metrics={"rmse": 1.0},
        history=pd.DataFrame({"epoch": [1], "train_loss": [1.0]}),
    )
