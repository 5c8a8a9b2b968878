"""The Netflix Prize layout: a tiny fixture read exactly, malformed files named by line."""

from __future__ import annotations

import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.data import DataPolicy, load_data, read_movielens
from movierec.data.netflix import find_netflix_folder, read_netflix
from movierec.errors import DataError

FIXTURE = Path(__file__).parent / "fixtures" / "netflix"


def _day(text: str) -> int:
    return int(pd.Timestamp(text, tz="UTC").timestamp())


def test_fixture_reads_exactly() -> None:
    data = load_data(str(FIXTURE))
    expected = pd.DataFrame(
        {
            "user_id": np.array([1488844, 822109, 885013, 2059652, 1488844, 822109], np.int64),
            "item_id": np.array([1, 1, 1, 2, 2, 3], np.int64),
            "rating": np.array([3, 5, 4, 4, 2, 1], np.float32),
            "timestamp": np.array(
                [
                    _day(d)
                    for d in (
                        "2005-09-06",
                        "2005-05-13",
                        "2005-10-19",
                        "2005-09-05",
                        "2004-01-01",
                        "1999-11-11",
                    )
                ],
                np.int64,
            ),
        }
    )
    pd.testing.assert_frame_equal(data.ratings, expected)
    assert data.layout == "netflix"
    assert data.rating_scale == (1.0, 5.0)
    assert data.users is None
    assert data.report["rows_read"] == 6
    items = data.items
    assert items is not None
    assert items["item_id"].tolist() == [1, 2, 3]
    assert items["title"].tolist() == [
        "Dinosaur Planet",
        "Isle of Man TT 2004 Review",
        "Character, Café and Crime",
    ]
    assert items["year"].tolist()[0] == 2003 and pd.isna(items["year"].iloc[1])
    assert str(items["year"].dtype) == "Int64"
    assert items["genres"].tolist() == ["", "", ""]


def test_detected_in_a_parent_folder_and_by_read_movielens(tmp_path: Path) -> None:
    shutil.copytree(FIXTURE, tmp_path / "download")
    assert find_netflix_folder(tmp_path) == tmp_path / "download"
    assert len(read_movielens(tmp_path).ratings) == 6


def _folder(tmp_path: Path, text: str, name: str = "combined_data_1.txt") -> Path:
    (tmp_path / name).write_bytes(text.encode())
    return tmp_path


def test_several_files_in_number_order_and_crlf(tmp_path: Path) -> None:
    _folder(tmp_path, "2:\r\n7,4,2005-01-02\r\n", "combined_data_2.txt")
    _folder(tmp_path, "1:\n\n5,3,2005-01-01\n", "combined_data_1.txt")
    data = read_netflix(tmp_path)
    assert data.ratings["item_id"].tolist() == [1, 2]
    assert data.ratings["user_id"].tolist() == [5, 7]
    assert data.items is None


@pytest.mark.parametrize(
    ("text", "match"),
    [
        ("5,3,2005-01-01\n1:\n6,4,2005-01-02\n", "line 1 is a rating before the first"),
        ("1:\n5,3,2005-01-01\n6,4,2005-13-45\n", "date on line 3 is '2005-13-45'"),
        ("1:\n5,3,2005-01-01\n6,x,2005-01-02\n", "rating on line 3"),
        ("1:\n5,3,2005-01-01\n6,4,2005-01-02,9\n", "line 3 has (4 fields, )?more than 3"),
        ("1:\n5:3,2005-01-01\n", "line 2 has a ':' inside it"),
        ("1:\nab,3,2005-01-01\n", "line 2 has 'ab' as the customer ID"),
        ("1:\n5,9,2005-01-01\n", "line 2 of combined_data_1.txt is 9, outside"),
    ],
)
def test_malformed_lines_are_named(tmp_path: Path, text: str, match: str) -> None:
    with pytest.raises(DataError, match=match):
        load_data(str(_folder(tmp_path, text)))


def test_policies_apply(tmp_path: Path) -> None:
    folder = _folder(tmp_path, "1:\n5,3,2005-01-01\n5,4,2005-02-01\n6,9,2005-01-01\n")
    data = read_netflix(folder, policy=DataPolicy(out_of_scale="drop"))
    assert data.ratings["rating"].tolist() == [4.0]
    assert data.report["duplicates_resolved"] == 1
    assert data.report["out_of_scale_dropped"] == 1
    with pytest.raises(DataError, match=r"twice, on line 2 of combined_data_1\.txt and line 3"):
        read_netflix(folder, policy=DataPolicy(out_of_scale="drop", duplicates="error"))
