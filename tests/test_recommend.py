"""Recommender: raw IDs in and out, seen items excluded, documented fallback, similar items."""

import numpy as np
import pandas as pd
import pytest
import torch

from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ConfigError, MovieRecError, UnknownIdError
from tests.factories import build_recommender


@pytest.fixture(scope="module")
def ratings():
    return synthetic_ratings(80, 50, 2000, seed=2)


@pytest.fixture(scope="module", params=["embedding-net", "mf"])
def recommender(request, ratings):
    return build_recommender(request.param, ratings)


def test_top_n_excludes_seen_items_and_is_sorted(recommender, ratings):
    user = int(ratings["user_id"].iloc[0])
    seen = set(ratings.loc[ratings["user_id"] == user, "item_id"])
    top = recommender.top_n(user, k=10)
    assert len(top) == 10
    assert not seen & {r.item for r in top}
    scores = [r.score for r in top]  # predicted ratings, ranked by their shrunk value
    penalty = recommender.shrink_penalty()
    keys = [r.score - float(penalty[recommender.encoder.item_index(r.item)]) for r in top]
    assert keys == pytest.approx(sorted(keys, reverse=True), abs=1e-6)
    assert all(1.0 <= s <= 5.0 for s in scores)
    assert top[0].title == f"Movie {top[0].item}"
    assert top[0].genres == "Drama|Comedy"


def test_top_n_scores_equal_predictions(recommender, ratings):
    user = int(ratings["user_id"].iloc[0])
    top = recommender.top_n(user, k=5, exclude_seen=False)
    predicted = recommender.predict([user] * 5, [r.item for r in top])
    np.testing.assert_allclose([r.score for r in top], predicted, atol=1e-5)


def test_unknown_user_is_a_clear_error(recommender):
    with pytest.raises(UnknownIdError, match="user 99999"):
        recommender.top_n(99999)


def test_k_out_of_range_is_a_config_error(recommender):
    with pytest.raises(ConfigError, match="between 1 and 1000"):
        recommender.top_n(1, k=0)


def test_predict_uses_the_bias_fallback_for_unknown_ids(recommender):
    fallback = recommender.fallback
    known_item = recommender.encoder.item_ids[0]
    value = recommender.predict([424242], [known_item])[0]
    assert value == pytest.approx(fallback.global_mean + float(fallback.item_bias[0]), abs=1e-5)
    both_unknown = recommender.predict([424242], [535353])[0]
    assert both_unknown == pytest.approx(np.clip(fallback.global_mean, 1, 5))
    with pytest.raises(UnknownIdError, match="item 535353"):
        recommender.predict([recommender.encoder.user_ids[0]], [535353], unknown="error")


def test_similar_items_excludes_the_item_and_ranks_by_cosine(recommender):
    item = recommender.encoder.item_ids[3]
    similar = recommender.similar_items(item, k=5, similarity="cosine")
    assert len(similar) == 5 and item not in {s.item for s in similar}
    vectors = torch.nn.functional.normalize(recommender.model.item_vectors().detach(), dim=1)
    cosine = (vectors @ vectors[3]).numpy()
    cosine[3] = -np.inf
    expected = recommender.encoder.decode_items(np.argsort(-cosine)[:5])
    assert [s.item for s in similar] == list(expected)


def test_cosine_similar_items_need_embeddings(ratings):
    bias = build_recommender("bias", ratings)
    with pytest.raises(MovieRecError, match="no item embeddings"):
        bias.similar_items(int(ratings["item_id"].iloc[0]), similarity="cosine")


def test_precomputed_scores_rank_exactly_as_scoring_on_the_fly(ratings):
    for name in ("embedding-net", "mf"):
        fresh = build_recommender(name, ratings)
        cached = build_recommender(name, ratings)
        assert cached.precompute_scores(1 << 30)
        assert cached.precomputed_scores is not None
        for raw_user in fresh.encoder.user_ids.tolist():
            for exclude_seen in (True, False):
                want = fresh.top_n(raw_user, 25, exclude_seen=exclude_seen)
                got = cached.top_n(raw_user, 25, exclude_seen=exclude_seen)
                # Bit for bit: same items, same order, same float scores.
                assert [(r.item, r.score) for r in got] == [(r.item, r.score) for r in want]


def test_precomputed_scores_over_the_budget_are_not_kept(recommender):
    need = 4 * recommender.encoder.n_users * recommender.model.n_items
    assert not recommender.precompute_scores(need - 1)
    assert recommender.precomputed_scores is None


def test_an_unknown_objective_is_a_config_error(recommender):
    with pytest.raises(ConfigError, match="objective must be one of"):
        type(recommender)(
            recommender.model,
            recommender.encoder,
            recommender.fallback,
            recommender.seen,
            objective="pairwise",
        )


def test_user_index_matches_the_encoder(recommender):
    encoder = recommender.encoder
    for idx, raw in enumerate(encoder.user_ids.tolist()):
        assert recommender.user_index(str(raw)) == idx == encoder.user_index(raw)
    first = encoder.user_ids.tolist()[0]
    assert recommender.user_index(f"0{first}") == encoder.user_index(f"0{first}")
    with pytest.raises(UnknownIdError):
        recommender.user_index("no-such-user")


def test_raw_ranking_sorts_by_the_predicted_rating(recommender, ratings):
    user = int(ratings["user_id"].iloc[0])
    recommender.rank_by = "raw"
    try:
        scores = [r.score for r in recommender.top_n(user, k=10)]
    finally:
        recommender.rank_by = "shrunk"
    assert scores == sorted(scores, reverse=True)


class _Constant(torch.nn.Module):
    """Predicts the same rating for every pair: only the shrinkage can order the items."""

    predicts_ratings = True
    rating_scale = (1.0, 5.0)

    def __init__(self, n_items: int):
        super().__init__()
        self.n_items = n_items

    def score_items(self, users, item_side=None):
        return torch.full((len(users), self.n_items), 4.2)

    def item_side(self):
        return None


def test_shrinkage_never_puts_a_once_rated_item_above_one_rated_100_times_at_the_same_mean():
    from movierec.models.bias import fit_biases
    from movierec.recommend import Recommender
    from tests.factories import everything

    # Item 0: one rating; item 1: 100 ratings; item 2: 10; users 1..100 rate item 1.
    rows = (
        [(1, 0, 5.0)] + [(u, 1, 4.0) for u in range(1, 101)] + [(u, 2, 4.0) for u in range(1, 11)]
    )
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating"])
    prepared = everything(frame)
    enc = prepared.encoder
    model = _Constant(enc.n_items)
    t = prepared.fit_tensors
    fallback = fit_biases(t.user_idx, t.item_idx, t.rating, enc.n_users, enc.n_items)
    recommender = Recommender(model, enc, fallback, prepared.seen)
    order = recommender.top_indices(torch.tensor([enc.user_index(1)]), 3)[0][0].tolist()
    assert [int(enc.item_ids[i]) for i in order] == [1, 2, 0]
    with pytest.raises(ConfigError, match="rank_by must be one of shrunk, raw"):
        recommender.rank_by = "lcb"


def test_batch_lists_equal_top_n_for_every_user(recommender):
    frame = recommender.recommend(k=7)
    assert list(frame.columns) == ["user", "rank", "item", "title", "score"]
    assert frame["user"].nunique() == recommender.encoder.n_users
    for user, rows in frame.groupby("user", sort=False):
        top = recommender.top_n(user, k=7)
        assert rows["item"].tolist() == [r.item for r in top]
        assert rows["rank"].tolist() == list(range(1, len(top) + 1))
        assert rows["title"].tolist() == [r.title for r in top]
        assert rows["score"].to_numpy() == pytest.approx([r.score for r in top], abs=1e-6)


def test_batch_keeps_the_users_order_and_excludes_seen_items(recommender, ratings):
    users = [int(u) for u in ratings["user_id"].unique()[:5][::-1]]
    frame = recommender.recommend(users, k=5)
    assert frame["user"].drop_duplicates().tolist() == users
    rated = set(zip(ratings["user_id"], ratings["item_id"], strict=True))
    assert not any((u, i) in rated for u, i in zip(frame["user"], frame["item"], strict=True))


def test_batch_respects_allow_and_deny_lists(recommender, ratings):
    items = sorted(ratings["item_id"].unique())
    allowed, denied = items[:12], items[:3]
    frame = recommender.recommend(k=10, items=allowed, filter_items=denied)
    assert set(frame["item"]) <= set(allowed) - set(denied)
    everything = recommender.recommend(k=10, filter_items=denied)
    assert not set(everything["item"]) & set(denied)
    # A user who rated most of the allow-list gets a shorter list, ranks still 1..n.
    for _, rows in frame.groupby("user"):
        assert rows["rank"].tolist() == list(range(1, len(rows) + 1))


@pytest.mark.parametrize(
    ("kwargs", "named"),
    [
        ({"users": [1, 424242, 515151]}, "424242, 515151"),
        ({"items": [1, 99999]}, "99999"),
        ({"filter_items": [88888]}, "88888"),
    ],
)
def test_batch_names_unknown_ids_in_a_value_error(recommender, kwargs, named):
    with pytest.raises(ValueError, match=named) as caught:
        recommender.recommend(**kwargs)
    assert isinstance(caught.value, UnknownIdError)
    assert "remove them" in str(caught.value)


def test_single_lists_take_the_same_allow_and_deny_lists_as_batches(recommender, ratings):
    items = sorted(ratings["item_id"].unique())
    allowed, denied = items[:20], items[:4]
    frame = recommender.recommend(k=6, items=allowed, filter_items=denied)
    for user, rows in list(frame.groupby("user", sort=False))[:10]:
        top = recommender.top_n(user, 6, items=allowed, filter_items=denied)
        assert [r.item for r in top] == rows["item"].tolist()
    similar = recommender.similar_items(items[5], k=10, filter_items=denied, items=allowed)
    assert {s.item for s in similar} <= set(allowed) - set(denied) - {items[5]}
    with pytest.raises(UnknownIdError, match=r"a filter naming unknown items.*424242"):
        recommender.top_n(int(ratings["user_id"].iloc[0]), 5, filter_items=[424242])
    with pytest.raises(UnknownIdError, match="a filter naming unknown items"):
        recommender.similar_items(items[0], items=[items[1], 535353])


def test_similar_items_break_ties_by_the_lower_item_index(recommender):
    item = recommender.encoder.item_ids[0]
    found = recommender.similar_items(item, k=1000)  # jaccard: many equal similarities
    keys = [(-s.score, recommender.encoder.item_index(s.item)) for s in found]
    assert keys == sorted(keys) and len({s.score for s in found}) < len(found)
