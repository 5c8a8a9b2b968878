"""Small builders shared by tests: a trained recommender on synthetic ratings."""

from pathlib import Path

import pandas as pd

from movierec.config import ModelSpec, RunOptions, TrainConfig
from movierec.data import RatingsData, load_data
from movierec.data.encoder import IdEncoder
from movierec.data.splits import Split, carve_validation
from movierec.data.synthetic import synthetic_ratings
from movierec.data.tensors import RatingTensors
from movierec.models import make_config
from movierec.pipeline import Prepared, fit_recommender, prepare_split
from movierec.recommend import Recommender


def everything(ratings: pd.DataFrame, items: pd.DataFrame | None = None) -> Prepared:
    """``ratings`` prepared for training on all of them: no test part, no validation carve-out."""
    data = RatingsData("synthetic", ratings, items, None, "ratings-file", (1.0, 5.0), Path("."))
    return prepare_split(
        data, Split("all", ratings, ratings.iloc[:0]), seed=0, validation_fraction=0
    )


def build_recommender(
    name: str, ratings: pd.DataFrame, *, objective: str = "rating", **options
) -> Recommender:
    """``name`` with ``options`` trained 3 epochs with ``objective`` on all of ``ratings``
    through :func:`movierec.pipeline.fit_recommender`, with a title and genres for every item."""
    item_ids = sorted(ratings["item_id"].unique())  # ID order: the serving tests title items 1-4
    items = pd.DataFrame(
        {
            "item_id": item_ids,
            "title": [f"Movie {i}" for i in item_ids],
            "genres": ["Drama|Comedy"] * len(item_ids),
        }
    )
    train = TrainConfig(epochs=3, lr=0.01, objective=objective)
    spec = ModelSpec(name, make_config(name, options), train)
    return fit_recommender(everything(ratings, items), spec, RunOptions(progress=False))


def fit_and_held_out(
    n_users: int, n_items: int, n_ratings: int, seed: int
) -> tuple[IdEncoder, RatingTensors, RatingTensors]:
    """Synthetic low-rank ratings split 85/15 by :func:`split_fit_held`."""
    return split_fit_held(synthetic_ratings(n_users, n_items, n_ratings, seed=seed))


def ml100k_fit_and_held_out(n_users: int) -> tuple[IdEncoder, RatingTensors, RatingTensors]:
    """Real ratings: ml-100k's first ``n_users`` users split 85/15 by :func:`split_fit_held`."""
    ratings = load_data("ml-100k", progress=False).ratings
    return split_fit_held(ratings[ratings["user_id"].isin(ratings["user_id"].unique()[:n_users])])


def split_fit_held(ratings: pd.DataFrame) -> tuple[IdEncoder, RatingTensors, RatingTensors]:
    """``ratings`` 85/15 (seed 0): the encoder and tensors of the fit part, and the held-out
    part's tensors (rows whose user or item the fit part lacks are left out)."""
    fit_frame, held_frame = carve_validation(ratings, 0.15, seed=0)
    encoder = IdEncoder.fit(fit_frame)
    held_frame = held_frame[
        held_frame["item_id"].isin(fit_frame["item_id"])
        & held_frame["user_id"].isin(fit_frame["user_id"])
    ]
    return (
        encoder,
        RatingTensors.from_frame(fit_frame, encoder),
        RatingTensors.from_frame(held_frame, encoder),
    )
