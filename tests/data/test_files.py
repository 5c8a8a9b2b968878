"""Generic ratings files: CSV/TSV/``::``/Parquet, column names found or given, then every error
path of a file that is not a MovieLens release."""

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movierec.data import read_ratings_file
from movierec.data.parsing import sniff_separator
from movierec.errors import DataError
from tests.data.canonical import FIXTURES, RATING_COLUMNS, assert_canonical


def test_generic_csv_with_aliases_and_dates():
    data = read_ratings_file(FIXTURES / "generic" / "ratings.csv")
    assert (data.name, data.layout) == ("ratings", "ratings-file")
    assert data.items is None and data.users is None
    assert_canonical(data.ratings)
    assert data.ratings["item_id"].tolist() == [100, 101, 102]
    assert data.ratings["timestamp"].tolist() == [1577836800, 1577966400, 1625011200]
    assert data.rating_scale == (2.0, 4.0)


def test_generic_tsv():
    data = read_ratings_file(FIXTURES / "generic" / "ratings.tsv")
    assert_canonical(data.ratings)
    assert data.ratings.to_numpy().tolist() == [
        [5, 50, 1, 1000],
        [6, 60, 2, 2000],
        [5, 70, 3, 3000],
    ]
    assert data.rating_scale == (1.0, 3.0)


def test_headerless_file_is_user_item_rating_timestamp():
    data = read_ratings_file(FIXTURES / "generic" / "headerless.txt")
    assert_canonical(data.ratings)
    assert data.ratings["user_id"].tolist() == [7, 8, 7]
    assert data.ratings["timestamp"].tolist() == [1100, 1200, 1300]


def test_headerless_file_with_named_columns(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("1100;4;70;7\n1200;5;80;8\n")
    data = read_ratings_file(path, columns=["u", "i", "r", "t"])
    assert data.ratings["user_id"].tolist() == [1100, 1200]
    data = read_ratings_file(path, columns=["t", "r", "i", "u"])
    assert data.ratings.iloc[0].tolist() == [1100, 4, 70, 7]


def test_string_ids_with_columns():
    data = read_ratings_file(
        FIXTURES / "generic" / "string_ids.csv", columns=["Customer", "product", "stars"]
    )
    assert_canonical(data.ratings, id_dtype=str)
    assert data.ratings["user_id"].tolist() == ["alice", "bob", "alice", "0042"]
    assert data.ratings["item_id"].tolist()[0] == "tt0114709"
    assert data.ratings["timestamp"].tolist() == [0, 0, 0, 0]


def test_parquet(tmp_path):
    path = tmp_path / "ratings.parquet"
    table = pa.table(
        {
            "userId": [3, 1, 2],
            "movieId": ["a", "b", "c"],
            "rating": [1.5, 2.0, 5.0],
            "timestamp": pd.to_datetime(
                ["1970-01-01 00:00:10", "2020-01-01 00:00:00", "2021-01-01 00:00:00"]
            ),
        }
    )
    pq.write_table(table, path)
    data = read_ratings_file(path)
    assert list(data.ratings.columns) == RATING_COLUMNS
    assert data.ratings["user_id"].dtype == np.int64
    assert pd.api.types.is_string_dtype(data.ratings["item_id"].dtype)
    assert (data.ratings["rating"].dtype, data.ratings["timestamp"].dtype) == (np.float32, np.int64)
    assert data.ratings["user_id"].tolist() == [3, 1, 2]
    assert data.ratings["item_id"].tolist() == ["a", "b", "c"]
    assert data.ratings["timestamp"].tolist() == [10, 1577836800, 1609459200]
    assert data.rating_scale == (1.5, 5.0)


def test_double_colon_generic_file(tmp_path):
    path = tmp_path / "r.dat"
    path.write_text("1::10::4::5\n2::20::3::6\n")
    assert sniff_separator("1::10::4::5") == "::"
    assert read_ratings_file(path).ratings["item_id"].tolist() == [10, 20]


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_ratings_file(tmp_path / "nope.csv")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        read_ratings_file(path)
    path.write_text("user,item,rating\n")
    with pytest.raises(DataError, match="no ratings"):
        read_ratings_file(path)


def test_no_rating_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,grade\n1,2,3\n")
    with pytest.raises(
        DataError, match=r"no rating column among \['user', 'item', 'grade'\].*--columns"
    ):
        read_ratings_file(path)


def test_no_user_column(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("who,item,rating\n1,2,3\n")
    with pytest.raises(DataError, match="no user column"):
        read_ratings_file(path)


def test_named_column_not_in_file(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("a,b,c\n1,2,x\n")
    with pytest.raises(DataError, match="no column 'rating'"):
        read_ratings_file(path, columns=["a", "b", "rating"])


def test_bad_columns_argument(tmp_path):
    with pytest.raises(DataError, match="3 or 4 columns"):
        read_ratings_file(FIXTURES / "generic" / "ratings.tsv", columns=["user", "item"])


@pytest.mark.parametrize("bad", ["abc", "nan", "inf", ""])
def test_non_numeric_rating_names_the_line(tmp_path, bad):
    path = tmp_path / "r.csv"
    path.write_text(f"user,item,rating\n1,2,3\n1,3,4\n2,2,{bad}\n")
    with pytest.raises(DataError, match=r"r\.csv: the rating on line 4 .*not a finite number"):
        read_ratings_file(path)


def test_missing_user_id(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1,2,3\n,3,4\n")
    with pytest.raises(DataError, match="user ID is missing on line 3"):
        read_ratings_file(path)


def test_bad_date(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating,date\n1,2,3,2020-01-01\n1,3,4,yesterday\n")
    with pytest.raises(DataError, match="timestamp on line 3 is 'yesterday'"):
        read_ratings_file(path)


def test_ragged_file_is_a_data_error(tmp_path):
    path = tmp_path / "r.csv"
    path.write_text("user,item,rating\n1,2,3\n1,2,3,4,5\n")
    with pytest.raises(DataError, match=r"r\.csv: line 3 has 5 fields, expected 3"):
        read_ratings_file(path)


def test_not_parquet(tmp_path):
    path = tmp_path / "r.parquet"
    path.write_text("user,item,rating\n1,2,3\n")
    with pytest.raises(DataError, match=r"cannot read .* as Parquet"):
        read_ratings_file(path)


def test_no_separator(tmp_path):
    path = tmp_path / "r.txt"
    path.write_text("hello\n")
    with pytest.raises(DataError, match="cannot tell the separator"):
        read_ratings_file(path)


def test_not_utf8(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes("user,item,rating\nJos\xe9,2,3\n".encode("latin-1"))
    with pytest.raises(DataError, match="is not utf-8 text"):
        read_ratings_file(path)
