"""Small builders shared by tests: a trained recommender on synthetic ratings."""

from pathlib import Path

import pandas as pd
import torch

from movierec.config import RunOptions, TrainConfig
from movierec.data.encoder import IdEncoder
from movierec.data.readers import RatingsData
from movierec.data.splits import Split, carve_validation
from movierec.data.synthetic import synthetic_ratings
from movierec.data.tensors import RatingTensors, SeenItems
from movierec.models import build_model
from movierec.models.biases import fit_biases
from movierec.pipeline import Prepared, prepare_split
from movierec.recommend import Recommender
from movierec.train import fit


def everything(ratings: pd.DataFrame, items: pd.DataFrame | None = None) -> Prepared:
    """``ratings`` prepared for training on all of them: no test part, no validation carve-out."""
    data = RatingsData("synthetic", ratings, items, None, "ratings-file", (1.0, 5.0), Path("."))
    return prepare_split(
        data, Split("all", ratings, ratings.iloc[:0]), seed=0, validation_fraction=0
    )


def build_recommender(name: str, ratings: pd.DataFrame, **options) -> Recommender:
    encoder = IdEncoder.fit(ratings)
    tensors = RatingTensors.from_frame(ratings, encoder)
    torch.manual_seed(0)
    model = build_model(name, encoder.n_users, encoder.n_items, (1.0, 5.0), options or None)
    fit(model, tensors, None, TrainConfig(epochs=3, lr=0.01), RunOptions(progress=False))
    biases = fit_biases(
        tensors.user_idx, tensors.item_idx, tensors.rating, encoder.n_users, encoder.n_items
    )
    items = pd.DataFrame(
        {
            "item_id": encoder.item_ids,
            "title": [f"Movie {i}" for i in encoder.item_ids],
            "genres": ["Drama|Comedy"] * encoder.n_items,
        }
    )
    seen = SeenItems.from_tensors(tensors, encoder.n_users, encoder.n_items)
    return Recommender(model, encoder, biases, seen, items, {"model": name})


def fit_and_held_out(
    n_users: int, n_items: int, n_ratings: int, seed: int
) -> tuple[IdEncoder, RatingTensors, RatingTensors]:
    """Synthetic low-rank ratings split 85/15: the encoder and tensors of the fit part, and the
    held-out part's tensors (rows whose user or item the fit part lacks are left out)."""
    ratings = synthetic_ratings(n_users, n_items, n_ratings, seed=seed)
    fit_frame, held_frame = carve_validation(ratings, 0.15, seed=0)
    encoder = IdEncoder.fit(fit_frame)
    return (
        encoder,
        RatingTensors.from_frame(fit_frame, encoder),
        RatingTensors.from_frame(held_frame, encoder),
    )
