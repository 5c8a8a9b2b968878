"""Ratings of items (users) the metadata lacks: counted in the report, one MovieRecWarning by
default, refused with ``references="error"`` (``--strict``)."""

import shutil
import warnings

import pandas as pd
import pytest

from movierec.data import DataPolicy, load_data
from movierec.errors import DataError, MovieRecWarning
from tests.data.canonical import FIXTURES

STRAY = "999,999999,5.0,964982703\n"  # a user and an item movies.csv never heard of


@pytest.fixture()
def stray_row(tmp_path):
    """A copy of the ml-latest-small fixture with one stray row at the end of ratings.csv."""
    folder = shutil.copytree(FIXTURES / "ml-latest-small", tmp_path / "ml-latest-small")
    with (folder / "ratings.csv").open("a") as handle:
        handle.write(STRAY)
    return folder


def test_clean_data_counts_zero_and_warns_nothing():
    with warnings.catch_warnings():
        warnings.simplefilter("error", MovieRecWarning)
        data = load_data(FIXTURES / "ml-latest-small", progress=False)
    assert data.report["ratings_unknown_item"] == 0
    assert "ratings_unknown_user" not in data.report  # no user metadata: nothing to check


def test_a_stray_row_is_counted_and_warned_about_in_one_line(stray_row):
    with pytest.warns(MovieRecWarning) as caught:
        data = load_data(stray_row, progress=False)
    assert data.report["ratings_unknown_item"] == 1
    assert data.ratings["item_id"].iloc[-1] == 999999  # it still trains
    (warning,) = [w for w in caught if w.category is MovieRecWarning]
    message = str(warning.message)
    assert "1 of" in message and "first: item 999999" in message and "\n" not in message


def test_strict_refuses_the_stray_row(stray_row):
    with pytest.raises(DataError, match=r"1 of [\d,]+ ratings name an item missing .*999999"):
        load_data(stray_row, policy=DataPolicy(references="error"), progress=False)


def test_users_missing_from_user_metadata_are_counted_too():
    ratings = pd.DataFrame({"user": [1, 2, 3], "item": [1, 1, 2], "rating": [1.0, 3.0, 5.0]})
    users = pd.DataFrame({"user_id": [1, 2], "age": [30, 40]})
    items = pd.DataFrame({"item_id": ["1", "2"], "title": ["A", "B"]})  # text IDs: same items
    with pytest.warns(MovieRecWarning, match="1 of 3 ratings name a user missing"):
        data = load_data(ratings, users=users, items=items, progress=False)
    assert data.report["ratings_unknown_user"] == 1
    assert data.report["ratings_unknown_item"] == 0
    with pytest.raises(DataError, match="first: user 3"):
        load_data(ratings, users=users, policy=DataPolicy(references="error"), progress=False)


def test_the_policy_is_checked_and_travels_in_its_dict():
    with pytest.raises(DataError, match="references must be one of warn, error"):
        DataPolicy(references="ignore")
    policy = DataPolicy(references="error")
    assert DataPolicy.from_dict(policy.to_dict()) == policy
    assert DataPolicy.from_dict({}).references == "warn"  # checkpoints written before it
