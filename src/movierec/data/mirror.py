"""The offline ml-100k mirror: GroupLens' files rebuilt from the ``recbole`` wheel on PyPI.

The wheel of ``recbole==1.2.1`` carries ml-100k as RecBole "atomic files"
(``recbole/dataset_example/ml-100k/ml-100k.{inter,item,user}``). When files.grouplens.org is
unreachable but a package index is, :func:`build_ml100k_from_recbole` downloads that wheel with
pip (pip's own configured index), reads it as a zip without installing it, and writes the
original ml-100k layout:

- ``u.data``: the ratings in their original line order, byte for byte GroupLens' file (checked
  against its SHA-256, so the canonical u1..u5 folds are the real ones);
- ``u.item``: ``id|title (year)|01-Jan-<year>|||19 genre flags`` in latin-1. The mirror knows only
  the release *year*, so every release date is the 1st of January of that year, and the video
  release date and IMDb URL are empty;
- ``u.user``, ``u.genre``, and ``SOURCE.txt`` saying where the files came from.
"""

from __future__ import annotations

import functools
import hashlib
import io
import subprocess
import sys
import tempfile
import zipfile
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.download import ArchiveLimits, check_archive
from movierec.errors import ChecksumError, DataError, DownloadError

RECBOLE_REQUIREMENT = "recbole==1.2.1"
MIRROR_SOURCE = f"mirror:{RECBOLE_REQUIREMENT}"
MEMBER_PREFIX = "recbole/dataset_example/ml-100k/ml-100k"
U_DATA_SHA256 = "06416e597f82b7342361e41163890c81036900f418ad91315590814211dca490"
ML100K_GENRES = (
    "unknown",
    "Action",
    "Adventure",
    "Animation",
    "Children's",
    "Comedy",
    "Crime",
    "Documentary",
    "Drama",
    "Fantasy",
    "Film-Noir",
    "Horror",
    "Musical",
    "Mystery",
    "Romance",
    "Sci-Fi",
    "Thriller",
    "War",
    "Western",
)
ML100K_COUNTS = {"ratings": 100_000, "users": 943, "items": 1_682}
RECBOLE_UNKNOWN = "unkonwn"  # sic: RecBole's spelling for item 267, "unknown" in GroupLens
# The three members read (ml-100k.inter is 2.3 MB): the zip-bomb guard, read before inflating.
MEMBER_LIMITS = ArchiveLimits(max_bytes=64 << 20)


def build_ml100k_from_recbole(target: Path, *, timeout: float = 120.0) -> Path:
    """Rebuild GroupLens' ml-100k files in ``target`` from the recbole wheel on PyPI.

    Args:
        target: Folder to write ``u.data``, ``u.item``, ``u.user``, ``u.genre`` and
            ``SOURCE.txt`` into; created if needed.
        timeout: Seconds to allow ``pip download``.

    Returns:
        ``target``.

    Raises:
        DownloadError: pip could not download the wheel.
        ChecksumError: The rebuilt ``u.data`` is not GroupLens' file, or the counts are off.
    """
    with tempfile.TemporaryDirectory(prefix="movierec-recbole-") as scratch:
        wheel = _download_wheel(Path(scratch), timeout)
        try:
            with zipfile.ZipFile(wheel) as zf:
                inter, item, user = (_read_atomic(zf, ext) for ext in ("inter", "item", "user"))
        except zipfile.BadZipFile as err:
            raise DownloadError(f"the downloaded {wheel.name} is not a valid wheel: {err}") from err
    files = {
        "u.data": _u_data(inter),
        "u.item": _u_item(item),
        "u.user": _u_user(user),
        "u.genre": "".join(f"{name}|{i}\n" for i, name in enumerate(ML100K_GENRES)).encode(),
        "SOURCE.txt": (
            f"MovieLens 100K, rebuilt by movierec from the RecBole atomic files in the "
            f"{RECBOLE_REQUIREMENT} wheel on PyPI (recbole/dataset_example/ml-100k).\n"
            f"u.data matches GroupLens' file (SHA-256 {U_DATA_SHA256}).\n"
            f"u.item: the mirror has only release years, so release dates are 01-Jan-<year>;\n"
            f"video release dates and IMDb URLs are empty.\n"
        ).encode(),
    }
    target.mkdir(parents=True, exist_ok=True)
    for name, payload in files.items():
        (target / name).write_bytes(payload)
    return target


def _download_wheel(folder: Path, timeout: float) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        RECBOLE_REQUIREMENT,
        "-d",
        str(folder),
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, timeout=timeout, check=False)
    except subprocess.TimeoutExpired as err:
        raise DownloadError(
            f"pip download {RECBOLE_REQUIREMENT} took longer than {timeout:g} s; is the package "
            f"index reachable?"
        ) from err
    except OSError as err:
        raise DownloadError(f"could not run pip to download {RECBOLE_REQUIREMENT}: {err}") from err
    wheels = sorted(folder.glob("recbole-*.whl"))
    if done.returncode != 0 or not wheels:
        tail = "\n".join((done.stderr or done.stdout or "").strip().splitlines()[-5:])
        raise DownloadError(
            f"pip could not download {RECBOLE_REQUIREMENT} (exit code {done.returncode}): {tail}"
        )
    return wheels[0]


def _read_atomic(zf: zipfile.ZipFile, ext: str) -> pd.DataFrame:
    """One RecBole atomic file as strings, with the ``:type`` suffixes cut from the header."""
    member = f"{MEMBER_PREFIX}.{ext}"
    try:
        info = zf.getinfo(member)
    except KeyError:
        raise ChecksumError(f"the {RECBOLE_REQUIREMENT} wheel has no {member}") from None
    check_archive([info], Path(zf.filename or "the wheel"), MEMBER_LIMITS)
    raw = zf.read(info)
    frame = pd.read_csv(
        io.BytesIO(raw),
        sep="\t",
        dtype=str,
        keep_default_na=False,
        quoting=3,  # csv.QUOTE_NONE: titles hold literal quotes
        encoding="utf-8",
        engine="c",
    )
    frame.columns = [str(column).split(":")[0] for column in frame.columns]
    return frame


def _check_count(what: str, actual: int) -> None:
    if actual != ML100K_COUNTS[what]:
        raise ChecksumError(
            f"the {RECBOLE_REQUIREMENT} mirror has {actual:,} {what}, ml-100k has "
            f"{ML100K_COUNTS[what]:,}"
        )


def _u_data(inter: pd.DataFrame) -> bytes:
    columns = ["user_id", "item_id", "rating", "timestamp"]
    try:
        numbers = inter[columns].apply(pd.to_numeric).astype(np.int64)
    except (KeyError, ValueError) as err:
        raise ChecksumError(f"unexpected ml-100k.inter in {RECBOLE_REQUIREMENT}: {err}") from err
    _check_count("ratings", len(numbers))
    text = numbers.to_csv(sep="\t", header=False, index=False, lineterminator="\n")
    payload = text.encode("ascii")
    digest = hashlib.sha256(payload).hexdigest()
    if digest != U_DATA_SHA256:
        raise ChecksumError(
            f"u.data rebuilt from {RECBOLE_REQUIREMENT} has SHA-256 {digest}, expected "
            f"{U_DATA_SHA256}; the mirror is not GroupLens' ml-100k"
        )
    return payload


def _u_item(item: pd.DataFrame) -> bytes:
    _check_count("items", len(item))
    title = item["movie_title"].astype(str)
    year = item["release_year"].astype(str).str.strip()
    known_year = (year != "") & (year != RECBOLE_UNKNOWN)
    # GroupLens titles end in "(YYYY)"; RecBole split that off (and, for item 1412,
    # "(1995) (V)", the "(V)"). Putting it back restores the GroupLens title.
    full_title = title.where(~known_year, title + " (" + year + ")")
    full_title = full_title.mask(title == RECBOLE_UNKNOWN, "unknown")
    digits = full_title.str.extract(r".*\((\d{4})\)", expand=False)
    release = ("01-Jan-" + digits).fillna("")
    classes = " " + item["class"].astype(str) + " "
    flags = pd.DataFrame(
        {name: classes.str.contains(f" {name} ", regex=False).astype(int) for name in ML100K_GENRES}
    )
    line = _join(
        [item["item_id"].astype(str), full_title, release, "", ""]
        + [flags[name].astype(str) for name in ML100K_GENRES]
    )
    try:
        return ("\n".join(line) + "\n").encode("latin-1")
    except UnicodeEncodeError as err:
        raise DataError(f"a title in {RECBOLE_REQUIREMENT} is not latin-1: {err}") from err


def _join(columns: list[pd.Series | str]) -> pd.Series:
    """Columns joined with ``|``, column by column (vectorised, no loop over rows)."""
    return functools.reduce(lambda left, right: left + "|" + right, columns)  # type: ignore[return-value]


def _u_user(user: pd.DataFrame) -> bytes:
    _check_count("users", len(user))
    columns = ["user_id", "age", "gender", "occupation", "zip_code"]
    line = _join([user[column].astype(str) for column in columns])
    return ("\n".join(line) + "\n").encode("latin-1")
