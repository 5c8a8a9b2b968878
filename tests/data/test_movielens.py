"""MovieLens layouts: one test per release (dtypes, row order, values, metadata), then the
errors only MovieLens files have."""

import shutil

import pandas as pd
import pytest

from movierec.data import read_movielens
from movierec.errors import DataError
from tests.data.canonical import FIXTURES, assert_canonical

ITEM_COLUMNS = ["item_id", "title", "year", "genres"]
USER_COLUMNS = ["user_id", "age", "gender", "occupation", "zip_code"]


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


def test_missing_folder(tmp_path):
    with pytest.raises(DataError, match="does not exist"):
        read_movielens(tmp_path / "nope")


def test_folder_without_movielens_files(tmp_path):
    (tmp_path / "notes.txt").write_text("hello")
    with pytest.raises(DataError, match="holds no MovieLens ratings file"):
        read_movielens(tmp_path)


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


def test_extra_fields_in_movielens_file_are_not_dropped_silently(tmp_path):
    shutil.copytree(FIXTURES / "ml-100k", tmp_path / "ml-100k")
    (tmp_path / "ml-100k" / "u.data").write_text("1\t2\t3\t4\t9\n5\t6\t7\t8\n")
    with pytest.raises(DataError, match=r"u\.data: line 1 has 5 fields, more than the 4 expected"):
        read_movielens(tmp_path / "ml-100k")
