"""Every path that scores users gives the same bits: ``top_n`` of one user, ``recommend`` over
every user in blocks, evaluation's blocks of a shuffled subset, and the precomputed matrix,
for float32 and for bf16 scoring of the EmbeddingNet (its layers after the first)."""

import pytest
import torch

from movierec.data.synthetic import synthetic_ratings
from movierec.models import embedding_net
from movierec.models.base import in_fixed_blocks
from tests.factories import build_recommender

# (model, objective, options): the article's net, the default's shape (a ranking tower trained
# joint), the GMF branch, and models scored in fixed blocks by the Recommender.
CASES = {
    "article-net": ("embedding-net", "rating", {"hidden": [16, 24, 8]}),
    "net-with-tower": (
        "embedding-net",
        "joint",
        {
            "hidden": [16],
            "dropouts": [0.5],
            "biases": True,
            "ranking_head": True,
            "rank_factors": 8,
        },
    ),
    "net-rank-head": ("embedding-net", "joint", {"hidden": [16, 8], "ranking_head": True}),
    "net-product": (
        "embedding-net",
        "rating",
        {"hidden": [12, 8], "interaction": "concat+product"},
    ),
    "ensemble": ("embedding-net-ensemble", "rating", {"hidden": [8, 8], "members": 2}),
    "mf": ("mf", "rating", {}),
    "ease": ("ease", "rating", {}),
}


@pytest.fixture(scope="module")
def ratings():
    return synthetic_ratings(70, 90, 2500, seed=4)


@pytest.fixture(scope="module", params=list(CASES))
def trained(request, ratings):
    name, objective, options = CASES[request.param]
    return build_recommender(name, ratings, objective=objective, **options)


@pytest.fixture(params=["fp32", "bf16"])
def recommender(request, trained, monkeypatch):
    # Item ranges of 20 pairs: the chunks of a user's catalogue, the last one short.
    monkeypatch.setattr(embedding_net, "CHUNK_BYTES", 4 * 24 * 20)
    monkeypatch.setattr(embedding_net, "BF16_CHUNK_BYTES", 4 * 24 * 20)
    trained.precision = "fp32"
    # bf16 where the CPU has no native unit too (emulated): the path, not its speed, is tested.
    trained.model.scoring_dtype = torch.bfloat16 if request.param == "bf16" else None
    trained._scores = None
    yield trained
    trained.precision = "fp32"


def lists(frame):
    return {
        user: (rows["item"].tolist(), rows["score"].tolist())
        for user, rows in frame.groupby("user", sort=False)
    }


def test_blocks_of_every_user_equal_top_n_of_each_bit_for_bit(recommender):
    batch = lists(recommender.recommend(k=15))
    for user in recommender.encoder.user_ids.tolist():
        top = recommender.top_n(user, k=15)
        assert batch[user] == ([r.item for r in top], [r.score for r in top])


def test_the_precomputed_matrix_is_each_users_own_scores(recommender):
    users = torch.arange(recommender.encoder.n_users)
    one_by_one = torch.cat([recommender.score_users(users[u : u + 1]) for u in users])
    assert recommender.precompute_scores(1 << 30)
    assert torch.equal(recommender.precomputed_scores, one_by_one)
    got = lists(recommender.recommend(k=15))
    recommender._scores = None
    assert got == lists(recommender.recommend(k=15))


def test_a_shuffled_subset_ranks_as_the_whole(recommender):
    every = torch.arange(recommender.encoder.n_users)
    subset = torch.randperm(len(every), generator=torch.Generator().manual_seed(1))[:23]
    all_items, all_scores = recommender.top_indices(every, 10, recommender.seen)
    items, scores = recommender.top_indices(subset, 10, recommender.seen)
    assert torch.equal(items, all_items[subset])
    assert torch.equal(scores, all_scores[subset])


def test_bf16_scoring_ranks_close_to_fp32(trained):
    trained.precision = "fp32"
    users = torch.arange(trained.encoder.n_users)
    exact = trained.score_users(users)
    trained.model.scoring_dtype = torch.bfloat16
    fast = trained.score_users(users)
    trained.precision = "fp32"
    # bf16 keeps 8 bits of mantissa in the hidden layers: scores move by hundredths, not more.
    torch.testing.assert_close(fast, exact, atol=0.05, rtol=0.02)


def test_fixed_blocks_pad_and_trim():
    calls = []

    def double(rows):
        calls.append(rows.shape[0])
        return rows * 2

    rows = torch.arange(70)
    assert torch.equal(in_fixed_blocks(double, rows, 32), rows * 2)
    assert calls == [32, 32, 32]
    assert in_fixed_blocks(double, rows[:0], 32).shape == (0,)


def test_an_unknown_precision_is_refused(trained):
    from movierec.errors import ConfigError

    with pytest.raises(ConfigError, match="precision must be one of"):
        trained.precision = "fp8"
