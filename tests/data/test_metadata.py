"""Item and user metadata wherever it is: beside a ratings file, a named file, or a DataFrame."""

import pandas as pd
import pytest

from movierec.data import load_data
from movierec.data.metadata import read_items, read_users, sibling_items
from movierec.errors import DataError, MovieRecWarning
from tests.data.canonical import FIXTURES


def test_a_ratings_file_beside_a_movielens_item_file_gets_its_titles():
    data = load_data(FIXTURES / "titled" / "exported.tsv")
    assert data.layout == "ratings-file"
    titles = dict(zip(data.items["item_id"], data.items["title"], strict=True))
    assert titles[1193] == "One Flew Over the Cuckoo's Nest (1975)"
    assert data.items.set_index("item_id").loc[1357, "genres"] == "Drama|Romance"


def test_ml_csv_ratings_read_as_a_file_still_have_titles():
    data = load_data(FIXTURES / "ml-latest-small" / "ratings.csv")
    assert data.layout == "ratings-file" and data.items is not None
    assert len(data.items) == len(read_items(FIXTURES / "ml-latest-small" / "movies.csv"))


def test_a_file_with_no_item_file_beside_it_has_none():
    assert sibling_items(FIXTURES / "generic" / "ratings.csv") is None
    assert load_data(FIXTURES / "generic" / "ratings.csv").items is None


def test_any_item_file_with_columns_found_by_common_names():
    items = read_items(FIXTURES / "generic" / "items.csv")
    assert items.columns.tolist() == ["item_id", "title", "year", "genres", "Director"]
    assert items["item_id"].tolist() == [100, 101, 102]
    assert items["title"].tolist() == ["Alpha (2001)", "Beta", "Gamma, The (1999)"]
    assert items["year"].tolist()[0] == 2001 and pd.isna(items["year"].tolist()[1])
    assert items["genres"].tolist() == ["Drama|War", "", "Comedy"]


def test_items_given_override_and_name_columns():
    data = load_data(
        FIXTURES / "generic" / "ratings.csv",
        items=FIXTURES / "generic" / "items.csv",
        item_columns=["ItemId", "Director"],
    )
    assert data.items["title"].tolist() == ["Kim", "Lee", "Park"]
    assert "Name" in data.items.columns and "genres" in data.items.columns


def test_items_from_a_frame_with_genre_lists():
    frame = pd.DataFrame({"movie": ["a", "b"], "name": ["A", "B"], "tags": [["x", "y"], []]})
    items = read_items(frame)
    assert items["item_id"].tolist() == ["a", "b"] and items["genres"].tolist() == ["x|y", ""]


@pytest.mark.parametrize(
    ("frame", "columns", "message"),
    [
        (pd.DataFrame({"movie": [1], "genre": ["x"]}), None, r"items DataFrame: found no title"),
        (pd.DataFrame({"movie": [1, None], "title": ["A", "B"]}), None, r"missing on row 2"),
        (pd.DataFrame({"movie": [1], "title": ["A"]}), ["movie", "nope"], r"no column 'nope'"),
        (pd.DataFrame({"movie": [], "title": []}), None, r"has no items"),
        (pd.DataFrame({"movie": [1], "title": ["A"]}), ["movie"], r"must name 2 or 3 columns"),
    ],
)
def test_bad_item_metadata_is_one_data_error(frame, columns, message):
    with pytest.raises(DataError, match=message):
        read_items(frame, columns)


def test_users_from_a_frame():
    users = read_users(pd.DataFrame({"customer": [7, 8], "country": ["NZ", "FI"]}))
    assert users.columns.tolist() == ["user_id", "country"] and users["user_id"].tolist() == [7, 8]
    with pytest.raises(DataError, match=r"users DataFrame: found no user column"):
        read_users(pd.DataFrame({"who": [1]}))


def test_a_movies_csv_of_ones_own_beside_ratings_is_read_by_its_names(tmp_path):
    (tmp_path / "ratings.tsv").write_text("user\titem\trating\n1\t7\t4\n2\t7\t2\n")
    (tmp_path / "movies.csv").write_text("id,name\n7,Seven\n")
    assert load_data(tmp_path / "ratings.tsv").items["title"].tolist() == ["Seven"]
    (tmp_path / "movies.csv").write_text("nothing,useful\n1,2\n")
    with pytest.raises(DataError, match=r"item file beside .*name the right item file"):
        load_data(tmp_path / "ratings.tsv")
    with pytest.warns(MovieRecWarning, match=r"2 of 2 ratings .*first: item 7"):
        named = load_data(tmp_path / "ratings.tsv", items=FIXTURES / "generic" / "items.csv")
    assert named.items["item_id"].tolist() == [100, 101, 102]  # the one beside is not read
