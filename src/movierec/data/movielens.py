"""Every MovieLens layout, detected from the files present, read into the canonical schema.

- :func:`read_movielens`: a MovieLens folder (or a folder holding just that one): ``u.data``:
  ml-100k; ``ratings.dat``: ml-1m, or ml-10m when there is no ``users.dat``; ``ratings.csv``: the
  CSV family of 20m/25m/32m/latest/latest-small; ``combined_data_*.txt``: the Netflix Prize
  layout, read by :mod:`movierec.data.netflix`. Item metadata (titles, years, genres) comes from
  ``u.item``/``movies.dat``/``movies.csv``, user metadata from ``u.user``/``users.dat``.
- :func:`read_item_file`: one of those item files on its own (beside a ratings file, or named
  with ``--items``); :func:`items_frame` builds the items frame every item reader returns.

IDs must be whole numbers (a MovieLens file with text IDs is corrupt or not MovieLens), each file
has a fixed field count, and the release's rating scale applies unless the policy declares one.
"""

from __future__ import annotations

import csv
import re
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.catalogue import CATALOGUE, RATINGS_FILES, find_ratings_folder
from movierec.data.mirror import ML100K_GENRES
from movierec.data.netflix import find_netflix_folder, read_netflix
from movierec.data.parsing import guard, locate_first, read_text, row_locator, separator_hint
from movierec.data.policies import DataPolicy, apply_policy
from movierec.data.schema import COLUMNS, RatingsData, canonical_ratings, id_column
from movierec.errors import DataError

# ml-1m's users.dat codes occupations as 0..20 (its README).
ML1M_OCCUPATIONS = (
    "other",
    "academic/educator",
    "artist",
    "clerical/admin",
    "college/grad student",
    "customer service",
    "doctor/health care",
    "executive/managerial",
    "farmer",
    "homemaker",
    "K-12 student",
    "lawyer",
    "programmer",
    "retired",
    "sales/marketing",
    "scientist",
    "self-employed",
    "technician/engineer",
    "tradesman/craftsman",
    "unemployed",
    "writer",
)
YEAR = re.compile(r".*\((\d{4})\)")  # the last "(YYYY)" in a title
ITEM_FILES = ("u.item", "movies.dat", "movies.csv")  # item metadata of each layout


def read_movielens(
    directory: Path,
    *,
    policy: DataPolicy | None = None,
    progress: bool = False,
) -> RatingsData:
    """Read a MovieLens folder, whichever release it is.

    Args:
        directory: The extracted folder (``ml-100k``), or a folder holding just that one.
        policy: Duplicates and the rating scale (default :class:`DataPolicy`); a declared
            ``rating_scale`` overrides the release's own ((1, 5) or (0.5, 5)).
        progress: Show a bar on stderr while a large ratings file (ml-10m and up) is parsed.

    Returns:
        The ratings with item metadata (and user metadata for ml-100k and ml-1m), and in
        ``report`` the counts of what the policies did.

    Raises:
        DataError: The folder does not exist, holds no MovieLens ratings file, a file in it
            cannot be read, an ID is not an integer, a rating is not a finite number, or a
            policy set to ``"error"`` applies.
    """
    policy = policy if policy is not None else DataPolicy()
    directory = Path(directory).expanduser()
    if not directory.exists():
        raise DataError(f"{directory} does not exist; check the path")
    if not directory.is_dir():
        raise DataError(f"{directory} is not a folder; to read a ratings file use the file path")
    folder = find_ratings_folder(directory)
    if folder is None:
        if find_netflix_folder(directory) is not None:
            return read_netflix(directory, policy=policy)
        raise DataError(
            f"{directory} holds no MovieLens ratings file ({', '.join(RATINGS_FILES)}), nor "
            f"a single subfolder with one; pass the extracted MovieLens folder or a ratings file"
        )
    with guard(folder):
        if (folder / "u.data").is_file():
            layout, scale, path, offset = "ml-100k", (1.0, 5.0), folder / "u.data", 0
            ratings, items, users = _read_ml100k(folder)
        elif (folder / "ratings.dat").is_file():
            is_1m = (folder / "users.dat").is_file()
            layout, scale = ("ml-1m", (1.0, 5.0)) if is_1m else ("ml-10m", (0.5, 5.0))
            path, offset = folder / "ratings.dat", 0
            ratings, items, users = _read_dat(folder, "latin-1" if is_1m else "utf-8", progress)
        else:
            layout, scale, path, offset = "ml-csv", (0.5, 5.0), folder / "ratings.csv", 1
            ratings, items, users = _read_ml_csv(folder, progress)
        ratings, scale, report = apply_policy(
            ratings, policy, str(path), row_locator(path, offset), layout_scale=scale
        )
    return RatingsData(
        _dataset_name(folder, directory), ratings, items, users, layout, scale, folder, report
    )


def _read_ml100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    path = folder / "u.data"
    raw = read_text(path, sep="\t", names=COLUMNS, quoting=csv.QUOTE_NONE)
    _check_fields(raw, path, 4, "user<TAB>item<TAB>rating<TAB>timestamp")
    ratings = canonical_ratings(
        raw, dict(zip(COLUMNS, COLUMNS, strict=True)), path, 0, integer_ids=True
    )
    items = users = None
    if (item_path := folder / "u.item").is_file():
        items = _read_u_item(item_path)
    if (user_path := folder / "u.user").is_file():
        names = ["user_id", "age", "gender", "occupation", "zip_code"]
        raw_users = read_text(
            user_path, sep="|", names=names, dtype=str, encoding="latin-1", quoting=csv.QUOTE_NONE
        )
        users = _users(raw_users, user_path)
    return ratings, items, users


def _read_dat(
    folder: Path, movies_encoding: str, progress: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """ml-1m and ml-10m: ``::``-separated ratings, movies and (1m only) users."""
    path = folder / "ratings.dat"
    raw = read_text(path, sep="::", names=COLUMNS, quoting=csv.QUOTE_NONE, progress=progress)
    _check_fields(raw, path, 4, "UserID::MovieID::Rating::Timestamp")
    ratings = canonical_ratings(
        raw, dict(zip(COLUMNS, COLUMNS, strict=True)), path, 0, integer_ids=True
    )
    items = users = None
    if (movie_path := folder / "movies.dat").is_file():
        items = _read_movies_dat(movie_path, movies_encoding)
    if (user_path := folder / "users.dat").is_file():
        raw_users = read_text(
            user_path,
            sep="::",
            names=["user_id", "gender", "age", "occupation", "zip_code"],
            dtype=str,
            encoding="latin-1",
            quoting=csv.QUOTE_NONE,
        )
        codes = pd.to_numeric(raw_users["occupation"], errors="coerce")
        names = pd.Series(ML1M_OCCUPATIONS).reindex(codes.to_numpy()).to_numpy()
        raw_users["occupation"] = np.where(pd.isna(names), raw_users["occupation"], names)
        users = _users(raw_users, user_path)
    return ratings, items, users


def _read_ml_csv(
    folder: Path, progress: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame | None, None]:
    """ml-20m/25m/32m/latest/latest-small: ``ratings.csv`` and ``movies.csv`` with headers."""
    path = folder / "ratings.csv"
    raw = read_text(path, sep=",", header=0, progress=progress)
    expected = ["userId", "movieId", "rating", "timestamp"]
    if list(raw.columns[:4]) != expected:
        raise DataError(
            f"{path} has columns {list(map(str, raw.columns))}, expected {expected}; is it a "
            f"MovieLens ratings.csv? Otherwise read it as a ratings file"
            f"{separator_hint(path, ',')}"
        )
    ratings = canonical_ratings(
        raw, dict(zip(COLUMNS, expected, strict=True)), path, 1, integer_ids=True
    )
    items = None
    if (movie_path := folder / "movies.csv").is_file():
        items = _read_movies_csv(movie_path)
    return ratings, items, None


def read_item_file(path: Path) -> pd.DataFrame:
    """A MovieLens item file by its name (:data:`ITEM_FILES`): ``u.item`` (ml-100k),
    ``movies.dat`` (ml-1m, ml-10m) or ``movies.csv`` (the CSV family), as the items frame
    (``item_id``, ``title``, ``year``, ``genres``).

    Raises:
        DataError: The file is not one of these names, or cannot be read.
    """
    path = Path(path)
    with guard(path):
        if path.name == "u.item":
            return _read_u_item(path)
        if path.name == "movies.dat":
            return _read_movies_dat(path, "utf-8")
        if path.name == "movies.csv":
            return _read_movies_csv(path)
    raise DataError(f"{path} is not a MovieLens item file ({', '.join(ITEM_FILES)})")


def _read_u_item(path: Path) -> pd.DataFrame:
    names = ["item_id", "title", "release", "video", "url", *ML100K_GENRES]
    raw_items = read_text(path, sep="|", names=names, encoding="latin-1", quoting=csv.QUOTE_NONE)
    flags = raw_items[list(ML100K_GENRES)].fillna(0).astype(np.int64).to_numpy()
    # Column by column (19 of them), not row by row: "Action|" where flagged, "" otherwise.
    joined = np.full(len(raw_items), "", dtype=object)
    for j, genre in enumerate(ML100K_GENRES):
        joined = joined + np.where(flags[:, j] == 1, genre + "|", "")
    genres = pd.Series(joined, dtype=str).str.rstrip("|")
    release = raw_items["release"].fillna("").astype(str)
    return items_frame(raw_items["item_id"], raw_items["title"], genres, path, release)


def _read_movies_dat(path: Path, encoding: str) -> pd.DataFrame:
    raw_items = read_text(
        path,
        sep="::",
        names=["item_id", "title", "genres"],
        dtype=str,
        encoding=_decode_dat(path, encoding),
        quoting=csv.QUOTE_NONE,
    )
    return items_frame(raw_items["item_id"], raw_items["title"], raw_items["genres"], path)


def _read_movies_csv(path: Path) -> pd.DataFrame:
    raw_items = read_text(path, sep=",", header=0, dtype=str)
    missing = {"movieId", "title", "genres"} - set(raw_items.columns)
    if missing:
        raise DataError(f"{path} lacks the columns {sorted(missing)}")
    return items_frame(
        raw_items["movieId"], raw_items["title"], raw_items["genres"], path, line_offset=1
    )


def _decode_dat(path: Path, preferred: str) -> str:
    """``preferred`` if the file decodes with it, else latin-1 (which decodes anything)."""
    try:
        with path.open(encoding=preferred) as handle:
            while handle.read(1 << 20):
                pass
    except UnicodeDecodeError:
        return "latin-1"
    return preferred


def _check_fields(frame: pd.DataFrame, path: Path, needed: int, example: str) -> None:
    """ML files have a fixed field count; short lines are read as NaN in the last column."""
    short = frame.iloc[:, needed - 1].isna().to_numpy()
    if short.any():
        sep = "\t" if "<TAB>" in example else "::" if "::" in example else "|"
        raise DataError(
            f"{path}: {locate_first(path, 0, short)} has fewer than {needed} fields; each line "
            f"should be {example}{separator_hint(path, sep)}"
        )


def items_frame(
    ids: pd.Series,
    titles: pd.Series,
    genres: pd.Series,
    path: Path,
    year_from: pd.Series | None = None,
    line_offset: int = 0,
    *,
    integer_ids: bool = True,
) -> pd.DataFrame:
    """The items frame (``item_id``, ``title``, ``year``, ``genres``); ``year`` from the
    title's last "(YYYY)", else from ``year_from``; ``integer_ids``: refuse text IDs (MovieLens
    files), else they are int64 when all are integers and str otherwise, as ratings' IDs."""
    titles = titles.fillna("").astype(str)
    item_ids = id_column(ids, "the item ID", path, line_offset, integer=integer_ids)
    return pd.DataFrame(
        {
            "item_id": item_ids.to_numpy(),
            "title": titles.to_numpy(),
            "year": _year(titles, year_from).array,
            "genres": genres.fillna("").astype(str).replace("(no genres listed)", "").to_numpy(),
        }
    ).astype({"title": "str", "genres": "str"})


def _year(title: pd.Series, fallback: pd.Series | None = None) -> pd.Series:
    years = title.str.extract(YEAR, expand=False)
    if fallback is not None:
        years = years.fillna(fallback.str.extract(r"(\d{4})\s*$", expand=False))
    return pd.to_numeric(years, errors="coerce").astype("Int64")


def _users(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": id_column(raw["user_id"], "the user ID", path, 0, integer=True).to_numpy(),
            "age": pd.to_numeric(raw["age"], errors="coerce").astype("Int64").array,
            "gender": raw["gender"].to_numpy(),
            "occupation": raw["occupation"].to_numpy(),
            "zip_code": raw["zip_code"].to_numpy(),
        }
    ).astype({"gender": "str", "occupation": "str", "zip_code": "str"})


def _dataset_name(folder: Path, given: Path) -> str:
    by_folder = {spec.folder: spec.name for spec in CATALOGUE.values()}
    for candidate in (folder.name, given.name):
        if candidate in CATALOGUE:
            return candidate
        if candidate in by_folder:
            return by_folder[candidate]
    return folder.name or str(folder)
