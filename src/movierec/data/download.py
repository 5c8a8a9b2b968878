"""HTTP download with a progress bar and checksum check, and safe, atomic zip extraction.

- :func:`download`: streams a URL into a temporary file next to the destination (tqdm bar on
  stderr), checks the size and MD5 where known, then renames it into place.
- :func:`extract_zip`: extracts an archive into a temporary sibling folder, refuses members that
  would land outside it (zip-slip) or are symlinks, then renames the dataset folder into place.
- :func:`check_archive`: the zip-bomb guard every archive passes before a byte is inflated
  (:class:`ArchiveLimits`: total uncompressed size, member count, compression ratio). Datasets
  without a published checksum (ml-1m, ml-32m, ml-latest...) are trusted only this far.

Neither ever leaves a half-written file or folder under its final name: temporaries are removed in
``finally`` blocks, so a failure or Ctrl-C leaves at most a hidden ``.*.tmp-*`` leftover.
"""

from __future__ import annotations

import hashlib
import logging
import os
import secrets
import shutil
import stat
import sys
import urllib.error
import urllib.request
import zipfile
import zlib
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import IO, Any

from tqdm import tqdm

from movierec.errors import ChecksumError, DataError, DownloadError

log = logging.getLogger(__name__)  # a child of "movierec"

CHUNK = 1 << 20  # bytes per read while streaming a download
USER_AGENT = "movierec (https://github.com/movierec)"


def urlopen(url: str, timeout: float) -> Any:
    """Open ``url`` for reading; the one network call of the package (tests replace it)."""
    request = urllib.request.Request(url, headers={"User-Agent": USER_AGENT})
    return urllib.request.urlopen(request, timeout=timeout)


def temp_sibling(path: Path, kind: str = "tmp") -> Path:
    """A fresh hidden name next to ``path``: ``.<name>.<kind>-<random>``."""
    return path.with_name(f".{path.name}.{kind}-{secrets.token_hex(4)}")


def file_md5(path: Path) -> str:
    """Hex MD5 of a file, read in chunks."""
    digest = hashlib.md5(usedforsecurity=False)
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def verify_file(path: Path, *, size_bytes: int | None, md5: str | None) -> None:
    """Raise :class:`ChecksumError` if ``path`` has not the expected size or MD5 (where known)."""
    if size_bytes is not None and (actual := path.stat().st_size) != size_bytes:
        raise ChecksumError(
            f"{path} has {actual:,} bytes, expected {size_bytes:,}; the download is incomplete "
            f"or not the published file. Delete it and fetch again."
        )
    if md5 is not None and (actual_md5 := file_md5(path)) != md5:
        raise ChecksumError(
            f"{path} has MD5 {actual_md5}, expected {md5}; the file is corrupt or not the "
            f"published one. Delete it and fetch again."
        )


def download(
    url: str,
    destination: Path,
    *,
    size_bytes: int | None = None,
    md5: str | None = None,
    progress: bool = True,
    timeout: float = 10.0,
) -> Path:
    """Download ``url`` to ``destination``, verified, via a temporary file and a rename.

    Args:
        url: The URL to fetch.
        destination: The final file path; its folder is created if needed.
        size_bytes: Expected size in bytes, or None to skip the check.
        md5: Expected hex MD5, or None to skip the check.
        progress: Show a tqdm progress bar on stderr.
        timeout: Seconds to wait for the connection and for each read.

    Returns:
        ``destination``.

    Raises:
        DownloadError: The server is unreachable or the transfer failed.
        ChecksumError: The file has the wrong size or MD5.
    """
    destination.parent.mkdir(parents=True, exist_ok=True)
    log.info("downloading %s to %s", url, destination)
    partial = temp_sibling(destination, "part")
    try:
        try:
            with urlopen(url, timeout) as response, partial.open("wb") as out:
                total = _content_length(response) or size_bytes
                _copy_with_progress(response, out, total, destination.name, progress)
        except (urllib.error.URLError, TimeoutError, ConnectionError, OSError) as err:
            reason = getattr(err, "reason", err)
            raise DownloadError(f"could not download {url}: {reason}") from err
        verify_file(partial, size_bytes=size_bytes, md5=md5)
        os.replace(partial, destination)
    finally:
        partial.unlink(missing_ok=True)
    return destination


def _content_length(response: Any) -> int | None:
    headers = getattr(response, "headers", None)
    value = headers.get("Content-Length") if headers is not None else None
    return int(value) if value and str(value).isdigit() else None


def _copy_with_progress(
    source: IO[bytes], out: IO[bytes], total: int | None, label: str, progress: bool
) -> None:
    with tqdm(
        total=total,
        unit="B",
        unit_scale=True,
        unit_divisor=1024,
        desc=label,
        file=sys.stderr,
        disable=not progress,
        leave=False,
    ) as bar:
        while chunk := source.read(CHUNK):
            out.write(chunk)
            bar.update(len(chunk))


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


@dataclass(frozen=True)
class ArchiveLimits:
    """What an archive may expand to, checked on its directory before anything is inflated.

    The defaults leave room to spare for every MovieLens release (the largest expand to a few
    GB in fewer than 20 members, and CSV text compresses less than 10 times) and refuse what
    only a bomb does.

    Attributes:
        max_bytes: Total uncompressed size of all members.
        max_members: Number of members (folders included).
        max_ratio: Uncompressed / compressed size of one member; deflate reaches about 1000
            on repeated bytes, text about 3 to 10.
        ratio_from: Members smaller than this many uncompressed bytes skip the ratio check
            (a tiny file compresses arbitrarily well and is harmless).
    """

    max_bytes: int = 32 << 30
    max_members: int = 1_000
    max_ratio: float = 100.0
    ratio_from: int = 1 << 20


def check_archive(
    members: list[zipfile.ZipInfo], archive: Path, limits: ArchiveLimits | None = None
) -> None:
    """Refuse a zip bomb from its directory: too many members, too many bytes in all, or a
    member that inflates beyond ``limits.max_ratio``.

    The directory's sizes can be trusted because :mod:`zipfile` never inflates a member beyond
    its declared ``file_size`` (a member that holds more fails its CRC check instead).

    Raises:
        DataError: Naming the archive, the limit and the member.
    """
    limits = limits or ArchiveLimits()
    if len(members) > limits.max_members:
        raise DataError(
            f"{archive} holds {len(members):,} members, more than the {limits.max_members:,} "
            f"a dataset needs; refusing to extract it (a zip bomb or not a dataset)"
        )
    total = sum(info.file_size for info in members)
    if total > limits.max_bytes:
        raise DataError(
            f"{archive} would expand to {total:,} bytes, more than the limit of "
            f"{limits.max_bytes:,}; refusing to extract it (a zip bomb or not a dataset)"
        )
    for info in members:
        ratio = info.file_size / max(info.compress_size, 1)
        if info.file_size >= limits.ratio_from and ratio > limits.max_ratio:
            raise DataError(
                f"{archive}: member {info.filename!r} would expand {ratio:,.0f} times "
                f"({info.compress_size:,} to {info.file_size:,} bytes), more than the "
                f"{limits.max_ratio:g} any dataset file does; refusing to extract a zip bomb"
            )


def check_member(info: zipfile.ZipInfo, archive: Path) -> None:
    """Refuse a zip member that is a symlink or whose path escapes the extraction folder."""
    name = info.filename
    mode = info.external_attr >> 16
    if stat.S_ISLNK(mode):
        raise DataError(f"{archive} holds a symbolic link {name!r}; refusing to extract it")
    path = PurePosixPath(name.replace("\\", "/"))
    if (
        path.is_absolute()
        or ".." in path.parts
        or (path.parts and ":" in path.parts[0])  # a Windows drive, C:
    ):
        raise DataError(
            f"{archive} holds a member {name!r} that would be written outside the extraction "
            f"folder; refusing to extract an unsafe archive"
        )


def _extract_member(zf: zipfile.ZipFile, info: zipfile.ZipInfo, root: Path) -> None:
    target = root.joinpath(*PurePosixPath(info.filename.replace("\\", "/")).parts)
    if not target.resolve().is_relative_to(root.resolve()):
        raise DataError(f"zip member {info.filename!r} escapes {root}; refusing to extract it")
    if info.is_dir():
        target.mkdir(parents=True, exist_ok=True)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    with zf.open(info) as source, target.open("wb") as out:
        shutil.copyfileobj(source, out, CHUNK)


def extract_zip(
    archive: Path,
    target: Path,
    *,
    folder: str | None = None,
    limits: ArchiveLimits | None = None,
) -> Path:
    """Extract ``archive`` so that its dataset folder becomes ``target``, atomically.

    The archive is extracted into a hidden temporary sibling of ``target``; then the folder
    named ``folder`` inside it (or the extraction root when the archive has no such folder) is
    renamed to ``target``. A failure at any point leaves nothing under ``target``.

    Args:
        archive: The zip file.
        target: The final dataset folder; must not exist yet.
        folder: The top-level folder inside the zip that holds the data (``ml-10M100K``).
        limits: The zip-bomb guard (:class:`ArchiveLimits`; None: its defaults).

    Returns:
        ``target``.

    Raises:
        DataError: The archive is not a zip, is truncated or corrupt (naming the member), is
            unsafe (zip-slip, symlinks, a zip bomb), is empty, or the disk filled up.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = temp_sibling(target)
    member = ""
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
                check_archive(members, archive, limits)
                for info in members:
                    check_member(info, archive)
                if not any(not info.is_dir() for info in members):
                    raise DataError(f"{archive} holds no files; download it again")
                scratch.mkdir()
                for info in members:
                    member = info.filename
                    _extract_member(zf, info, scratch)
        except (zipfile.BadZipFile, zipfile.LargeZipFile, zlib.error, EOFError) as err:
            where = f" at member {member!r}" if member else ""
            raise DataError(
                f"{archive} is not a readable zip file{where} ({_first_line(err)}); it is "
                f"truncated or corrupt: delete it and fetch it again"
            ) from err
        except (NotImplementedError, RuntimeError) as err:  # unknown compression, encryption
            raise DataError(f"{archive}: cannot extract {member!r}: {_first_line(err)}") from err
        except OSError as err:  # a full disk, a read-only cache folder
            raise DataError(
                f"could not extract {member!r} of {archive} into {target.parent}: "
                f"{err.strerror or _first_line(err)}; nothing was left half written: free some "
                f"space (or set MOVIEREC_HOME to another folder) and fetch again"
            ) from err
        inner = scratch / folder if folder and (scratch / folder).is_dir() else scratch
        try:
            os.replace(inner, target)
        except OSError as err:
            if not target.is_dir():  # an existing target means a concurrent fetch won the race
                raise DataError(f"could not move the extracted data to {target}: {err}") from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
