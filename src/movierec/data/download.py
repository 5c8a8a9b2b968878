"""HTTP download with a progress bar and checksum check, and safe, atomic zip extraction.

- :func:`download`: streams a URL into a temporary file next to the destination (tqdm bar on
  stderr), checks the size and MD5 where known, then renames it into place.
- :func:`extract_zip`: extracts an archive into a temporary sibling folder, refuses members that
  would land outside it (zip-slip) or are symlinks, then renames the dataset folder into place.

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


def extract_zip(archive: Path, target: Path, *, folder: str | None = None) -> Path:
    """Extract ``archive`` so that its dataset folder becomes ``target``, atomically.

    The archive is extracted into a hidden temporary sibling of ``target``; then the folder
    named ``folder`` inside it (or the extraction root when the archive has no such folder) is
    renamed to ``target``. A failure at any point leaves nothing under ``target``.

    Args:
        archive: The zip file.
        target: The final dataset folder; must not exist yet.
        folder: The top-level folder inside the zip that holds the data (``ml-10M100K``).

    Returns:
        ``target``.

    Raises:
        DataError: The archive is not a zip, is truncated or corrupt (naming the member), is
            unsafe (zip-slip, symlinks) or is empty.
    """
    target.parent.mkdir(parents=True, exist_ok=True)
    scratch = temp_sibling(target)
    member = ""
    try:
        try:
            with zipfile.ZipFile(archive) as zf:
                members = zf.infolist()
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
        inner = scratch / folder if folder and (scratch / folder).is_dir() else scratch
        try:
            os.replace(inner, target)
        except OSError as err:
            if not target.is_dir():  # an existing target means a concurrent fetch won the race
                raise DataError(f"could not move the extracted data to {target}: {err}") from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
