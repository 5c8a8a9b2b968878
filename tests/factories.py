"""Small builders shared by tests: a trained recommender on synthetic ratings."""

import pandas as pd
import torch

from movierec.config import RunOptions, TrainConfig
from movierec.data.encoder import IdEncoder
from movierec.data.tensors import RatingTensors, SeenItems
from movierec.models import build_model
from movierec.models.biases import fit_biases
from movierec.recommend import Recommender
from movierec.training import fit


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
