"""The fast paths that make 25M ratings loadable: each against a plain reference on small data.

Parquet's Arrow-to-numpy path, the threaded repeat check, the dense-table ID encoder, the
in-place CSR build of seen items, the block-drawn random splits and the reading bar.
"""

from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import torch

from movierec.data import parsing, read_ratings_file
from movierec.data.encoder import IdEncoder
from movierec.data.policies import REPEAT_THREADED_MIN, has_repeats
from movierec.data.splits import carve_validation, random_split
from movierec.data.tensors import RatingTensors, SeenItems
from movierec.errors import DataError


def reference_repeats(key: np.ndarray) -> bool:
    return len(np.unique(key)) < len(key)


@pytest.mark.parametrize("span", [2**21, 9_597_558_372, 2**40])  # 22, 34 and 41-bit keys
@pytest.mark.parametrize("n", [1_000, REPEAT_THREADED_MIN + 3])
def test_has_repeats_agrees_with_unique(span, n):
    rng = np.random.default_rng(n + span)
    key = rng.choice(span, size=n, replace=False).astype(np.int64)
    assert has_repeats(key) is reference_repeats(key) is False
    for first, second in ((0, n - 1), (n // 2, n // 3)):
        repeated = key.copy()
        repeated[first] = repeated[second]
        assert has_repeats(repeated) is reference_repeats(repeated) is True
    assert has_repeats(np.sort(key)) is False  # increasing keys: the one-pass check


def test_has_repeats_keys_equal_in_their_low_32_bits_are_not_repeats():
    base = np.arange(REPEAT_THREADED_MIN, dtype=np.int64) * 7
    key = np.concatenate([base, base + (1 << 32)])  # same low 32 bits, different groups
    np.random.default_rng(0).shuffle(key)
    assert has_repeats(key) is False


def write_parquet(path: Path, columns: dict, **kwargs) -> Path:
    pq.write_table(pa.table(columns), path, **kwargs)
    return path


def test_parquet_fast_path_gives_the_canonical_schema(tmp_path):
    rng = np.random.default_rng(1)
    n = 5_000
    path = write_parquet(
        tmp_path / "r.parquet",
        {
            "userId": pa.array(rng.integers(1, 300, n), pa.int32()),
            "movieId": pa.array(rng.permutation(n) + 10, pa.uint16()),
            "title": pa.array([f"movie {i}" for i in range(n)]),  # not read
            "rating": pa.array(rng.integers(1, 11, n) / 2, pa.float64()),
            "timestamp": pa.array(rng.integers(0, 2**31, n), pa.int64()),
        },
        row_group_size=1_000,
    )
    data = read_ratings_file(path)
    ratings = data.ratings
    table = pq.read_table(path).to_pandas()
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert [str(t) for t in ratings.dtypes] == ["int64", "int64", "float32", "int64"]
    assert isinstance(ratings.index, pd.RangeIndex)
    np.testing.assert_array_equal(ratings["user_id"], table["userId"].astype(np.int64))
    np.testing.assert_array_equal(ratings["item_id"], table["movieId"].astype(np.int64))
    np.testing.assert_array_equal(ratings["rating"], table["rating"].astype(np.float32))
    np.testing.assert_array_equal(ratings["timestamp"], table["timestamp"])
    assert data.rating_scale == (0.5, 5.0)


def test_parquet_odd_columns_take_the_pandas_path(tmp_path):
    path = write_parquet(
        tmp_path / "r.parquet",
        {
            "user": ["u1", "u2", "u1"],
            "item": pa.array([1, 2, None], pa.int64()),
            "rating": pa.array([1, 4, 5], pa.int8()),
            "date": ["2020-01-01", "2020-01-02T00:00:01", "2021-06-01"],
        },
    )
    with pytest.raises(DataError, match=r"r\.parquet: the item ID is missing on row 3"):
        read_ratings_file(path)
    path = write_parquet(
        tmp_path / "s.parquet",
        {
            "user": ["u1", "u2", "u1"],
            "item": [1, 2, 3],
            "rating": pa.array([1, 4, 5], pa.int8()),
            "date": ["2020-01-01", "2020-01-02T00:00:01", "1970-01-01T00:01:00"],
        },
    )
    ratings = read_ratings_file(path).ratings
    assert ratings["user_id"].tolist() == ["u1", "u2", "u1"]
    assert ratings["rating"].dtype == np.float32
    assert ratings["timestamp"].tolist() == [1577836800, 1577923201, 60]


def test_parquet_infinite_rating_names_its_row_and_group(tmp_path):
    path = write_parquet(
        tmp_path / "r.parquet",
        {"user": [1, 2, 3, 4], "item": [5, 6, 7, 8], "rating": [1.0, 2.0, 3.0, np.inf]},
        row_group_size=2,
    )
    with pytest.raises(DataError, match=r"the rating on row 4 \(row group 1\) is inf, not a fin"):
        read_ratings_file(path)


def test_parquet_written_by_pandas_ignores_its_index_column(tmp_path):
    frame = pd.DataFrame({"user": [1, 2], "item": [3, 4], "rating": [1.0, 5.0]}, index=[7, 9])
    path = tmp_path / "r.parquet"
    frame.to_parquet(path)
    ratings = read_ratings_file(path).ratings
    assert ratings["user_id"].tolist() == [1, 2]
    assert isinstance(ratings.index, pd.RangeIndex)


def test_dense_table_encoding_matches_the_hash_lookup():
    rng = np.random.default_rng(2)
    ids = np.sort(rng.choice(np.arange(-50, 5_000), size=2_000, replace=False))
    dense = IdEncoder(ids, ids)
    sparse = IdEncoder(ids * 10**9, ids * 10**9)  # too spread for a table: hash lookup
    assert dense._users._table is not None and sparse._users._table is None
    raw = rng.integers(-100, 5_100, 10_000)  # known, unknown inside the range, and outside
    expected = pd.Index(ids).get_indexer(raw)
    np.testing.assert_array_equal(dense.encode_users(raw), expected)
    np.testing.assert_array_equal(dense.encode_users(raw.astype(np.int32)), expected)
    np.testing.assert_array_equal(sparse.encode_users(raw * 10**9), expected)
    assert dense.encode_users(raw).dtype == np.int64
    np.testing.assert_array_equal(dense.encode_users(ids[:5].astype(str)), np.arange(5))


def test_seen_items_match_a_sort_by_user_then_item_past_int32_keys():
    rng = np.random.default_rng(3)
    n_users, n_items = 100_000, 60_000  # users x items > 2**32
    users = torch.from_numpy(rng.integers(0, n_users, 50_000))
    items = torch.from_numpy(rng.integers(0, n_items, 50_000))
    seen = SeenItems.from_tensors(
        RatingTensors(users, items, torch.ones(len(users))), n_users, n_items
    )
    order = np.lexsort((items.numpy(), users.numpy()))
    np.testing.assert_array_equal(seen.indices.numpy(), items.numpy()[order])
    assert seen.indices.dtype == torch.int64
    some = int(users[0])
    assert sorted(seen.items_of(some).tolist()) == sorted(items[users == some].tolist())


def test_tensors_own_their_ratings():
    frame = pd.DataFrame(
        {
            "user_id": np.array([1, 2, 3]),
            "item_id": np.array([4, 5, 6]),
            "rating": np.array([1.0, 2.0, 3.0], dtype=np.float32),
            "timestamp": np.zeros(3, dtype=np.int64),
        }
    )
    tensors = RatingTensors.from_frame(frame, IdEncoder.fit(frame))
    tensors.rating[0] = 5.0
    assert frame["rating"].iloc[0] == 1.0
    assert tensors.n_unknown == 0 and tensors.user_idx.tolist() == [0, 1, 2]


def test_random_split_draws_the_same_rows_as_one_draw_in_blocks():
    n = 2_500_000  # three blocks of draws
    frame = pd.DataFrame({"user_id": np.arange(n), "item_id": np.arange(n) % 7})
    frame["label"] = pd.array(np.arange(n).astype(str), dtype="str")
    split = random_split(frame, 0.2, seed=4)
    in_test = np.random.default_rng(4).random(n) < 0.2
    np.testing.assert_array_equal(split.test["user_id"], np.flatnonzero(in_test))
    np.testing.assert_array_equal(split.train["user_id"], np.flatnonzero(~in_test))
    assert split.test["label"].tolist()[:3] == [str(i) for i in np.flatnonzero(in_test)[:3]]
    assert isinstance(split.train.index, pd.RangeIndex)
    fit, valid = carve_validation(split.train, 0.1, seed=4)
    in_valid = np.random.default_rng([4, 0x7A11]).random(len(split.train)) < 0.1
    np.testing.assert_array_equal(valid["user_id"], split.train["user_id"].to_numpy()[in_valid])
    assert len(fit) + len(valid) == len(split.train)


@pytest.mark.parametrize(
    ("name", "text"),
    [
        ("r.csv", "user,item,rating\n1,2,3.5\n2,3,4\n"),
        ("r.dat", "1::2::3.5::10\n2::3::4::11\n"),
    ],
)
def test_reading_bar_shows_on_large_text_files(tmp_path, monkeypatch, capsys, name, text):
    path = tmp_path / name
    path.write_text(text)
    quiet = read_ratings_file(path, progress=True).ratings
    assert "reading" not in capsys.readouterr().err  # below PROGRESS_BYTES: no bar
    monkeypatch.setattr(parsing, "PROGRESS_BYTES", 1)
    shown = read_ratings_file(path, progress=True).ratings
    assert f"reading {name}" in capsys.readouterr().err
    pd.testing.assert_frame_equal(shown, quiet)
    read_ratings_file(path, progress=False)
    assert "reading" not in capsys.readouterr().err
