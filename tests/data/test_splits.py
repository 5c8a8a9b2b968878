"""Splits: deterministic, disjoint, complete; validation only from the training part."""

import numpy as np
import pandas as pd
import pytest

from movierec.data.splits import carve_validation, leave_last_out, make_split
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ConfigError


@pytest.fixture(scope="module")
def ratings():
    return synthetic_ratings(60, 40, 1500, seed=3)


def keys(frame: pd.DataFrame) -> set:
    return set(zip(frame["user_id"], frame["item_id"], strict=True))


@pytest.mark.parametrize("spec", ["random", "random:0.3", "temporal:0.25", "leave-last:2"])
def test_split_is_disjoint_complete_and_deterministic(ratings, spec):
    first = make_split(ratings, spec, layout="ratings-file", seed=7)
    again = make_split(ratings, spec, layout="ratings-file", seed=7)
    assert keys(first.train).isdisjoint(keys(first.test))
    assert len(first.train) + len(first.test) == len(ratings)
    assert keys(first.train) | keys(first.test) == keys(ratings)
    pd.testing.assert_frame_equal(first.test, again.test)


def test_random_split_depends_on_the_seed(ratings):
    a = make_split(ratings, "random", layout="x", seed=1)
    b = make_split(ratings, "random", layout="x", seed=2)
    assert keys(a.test) != keys(b.test)
    assert len(a.test) / len(ratings) == pytest.approx(0.2, abs=0.04)


def test_temporal_split_tests_on_the_latest_ratings(ratings):
    split = make_split(ratings, "temporal:0.2", layout="x", seed=0)
    assert split.train["timestamp"].max() <= split.test["timestamp"].min()


def test_leave_last_out_takes_each_users_latest_ratings():
    frame = pd.DataFrame(
        {
            "user_id": [1, 1, 1, 2, 2, 3],
            "item_id": [10, 11, 12, 10, 13, 10],
            "rating": np.ones(6, dtype=np.float32),
            "timestamp": [5, 9, 1, 3, 2, 4],
        }
    )
    split = leave_last_out(frame, 1)
    assert keys(split.test) == {(1, 11), (2, 10)}  # user 3 has a single rating: kept in training


def test_validation_is_carved_from_training_only(ratings):
    split = make_split(ratings, "random", layout="x", seed=0)
    fit, valid = carve_validation(split.train, 0.1, seed=0)
    assert keys(valid) <= keys(split.train)
    assert keys(valid).isdisjoint(keys(split.test))
    assert keys(fit) | keys(valid) == keys(split.train)
    assert keys(fit).isdisjoint(keys(valid))


def test_canonical_folds_need_ml100k(ratings):
    with pytest.raises(ConfigError, match="canonical fold"):
        make_split(ratings, "u1", layout="ratings-file", seed=0)


@pytest.mark.parametrize("spec", ["u6", "random:1.5", "sideways", "random:abc"])
def test_bad_split_names_are_config_errors(ratings, spec):
    with pytest.raises(ConfigError):
        make_split(ratings, spec, layout="x", seed=0)


def test_stratified_split_keeps_each_users_proportion(ratings):
    split = make_split(ratings, "stratified", layout="ratings-file", seed=2)
    assert split.name == "stratified:0.25"
    per_user = ratings.groupby("user_id").size()
    in_test = split.test.groupby("user_id").size().reindex(per_user.index, fill_value=0)
    expected = np.floor(per_user * 0.25 + 0.5).astype(int)
    assert (in_test == expected).all()
    assert keys(split.train).isdisjoint(keys(split.test))
    assert keys(split.train) | keys(split.test) == keys(ratings)
    again = make_split(ratings, "stratified:0.25", layout="ratings-file", seed=2)
    pd.testing.assert_frame_equal(split.test, again.test)
    other = make_split(ratings, "stratified", layout="ratings-file", seed=3)
    assert keys(other.test) != keys(split.test)


def test_stratified_split_takes_a_fraction():
    frame = pd.DataFrame(
        {
            "user_id": np.repeat([1, 2], [10, 4]),
            "item_id": np.r_[np.arange(10), np.arange(4)],
            "rating": 3.0,
            "timestamp": 0,
        }
    )
    split = make_split(frame, "stratified:0.5", layout="ratings-file", seed=0)
    assert split.test.groupby("user_id").size().to_dict() == {1: 5, 2: 2}


def test_split_none_trains_on_every_rating(ratings):
    split = make_split(ratings, "none", layout="ratings-file", seed=0)
    assert split.name == "none" and not split.has_test
    assert len(split.train) == len(ratings) and split.test.empty
    assert make_split(ratings, "random:0.2", layout="x", seed=0).has_test
