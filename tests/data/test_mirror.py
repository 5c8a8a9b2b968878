"""The offline ml-100k mirror, rebuilt for real from the recbole wheel on PyPI (once per session).

This is the real-data test of the readers: 100,000 ratings in GroupLens' line order.
"""

import hashlib
import subprocess
from pathlib import Path

import numpy as np
import pytest

from movierec.data import fetch, load_data, mirror, read_movielens
from movierec.data.mirror import ML100K_GENRES, U_DATA_SHA256, build_ml100k_from_recbole
from movierec.errors import DownloadError


@pytest.fixture(scope="session")
def mirror_home(tmp_path_factory) -> Path:
    home = tmp_path_factory.mktemp("movierec-home")
    build_ml100k_from_recbole(home / "ml-100k")
    return home


@pytest.fixture
def ml100k(mirror_home, monkeypatch) -> Path:
    monkeypatch.setenv("MOVIEREC_HOME", str(mirror_home))
    return mirror_home / "ml-100k"


def test_u_data_is_grouplens_file(ml100k):
    payload = (ml100k / "u.data").read_bytes()
    assert hashlib.sha256(payload).hexdigest() == U_DATA_SHA256
    assert payload.startswith(b"196\t242\t3\t881250949\n186\t302\t3\t891717742\n")
    assert "recbole==1.2.1" in (ml100k / "SOURCE.txt").read_text()
    assert (ml100k / "u.genre").read_text().splitlines()[4] == "Children's|4"


def test_u_item_is_latin1_with_grouplens_titles(ml100k):
    lines = (ml100k / "u.item").read_bytes().decode("latin-1").splitlines()
    assert len(lines) == 1682
    assert lines[0].startswith("1|Toy Story (1995)|01-Jan-1995|||0|0|0|1|1|1|0|")
    assert all(line.count("|") == 4 + len(ML100K_GENRES) for line in lines)
    assert lines[266].startswith("267|unknown||||1|")
    assert "Misérables, Les (1995)".encode("latin-1") in (ml100k / "u.item").read_bytes()


def test_mirror_reads_as_ml100k(ml100k):
    data = read_movielens(ml100k)
    assert (data.name, data.layout, data.rating_scale) == ("ml-100k", "ml-100k", (1.0, 5.0))
    ratings = data.ratings
    assert len(ratings) == 100_000
    assert ratings["user_id"].nunique() == 943 and ratings["item_id"].nunique() == 1682
    assert ratings["user_id"].dtype == np.int64 and ratings["rating"].dtype == np.float32
    assert ratings.iloc[0].tolist() == [196, 242, 3.0, 881250949]
    assert ratings.iloc[-1].tolist() == [12, 203, 3.0, 879959583]
    items = data.items.set_index("item_id")
    assert len(items) == 1682
    assert items.loc[1, "title"] == "Toy Story (1995)"
    assert items.loc[1, "genres"] == "Animation|Children's|Comedy"
    assert items.loc[543, "title"] == "Misérables, Les (1995)"
    assert items.loc[1, "year"] == 1995
    assert len(data.users) == 943
    assert data.users.iloc[0].tolist() == [1, 24, "M", "technician", "85711"]


def test_fetch_and_load_data_find_the_mirror_in_the_cache(ml100k):
    assert fetch("ml-100k", progress=False).source == "cache"
    data = load_data("ml-100k", progress=False)
    assert (data.name, len(data.ratings)) == ("ml-100k", 100_000)


def test_pip_failure_is_a_download_error(tmp_path, monkeypatch):
    def failing_pip(command, **kwargs):
        return subprocess.CompletedProcess(command, 1, "", "ERROR: No matching distribution")

    monkeypatch.setattr(mirror.subprocess, "run", failing_pip)
    with pytest.raises(DownloadError, match=r"pip could not download recbole==1.2.1.*No matching"):
        build_ml100k_from_recbole(tmp_path / "ml-100k")
    assert not (tmp_path / "ml-100k").exists()


def test_pip_timeout_is_a_download_error(tmp_path, monkeypatch):
    def slow_pip(command, **kwargs):
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(mirror.subprocess, "run", slow_pip)
    with pytest.raises(DownloadError, match="took longer than 5 s"):
        build_ml100k_from_recbole(tmp_path / "ml-100k", timeout=5)
