"""The EmbeddingNet with side features: every scoring path agrees, unseen items are scored from
their features, a saved run predicts without the metadata, and bad feature columns fail in one
line."""

import numpy as np
import pandas as pd
import pytest
import torch

from movierec.artifacts import load_run, save_run
from movierec.config import TrainConfig
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ConfigError
from movierec.models import build_model, make_config
from movierec.models.base import FoldInOptions
from movierec.models.bias import fit_biases
from movierec.models.features import encode_features
from movierec.pipeline import fit_recommender
from tests.cli.invoke import fails_cleanly

N_USERS, N_ITEMS = 5, 6
USERS = pd.DataFrame(
    {"user_id": range(N_USERS), "age": [20, 30, 40, 50, 60], "gender": list("FMMFM")}
)
ITEMS = pd.DataFrame(
    {
        "item_id": range(N_ITEMS),
        "title": [f"M{i}" for i in range(N_ITEMS)],
        "year": [1990, 1991, 1995, 1999, 1990, 1999],
        "genres": ["Drama", "Comedy", "Drama|Comedy", "Action", "Action|Drama", "Comedy"],
    }
)


def _net(**options):
    config = make_config(
        "embedding-net",
        {
            "n_factors": 4,
            "hidden": [8, 6],
            "dropouts": [],
            "user_features": ["age", "gender"],
            "item_features": ["genres", "year"],
            "feature_factors": 3,
            **options,
        },
    )
    torch.manual_seed(0)
    net = build_model("embedding-net", N_USERS, N_ITEMS, (1.0, 5.0), config)
    users = encode_features(USERS, "user_id", pd.Index(range(N_USERS)), ["age", "gender"], "user")
    items = encode_features(ITEMS, "item_id", pd.Index(range(N_ITEMS)), ["genres", "year"], "item")
    net.attach_features(users, items)
    # Items 4 and 5 have no training ratings: they are cold.
    user_idx = torch.tensor([0, 1, 2, 3, 4, 0, 1])
    item_idx = torch.tensor([0, 1, 2, 3, 0, 2, 3])
    net.init_from_data(user_idx, item_idx, torch.tensor([4.0, 3, 5, 2, 4, 3, 1]))
    return net.eval()


def _pairs():
    users = torch.arange(N_USERS).repeat_interleave(N_ITEMS)
    return users, torch.arange(N_ITEMS).repeat(N_USERS)


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"biases": True, "interaction": "concat+product"},
        {"biases": True, "cold_items": "zero", "item_id_dropout": 0.3},
    ],
)
def test_catalogue_scores_match_pairwise_predictions_cold_items_included(options):
    net = _net(**options)
    with torch.no_grad():
        pairwise = net(*_pairs()).view(N_USERS, N_ITEMS)
        assert torch.allclose(net.score_items(torch.arange(N_USERS)), pairwise, atol=1e-5)


def test_the_ranking_head_ranks_every_item_as_its_logits_do():
    net = _net(ranking_head=True, interaction="concat+product")
    with torch.no_grad():
        pairwise = net.logits(*_pairs()).view(N_USERS, N_ITEMS)
        assert torch.allclose(net.rank_items(torch.arange(N_USERS)), pairwise, atol=1e-5)


def test_a_cold_item_is_scored_from_its_features_not_its_untrained_id_row():
    net = _net(biases=True)
    with torch.no_grad():
        before = net.score_items(torch.arange(N_USERS))
        net.item_embedding.weight[4] += 10.0  # the untrained row of cold item 4
        net.item_bias.weight[4] = 3.0
        after = net.score_items(torch.arange(N_USERS))
        assert torch.equal(before[:, 4], after[:, 4])
        net.side.items[0].weight += 1.0  # the genre embeddings
        moved = net.score_items(torch.arange(N_USERS))
    assert not torch.allclose(moved[:, 4], after[:, 4])


def test_the_mean_stand_in_is_the_mean_trained_item_embedding():
    net = _net()
    with torch.no_grad():
        ids = net._item_ids()
        assert torch.allclose(ids[4], net.item_embedding.weight[:4].mean(dim=0))
        assert torch.equal(ids[:4], net.item_embedding.weight[:4])
        assert torch.equal(_net(cold_items="zero")._item_ids()[5], torch.zeros(4))


def test_fold_in_and_the_visitor_ranker_score_the_catalogue():
    net = _net(biases=True)
    fallback = fit_biases(
        torch.tensor([0, 1]), torch.tensor([0, 1]), torch.tensor([4.0, 3.0]), N_USERS, N_ITEMS
    )
    scores = net.fold_in(
        torch.tensor([0, 2]), torch.tensor([5.0, 4.0], dtype=torch.float64), fallback,
        FoldInOptions(steps=5),
    )  # fmt: skip
    assert scores.shape == (N_ITEMS,) and torch.isfinite(scores).all()
    ranker = net.visitor_ranker()
    assert ranker.scores(ranker.start).shape == (N_ITEMS,)


def test_without_features_the_model_holds_no_side_tensors():
    plain = build_model("embedding-net", N_USERS, N_ITEMS, (1.0, 5.0), {"n_factors": 4})
    assert plain.side is None
    assert not [k for k in plain.state_dict() if k.startswith("side.")]
    with pytest.raises(ConfigError, match="no user_features or item_features"):
        plain.attach_features([], [])


@pytest.mark.parametrize(
    ("options", "match"),
    [
        ({"item_id_dropout": 0.2}, "needs item_features"),
        ({"item_features": ["genres", "genres"]}, "distinct column names"),
        ({"item_features": ["genres"], "cold_items": "random"}, "cold_items must be one of"),
        ({"user_features": "age"}, "must be a list of texts"),
    ],
)
def test_bad_feature_options_are_one_config_error(options, match):
    with pytest.raises(ConfigError, match=match):
        make_config("embedding-net", options)


def _metadata(ratings: pd.DataFrame) -> tuple[pd.DataFrame, pd.DataFrame]:
    users = sorted(ratings["user_id"].unique())
    items = [*sorted(ratings["item_id"].unique()), 9999]  # 9999: metadata, no ratings
    rng = np.random.default_rng(0)
    users_frame = pd.DataFrame(
        {
            "user_id": users,
            "age": rng.integers(18, 70, len(users)),
            "gender": rng.choice(["F", "M"], len(users)),
        }
    )
    items_frame = pd.DataFrame(
        {
            "item_id": items,
            "title": [f"Movie {i}" for i in items],
            "year": rng.integers(1950, 2000, len(items)),
            "genres": rng.choice(["Drama", "Comedy|Drama", "Action"], len(items)),
        }
    )
    return users_frame, items_frame


def test_an_unrated_item_is_scored_and_a_saved_run_predicts_without_the_metadata(tmp_path):
    ratings = synthetic_ratings(40, 25, 600, seed=3)
    users, items = _metadata(ratings)
    recommender = fit_recommender(
        ratings, model="embedding-net", users=users, items=items, split="none", epochs=2,
        n_factors=8, hidden=[16], dropouts=[], biases=True, progress=False,
        user_features=["age", "gender"], item_features=["genres", "year"], item_id_dropout=0.2,
    )  # fmt: skip
    encoder = recommender.encoder
    assert encoder.n_items == 26 and encoder.item_ids[-1] == 9999
    assert recommender.model.side.trained.tolist() == [True] * 25 + [False]
    user_ids = ratings["user_id"].unique()[:5]
    predicted = recommender.predict(user_ids, np.full(5, 9999), unknown="error")
    assert np.isfinite(predicted).all() and len(np.unique(predicted.round(6))) > 1
    save_run(
        tmp_path / "run", recommender, model_config=recommender.model.config,
        train_config=TrainConfig(), info={"dataset": "synthetic", "split": "none", "seed": 0},
    )  # fmt: skip
    loaded, _ = load_run(tmp_path / "run")
    assert np.allclose(loaded.predict(user_ids, np.full(5, 9999)), predicted, atol=1e-6)
    assert loaded.model.config.item_features == ("genres", "year")


def test_features_without_metadata_or_a_missing_column_fail_in_one_line(tmp_path):
    ratings_file = tmp_path / "ratings.csv"
    ratings = synthetic_ratings(30, 20, 400, seed=1)
    ratings.to_csv(ratings_file, index=False)
    config = tmp_path / "features.toml"
    config.write_text('[model]\nname = "embedding-net"\nuser_features = ["age"]\n')
    args = ["train", "--data", str(ratings_file), "--config", str(config), "--epochs", "1"]
    fails_cleanly(args, "no user metadata")
    items_file = tmp_path / "items.csv"
    _metadata(ratings)[1].to_csv(items_file, index=False)
    config.write_text('[model]\nname = "embedding-net"\nitem_features = ["budget"]\n')
    fails_cleanly([*args, "--items", str(items_file)], "'budget', which the item metadata lacks")
