"""Sparse FC's factorised side term: its arithmetic by hand, every scoring path agrees with the
forward pass, the L2 penalty counts it, it learns what the metadata says, a saved run predicts
without the metadata, and bad options fail in one line."""

import numpy as np
import pandas as pd
import pytest
import torch

from movierec.artifacts import load_run, save_run
from movierec.config import TrainConfig
from movierec.errors import ArtifactError, ConfigError, UnknownIdError
from movierec.models import build_model, make_config
from movierec.models.features import encode_features
from movierec.models.side_factors import SideFactors
from movierec.pipeline import fit_recommender
from tests.cli.invoke import fails_cleanly

N_USERS, N_ITEMS = 4, 5
USERS = pd.DataFrame({"user_id": range(N_USERS), "gender": list("FMMF"), "age": [20, 30, 40, 50]})
ITEMS = pd.DataFrame(
    {"item_id": range(N_ITEMS), "genres": ["Drama", "Comedy", "Drama|Comedy", "Action", ""]}
)
# Training pairs: user 3 rated nothing, item 4 nothing.
RATED_USERS = torch.tensor([0, 0, 1, 2, 2, 2])
RATED_ITEMS = torch.tensor([0, 1, 1, 0, 2, 3])
RATINGS = torch.tensor([5.0, 1.0, 4.0, 2.0, 3.0, 5.0])
SIDE = {
    "factors": 3,
    "user_features": ["gender", "age"],
    "item_features": ["genres"],
    "implicit": True,
}


def _encoded():
    users = encode_features(USERS, "user_id", pd.Index(range(N_USERS)), ["gender", "age"], "user")
    items = encode_features(ITEMS, "item_id", pd.Index(range(N_ITEMS)), ["genres"], "item")
    return users, items


def _side_term():
    torch.manual_seed(0)
    term = SideFactors(N_USERS, N_ITEMS, 3, ["gender", "age"], ["genres"], implicit=True)
    term.attach(*_encoded())
    term.init_from_data(RATED_USERS, RATED_ITEMS)
    return term


def test_the_term_is_the_dot_product_of_the_summed_vectors():
    term = _side_term()
    gender, age = term.user_tables
    (genres,) = term.item_tables
    # Codes: gender F=1, M=2; age has a bucket per value (1..4); genres multi-hot averaged.
    p, q, y = term.user_vectors, term.item_vectors, term.implicit_vectors
    user_2 = p[2] + gender.weight[2] + age.weight[3] + (y[0] + y[2] + y[3]) / 3**0.5
    user_3 = p[3] + gender.weight[1] + age.weight[4]  # no training items: no implicit part
    drama = genres.weight[genres.codes[0].argmax()]
    comedy = genres.weight[genres.codes[1].argmax()]
    item_2 = q[2] + (drama + comedy) / 2
    item_4 = q[4]  # no genre: nothing added
    with torch.no_grad():
        got = term(torch.tensor([2, 3, 2]), torch.tensor([2, 4, 4]))
        expected = torch.stack([user_2 @ item_2, user_3 @ item_4, user_2 @ item_4])
        torch.testing.assert_close(got, expected)
        users = torch.arange(N_USERS).repeat_interleave(N_ITEMS)
        items = torch.arange(N_ITEMS).repeat(N_USERS)
        torch.testing.assert_close(term.matrix(), term(users, items).view(N_USERS, N_ITEMS).T)
    squares = sum(t.pow(2).sum() for t in (p, q, y, gender.weight, age.weight, genres.weight))
    torch.testing.assert_close(term.squared_norm(), squares)


def _sparse_fc(**options):
    torch.manual_seed(0)
    config = make_config("sparse-fc", {"hidden": [6], "position_dim": 2, **SIDE, **options})
    model = build_model("sparse-fc", N_USERS, N_ITEMS, (1.0, 5.0), config)
    model.attach_features(*_encoded())
    model.init_from_data(RATED_USERS, RATED_ITEMS, RATINGS)
    return model.eval()


def test_sparse_fc_adds_the_term_to_its_reconstruction_on_every_scoring_path():
    model = _sparse_fc()
    users = torch.arange(N_USERS).repeat_interleave(N_ITEMS)
    items = torch.arange(N_ITEMS).repeat(N_USERS)
    with torch.no_grad():
        # Grow the term from its small start so that a missing term would show.
        for table in model.side_term.parameters():
            table.mul_(30.0)
        pairwise = model(users, items).view(N_USERS, N_ITEMS)
        alone = model.reconstruction().T + model.side_term.matrix().T
        torch.testing.assert_close(pairwise, alone)
        assert (model.side_term(users, items).abs() > 1e-2).any()
        torch.testing.assert_close(model.score_items(torch.arange(N_USERS)), pairwise)


def test_the_penalty_counts_the_term_at_reg_factors():
    with_term, without = _sparse_fc(reg_factors=7.0), _sparse_fc(reg_factors=0.0)
    pair = (RATED_USERS, RATED_ITEMS)
    extra = 7.0 * with_term.side_term.squared_norm() / len(RATINGS)
    torch.testing.assert_close(with_term.penalty(*pair) - without.penalty(*pair), extra)


def _gendered_ratings(seed: int) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    """Ratings that only the metadata explains: women rate dramas 5 and comedies 1, men the
    reverse; each user rates few items, so their own columns say little."""
    rng = np.random.default_rng(seed)
    n_users, n_items = 60, 30
    users = pd.DataFrame({"user_id": range(n_users), "gender": rng.choice(["F", "M"], n_users)})
    genres = np.where(np.arange(n_items) % 2 == 0, "Drama", "Comedy")
    items = pd.DataFrame({"item_id": range(n_items), "title": "x", "genres": genres})
    rows = [(u, i) for u in range(n_users) for i in rng.choice(n_items, 6, replace=False)]
    ratings = pd.DataFrame(rows, columns=["user_id", "item_id"])
    woman = users["gender"].to_numpy()[ratings["user_id"]] == "F"
    drama = genres[ratings["item_id"]] == "Drama"
    ratings["rating"] = np.where(woman == drama, 5.0, 1.0)
    return ratings, users, items


def test_the_term_learns_what_the_metadata_says():
    ratings, users, items = _gendered_ratings(seed=0)
    recommender = fit_recommender(
        ratings, model="sparse-fc", users=users, items=items, split="none", epochs=60,
        lr=1e-2, batch_size=1_000_000, hidden=[8], position_dim=2, factors=4, reg_factors=0.1,
        user_features=["gender"], item_features=["genres"], progress=False,
    )  # fmt: skip
    term = recommender.model.side_term
    with torch.no_grad():
        by_pair = term.matrix()  # [items, users]
    woman = torch.from_numpy(users["gender"].to_numpy() == "F")
    drama = torch.arange(len(items)) % 2 == 0
    # What the term adds for a drama over a comedy: up for women, down for men.
    lift = by_pair[drama].mean(0) - by_pair[~drama].mean(0)
    assert lift[woman].mean() > 1.0 and lift[~woman].mean() < -1.0


def test_a_saved_run_predicts_without_the_metadata_and_refuses_tampered_histories(tmp_path):
    ratings, users, items = _gendered_ratings(seed=1)
    recommender = fit_recommender(
        ratings, model="sparse-fc", users=users, items=items, split="none", epochs=3,
        hidden=[8], position_dim=2, factors=4, implicit=True, user_features=["gender"],
        item_features=["genres"], progress=False,
    )  # fmt: skip
    info = {"dataset": "synthetic", "split": "none", "seed": 0}
    config = recommender.model.config
    save_run(
        tmp_path / "run", recommender, model_config=config, train_config=TrainConfig(), info=info
    )
    loaded, _ = load_run(tmp_path / "run")
    assert loaded.model.config == config and loaded.model.config.user_features == ("gender",)
    pairs = ratings["user_id"].to_numpy(), ratings["item_id"].to_numpy()
    np.testing.assert_allclose(loaded.predict(*pairs), recommender.predict(*pairs), atol=1e-5)
    # A history naming an item the model does not have is a corrupt run, not an index error.
    recommender.model.side_term.user_items[0] = 10_000
    save_run(
        tmp_path / "bad", recommender, model_config=config, train_config=TrainConfig(), info=info
    )
    with pytest.raises(ArtifactError, match=r"side_term\.user_items"):
        load_run(tmp_path / "bad")


def test_a_film_only_the_metadata_names_gets_the_bias_fallback_not_an_empty_column():
    ratings, users, items = _gendered_ratings(seed=2)
    items = pd.concat([items, pd.DataFrame({"item_id": [9999], "title": "new", "genres": "Drama"})])
    recommender = fit_recommender(
        ratings, model="sparse-fc", users=users, items=items, split="none", epochs=2,
        hidden=[8], position_dim=2, factors=4, item_features=["genres"], progress=False,
    )  # fmt: skip
    assert 9999 not in recommender.encoder.item_ids
    user = int(ratings["user_id"].iloc[0])
    fallback = recommender.fallback
    expected = fallback.global_mean + float(
        fallback.user_bias[recommender.encoder.encode_users(np.array([user]))[0]]
    )
    assert recommender.predict([user], [9999]) == pytest.approx([expected], abs=1e-6)
    with pytest.raises(UnknownIdError, match="9999"):
        recommender.predict([user], [9999], unknown="error")


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("sparse-fc", {"user_features": ["age"]}, "user_features belong to the side term"),
        ("sparse-fc", {"implicit": True}, "implicit belong to the side term"),
        ("sparse-fc", {"factors": -1}, "factors >= 0"),
        ("sparse-fc", {"factors": 4, "reg_factors": -1.0}, "reg_factors must be a finite"),
        ("sparse-fc", {"factors": 4, "item_features": ["genres"] * 2}, "names a column twice"),
        ("sparse-fc", {"factors": 4, "user_features": "age"}, "must be a list of texts"),
        ("glocal-k", {"factors": 4}, "glocal-k has no side term"),
    ],
)
def test_bad_options_are_config_errors(name, options, message):
    with pytest.raises(ConfigError, match=message):
        make_config(name, options)


def test_a_column_the_metadata_lacks_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "side.toml"
    config.write_text('[model]\nname = "sparse-fc"\nfactors = 8\nitem_features = ["budget"]\n')
    args = ["train", "--data", "ml-100k", "--split", "u1", "--config", str(config), "-q"]
    fails_cleanly(args, "'budget', which the item metadata lacks")
