"""DataPolicy (defaults, validation, JSON round trip) and apply_policy, the one step every reader
runs: the generic and Netflix readers resolve the same ratings the same way."""

import dataclasses
import json

import numpy as np
import pandas as pd
import pytest

from movierec.data import DataPolicy, files, movielens, netflix, policies, read_ratings_file
from movierec.data.netflix import read_netflix
from movierec.data.policies import apply_policy
from movierec.errors import DataError


def frame(ratings: list[float]) -> pd.DataFrame:
    n = len(ratings)
    return pd.DataFrame(
        {
            "user_id": np.zeros(n, dtype=np.int64),
            "item_id": np.arange(n, dtype=np.int64),
            "rating": np.array(ratings, dtype=np.float32),
            "timestamp": np.zeros(n, dtype=np.int64),
        }
    )


def at(row: int) -> str:
    return f"line {row + 1}"


def test_defaults():
    policy = DataPolicy()
    assert (policy.duplicates, policy.rating_scale, policy.out_of_scale) == (
        "keep-last",
        None,
        "error",
    )
    assert policy == DataPolicy("keep-last", None, "error")


def test_a_policy_is_frozen_and_hashable():
    policy = DataPolicy(rating_scale=[1, 5])  # a list, as JSON gives it
    assert policy.rating_scale == (1.0, 5.0) and isinstance(policy.rating_scale, tuple)
    assert hash(policy) == hash(DataPolicy(rating_scale=(1.0, 5.0)))
    with pytest.raises(dataclasses.FrozenInstanceError):
        policy.duplicates = "mean"


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rating_scale": (5, 1)}, r"rating_scale \(5, 1\) has min >= max"),
        ({"rating_scale": (3, 3)}, r"min >= max"),
        ({"rating_scale": (0, float("inf"))}, r"must be finite numbers"),
        ({"rating_scale": (0, 1e9)}, r"goes beyond ±1e\+06"),
        ({"rating_scale": ("a", 2)}, r"rating_scale must be two numbers \(min, max\)"),
        ({"rating_scale": (1, 2, 3)}, r"rating_scale must be two numbers"),
        ({"duplicates": "first"}, r"duplicates must be one of keep-last, mean, error; got 'first'"),
        ({"out_of_scale": "ignore"}, r"out_of_scale must be one of error, clip, drop; got"),
    ],
)
def test_validation_errors(kwargs, message):
    with pytest.raises(DataError, match=message):
        DataPolicy(**kwargs)


@pytest.mark.parametrize(
    "policy",
    [DataPolicy(), DataPolicy("mean", (0.5, 5.0), "clip"), DataPolicy("error", (1, 10), "drop")],
)
def test_json_round_trip(policy):
    as_json = json.dumps(policy.to_dict())
    assert DataPolicy.from_dict(json.loads(as_json)) == policy


def test_to_dict_shape():
    assert DataPolicy("mean", (1, 5), "clip").to_dict() == {
        "duplicates": "mean",
        "rating_scale": [1.0, 5.0],
        "out_of_scale": "clip",
        "references": "warn",
    }
    assert DataPolicy().to_dict()["rating_scale"] is None


def test_from_dict_takes_the_load_options_checkpoints_hold():
    # `movierec train` wrote the CLI's options without rating_scale unless it was given.
    old = {"duplicates": "mean", "out_of_scale": "error"}
    assert DataPolicy.from_dict(old) == DataPolicy(duplicates="mean")
    assert DataPolicy.from_dict({}) == DataPolicy()
    given = {"duplicates": "keep-last", "out_of_scale": "drop", "rating_scale": [1, 5]}
    assert DataPolicy.from_dict(given) == DataPolicy(rating_scale=(1, 5), out_of_scale="drop")


def test_from_dict_refuses_unknown_keys():
    with pytest.raises(DataError, match=r"unknown data policy \['scale'\]; the policies are"):
        DataPolicy.from_dict({"scale": [1, 5]})


def test_apply_policy_scale_order():
    # No declared scale: the layout's; then the declared one overrides it; neither: inferred.
    ratings, scale, report = apply_policy(
        frame([1, 7]), DataPolicy(out_of_scale="clip"), "f", at, layout_scale=(1.0, 5.0)
    )
    assert scale == (1.0, 5.0) and ratings["rating"].tolist() == [1, 5]
    assert report == {
        "rows_read": 2,
        "duplicates_resolved": 0,
        "out_of_scale_clipped": 1,
        "out_of_scale_dropped": 0,
    }
    _, scale, report = apply_policy(
        frame([1, 7]), DataPolicy(rating_scale=(0, 10)), "f", at, layout_scale=(1.0, 5.0)
    )
    assert scale == (0.0, 10.0) and report["out_of_scale_clipped"] == 0
    _, scale, _ = apply_policy(frame([2, 4]), DataPolicy(), "f", at)
    assert scale == (2.0, 4.0)
    with pytest.raises(DataError, match=r"f: the rating on line 2 is 7, outside"):
        apply_policy(frame([1, 7]), DataPolicy(), "f", at, layout_scale=(1.0, 5.0))


def test_every_reader_applies_the_one_policy_function():
    assert files.apply_policy is policies.apply_policy
    assert movielens.apply_policy is policies.apply_policy
    assert netflix.apply_policy is policies.apply_policy


def test_netflix_and_a_generic_file_resolve_the_same_ratings_the_same_way(tmp_path):
    # The same six ratings (movie 1 rated twice by customer 5, one rating of 9 on a 1..5 scale)
    # in the Netflix layout and as a CSV.
    folder = tmp_path / "netflix"
    folder.mkdir()
    (folder / "combined_data_1.txt").write_text(
        "1:\n5,3,2005-01-01\n5,4,2005-02-01\n6,9,2005-01-01\n2:\n5,2,2005-01-01\n7,1,2005-03-01\n"
        "5,5,2005-04-01\n"
    )
    csv = tmp_path / "ratings.csv"
    csv.write_text(
        "user,item,rating,date\n5,1,3,2005-01-01\n5,1,4,2005-02-01\n6,1,9,2005-01-01\n"
        "5,2,2,2005-01-01\n7,2,1,2005-03-01\n5,2,5,2005-04-01\n"
    )
    policy = DataPolicy(duplicates="mean", rating_scale=(1, 5), out_of_scale="clip")
    from_netflix = read_netflix(folder, policy=policy)
    from_file = read_ratings_file(csv, policy=policy)
    assert from_netflix.report == from_file.report
    assert from_netflix.report == {
        "rows_read": 6,
        "duplicates_resolved": 2,
        "out_of_scale_clipped": 1,
        "out_of_scale_dropped": 0,
    }
    pd.testing.assert_frame_equal(from_netflix.ratings, from_file.ratings)
    assert from_netflix.rating_scale == from_file.rating_scale == (1.0, 5.0)
