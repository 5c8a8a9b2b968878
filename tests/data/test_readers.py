"""Readers: one test per layout (dtypes, row order, values, metadata), then every error path."""

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movierec.data import load_data, read_movielens, read_ratings_file
from movierec.data.readers import sniff_separator
from movierec.errors import DataError

FIXTURES = Path(__file__).parent / "fixtures"
RATING_COLUMNS = ["user_id", "item_id", "rating", "timestamp"]
ITEM_COLUMNS = ["item_id", "title", "year", "genres"]
USER_COLUMNS = ["user_id", "age", "gender", "occupation", "zip_code"]


def assert_canonical(ratings: pd.DataFrame, id_dtype=np.int64) -> None:
    assert list(ratings.columns) == RATING_COLUMNS
    assert ratings["rating"].dtype == np.float32
    assert ratings["timestamp"].dtype == np.int64
    for column in ("user_id", "item_id"):
        if id_dtype is str:
            assert pd.api.types.is_string_dtype(ratings[column].dtype)
        else:
            assert ratings[column].dtype == id_dtype
    assert isinstance(ratings.index, pd.RangeIndex)


def title_of(items: pd.DataFrame, item_id) -> str:
    return items.set_index("item_id").loc[item_id, "title"]


def test_ml100k_layout():
    data = read_movielens(FIXTURES / "ml-100k")
    assert (data.name, data.layout, data.rating_scale) == ("ml-100k", "ml-100k", (1.0, 5.0))
    assert data.source == FIXTURES / "ml-100k"
    assert_canonical(data.ratings)
    assert data.ratings["user_id"].tolist() == [196, 186, 22, 244, 166, 298, 115, 253]  # file order
    assert data.ratings.iloc[0].tolist() == [196, 242, 3.0, 881250949]
    items = data.items.set_index("item_id")
    assert list(data.items.columns) == ITEM_COLUMNS
    assert data.items["year"].dtype == "Int64"
    assert items.loc[543, "title"] == "Misérables, Les (1995)"  # latin-1 decoded
    assert items.loc[543, "genres"] == "Drama|Musical"
    assert items.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert items.loc[1412, "year"] == 1995  # "(1995) (V)"
    assert items.loc[1300, "year"] == 1996  # no year in the title: the release date's
    assert pd.isna(items.loc[267, "year"])
    assert items.loc[267, "genres"] == "unknown"
    assert list(data.users.columns) == USER_COLUMNS
    assert data.users["zip_code"].tolist()[1] == "00000"  # zip codes stay strings
    assert data.users["occupation"].tolist()[0] == "writer"


def test_ml1m_layout():
    data = read_movielens(FIXTURES / "ml-1m")
    assert (data.name, data.layout, data.rating_scale) == ("ml-1m", "ml-1m", (1.0, 5.0))
    assert_canonical(data.ratings)
    assert data.ratings["item_id"].tolist() == [1193, 661, 1357, 914, 3408]
    assert data.ratings["timestamp"].tolist()[0] == 978300760
    assert title_of(data.items, 2851) == "Ménage (Tenue de soirée) (1986)"
    assert data.items.set_index("item_id").loc[1, "genres"] == "Animation|Children's|Comedy"
    assert data.items.set_index("item_id").loc[914, "year"] == 1964
    users = data.users.set_index("user_id")
    assert users.loc[2, "occupation"] == "self-employed"  # code 16
    assert users.loc[1, "gender"] == "F"
    assert users.loc[1, "age"] == 1


def test_ml10m_layout_nested_folder():
    data = read_movielens(FIXTURES / "ml-10m")  # the zip's ml-10M100K folder inside
    assert (data.name, data.layout, data.rating_scale) == ("ml-10m", "ml-10m", (0.5, 5.0))
    assert data.source == FIXTURES / "ml-10m" / "ml-10M100K"
    assert_canonical(data.ratings)
    assert data.ratings["rating"].tolist() == [5.0, 4.5, 0.5, 3.5]
    assert data.users is None
    assert title_of(data.items, 4973).startswith("Amélie (Fabuleux")  # UTF-8
    assert data.items.set_index("item_id").loc[4973, "year"] == 2001


def test_ml_csv_layout():
    data = read_movielens(FIXTURES / "ml-latest-small")
    assert (data.name, data.layout, data.rating_scale) == (
        "ml-latest-small",
        "ml-csv",
        (0.5, 5.0),
    )
    assert_canonical(data.ratings)
    assert data.ratings["item_id"].tolist() == [1, 3, 6, 47, 193609]
    assert data.ratings["rating"].tolist() == [4.0, 4.0, 4.5, 5.0, 0.5]
    items = data.items.set_index("item_id")
    assert items.loc[11, "title"] == "American President, The (1995)"
    assert items.loc[193609, "genres"] == ""
    assert items.loc[47, "year"] == 1995
    assert data.users is None


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


# --- errors ---------------------------------------------------------------------------------------


def test_load_data_of_nothing():
    with pytest.raises(DataError, match=r"neither a dataset name .*ml-100k.* nor a file"):
        load_data("no-such-thing")


def test_missing_file(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_ratings_file(tmp_path / "nope.csv")
    with pytest.raises(DataError, match="does not exist"):
        read_movielens(tmp_path / "nope")


def test_empty_file(tmp_path):
    path = tmp_path / "empty.csv"
    path.write_text("")
    with pytest.raises(DataError, match=r"empty\.csv is empty"):
        read_ratings_file(path)
    path.write_text("user,item,rating\n")
    with pytest.raises(DataError, match="no ratings"):
        read_ratings_file(path)


def test_folder_without_movielens_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="holds no MovieLens ratings file"):
        read_movielens(tmp_path)


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


def test_non_numeric_rating_in_movielens_file(tmp_path):
    shutil.copytree(FIXTURES / "ml-1m", tmp_path / "ml-1m")
    path = tmp_path / "ml-1m" / "ratings.dat"
    path.write_text("1::1193::5::978300760\n1::661::five::978302109\n")
    with pytest.raises(DataError, match="rating on line 2 is 'five'"):
        read_movielens(tmp_path / "ml-1m")


def test_short_line_in_movielens_file(tmp_path):
    shutil.copytree(FIXTURES / "ml-100k", tmp_path / "ml-100k")
    (tmp_path / "ml-100k" / "u.data").write_text("1\t2\t3\t4\n5\t6\t7\n")
    with pytest.raises(DataError, match="line 2 has fewer than 4 fields"):
        read_movielens(tmp_path / "ml-100k")


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


def test_extra_fields_in_movielens_file_are_not_dropped_silently(tmp_path):
    shutil.copytree(FIXTURES / "ml-100k", tmp_path / "ml-100k")
    (tmp_path / "ml-100k" / "u.data").write_text("1\t2\t3\t4\t9\n5\t6\t7\t8\n")
    with pytest.raises(DataError, match=r"u\.data: line 1 has 5 fields, more than the 4 expected"):
        read_movielens(tmp_path / "ml-100k")


@pytest.mark.parametrize(
    ("line", "sep"),
    [("a\tb\tc", "\t"), ("a,b,c", ","), ("a;b;c", ";"), ("a|b|c", "|"), ("a::b::c", "::")],
)
def test_sniff_separator(line, sep):
    assert sniff_separator(line) == sep
