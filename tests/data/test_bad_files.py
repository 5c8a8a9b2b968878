"""Malformed input: one test per bad file, each asserting the DataError names the file, the line
(or Parquet row and row group) and the reason; then the policies, archives and checksums."""

import io
import zipfile
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from movierec.data import DataPolicy, load_data, read_movielens, read_ratings_file
from movierec.data.download import extract_zip, verify_file
from movierec.errors import ChecksumError, DataError

BAD = Path(__file__).parent / "bad"

# file or folder under tests/data/bad, keyword arguments, what the message must say
CORPUS = [
    ("empty.csv", {}, r"empty\.csv is empty"),
    ("blank_lines.csv", {}, r"blank_lines\.csv holds only blank lines"),
    ("header_only.csv", {}, r"header_only\.csv has a header but no ratings"),
    ("spaces.txt", {}, r"cannot tell the separator of .*spaces\.txt from its first line"),
    (
        "tabs_read_as_comma.csv",
        {"sep": ","},
        r"tabs_read_as_comma\.csv: line 1 has a single field .*seems to use tab .*not comma",
    ),
    ("missing_column.csv", {}, r"missing_column\.csv: found no rating column"),
    ("extra_fields.tsv", {}, r"extra_fields\.tsv: line 2 has 5 fields, expected 4"),
    ("ragged.csv", {}, r"ragged\.csv: line 3 has 5 fields, expected 3"),
    (
        "ml-100k-commas",
        {},
        r"u\.data: line 1 has fewer than 4 fields.*seems to use comma between fields, not tab",
    ),
    (
        "ml-1m-text-ids",
        {},
        r"ratings\.dat: the item ID on line 2 is 'tt661', not an integer; MovieLens IDs",
    ),
    (
        "ml-100k-out-of-scale",
        {},
        r"u\.data: the rating on line 2 is 7, outside the rating scale 1\.\.5",
    ),
    ("nan_rating.csv", {}, r"nan_rating\.csv: the rating on line 3 is empty or NaN"),
    ("inf_rating.csv", {}, r"inf_rating\.csv: the rating on line 4 is inf, not a finite"),
    ("text_rating.csv", {}, r"text_rating\.csv: the rating on line 3 is 'five', not a finite"),
    ("empty_rating.csv", {}, r"empty_rating\.csv: the rating on line 3 is empty or NaN"),
    ("all_equal.csv", {}, r"all_equal\.csv: all 3 ratings are 4, so no rating scale"),
    ("absurd_rating.csv", {}, r"absurd_rating\.csv: the rating on line 3 is 1e\+09, beyond"),
    ("negative_ratings.csv", {}, r"negative_ratings\.csv: no rating is above 0 .* on line 2"),
    (
        "duplicates.csv",
        {"policy": DataPolicy(duplicates="error")},
        r"duplicates\.csv: user 1 rates item 2 twice, on line 2 and line 4",
    ),
    ("bad_date.csv", {}, r"bad_date\.csv: the timestamp on line 3 is 'yesterday'"),
    ("missing_user.csv", {}, r"missing_user\.csv: the user ID is missing on line 3"),
    ("latin1.csv", {}, r"latin1\.csv: line 3 is not utf-8 text"),
]


@pytest.mark.parametrize(("name", "kwargs", "message"), CORPUS, ids=[c[0] for c in CORPUS])
def test_bad_file(name, kwargs, message):
    path = BAD / name
    with pytest.raises(DataError, match=message) as caught:
        if path.is_dir():
            read_movielens(path, **kwargs)
        else:
            read_ratings_file(path, **kwargs)
    assert "\n" not in str(caught.value)  # the CLI prints it as one line


def test_every_corpus_file_has_a_test():
    assert {p.name for p in BAD.iterdir()} == {name for name, _, _ in CORPUS}


# --- binary files, generated here so the repository holds no binaries ---------------------------


def test_png_renamed_csv(tmp_path):
    path = tmp_path / "poster.csv"
    path.write_bytes(b"\x89PNG\r\n\x1a\n\x00\x00\x00\rIHDR" + bytes(range(256)))
    with pytest.raises(DataError, match=r"poster\.csv is not a ratings text file: it is a PNG"):
        read_ratings_file(path)


def test_nul_bytes_name_the_line(tmp_path):
    path = tmp_path / "r.csv"
    path.write_bytes(b"user,item,rating\n1,2,3\n1,3\x00\x00,4\n")
    with pytest.raises(DataError, match=r"r\.csv: line 3 holds a NUL byte .*binary data"):
        read_ratings_file(path)


def test_binary_movielens_file(tmp_path):
    (tmp_path / "u.data").write_bytes(np.random.default_rng(0).bytes(512) + b"\x00")
    with pytest.raises(DataError, match=r"u\.data: line \d+ holds a NUL byte"):
        read_movielens(tmp_path)


@pytest.mark.parametrize(
    ("head", "what"),
    [(b"PK\x03\x04", "a zip archive"), (b"\x1f\x8b\x08", "gzip"), (b"\xff\xfeu\x00", "UTF-16")],
)
def test_known_binary_formats_are_named(tmp_path, head, what):
    path = tmp_path / "r.csv"
    path.write_bytes(head + b"user,item,rating\n")
    with pytest.raises(DataError, match=rf"r\.csv is not a ratings text file: it is .*{what}"):
        read_ratings_file(path)


def test_parquet_error_names_row_and_row_group(tmp_path):
    path = tmp_path / "r.parquet"
    table = pa.table({"user": [1, 2, 3, 4], "item": [5, 6, 7, 8], "rating": [1.0, 2.0, 3.0, None]})
    pq.write_table(table, path, row_group_size=2)
    with pytest.raises(DataError, match=r"r\.parquet: the rating on row 4 \(row group 1\)"):
        read_ratings_file(path)


def test_truncated_parquet(tmp_path):
    path = tmp_path / "r.parquet"
    pq.write_table(pa.table({"user": [1, 2], "item": [3, 4], "rating": [1.0, 2.0]}), path)
    path.write_bytes(path.read_bytes()[:-20])
    with pytest.raises(DataError, match=r"cannot read .*r\.parquet as Parquet"):
        read_ratings_file(path)


def test_parquet_rating_column_of_dates(tmp_path):
    path = tmp_path / "r.parquet"
    table = pa.table(
        {"user": [1, 2], "item": [3, 4], "rating": pa.array([1, 2], pa.timestamp("s"))}
    )
    pq.write_table(table, path)
    with pytest.raises(DataError, match=r"r\.parquet: the rating column holds datetime"):
        read_ratings_file(path)


# --- policies -------------------------------------------------------------------------------------


def write(tmp_path, text, name="r.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def test_duplicates_keep_last_by_default_and_are_counted(tmp_path):
    path = write(tmp_path, "user,item,rating,ts\n1,2,3,10\n1,3,4,11\n1,2,5,12\n2,2,1,13\n")
    data = read_ratings_file(path)
    assert data.ratings.to_numpy().tolist() == [[1, 3, 4, 11], [1, 2, 5, 12], [2, 2, 1, 13]]
    assert data.report == {
        "rows_read": 4,
        "duplicates_resolved": 1,
        "out_of_scale_clipped": 0,
        "out_of_scale_dropped": 0,
    }


def test_duplicates_mean(tmp_path):
    path = write(tmp_path, "user,item,rating,ts\n1,2,3,10\n1,3,4,11\n1,2,4,12\n1,2,5,9\n")
    data = read_ratings_file(path, policy=DataPolicy(duplicates="mean"))
    assert data.ratings.to_numpy().tolist() == [[1, 3, 4, 11], [1, 2, 4, 9]]
    assert data.report["duplicates_resolved"] == 2


def test_duplicates_with_string_ids(tmp_path):
    path = write(tmp_path, "user,item,rating\na,x,1\nb,x,2\na,x,3\n")
    assert read_ratings_file(path).ratings["rating"].tolist() == [2, 3]
    with pytest.raises(DataError, match="user 'a' rates item 'x' twice, on line 2 and line 4"):
        read_ratings_file(path, policy=DataPolicy(duplicates="error"))


@pytest.mark.parametrize(
    ("policy", "ratings", "counts"),
    [("clip", [1, 5, 5, 3], (2, 0)), ("drop", [1, 3], (0, 2))],
)
def test_out_of_scale_clip_and_drop(tmp_path, policy, ratings, counts):
    path = write(tmp_path, "user,item,rating\n1,1,1\n1,2,6\n1,3,9\n1,4,3\n")
    data = read_ratings_file(path, policy=DataPolicy(rating_scale=(1, 5), out_of_scale=policy))
    assert data.ratings["rating"].tolist() == ratings
    assert data.rating_scale == (1.0, 5.0)
    report = data.report
    assert (report["out_of_scale_clipped"], report["out_of_scale_dropped"]) == counts


def test_out_of_scale_error_is_the_default(tmp_path):
    path = write(tmp_path, "user,item,rating\n1,1,1\n1,2,6\n1,3,9\n")
    with pytest.raises(DataError, match=r"r\.csv: the rating on line 3 is 6, outside .* 1\.\.5"):
        read_ratings_file(path, policy=DataPolicy(rating_scale=(1, 5)))


def test_dropping_every_rating_is_an_error(tmp_path):
    path = write(tmp_path, "user,item,rating\n1,1,7\n1,2,8\n")
    with pytest.raises(DataError, match="every rating is outside"):
        read_ratings_file(path, policy=DataPolicy(rating_scale=(1, 5), out_of_scale="drop"))


def test_drop_then_duplicates_name_the_file_lines(tmp_path):
    path = write(tmp_path, "user,item,rating\n1,1,9\n1,2,1\n1,2,2\n")
    with pytest.raises(DataError, match="on line 3 and line 4"):
        read_ratings_file(
            path, policy=DataPolicy(rating_scale=(1, 5), out_of_scale="drop", duplicates="error")
        )


def test_a_declared_scale_allows_equal_ratings(tmp_path):
    path = write(tmp_path, "user,item,rating\n1,1,4\n1,2,4\n")
    data = read_ratings_file(path, policy=DataPolicy(rating_scale=(1, 5)))
    assert data.rating_scale == (1.0, 5.0)


def test_movielens_clip_and_scale_override(tmp_path):
    data = read_movielens(BAD / "ml-100k-out-of-scale", policy=DataPolicy(out_of_scale="clip"))
    assert data.ratings["rating"].tolist() == [4, 5]
    assert data.report["out_of_scale_clipped"] == 1
    data = read_movielens(BAD / "ml-100k-out-of-scale", policy=DataPolicy(rating_scale=(0, 10)))
    assert data.rating_scale == (0.0, 10.0)


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"rating_scale": (5, 1)}, r"min >= max"),
        ({"rating_scale": (3, 3)}, r"min >= max"),
        ({"rating_scale": (0, float("inf"))}, r"finite"),
        ({"rating_scale": (0, 1e9)}, r"beyond"),
        ({"rating_scale": ("a", 2)}, r"two numbers"),
        ({"duplicates": "first"}, r"duplicates must be one of keep-last, mean, error"),
        ({"out_of_scale": "ignore"}, r"out_of_scale must be one of error, clip, drop"),
    ],
)
def test_bad_policy_options(kwargs, message):
    with pytest.raises(DataError, match=message):
        load_data(str(BAD / "duplicates.csv"), policy=DataPolicy(**kwargs))


def test_load_data_passes_the_policies_on(tmp_path):
    data = load_data(str(BAD / "duplicates.csv"), policy=DataPolicy(duplicates="mean"))
    assert data.ratings["rating"].tolist() == [4, 4]
    assert data.report["duplicates_resolved"] == 1


# --- archives and checksums -----------------------------------------------------------------------


def make_zip(path, members):
    with zipfile.ZipFile(path, "w", zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_truncated_zip_is_a_data_error(tmp_path):
    archive = make_zip(tmp_path / "d.zip", {"d/u.data": np.random.default_rng(0).bytes(4096)})
    archive.write_bytes(archive.read_bytes()[:2000])
    with pytest.raises(DataError, match=r"d\.zip is not a readable zip file"):
        extract_zip(archive, tmp_path / "out", folder="d")
    assert not (tmp_path / "out").exists()


def test_corrupt_zip_member_is_a_data_error(tmp_path):
    archive = make_zip(tmp_path / "d.zip", {"d/u.data": bytes(range(256)) * 400})
    raw = bytearray(archive.read_bytes())
    start = raw.index(b"d/u.data") + len("d/u.data") + 10  # inside the compressed data
    raw[start : start + 64] = b"\xff" * 64
    archive.write_bytes(bytes(raw))
    with pytest.raises(DataError, match=r"d\.zip is not a readable zip file .*u\.data"):
        extract_zip(archive, tmp_path / "out", folder="d")
    assert not (tmp_path / "out").exists()
    assert [p.name for p in tmp_path.iterdir()] == ["d.zip"]  # no temporary left


def test_wrong_checksum_is_a_checksum_error(tmp_path):
    path = tmp_path / "d.zip"
    path.write_bytes(b"not the published file")
    with pytest.raises(ChecksumError, match=r"d\.zip has MD5 .*expected 0+; the file is corrupt"):
        verify_file(path, size_bytes=None, md5="0" * 32)
    assert isinstance(ChecksumError("x"), DataError)


def test_zip_member_that_is_not_text(tmp_path):
    buffer = io.BytesIO()
    make_zip(buffer, {"ml/u.data": b"\x00\x01\x02garbage"})
    archive = tmp_path / "ml.zip"
    archive.write_bytes(buffer.getvalue())
    folder = extract_zip(archive, tmp_path / "ml", folder="ml")
    with pytest.raises(DataError, match=r"u\.data: line 1 holds a NUL byte"):
        read_movielens(folder)
