"""Side-feature encoding: metadata columns -> codes in index order, and bad columns in one line."""

import pandas as pd
import pytest
import torch

from movierec.errors import ArtifactError, ConfigError, DataError
from movierec.models.features import (
    NUMERIC_BUCKETS,
    FeatureTable,
    SideFeatures,
    encode_features,
)

USERS = pd.DataFrame(
    {
        "user_id": [10, 20, 30, 40],
        "age": pd.array([15, 33, None, 70], dtype="Int64"),
        "gender": ["F", "M", "M", None],
        "occupation": ["writer", "doctor", "writer", "artist"],
        "zip_code": ["55105", "00000", "T8H1N", ""],
    }
)
ITEMS = pd.DataFrame(
    {
        "item_id": [1, 2, 3],
        "title": ["A", "B", "C"],
        "year": pd.array([1995, 1950, None], dtype="Int64"),
        "genres": ["Action|Comedy", "", "Drama|Action"],
    }
)


def test_categorical_codes_follow_the_encoder_order_and_unknown_is_zero():
    ids = pd.Index([40, 30, 99, 10])  # 99: a user the metadata lacks
    gender, occupation, zip_code = encode_features(
        USERS, "user_id", ids, ["gender", "occupation", "zip_code"], "user"
    )
    assert gender.vocabulary == ("F", "M")
    assert gender.codes.tolist() == [0, 2, 0, 1]  # missing gender, M, unknown user, F
    assert occupation.vocabulary == ("artist", "doctor", "writer")
    assert occupation.codes.tolist() == [1, 3, 0, 3]
    assert zip_code.vocabulary == ("0", "5", "T")  # the first character; "" is unknown
    assert zip_code.codes.tolist() == [0, 3, 0, 2]
    assert gender.rows == 3 and not gender.multi_hot


def test_genres_are_multi_hot_and_numbers_are_ordered_buckets():
    ids = pd.Index([3, 1, 7])
    genres, year = encode_features(ITEMS, "item_id", ids, ["genres", "year"], "item")
    assert genres.vocabulary == ("Action", "Comedy", "Drama")
    assert genres.codes.tolist() == [[1, 0, 1], [1, 1, 0], [0, 0, 0]]
    assert genres.multi_hot and genres.rows == 3
    assert year.vocabulary == ("1950-1995", "1995+")  # two distinct years: one bucket each
    assert year.codes.tolist() == [0, 2, 0]  # no year, 1995, unknown item


def test_many_distinct_numbers_get_at_most_the_bucket_count_in_order():
    frame = pd.DataFrame({"user_id": range(100), "score": [float(v) for v in range(100)]})
    (score,) = encode_features(frame, "user_id", pd.Index(range(100)), ["score"], "user")
    assert len(score.vocabulary) == NUMERIC_BUCKETS
    assert torch.all(score.codes[1:] >= score.codes[:-1])  # monotone in the value
    assert score.codes.min() == 1 and score.codes.max() == NUMERIC_BUCKETS


def test_text_and_integer_ids_match_each_other():
    (gender,) = encode_features(USERS, "user_id", pd.Index(["20", "10"]), ["gender"], "user")
    assert gender.codes.tolist() == [2, 1]


def test_a_missing_column_is_one_config_error_naming_it_and_the_columns():
    with pytest.raises(ConfigError, match="'budget', which the item metadata lacks") as caught:
        encode_features(ITEMS, "item_id", pd.Index([1]), ["genres", "budget"], "item")
    assert "title, year, genres" in str(caught.value)
    assert len(str(caught.value).splitlines()) == 1


def test_no_metadata_is_one_config_error():
    with pytest.raises(ConfigError, match="no user metadata"):
        encode_features(None, "user_id", pd.Index([1]), ["age"], "user")


@pytest.mark.parametrize(
    ("column", "values", "kind"),
    [("genres", [1.5, 2.5, 3.5], "float"), ("tags", [["a"], ["b"], ["c"]], "list")],
)
def test_a_column_of_the_wrong_type_is_one_data_error(column, values, kind):
    frame = ITEMS.assign(**{column: values})
    with pytest.raises(DataError, match=f"column {column!r} holds {kind}") as caught:
        encode_features(frame, "item_id", pd.Index([1, 2, 3]), [column], "item")
    assert len(str(caught.value).splitlines()) == 1


def _side() -> SideFeatures:
    users = encode_features(USERS, "user_id", pd.Index([10, 20, 30, 40]), ["gender"], "user")
    items = encode_features(ITEMS, "item_id", pd.Index([1, 2, 3]), ["genres", "year"], "item")
    side = SideFeatures(4, 3, ("gender",), ("genres", "year"), dim=5)
    side.attach(users, items)
    return side


def test_a_multi_hot_row_averages_its_values_and_an_empty_one_is_zero():
    side = _side()
    genres = side.items[0]
    vectors = genres(torch.tensor([0, 1]))
    assert torch.allclose(vectors[0], genres.weight[:2].mean(dim=0))
    assert torch.equal(vectors[1], torch.zeros(5))
    assert side.item().shape == (3, 10) and side.user().shape == (4, 5)
    assert torch.equal(side.unknown_user(), side.users[0].weight[0])


def test_a_saved_state_loads_into_a_fresh_model_whatever_the_vocabulary():
    side = _side()
    side.mark_trained(torch.tensor([0, 2]))
    fresh = SideFeatures(4, 3, ("gender",), ("genres", "year"), dim=5)
    fresh.load_state_dict(side.state_dict(), strict=True)
    assert torch.equal(fresh.item(), side.item()) and torch.equal(fresh.user(), side.user())
    assert fresh.trained.tolist() == [True, False, True]
    assert fresh.cold(None, training=False).tolist() == [False, True, False]


def test_saved_codes_outside_their_table_are_refused():
    side = _side()
    state = side.state_dict()
    state["users.0.codes"] = torch.tensor([0, 1, 2, 9])
    with pytest.raises(ArtifactError, match="do not index its table"):
        SideFeatures(4, 3, ("gender",), ("genres", "year"), dim=5).load_state_dict(state)


def test_id_dropout_drops_only_in_training():
    side = SideFeatures(4, 3, (), ("year",), dim=2, id_dropout=0.5)
    items = torch.zeros(10_000, dtype=torch.long)
    torch.manual_seed(0)
    dropped = side.cold(items, training=True)
    assert 0.45 < float(dropped.float().mean()) < 0.55
    assert side.cold(items, training=False) is None  # every item trained: none cold


def test_attaching_features_of_another_size_is_refused():
    (gender,) = encode_features(USERS, "user_id", pd.Index([10, 20]), ["gender"], "user")
    with pytest.raises(ConfigError, match="2 rows for a table of 4"):
        FeatureTable(4, 3, multi_hot=False).attach(gender)
