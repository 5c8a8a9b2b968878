"""load_data: a catalogue name, a folder or a file, each to its reader."""

import shutil

import pytest

from movierec.data import load_data
from movierec.errors import DataError
from tests.data.canonical import FIXTURES


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


def test_load_data_of_nothing():
    with pytest.raises(DataError, match=r"neither a dataset name .*ml-100k.* nor a file"):
        load_data("no-such-thing")
