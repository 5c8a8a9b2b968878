"""The MovieLens catalogue, the local cache, and :func:`fetch`.

- :data:`CATALOGUE`: every GroupLens MovieLens release movierec knows, with its URL, and its
  size and MD5 where GroupLens publishes them (``latest`` and ``latest-small`` change over time).
- :func:`cache_dir`: ``$MOVIEREC_HOME``, by default ``~/.cache/movierec``.
- :func:`cached_path`: the extracted dataset folder ``<cache>/<name>`` if it is there.
- :func:`fetch`: the cache, else GroupLens, else (ml-100k only) the offline mirror rebuilt from
  the ``recbole`` wheel on PyPI; a :class:`FetchResult` says which source was used.

Everything written to the cache arrives by rename from a hidden temporary sibling
(``.<name>.tmp-*``), so ``<cache>/<name>`` is either complete or absent.
"""

from __future__ import annotations

import os
import shutil
from dataclasses import dataclass
from pathlib import Path

from movierec.data import download as _download
from movierec.data import mirror as _mirror
from movierec.errors import DataError, DownloadError

ENV_HOME = "MOVIEREC_HOME"
GROUPLENS = "https://files.grouplens.org/datasets/movielens"
# A folder holding one of these is a MovieLens dataset (100K, 1M/10M, and the CSV family).
RATINGS_FILES = ("u.data", "ratings.dat", "ratings.csv")


@dataclass(frozen=True)
class DatasetSpec:
    """One MovieLens release on GroupLens.

    Attributes:
        name: Catalogue name, e.g. ``"ml-100k"``.
        url: The zip's URL on files.grouplens.org.
        size_bytes: Size of the zip in bytes, where known.
        md5: Hex MD5 of the zip where GroupLens publishes one, else None.
        folder: The top-level folder inside the zip (``"ml-10M100K"`` for ml-10m).
        description: One line for people.
    """

    name: str
    url: str
    size_bytes: int | None
    md5: str | None
    folder: str
    description: str


def _spec(
    name: str, description: str, size: int | None = None, md5: str | None = None, folder: str = ""
) -> DatasetSpec:
    return DatasetSpec(name, f"{GROUPLENS}/{name}.zip", size, md5, folder or name, description)


CATALOGUE: dict[str, DatasetSpec] = {
    spec.name: spec
    for spec in (
        _spec(
            "ml-100k",
            "100,000 ratings, 943 users, 1,682 movies (1998)",
            4_924_029,
            "0e33842e24a9c977be4e0107933c0723",
        ),
        _spec(
            "ml-1m",
            "1,000,209 ratings, 6,040 users, 3,900 movies (2003)",
            None,
            "c4d9eecfca2ab87c1945afe126590906",
        ),
        _spec(
            "ml-10m",
            "10,000,054 ratings, 71,567 users, 10,681 movies, half stars (2009)",
            65_566_137,
            "ce571fd55effeba0271552578f2648bd",
            folder="ml-10M100K",
        ),
        _spec(
            "ml-20m",
            "20,000,263 ratings, 138,493 users, 27,278 movies (2015)",
            198_702_078,
            "cd245b17a1ae2cc31bb14903e1204af3",
        ),
        _spec(
            "ml-25m",
            "25,000,095 ratings, 162,541 users, 62,423 movies (2019)",
            261_978_986,
            "6b51fb2759a8657d3bfcbfc42b592ada",
        ),
        _spec("ml-32m", "32,000,204 ratings, 200,948 users, 87,585 movies (2023)"),
        _spec(
            "ml-latest-small", "about 100,000 ratings, 610 users, 9,700 movies (updated over time)"
        ),
        _spec(
            "ml-latest",
            "about 33 million ratings, 330,000 users, 86,000 movies (updated over time)",
        ),
    )
}


@dataclass(frozen=True)
class FetchResult:
    """Where a fetched dataset is and where it came from.

    Attributes:
        path: The extracted folder, ready for ``read_movielens``.
        source: ``"cache"``, ``"grouplens"`` or ``"mirror:recbole==1.2.1"``.
    """

    path: Path
    source: str


def cache_dir() -> Path:
    """The cache folder: ``$MOVIEREC_HOME``, else ``~/.cache/movierec``; created on demand."""
    home = os.environ.get(ENV_HOME) or "~/.cache/movierec"
    path = Path(home).expanduser()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise DataError(
            f"cannot create the cache folder {path}: {err}; set {ENV_HOME} to a writable folder"
        ) from err
    return path


def find_ratings_folder(directory: Path) -> Path | None:
    """``directory`` if it holds a MovieLens ratings file, else its one subfolder that does."""
    if any((directory / name).is_file() for name in RATINGS_FILES):
        return directory
    if not directory.is_dir():
        return None
    nested = [
        child
        for child in sorted(directory.iterdir())
        if child.is_dir()
        and not child.name.startswith(".")
        and any((child / name).is_file() for name in RATINGS_FILES)
    ]
    return nested[0] if len(nested) == 1 else None


def cached_path(name: str) -> Path | None:
    """The extracted folder of dataset ``name`` in the cache, or None if it is not there."""
    folder = cache_dir() / name
    return folder if folder.is_dir() and find_ratings_folder(folder) is not None else None


def known_names() -> str:
    """The catalogue names, comma-separated, for messages."""
    return ", ".join(CATALOGUE)


def get_spec(name: str) -> DatasetSpec:
    """The catalogue entry for ``name``; :class:`DataError` listing the known names if none."""
    try:
        return CATALOGUE[name]
    except KeyError:
        raise DataError(f"unknown dataset {name!r}; known datasets: {known_names()}") from None


def fetch(name: str, *, progress: bool = True, timeout: float = 10.0) -> FetchResult:
    """Make dataset ``name`` available in the cache and say where it came from.

    Order: the cache; a zip the user put at ``<cache>/<name>.zip``; GroupLens; and, for ml-100k
    only, the offline mirror rebuilt from the ``recbole`` wheel on PyPI.

    Args:
        name: A catalogue name, e.g. ``"ml-100k"``.
        progress: Show a download progress bar on stderr.
        timeout: Seconds to wait for GroupLens before giving up on it.

    Returns:
        The extracted folder and its source.

    Raises:
        DataError: ``name`` is not in the catalogue.
        DownloadError: No source could provide the dataset.
        ChecksumError: The download does not match its published size or MD5.
    """
    spec = get_spec(name)
    if (path := cached_path(name)) is not None:
        return FetchResult(path, "cache")
    root = cache_dir()
    target = root / name
    if target.is_dir() and not any(target.iterdir()):
        target.rmdir()  # an empty leftover folder would block the rename below
    elif target.exists():
        raise DataError(
            f"{target} exists but holds no MovieLens ratings file ({', '.join(RATINGS_FILES)}); "
            f"remove it, or put the extracted {name} files in it"
        )
    archive = root / f"{name}.zip"
    if archive.is_file():  # put there by hand, as the DownloadError below suggests
        _download.verify_file(archive, size_bytes=spec.size_bytes, md5=spec.md5)
        _download.extract_zip(archive, target, folder=spec.folder)
        return FetchResult(target, "cache")
    try:
        _download.download(
            spec.url,
            archive,
            size_bytes=spec.size_bytes,
            md5=spec.md5,
            progress=progress,
            timeout=timeout,
        )
    except DownloadError as err:
        if name != "ml-100k":
            raise DownloadError(_unreachable(spec, root, err)) from err
        return FetchResult(_build_mirror(target, err), _mirror.MIRROR_SOURCE)
    try:
        _download.extract_zip(archive, target, folder=spec.folder)
    finally:
        archive.unlink(missing_ok=True)
    return FetchResult(target, "grouplens")


def _unreachable(spec: DatasetSpec, root: Path, err: Exception) -> str:
    return (
        f"GroupLens is unreachable, so {spec.name} could not be downloaded from {spec.url} "
        f"({err}). Download the zip by other means and either pass its extracted folder with "
        f"--data DIR, or put the zip at {root / (spec.name + '.zip')} or its extracted files in "
        f"the cache folder {root / spec.name}/"
    )


def _build_mirror(target: Path, grouplens_error: Exception) -> Path:
    """Rebuild ml-100k from the recbole wheel into a temporary sibling, then rename it."""
    scratch = _download.temp_sibling(target)
    try:
        try:
            _mirror.build_ml100k_from_recbole(scratch)
        except DownloadError as err:
            spec = CATALOGUE["ml-100k"]
            raise DownloadError(
                f"{_unreachable(spec, target.parent, grouplens_error)}; the offline mirror "
                f"failed too: {err}"
            ) from err
        try:
            os.replace(scratch, target)
        except OSError as err:
            if cached_path(target.name) is None:
                raise DataError(f"could not move the rebuilt data to {target}: {err}") from err
    finally:
        shutil.rmtree(scratch, ignore_errors=True)
    return target
