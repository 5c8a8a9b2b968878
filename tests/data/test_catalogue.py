"""Catalogue, cache and fetch: no test here touches the network."""

import hashlib
import io
import shutil
import urllib.error
import zipfile
from pathlib import Path

import pytest

from movierec.data import CATALOGUE, cache_dir, cached_path, catalogue, fetch, read_movielens
from movierec.data import download as download_module
from movierec.data.mirror import MIRROR_SOURCE
from movierec.errors import ChecksumError, DataError, DownloadError

FIXTURES = Path(__file__).parent / "fixtures"
NAMES = ["ml-100k", "ml-1m", "ml-10m", "ml-20m", "ml-25m", "ml-32m", "ml-latest-small", "ml-latest"]


@pytest.fixture
def home(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path / "cache"))
    return tmp_path / "cache"


@pytest.fixture
def offline(monkeypatch):
    def refuse(url, timeout):
        raise urllib.error.URLError("Name or service not known")

    monkeypatch.setattr(download_module, "urlopen", refuse)


def zip_of(folder: Path, prefix: str) -> bytes:
    buffer = io.BytesIO()
    with zipfile.ZipFile(buffer, "w") as zf:
        for path in sorted(folder.rglob("*")):
            zf.write(path, f"{prefix}/{path.relative_to(folder).as_posix()}")
    return buffer.getvalue()


class FakeResponse(io.BytesIO):
    def __init__(self, payload: bytes):
        super().__init__(payload)
        self.headers = {"Content-Length": str(len(payload))}


def serve(monkeypatch, payload: bytes, seen: list | None = None):
    def opener(url, timeout):
        if seen is not None:
            seen.append(url)
        return FakeResponse(payload)

    monkeypatch.setattr(download_module, "urlopen", opener)


def test_catalogue_names_and_urls():
    assert list(CATALOGUE) == NAMES
    for name, spec in CATALOGUE.items():
        assert spec.name == name
        assert spec.url == f"https://files.grouplens.org/datasets/movielens/{name}.zip"
        assert spec.description
    assert CATALOGUE["ml-100k"].md5 == "0e33842e24a9c977be4e0107933c0723"
    assert CATALOGUE["ml-100k"].size_bytes == 4924029
    assert CATALOGUE["ml-10m"].folder == "ml-10M100K"
    assert CATALOGUE["ml-latest"].md5 is None and CATALOGUE["ml-latest-small"].md5 is None


def test_cache_dir_honours_movierec_home(home):
    assert not home.exists()
    assert cache_dir() == home
    assert home.is_dir()


def test_cache_dir_default(monkeypatch, tmp_path):
    monkeypatch.delenv("MOVIEREC_HOME", raising=False)
    monkeypatch.setenv("HOME", str(tmp_path))
    assert cache_dir() == tmp_path / ".cache" / "movierec"


def test_fetch_unknown_name(home):
    with pytest.raises(DataError, match=r"unknown dataset 'ml-7m'; known datasets: ml-100k, ml-1m"):
        fetch("ml-7m")


def test_cached_dataset_needs_no_network(home, offline):
    shutil.copytree(FIXTURES / "ml-1m", home / "ml-1m")
    (home / ".ml-1m.tmp-dead").mkdir()  # a stale leftover of a killed fetch is ignored
    assert cached_path("ml-1m") == home / "ml-1m"
    assert cached_path("ml-100k") is None
    result = fetch("ml-1m", progress=False)
    assert (result.path, result.source) == (home / "ml-1m", "cache")


def test_unreachable_grouplens_falls_back_to_the_mirror_for_ml100k(home, offline, monkeypatch):
    built = []

    def fake_mirror(target: Path, *, timeout: float = 120.0) -> Path:
        built.append(target)
        shutil.copytree(FIXTURES / "ml-100k", target, dirs_exist_ok=True)
        return target

    monkeypatch.setattr(catalogue._mirror, "build_ml100k_from_recbole", fake_mirror)
    result = fetch("ml-100k", progress=False)
    assert (result.path, result.source) == (home / "ml-100k", MIRROR_SOURCE)
    assert result.source == "mirror:recbole==1.2.1"
    assert built[0].parent == home and built[0].name.startswith(".ml-100k.tmp-")
    assert not built[0].exists()  # renamed into place
    assert read_movielens(result.path).layout == "ml-100k"
    assert sorted(p.name for p in home.iterdir()) == ["ml-100k"]
    assert fetch("ml-100k").source == "cache"


def test_mirror_failure_leaves_nothing_behind(home, offline, monkeypatch):
    def broken_mirror(target: Path, *, timeout: float = 120.0) -> Path:
        target.mkdir(parents=True)
        (target / "u.data").write_text("half")
        raise DownloadError("pip could not download recbole==1.2.1")

    monkeypatch.setattr(catalogue._mirror, "build_ml100k_from_recbole", broken_mirror)
    with pytest.raises(DownloadError, match=r"GroupLens is unreachable.*mirror failed too"):
        fetch("ml-100k", progress=False)
    assert list(home.iterdir()) == []


def test_unreachable_grouplens_is_a_download_error_for_other_datasets(home, offline):
    with pytest.raises(DownloadError) as caught:
        fetch("ml-1m", progress=False)
    message = str(caught.value)
    assert "GroupLens is unreachable" in message
    assert "https://files.grouplens.org/datasets/movielens/ml-1m.zip" in message
    assert "--data DIR" in message
    assert str(home / "ml-1m") in message
    assert list(home.iterdir()) == []


def test_fetch_from_grouplens_verifies_and_extracts(home, monkeypatch):
    payload = zip_of(FIXTURES / "ml-10m" / "ml-10M100K", "ml-10M100K")
    seen: list[str] = []
    serve(monkeypatch, payload, seen)
    spec = CATALOGUE["ml-10m"]
    monkeypatch.setitem(
        CATALOGUE,
        "ml-10m",
        catalogue.DatasetSpec(
            spec.name,
            spec.url,
            len(payload),
            hashlib.md5(payload).hexdigest(),
            spec.folder,
            spec.description,
        ),
    )
    result = fetch("ml-10m", progress=False)
    assert seen == [spec.url]
    assert (result.path, result.source) == (home / "ml-10m", "grouplens")
    assert (result.path / "ratings.dat").is_file()
    assert sorted(p.name for p in home.iterdir()) == ["ml-10m"]  # no zip or temporaries left
    assert read_movielens(result.path).name == "ml-10m"


def test_fetch_refuses_a_download_with_the_wrong_md5(home, monkeypatch):
    serve(monkeypatch, zip_of(FIXTURES / "ml-100k", "ml-100k"))
    spec = CATALOGUE["ml-100k"]
    monkeypatch.setitem(
        CATALOGUE,
        "ml-100k",
        catalogue.DatasetSpec(spec.name, spec.url, None, "0" * 32, "ml-100k", ""),
    )
    with pytest.raises(ChecksumError, match="MD5"):
        fetch("ml-100k", progress=False)
    assert list(home.iterdir()) == []


def test_fetch_uses_a_zip_put_in_the_cache_by_hand(home, offline):
    home.mkdir()
    (home / "ml-latest-small.zip").write_bytes(
        zip_of(FIXTURES / "ml-latest-small", "ml-latest-small")
    )
    result = fetch("ml-latest-small", progress=False)
    assert (result.path, result.source) == (home / "ml-latest-small", "cache")
    assert read_movielens(result.path).layout == "ml-csv"


def test_fetch_refuses_to_overwrite_a_foreign_folder(home, offline):
    (home / "ml-1m").mkdir(parents=True)
    (home / "ml-1m" / "notes.txt").write_text("mine")
    with pytest.raises(DataError, match="holds no MovieLens ratings file"):
        fetch("ml-1m", progress=False)
    assert (home / "ml-1m" / "notes.txt").read_text() == "mine"
