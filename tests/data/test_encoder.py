"""IdEncoder: the only converter between raw IDs and indices."""

import pandas as pd
import pytest

from movierec.data.encoder import IdEncoder
from movierec.errors import ArtifactError, UnknownIdError


def frame(users, items):
    return pd.DataFrame({"user_id": users, "item_id": items})


def test_fit_indexes_sorted_unique_ids_and_round_trips():
    encoder = IdEncoder.fit(frame([30, 10, 30, 20], [7, 5, 5, 9]))
    assert list(encoder.user_ids) == [10, 20, 30]
    assert list(encoder.encode_users([30, 10, 20])) == [2, 0, 1]
    assert list(encoder.decode_items(encoder.encode_items([9, 5, 7]))) == [9, 5, 7]


def test_unknown_ids_encode_to_minus_one_in_bulk():
    encoder = IdEncoder.fit(frame([1, 2], [1, 2]))
    assert list(encoder.encode_users([2, 99])) == [1, -1]


def test_unknown_single_id_names_the_id_and_the_known_range():
    encoder = IdEncoder.fit(frame([1, 2, 3], [4, 5, 6]))
    with pytest.raises(UnknownIdError, match=r"user 99 .*3 users are known, IDs 1\.\.3"):
        encoder.user_index(99)


def test_numeric_strings_from_a_command_line_find_integer_ids():
    encoder = IdEncoder.fit(frame([196, 5], [242, 1]))
    assert encoder.user_index("196") == 1
    with pytest.raises(UnknownIdError):
        encoder.user_index("abc")


def test_string_ids_stay_strings():
    encoder = IdEncoder.fit(frame(["bob", "alice"], ["m2", "m1"]))
    assert list(encoder.user_ids) == ["alice", "bob"]
    assert encoder.item_index("m2") == 1


def test_json_round_trip_preserves_types():
    encoder = IdEncoder.fit(frame([3, 1], ["x", "y"]))
    payload = encoder.to_json()
    assert payload == {"users": [1, 3], "items": ["x", "y"]}
    again = IdEncoder.from_json(payload)
    assert again.user_index(3) == 1 and again.item_index("y") == 1


def test_duplicate_ids_in_a_saved_map_are_refused():
    with pytest.raises(ArtifactError, match="duplicate"):
        IdEncoder([1, 1], [2])
