"""Each MovieLens layout's own metadata (u.item/u.user, movies.dat/users.dat, movies.csv) and a
user's metadata frame become side features as the readers normalised them."""

import pandas as pd
import pytest

from movierec.data import load_data
from movierec.models.features import encode_features
from tests.data.canonical import FIXTURES


def _encode(frame, kind, ids, names):
    return {f.name: f for f in encode_features(frame, f"{kind}_id", pd.Index(ids), names, kind)}


# The fixtures' few ratings name items and users their metadata lacks, on purpose.
pytestmark = pytest.mark.filterwarnings("ignore::movierec.errors.MovieRecWarning")


def test_ml100k_u_user_and_u_item_encode_every_feature():
    data = load_data(FIXTURES / "ml-100k", progress=False)
    users = _encode(data.users, "user", [22, 186, 196], ["age", "gender", "occupation", "zip_code"])
    assert users["gender"].codes.tolist() == [2, 1, 2]  # M, F, M
    assert users["occupation"].vocabulary == ("executive", "writer")
    assert users["zip_code"].codes.tolist() == [2, 1, 3]  # regions 4, 0, 5
    assert users["age"].codes.tolist() == [1, 2, 3]  # 25, 39, 49: three values, three buckets
    items = _encode(data.items, "item", [1, 543, 1300], ["genres", "year"])
    genres = items["genres"]
    toy_story = {g for g, flag in zip(genres.vocabulary, genres.codes[0], strict=True) if flag}
    assert toy_story == {"Animation", "Children's", "Comedy"}
    # "Title Without Year" takes its year from the release date (1996).
    assert items["year"].vocabulary[items["year"].codes[2] - 1] == "1996+"


def test_ml1m_users_dat_occupation_codes_arrive_as_names_and_age_groups_as_buckets():
    data = load_data(FIXTURES / "ml-1m", progress=False)
    users = _encode(data.users, "user", [1, 2, 3], ["age", "occupation", "gender"])
    occupation = users["occupation"]
    assert [occupation.vocabulary[c - 1] for c in occupation.codes] == [
        "K-12 student",
        "self-employed",
        "scientist",
    ]
    assert users["age"].vocabulary == ("1-25", "25-56", "56+")  # ml-1m's own groups
    items = _encode(data.items, "item", [1, 2851], ["genres", "year"])
    assert items["genres"].codes.sum(1).tolist() == [3, 2]


def test_movies_csv_genres_and_a_metadata_frame_of_ones_own():
    data = load_data(FIXTURES / "ml-latest-small", progress=False)
    items = _encode(data.items, "item", [3, 1], ["genres"])
    assert items["genres"].codes.sum(1).tolist() == [2, 5]
    own = pd.DataFrame({"user": [5, 6], "segment": ["gold", "basic"], "visits": [3, 40]})
    ratings = pd.DataFrame({"user": [5, 6, 5], "item": [1, 1, 2], "rating": [4.0, 3.0, 5.0]})
    frame_data = load_data(ratings, users=own, progress=False)
    users = _encode(frame_data.users, "user", [6, 5], ["segment", "visits"])
    assert users["segment"].codes.tolist() == [1, 2]  # basic, gold
    assert users["visits"].codes.tolist() == [2, 1]
