"""Property-based tests of the readers and the ID encoder (hypothesis, bounded).

Valid tables written as CSV, TSV or Parquet read back exactly (values, dtypes, row order); any
corruption raises the project's own DataError naming the file, never a bare pandas, numpy or
pyarrow exception.
"""

import shutil
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from movierec.data import DataPolicy, read_movielens, read_ratings_file
from movierec.data.encoder import IdEncoder
from movierec.errors import DataError

SETTINGS = settings(
    max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow], database=None
)
SCALE = (0.5, 5.0)
# Strings pandas' C parser reads as missing, boolean or non-finite whatever the column holds; an
# ID spelled like one of these is outside what the text readers promise (docs/reliability.md).
PANDAS_TOKENS = {"na", "nan", "null", "none", "true", "false", "inf", "infinity", "nat"}

int_ids = st.integers(min_value=-(2**63), max_value=2**63 - 1)
str_ids = st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,8}", fullmatch=True).filter(
    lambda s: s.lower() not in PANDAS_TOKENS
)
ratings_in_scale = st.floats(min_value=SCALE[0], max_value=SCALE[1], width=32)
timestamps = st.integers(min_value=0, max_value=2**40)


@st.composite
def tables(draw, min_rows=1):
    """A valid ratings table: unique (user, item) pairs, int or str IDs, optional timestamps."""
    users = int_ids if draw(st.booleans()) else str_ids
    items = int_ids if draw(st.booleans()) else str_ids
    with_time = draw(st.booleans())
    rows = draw(
        st.lists(
            st.tuples(users, items, ratings_in_scale, timestamps),
            min_size=min_rows,
            max_size=25,
            unique_by=lambda row: (row[0], row[1]),
        )
    )
    frame = pd.DataFrame(rows, columns=["user_id", "item_id", "rating", "timestamp"])
    if not with_time:
        frame["timestamp"] = 0
    return frame, with_time


def write_text(frame: pd.DataFrame, path: Path, sep: str, header: bool, with_time: bool) -> None:
    columns = ["user_id", "item_id", "rating"] + (["timestamp"] if with_time else [])
    lines = [sep.join(columns)] if header else []
    for row in frame[columns].itertuples(index=False):
        fields = [str(row[0]), str(row[1]), repr(float(row[2]))] + [str(v) for v in row[3:]]
        lines.append(sep.join(fields))
    path.write_text("\n".join(lines) + "\n")


def write_parquet(frame: pd.DataFrame, path: Path, with_time: bool) -> None:
    table = pa.table(
        {
            "user_id": frame["user_id"].tolist(),
            "item_id": frame["item_id"].tolist(),
            "rating": pa.array(frame["rating"].to_numpy(np.float32)),
            **({"timestamp": frame["timestamp"].to_numpy(np.int64)} if with_time else {}),
        }
    )
    pq.write_table(table, path, row_group_size=7)


def expected_ids(values: pd.Series) -> list:
    return [int(v) if isinstance(v, int | np.integer) else str(v) for v in values]


@SETTINGS
@given(table=tables(), fmt=st.sampled_from(["csv", "tsv", "parquet"]), header=st.booleans())
def test_valid_tables_round_trip_exactly(table, fmt, header):
    frame, with_time = table
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"ratings.{fmt}"
        if fmt == "parquet":
            write_parquet(frame, path, with_time)
        else:
            write_text(frame, path, "," if fmt == "csv" else "\t", header, with_time)
        data = read_ratings_file(path, policy=DataPolicy(rating_scale=SCALE, duplicates="error"))
    ratings = data.ratings
    assert list(ratings.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert ratings["user_id"].tolist() == expected_ids(frame["user_id"])
    assert ratings["item_id"].tolist() == expected_ids(frame["item_id"])
    assert ratings["rating"].dtype == np.float32
    np.testing.assert_array_equal(ratings["rating"], frame["rating"].to_numpy(np.float32))
    assert ratings["timestamp"].dtype == np.int64
    assert ratings["timestamp"].tolist() == frame["timestamp"].tolist()
    assert data.report["rows_read"] == len(frame) and data.report["duplicates_resolved"] == 0


@SETTINGS
@given(
    users=st.lists(int_ids, unique=True, max_size=30) | st.lists(str_ids, unique=True, max_size=30),
    items=st.lists(int_ids, unique=True, max_size=30) | st.lists(str_ids, unique=True, max_size=30),
)
def test_id_encoder_round_trips(users, items):
    encoder = IdEncoder(users, items)
    user_idx = encoder.encode_users(users)
    item_idx = encoder.encode_items(items)
    assert user_idx.tolist() == list(range(len(users)))
    assert item_idx.tolist() == list(range(len(items)))
    assert list(encoder.decode_users(user_idx)) == users
    assert list(encoder.decode_items(item_idx)) == items
    restored = IdEncoder.from_json(encoder.to_json())
    assert restored.encode_users(users).tolist() == user_idx.tolist()


@SETTINGS
@given(
    table=tables(),
    bad=st.sampled_from(["nan", "NaN", "", "inf", "-inf", "five", "4..5", "1e400", "--3"]),
    data=st.data(),
    sep=st.sampled_from([",", "\t"]),
)
def test_a_bad_rating_names_its_line(table, bad, data, sep):
    frame, with_time = table
    row = data.draw(st.integers(0, len(frame) - 1))
    frame = frame.astype({"rating": object})
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ratings.txt"
        write_text(frame, path, sep, True, with_time)
        lines = path.read_text().split("\n")
        fields = lines[row + 1].split(sep)
        fields[2] = bad
        lines[row + 1] = sep.join(fields)
        path.write_text("\n".join(lines))
        with pytest.raises(DataError, match=rf"ratings\.txt: the rating on line {row + 2} is"):
            read_ratings_file(path, policy=DataPolicy(rating_scale=SCALE))


@SETTINGS
@given(table=tables(), drop=st.sampled_from(["user_id", "item_id", "rating"]))
def test_a_dropped_column_is_a_data_error(table, drop):
    frame, with_time = table
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ratings.csv"
        write_text(frame, path, ",", True, with_time)
        kept = pd.read_csv(path, dtype=str, keep_default_na=False).drop(columns=drop)
        kept.to_csv(path, index=False)
        with pytest.raises(DataError, match=r"ratings\.csv"):
            read_ratings_file(path, policy=DataPolicy(rating_scale=SCALE))


@SETTINGS
@given(table=tables(), junk=st.binary(min_size=1, max_size=40), data=st.data())
def test_junk_with_a_nul_byte_is_refused(table, junk, data):
    frame, with_time = table
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / "ratings.csv"
        write_text(frame, path, ",", True, with_time)
        raw = path.read_bytes()
        at = data.draw(st.integers(0, len(raw)))
        path.write_bytes(raw[:at] + junk + b"\x00" + raw[at:])
        with pytest.raises(DataError, match=r"ratings\.csv"):
            read_ratings_file(path)


@SETTINGS
@given(
    table=tables(),
    fmt=st.sampled_from(["csv", "tsv", "parquet"]),
    junk=st.binary(min_size=1, max_size=40),
    data=st.data(),
    replace=st.booleans(),
)
def test_any_corruption_is_read_or_a_data_error(table, fmt, junk, data, replace):
    """Random bytes anywhere: the file may still parse, but nothing else than DataError."""
    frame, with_time = table
    with tempfile.TemporaryDirectory() as folder:
        path = Path(folder) / f"ratings.{fmt}"
        if fmt == "parquet":
            write_parquet(frame, path, with_time)
        else:
            write_text(frame, path, "," if fmt == "csv" else "\t", True, with_time)
        raw = path.read_bytes()
        at = data.draw(st.integers(0, len(raw)))
        end = at + len(junk) if replace else at
        path.write_bytes(raw[:at] + junk + raw[end:])
        try:
            read_ratings_file(path)
        except DataError as err:
            assert "ratings." in str(err) and "\n" not in str(err)


FIXTURES = Path(__file__).parent / "fixtures"
ML_RATINGS = {"ml-100k": "u.data", "ml-1m": "ratings.dat", "ml-latest-small": "ratings.csv"}


@SETTINGS
@given(
    layout=st.sampled_from(sorted(ML_RATINGS)),
    junk=st.binary(min_size=1, max_size=20),
    data=st.data(),
    replace=st.booleans(),
)
def test_any_corruption_of_a_movielens_file_is_read_or_a_data_error(layout, junk, data, replace):
    with tempfile.TemporaryDirectory() as folder:
        target = Path(folder) / layout
        shutil.copytree(FIXTURES / layout, target)
        path = target / ML_RATINGS[layout]
        raw = path.read_bytes()
        at = data.draw(st.integers(0, len(raw)))
        end = at + len(junk) if replace else at
        path.write_bytes(raw[:at] + junk + raw[end:])
        try:
            read_movielens(target)
        except DataError as err:
            assert "\n" not in str(err)
