"""Fold-in of a new visitor: right answers where a closed form exists, frozen models, bounds."""

from __future__ import annotations

import time

import numpy as np
import pytest
import torch

from movierec.coldstart import (
    RatingScaleError,
    UnknownItemError,
    fold_in_method,
    fold_in_user,
    visitor_top_k,
)
from movierec.data.encoder import IdEncoder
from movierec.data.synthetic import synthetic_ratings
from movierec.data.tensors import SeenItems
from movierec.errors import ConfigError, UnknownIdError
from movierec.models.bias import Biases
from movierec.models.mf import MatrixFactorization, MFConfig
from movierec.recommend import Recommender
from tests.factories import build_recommender


@pytest.fixture(scope="module")
def ratings():
    return synthetic_ratings(60, 40, 1500, seed=5)


@pytest.fixture(scope="module", params=["embedding-net", "mf", "bias", "mean"])
def recommender(request, ratings):
    return build_recommender(request.param, ratings)


def test_every_model_scores_the_whole_catalogue_within_the_scale(recommender):
    scores = fold_in_user(recommender, [1, 2, 3], [5.0, 4.0, 1.0])
    assert scores.shape == (recommender.encoder.n_items,) and scores.dtype == torch.float32
    assert torch.isfinite(scores).all()
    low, high = recommender.rating_scale
    assert float(scores.min()) >= low and float(scores.max()) <= high
    assert fold_in_method(recommender) in {"ridge", "adam", "biases"}


def test_fold_in_leaves_the_model_untouched(recommender):
    model = recommender.model
    before = {k: v.clone() for k, v in model.state_dict().items()}
    grads = [None if p.grad is None else p.grad.clone() for p in model.parameters()]
    fold_in_user(recommender, [1, 2], [5.0, 1.0])
    for name, value in model.state_dict().items():
        torch.testing.assert_close(value, before[name])
    for param, grad in zip(model.parameters(), grads, strict=True):
        assert (param.grad is None) == (grad is None)
        if grad is not None:
            torch.testing.assert_close(param.grad, grad)


def test_mf_closed_form_recovers_a_known_user():
    torch.manual_seed(0)
    model = MatrixFactorization(
        5, 50, (1.0, 5.0), MFConfig(n_factors=4, reg_factors=1e-6, reg_bias=1e-6)
    )
    with torch.no_grad():
        model.item_factors.weight.normal_(0, 0.5)
        model.item_bias.weight.normal_(0, 0.2)
        model.global_mean.fill_(3.0)
    truth_vector, truth_bias = torch.tensor([0.5, -0.3, 0.2, 0.1]), 0.25
    expected = (
        3.0
        + truth_bias
        + model.item_bias.weight.squeeze(1)
        + model.item_factors.weight @ truth_vector
    ).detach()
    empty = SeenItems(torch.zeros(6, dtype=torch.int64), torch.zeros(0, dtype=torch.int64), 50)
    rec = Recommender(
        model,
        IdEncoder(range(1, 6), range(1, 51)),
        Biases(3.0, torch.zeros(5), torch.zeros(50)),
        empty,
    )
    items = list(range(1, 31))  # raw IDs 1..30 are indices 0..29
    values = expected[:30].clamp(1, 5)
    assert torch.equal(values, expected[:30])  # no clipping: the fit must be exact
    scores = fold_in_user(rec, items, values.tolist())
    torch.testing.assert_close(scores, expected.clamp(1, 5), atol=1e-3, rtol=0)


def test_embedding_net_moves_toward_the_visitors_ratings(ratings):
    rec = build_recommender("embedding-net", ratings)
    items, wanted = [1, 2, 3, 4], torch.tensor([5.0, 5.0, 1.0, 1.0])
    start = fold_in_user(rec, items, wanted.tolist(), steps=0)
    fitted = fold_in_user(rec, items, wanted.tolist(), steps=100, max_seconds=5)
    index = torch.from_numpy(rec.encoder.encode_items(items))
    before = torch.mean((start[index] - wanted) ** 2)
    after = torch.mean((fitted[index] - wanted) ** 2)
    # A 3-epoch model barely depends on the user; the fit must still get closer.
    assert after < before - 0.05


def test_embedding_net_with_biases_folds_in_through_its_bias_terms(ratings):
    rec = build_recommender("embedding-net", ratings, biases=True)
    items, wanted = [1, 2, 3, 4], torch.tensor([5.0, 5.0, 5.0, 5.0])
    index = torch.from_numpy(rec.encoder.encode_items(items))
    start = fold_in_user(rec, items, wanted.tolist(), steps=0)
    fitted = fold_in_user(rec, items, wanted.tolist(), steps=100, max_seconds=5)
    # steps=0 predicts net + item bias: the item biases are part of the score ...
    item_bias = rec.model.item_bias.weight[:, 0].detach()
    assert torch.corrcoef(torch.stack([start, item_bias]))[0, 1] > 0.5
    # ... and a visitor who loves everything gets a positive user bias: every score rises.
    assert torch.mean((fitted[index] - wanted) ** 2) < torch.mean((start[index] - wanted) ** 2)
    assert float(torch.mean(fitted - start)) > 0.05


def test_embedding_net_fold_in_is_capped_in_time(ratings):
    rec = build_recommender("embedding-net", ratings)
    started = time.perf_counter()
    scores = fold_in_user(rec, [1, 2, 3], [5.0, 3.0, 1.0], steps=10_000_000, max_seconds=0.05)
    assert time.perf_counter() - started < 2.0
    assert torch.isfinite(scores).all()


def test_biases_rank_by_item_bias(ratings):
    rec = build_recommender("bias", ratings)
    scores = fold_in_user(rec, [1], [4.0])
    raw = rec.model.global_mean + rec.model.item_bias
    inside = (raw > 1.5) & (raw < 4.5)  # away from the clip, the order is the item biases' order
    assert np.array_equal(
        np.argsort(-scores[inside].numpy(), kind="stable"),
        np.argsort(-rec.model.item_bias[inside].numpy(), kind="stable"),
    )


@pytest.mark.parametrize(
    ("items", "values", "error", "match"),
    [
        ([4242], [5.0], UnknownIdError, "4242"),
        ([1, 1], [5.0, 4.0], ConfigError, "more than once"),
        ([1], [6.0], ConfigError, "outside"),
        ([1], [float("nan")], ConfigError, "outside"),
        ([1, 2], [5.0], ConfigError, "pair"),
        ([], [], ConfigError, "between"),
    ],
)
def test_bad_visitor_ratings_are_refused(ratings, items, values, error, match):
    rec = build_recommender("mf", ratings)
    with pytest.raises(error, match=match):
        fold_in_user(rec, items, values)


def test_visitor_errors_name_the_first_bad_entry(ratings):
    rec = build_recommender("mf", ratings)
    with pytest.raises(UnknownItemError) as unknown:
        fold_in_user(rec, [1, 4242, 4343], [5.0, 4.0, 3.0])
    assert unknown.value.item == 4242
    with pytest.raises(RatingScaleError, match=r"rating 6 for item 2 is outside .* 1\.\.5"):
        fold_in_user(rec, [1, 2, 3], [5.0, 6.0, 0.0])
    with pytest.raises(ConfigError, match="item 1 is rated more than once"):
        fold_in_user(rec, [1, 1, 2], [5.0, 4.0, 9.0])


def test_visitor_top_k_leaves_the_rated_items_out(ratings):
    rec = build_recommender("mf", ratings)
    found = visitor_top_k(rec, [1, 2, 3], [5.0, 4.0, 1.0], 10)
    rated = set(rec.encoder.encode_items(np.asarray([1, 2, 3], dtype=object)).tolist())
    assert len(found.items) == 10 and not rated & set(found.items)
    assert found.scores == sorted(found.scores, reverse=True)
    assert found.method == "ridge" and found.fit_seconds >= 0


@pytest.mark.parametrize(
    ("name", "method"), [("mf", "ridge"), ("embedding-net", "adam"), ("bias", "biases")]
)
def test_each_model_family_declares_its_fold_in(ratings, name, method):
    rec = build_recommender(name, ratings)
    assert fold_in_method(rec) == rec.model.fold_in_method == method
    scores = fold_in_user(rec, [1, 2, 3], [5.0, 4.0, 1.0])
    assert scores.shape == (rec.model.n_items,) and torch.isfinite(scores).all()
