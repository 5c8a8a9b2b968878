"""EASE and item popularity: closed-form ranking models that predict no ratings."""

import numpy as np
import pandas as pd
import pytest
import torch

from movierec.config import ModelSpec, RunOptions, TrainConfig
from movierec.data.encoder import IdEncoder
from movierec.data.splits import make_split
from movierec.data.synthetic import synthetic_ratings
from movierec.data.tensors import RatingTensors
from movierec.errors import ConfigError, MovieRecError
from movierec.evaluate.evaluation import evaluate
from movierec.models import build_model, make_config
from movierec.pipeline import fit_recommender
from movierec.recommend import Recommender
from tests.factories import everything


def recommender_for(name: str, ratings: pd.DataFrame, objective=None, **options) -> Recommender:
    train = TrainConfig() if objective is None else TrainConfig(objective=objective)
    spec = ModelSpec(name, make_config(name, options), train)
    return fit_recommender(everything(ratings), spec, RunOptions(progress=False, device="cpu"))


def test_popularity_ranks_the_most_rated_items_first():
    ratings = pd.DataFrame(
        {"user_id": [1, 2, 3, 1, 2, 3], "item_id": [10, 10, 10, 20, 20, 30], "rating": 1.0}
    )
    rec = recommender_for("popularity", ratings)
    top = rec.top_indices(torch.tensor([0]), 3)[0][0]
    assert rec.encoder.decode_items(top.tolist()).tolist() == [10, 20, 30]
    assert rec.top_n(3, k=2)[0].item == 20  # user 3 rated item 10 already


def test_ease_weights_have_a_zero_diagonal_and_match_the_closed_form():
    ratings = synthetic_ratings(40, 15, 300, seed=1)
    encoder = IdEncoder.fit(ratings)
    tensors = RatingTensors.from_frame(ratings, encoder)
    model = build_model("ease", encoder.n_users, encoder.n_items, (1.0, 5.0), {"l2": 10.0})
    model.init_from_data(tensors.user_idx, tensors.item_idx, tensors.rating)
    weights = model.weights.double()
    assert torch.all(weights.diagonal() == 0)
    x = model.user_items.double()
    # Off the diagonal, B minimises |X - XB|^2 + l2 |B|^2: (X^T X + l2 I) B = X^T X - diag term.
    gram = x.T @ x
    residual = (gram + 10.0 * torch.eye(encoder.n_items, dtype=torch.float64)) @ weights - gram
    off_diagonal = residual - torch.diag(residual.diagonal())
    assert torch.allclose(off_diagonal, torch.zeros_like(off_diagonal), atol=1e-6)
    users = torch.arange(3)
    scores = model.score_items(users)
    pairs = model(users.repeat_interleave(15), torch.arange(15).repeat(3)).view(3, 15)
    assert torch.allclose(scores, pairs, atol=1e-5)


def block_ratings() -> pd.DataFrame:
    """Two tastes: users 0-29 rate 8 of items 0-11, users 30-49 rate 8 of items 12-23."""
    rng = np.random.default_rng(0)
    rows = [
        (user, item)
        for user in range(50)
        for item in rng.choice(12, 8, replace=False) + (0 if user < 30 else 12)
    ]
    users, items = zip(*rows, strict=True)
    return pd.DataFrame({"user_id": users, "item_id": items, "rating": 4.0, "timestamp": 0})


def test_ease_beats_popularity_and_reports_no_rmse():
    # Popularity pushes the majority's items on everyone; EASE keeps each user to their block.
    split = make_split(block_ratings(), "stratified", layout="ratings-file", seed=0)
    found = {}
    for name in ("ease", "popularity"):
        rec = recommender_for(name, split.train, l2=20.0) if name == "ease" else None
        rec = rec or recommender_for(name, split.train)
        found[name] = evaluate(rec, split.train, split.test, threshold=None)
        assert found[name]["rmse"] is None and found[name]["mae"] is None
        assert found[name]["relevance"] == "any rated test item"
        assert found[name]["novelty"] >= 1
    assert found["ease"]["ndcg@10"] > found["popularity"]["ndcg@10"]


def test_ranking_runs_refuse_rating_predictions_and_do_not_clip():
    ratings = synthetic_ratings(30, 20, 400, seed=3)
    rec = recommender_for("ease", ratings, l2=5.0)
    assert not rec.predicts_ratings
    with pytest.raises(MovieRecError, match="ranking scores, not ratings"):
        rec.predict([1], [1])
    bpr = recommender_for("mf", ratings, objective="bpr")
    with pytest.raises(MovieRecError, match="--objective bpr"):
        bpr.predict([1], [1])
    scores = bpr.top_indices(torch.arange(30), 20)[1]
    raw = bpr.model.score_items(torch.arange(30))
    assert torch.allclose(scores.max(1).values, raw.max(1).values)
    assert np.isfinite(bpr.top_n(1, k=3)[0].score)


def test_ease_refuses_a_huge_catalogue():
    with pytest.raises(ConfigError, match="EASE"):
        build_model("ease", 2, 50_000, (1.0, 5.0))
