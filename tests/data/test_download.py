"""Download and extraction: checksums, progress on stderr, zip-slip, atomicity."""

import errno
import hashlib
import io
import stat
import urllib.error
import zipfile
from pathlib import Path

import pytest

from movierec.data import download as dl
from movierec.errors import ChecksumError, DataError, DownloadError


class FakeResponse(io.BytesIO):
    """What urlopen returns, without a Content-Length header."""

    def __init__(self, payload: bytes):
        super().__init__(payload)
        self.headers: dict[str, str] = {}


def serve(monkeypatch, payload: bytes) -> None:
    monkeypatch.setattr(dl, "urlopen", lambda url, timeout: FakeResponse(payload))


def make_zip(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w") as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_download_verifies_and_renames(tmp_path, monkeypatch, capsys):
    payload = b"x" * 3000
    serve(monkeypatch, payload)
    target = tmp_path / "d" / "a.zip"
    dl.download(
        "https://example.invalid/a.zip",
        target,
        size_bytes=3000,
        md5=hashlib.md5(payload).hexdigest(),
        progress=True,
    )
    assert target.read_bytes() == payload
    assert [p.name for p in target.parent.iterdir()] == ["a.zip"]
    captured = capsys.readouterr()
    assert captured.out == ""  # the progress bar goes to stderr only


@pytest.mark.parametrize(
    ("size", "md5", "match"), [(10, None, "bytes, expected 10"), (None, "0" * 32, "MD5")]
)
def test_download_with_wrong_checksum_leaves_nothing(tmp_path, monkeypatch, size, md5, match):
    serve(monkeypatch, b"payload")
    with pytest.raises(ChecksumError, match=match):
        dl.download(
            "https://x.invalid/a.zip", tmp_path / "a.zip", size_bytes=size, md5=md5, progress=False
        )
    assert list(tmp_path.iterdir()) == []


def test_unreachable_server_is_a_download_error(tmp_path, monkeypatch):
    def refuse(url, timeout):
        raise urllib.error.URLError("timed out")

    monkeypatch.setattr(dl, "urlopen", refuse)
    with pytest.raises(
        DownloadError, match=r"could not download https://x.invalid/a.zip: timed out"
    ):
        dl.download("https://x.invalid/a.zip", tmp_path / "a.zip", progress=False)
    assert list(tmp_path.iterdir()) == []


def test_extract_zip_moves_the_inner_folder_into_place(tmp_path):
    archive = make_zip(tmp_path / "a.zip", {"ml-10M100K/ratings.dat": b"1::2::3::4\n"})
    target = dl.extract_zip(archive, tmp_path / "cache" / "ml-10m", folder="ml-10M100K")
    assert (target / "ratings.dat").read_bytes() == b"1::2::3::4\n"
    assert [p.name for p in target.parent.iterdir()] == ["ml-10m"]


@pytest.mark.parametrize("member", ["../evil", "ok/../../evil", "/etc/evil", "C:/evil", "..\\evil"])
def test_zip_slip_is_refused_and_nothing_is_left(tmp_path, member):
    archive = make_zip(tmp_path / "a.zip", {"ml-100k/u.data": b"1\t2\t3\t4\n", member: b"boom"})
    cache = tmp_path / "cache"
    with pytest.raises(DataError, match="outside the extraction folder"):
        dl.extract_zip(archive, cache / "ml-100k", folder="ml-100k")
    assert not (tmp_path / "evil").exists()
    assert list(cache.iterdir()) == []


def test_symlink_member_is_refused(tmp_path):
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as zf:
        zf.writestr("ml-100k/u.data", b"1\t2\t3\t4\n")
        link = zipfile.ZipInfo("ml-100k/u.item")
        link.create_system = 3
        link.external_attr = (stat.S_IFLNK | 0o777) << 16
        zf.writestr(link, "/etc/passwd")
    with pytest.raises(DataError, match="symbolic link"):
        dl.extract_zip(archive, tmp_path / "cache" / "ml-100k", folder="ml-100k")
    assert list((tmp_path / "cache").iterdir()) == []


def test_failure_during_extraction_leaves_no_final_folder(tmp_path, monkeypatch):
    archive = make_zip(
        tmp_path / "a.zip", {"ml-100k/u.data": b"1\t2\t3\t4\n", "ml-100k/u.item": b"x"}
    )
    real = dl._extract_member
    calls = []

    def interrupted(zf, info, root):
        calls.append(info.filename)
        if len(calls) == 2:
            raise KeyboardInterrupt  # Ctrl-C halfway
        real(zf, info, root)

    monkeypatch.setattr(dl, "_extract_member", interrupted)
    cache = tmp_path / "cache"
    with pytest.raises(KeyboardInterrupt):
        dl.extract_zip(archive, cache / "ml-100k", folder="ml-100k")
    assert list(cache.iterdir()) == []


def test_not_a_zip(tmp_path):
    archive = tmp_path / "a.zip"
    archive.write_bytes(b"<html>captive portal</html>")
    with pytest.raises(DataError, match="not a readable zip"):
        dl.extract_zip(archive, tmp_path / "cache" / "x")
    assert list((tmp_path / "cache").iterdir()) == []


def deflated(path: Path, members: dict[str, bytes]) -> Path:
    with zipfile.ZipFile(path, "w", compression=zipfile.ZIP_DEFLATED) as zf:
        for name, data in members.items():
            zf.writestr(name, data)
    return path


def test_a_zip_bomb_is_refused_before_a_byte_is_inflated(tmp_path, monkeypatch):
    # 4 MiB of zeros deflate to about 4 KiB: a ratio of ~1000, as a 1 MB zip of 1 GiB has.
    archive = deflated(tmp_path / "bomb.zip", {"ml-100k/u.data": bytes(4 << 20)})
    assert archive.stat().st_size < 64 << 10

    def never(*args):
        raise AssertionError("a member was inflated before the guard")

    monkeypatch.setattr(dl, "_extract_member", never)
    with pytest.raises(DataError, match=r"'ml-100k/u\.data' would expand \d[\d,]* times"):
        dl.extract_zip(archive, tmp_path / "cache" / "ml-100k", folder="ml-100k")
    assert list((tmp_path / "cache").iterdir()) == []


@pytest.mark.parametrize(
    ("limits", "message"),
    [
        (dl.ArchiveLimits(max_bytes=1000), "would expand to 1,200 bytes, more than the limit"),
        (dl.ArchiveLimits(max_members=5), "holds 6 members, more than the 5"),
        (dl.ArchiveLimits(max_ratio=10, ratio_from=100), r"'ml-100k/f0\.txt' would expand"),
    ],
    ids=["total size", "member count", "ratio"],
)
def test_each_archive_limit_is_a_parameter(tmp_path, limits, message):
    # Six members of 200 bytes that deflate about 40 times: within the default ratio of 100.
    members = {f"ml-100k/f{i}.txt": b"0" * 200 for i in range(6)}
    archive = deflated(tmp_path / "a.zip", members)
    with pytest.raises(DataError, match=message):
        dl.extract_zip(archive, tmp_path / "cache" / "ml-100k", folder="ml-100k", limits=limits)
    assert list((tmp_path / "cache").iterdir()) == []
    # The same archive within the defaults extracts.
    dl.extract_zip(archive, tmp_path / "cache" / "ml-100k", folder="ml-100k")


def test_twenty_thousand_members_are_refused_by_the_default_limits(tmp_path):
    members = {f"ml-100k/{i}": b"" for i in range(20_000)}
    archive = make_zip(tmp_path / "many.zip", members)
    with pytest.raises(DataError, match="holds 20,000 members, more than the 1,000"):
        dl.extract_zip(archive, tmp_path / "cache" / "ml-100k", folder="ml-100k")


def test_a_full_disk_during_extraction_is_one_data_error(tmp_path, monkeypatch):
    archive = make_zip(tmp_path / "a.zip", {"ml-100k/u.data": b"1\t2\t3\t4\n"})

    def full(zf, info, root):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(dl, "_extract_member", full)
    with pytest.raises(DataError, match="No space left on device; nothing was left half"):
        dl.extract_zip(archive, tmp_path / "cache" / "ml-100k", folder="ml-100k")
    assert list((tmp_path / "cache").iterdir()) == []
