"""Meta-features of the feature-weighted blend: the facts per user and item, where they come
from, the regression's columns, and that a weight moving with a feature is recovered."""

import numpy as np
import pandas as pd
import pytest

from movierec.blend import cross_validate, ridge
from movierec.blend_features import (
    META_FEATURES,
    MetaFeatures,
    design,
    learnt_part,
    parse_features,
)
from movierec.errors import ConfigError


def test_features_parse_as_auto_none_or_known_names():
    assert parse_features("auto") is None
    assert parse_features("none") == ()
    assert parse_features("item_count, user_std") == ("item_count", "user_std")
    assert parse_features(list(META_FEATURES)) == META_FEATURES
    for bad in ("user_age", "user_count,user_count", ","):
        with pytest.raises(ConfigError, match="--features must be auto, none or names of"):
            parse_features(bad)


@pytest.fixture
def learnt():
    return pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 3, 3],
            "item_id": ["a", "b", "c", "a", "a", "b"],
            "rating": [5.0, 3.0, 4.0, 2.0, 1.0, 5.0],
        }
    )


def test_counts_and_deviations_come_from_the_learnt_ratings_with_the_pooled_fill(learnt):
    carve_out = pd.DataFrame({"user_id": [1, 2, 9], "item_id": ["a", "c", "z"]})
    meta = MetaFeatures.fit(learnt, carve_out)
    raw = meta._raw(np.array([1, 2, 9]), np.array(["a", "c", "z"]))
    pooled = float(np.std(learnt["rating"], ddof=1))
    expected = np.array(
        [
            [np.log1p(3), np.log1p(3), 1.0, np.std([5.0, 2.0, 1.0], ddof=1)],
            [np.log1p(1), np.log1p(1), pooled, pooled],  # one rating: no deviation of its own
            [0.0, 0.0, pooled, pooled],  # unknown user and item
        ]
    )
    np.testing.assert_allclose(raw, expected)
    # Standardised over the carve-out's pairs: mean 0, and the same pairs give the same rows.
    scaled = meta.matrix(np.array([1, 2, 9]), np.array(["a", "c", "z"]))
    np.testing.assert_allclose(scaled.mean(axis=0), 0.0, atol=1e-12)
    np.testing.assert_allclose(scaled, (expected - expected.mean(0)) / np.where(
        expected.std(0) > 0, expected.std(0), 1.0
    ))  # fmt: skip


def test_the_learnt_part_is_the_training_part_without_each_carve_out_row(learnt):
    doubled = pd.concat([learnt, learnt.iloc[[0]]], ignore_index=True)  # (1, a, 5) twice
    carve_out = pd.DataFrame({"user_id": [1, 3], "item_id": ["a", "b"], "rating": [5.0, 5.0]})
    kept = learnt_part(doubled, carve_out)
    assert len(kept) == len(doubled) - 2
    assert ((kept["user_id"] == 1) & (kept["item_id"] == "a")).sum() == 1  # one copy removed
    assert not ((kept["user_id"] == 3) & (kept["item_id"] == "b")).any()
    missing = pd.DataFrame({"user_id": [7], "item_id": ["a"], "rating": [4.0]})
    with pytest.raises(ConfigError, match="not all in the training part"):
        learnt_part(learnt, missing)


def test_the_columns_are_predictions_then_products_member_major_then_features():
    predictions = np.array([[1.0, 2.0], [3.0, 4.0]])
    features = np.array([[10.0, 100.0], [20.0, 200.0]])
    x = design(predictions, features)
    np.testing.assert_array_equal(
        x,
        [
            [1, 2, 10, 100, 20, 200, 10, 100],
            [3, 4, 60, 600, 80, 800, 20, 200],
        ],
    )
    assert design(predictions, None) is predictions


def test_a_weight_moving_with_a_feature_is_recovered_and_cross_validates_better():
    rng = np.random.default_rng(0)
    n = 4000
    truth = rng.uniform(1, 5, n)
    feature = rng.normal(0, 1, (n, 1))
    # Member 0 is good where the feature is high, member 1 where it is low.
    noise_0 = rng.normal(0, 1, n) * np.where(feature[:, 0] > 0, 0.2, 1.0)
    noise_1 = rng.normal(0, 1, n) * np.where(feature[:, 0] > 0, 1.0, 0.2)
    predictions = np.column_stack([truth + noise_0, truth + noise_1])
    exact = 0.1 + predictions @ [0.5, 0.5] + (predictions * feature) @ [0.3, -0.3]
    weights, intercept = ridge(design(predictions, feature), exact, alpha=0.0)
    np.testing.assert_allclose(weights, [0.5, 0.5, 0.3, -0.3, 0.0], atol=1e-8)
    assert intercept == pytest.approx(0.1, abs=1e-8)
    # On the noisy truth the feature-weighted blend cross-validates clearly better.
    _, plain = cross_validate(predictions, truth)
    _, weighted = cross_validate(design(predictions, feature), truth)
    assert weighted < plain - 0.02
