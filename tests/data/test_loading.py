"""load_data: a catalogue name, a folder, a file or a DataFrame, each to its reader."""

import shutil

import numpy as np
import pandas as pd
import pytest

from movierec.data import DataPolicy, RatingsData, load_data
from movierec.errors import DataError
from tests.data.canonical import FIXTURES, assert_canonical


def test_load_data_with_a_directory_and_a_file():
    folder = load_data(str(FIXTURES / "ml-1m"))
    assert folder.layout == "ml-1m"
    file = load_data(
        str(FIXTURES / "generic" / "string_ids.csv"), columns=["customer", "product", "stars"]
    )
    assert file.layout == "ratings-file"


def test_load_data_with_a_cached_catalogue_name(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path))
    shutil.copytree(FIXTURES / "ml-1m", tmp_path / "ml-1m")
    data = load_data("ml-1m", progress=False)
    assert (data.name, data.layout, len(data.ratings)) == ("ml-1m", "ml-1m", 5)


def test_load_data_of_nothing():
    with pytest.raises(DataError, match=r"neither a dataset name .*ml-100k.* nor a file"):
        load_data("no-such-thing")


# --- a DataFrame goes through the file readers' checks ---------------------------------------


def _frame(**overrides):
    columns = {"userId": [1, 1, 2], "movieId": [10, 11, 10], "rating": [4.0, 3.5, 5.0]}
    return pd.DataFrame({**columns, **overrides})


def test_load_data_of_a_dataframe_finds_columns_by_the_files_names():
    frame = _frame(when=pd.to_datetime(["2020-01-01", "2020-01-02", "2021-06-30"]))
    before = frame.copy()
    data = load_data(frame)
    assert (data.layout, data.items, data.users) == ("dataframe", None, None)
    assert_canonical(data.ratings)
    assert data.ratings[["user_id", "item_id"]].to_numpy().tolist() == [[1, 10], [1, 11], [2, 10]]
    assert data.rating_scale == (3.5, 5.0)  # inferred, as for a file
    assert data.ratings["timestamp"].tolist() == [0, 0, 0]  # "when" is no timestamp alias
    named = load_data(frame, columns=["userId", "movieId", "rating", "when"])
    assert named.ratings["timestamp"].tolist() == [1577836800, 1577923200, 1625011200]
    pd.testing.assert_frame_equal(frame, before)  # the caller's frame is left alone


def test_from_frame_is_load_data_with_metadata():
    titles = ["Ten (2010)", "Eleven"]
    items = pd.DataFrame({"item": [10, 11], "title": titles, "studio": ["a", "b"]})
    users = pd.DataFrame({"user": ["1", "2"], "age": [30, 40]})
    data = RatingsData.from_frame(
        _frame(), policy=DataPolicy(rating_scale=(1, 5)), items=items, users=users
    )
    assert data.rating_scale == (1.0, 5.0)
    assert data.items["title"].tolist() == ["Ten (2010)", "Eleven"]
    assert data.items["year"].tolist()[0] == 2010 and data.items["studio"].tolist() == ["a", "b"]
    assert data.users.columns.tolist() == ["user_id", "age"]


@pytest.mark.parametrize(
    ("frame", "policy", "message"),
    [
        (_frame(rating=[4.0, np.nan, 5.0]), None, r"rating on row 2 \(iloc 1\) is NaN.*that row"),
        (_frame(userId=[1, None, 2]), None, r"user ID is missing on row 2 \(iloc 1\)"),
        (_frame(rating=["4", "x", "5"]), None, r"rating on row 2 \(iloc 1\) is 'x'"),
        (_frame(rating=[4, 9, 5]), DataPolicy(rating_scale=(1, 5)), r"row 2 .* outside .*--out-of"),
        (_frame(movieId=[10, 10, 10]), DataPolicy(duplicates="error"), r"row 1 .* and row 2"),
        (_frame().iloc[:0], None, r"the ratings DataFrame has no ratings"),
        (_frame().rename(columns={"userId": "who"}), None, r"found no user column among"),
        (_frame(UserId=[1, 2, 3]), None, r"two columns named 'userId' and 'UserId'"),
    ],
)
def test_a_bad_dataframe_is_one_data_error_naming_the_row(frame, policy, message):
    with pytest.raises(DataError, match=message) as caught:
        load_data(frame, policy=policy)
    assert "\n" not in str(caught.value) and isinstance(caught.value, ValueError)


def test_a_dataframe_policy_resolves_duplicates_and_clips_like_a_file():
    frame = _frame(movieId=[10, 10, 11], rating=[2.0, 7.0, 1.0])
    data = load_data(frame, policy=DataPolicy(rating_scale=(1, 5), out_of_scale="clip"))
    assert data.ratings["rating"].tolist() == [5.0, 1.0]
    assert data.report["duplicates_resolved"] == 1 and data.report["out_of_scale_clipped"] == 1


def test_load_data_refuses_what_is_no_data():
    with pytest.raises(DataError, match=r"a pandas DataFrame of ratings, got list"):
        load_data([(1, 2, 3.0)])
