"""IDs beyond int64 (a uint64 such as 2**64 - 1) are kept as the digits written, or refused
for MovieLens, never wrapped to a negative number that another ID may already be."""

import shutil

import numpy as np
import pandas as pd
import pytest

from movierec.data import load_data
from movierec.data.encoder import IdEncoder, normalise_ids
from movierec.errors import DataError
from tests.data.canonical import FIXTURES

HUGE = [2**64 - 1, 2, 2**63]  # -1 and -2**63 once wrapped
AS_TEXT = ["18446744073709551615", "2", "9223372036854775808"]


def ratings_frame(users) -> pd.DataFrame:
    return pd.DataFrame(
        {"user_id": np.array(users, dtype=np.uint64), "item_id": [1, 1, 2], "rating": [4, 3, 5]}
    )


def test_a_csv_user_id_beyond_int64_is_kept_as_its_digits(tmp_path):
    path = tmp_path / "ratings.csv"
    rows = "".join(f"{u},1,{r}\n" for u, r in zip(HUGE, (4, 3, 5), strict=True))
    path.write_text("user_id,item_id,rating\n" + rows)
    ratings = load_data(path, progress=False).ratings
    assert ratings["user_id"].tolist() == AS_TEXT
    assert ratings["item_id"].dtype == np.int64  # the other column is unaffected


def test_a_parquet_uint64_user_id_beyond_int64_is_kept_as_its_digits(tmp_path):
    path = tmp_path / "ratings.parquet"
    ratings_frame(HUGE).to_parquet(path)
    ratings = load_data(path, progress=False).ratings
    assert ratings["user_id"].tolist() == AS_TEXT


def test_a_dataframe_of_uint64_ids_is_kept_as_its_digits():
    ratings = load_data(ratings_frame(HUGE), progress=False).ratings
    assert ratings["user_id"].tolist() == AS_TEXT


def test_uint64_ids_that_fit_stay_int64(tmp_path):
    path = tmp_path / "ratings.parquet"
    ratings_frame([7, 2, 2**63 - 1]).to_parquet(path)
    ratings = load_data(path, progress=False).ratings
    assert ratings["user_id"].dtype == np.int64
    assert ratings["user_id"].tolist() == [7, 2, 2**63 - 1]


def test_the_encoder_keeps_such_ids_apart():
    ids = normalise_ids(np.array(HUGE, dtype=np.uint64))
    assert ids.tolist() == AS_TEXT
    encoder = IdEncoder.fit(ratings_frame(HUGE).astype({"user_id": str}))
    assert encoder.n_users == 3  # three users, not -1, 2 and -2**63 colliding with others


def test_a_movielens_id_beyond_int64_is_refused_naming_the_line(tmp_path):
    folder = shutil.copytree(FIXTURES / "ml-100k", tmp_path / "ml-100k")
    with (folder / "u.data").open("a") as handle:
        handle.write("18446744073709551615\t242\t3\t881250949\n")
    with pytest.raises(DataError, match=r"u\.data: the user ID on line 9 is 18446744073709551615"):
        load_data(folder, progress=False)


def test_a_parquet_uint64_timestamp_beyond_int64_is_refused(tmp_path):
    path = tmp_path / "ratings.parquet"
    frame = ratings_frame([1, 2, 3]).assign(timestamp=np.array(HUGE, dtype=np.uint64))
    frame.to_parquet(path)
    with pytest.raises(DataError, match=r"timestamp on row 1 .* too large for unix seconds"):
        load_data(path, progress=False)
