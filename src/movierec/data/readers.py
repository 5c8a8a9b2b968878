"""Readers: every MovieLens layout and generic ratings files, normalised to one schema.

- :func:`read_movielens`: a MovieLens folder, its layout detected from the files present
  (``u.data``: ml-100k; ``ratings.dat``: ml-1m, or ml-10m when there is no ``users.dat``;
  ``ratings.csv``: the CSV family of 20m/25m/32m/latest/latest-small).
- :func:`read_ratings_file`: a CSV/TSV/``::``/pipe text file or a Parquet file, its columns
  found by common names (or named with ``columns``).
- :func:`load_data`: a catalogue name, a folder or a file, whichever ``spec`` is.

Every reader returns :class:`RatingsData`, whose ``ratings`` frame has exactly the columns
``user_id, item_id, rating, timestamp``: raw IDs as int64 when they are all integers and str
otherwise, ratings as float32, timestamps as int64 unix seconds (0 when the file has none). Rows
keep the file's order: ml-100k's canonical u1..u5 folds are ranges of ``u.data`` lines.

Parsing is vectorised (pandas' C parser, pyarrow for Parquet); ``::`` separators are rewritten to
a one-byte separator in memory first, because pandas parses multi-character separators with its
slow Python engine. Every problem a file can have becomes a :class:`DataError` naming the file,
the line where it can, and what to do.
"""

from __future__ import annotations

import csv
import dataclasses
import io
import re
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.catalogue import (
    CATALOGUE,
    RATINGS_FILES,
    fetch,
    find_ratings_folder,
    known_names,
)
from movierec.errors import DataError

COLUMNS = ("user_id", "item_id", "rating", "timestamp")
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
ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user", "user_id", "userid", "uid", "customer", "customerid", "customer_id"),
    "item_id": ("item", "item_id", "itemid", "movie", "movie_id", "movieid", "iid"),
    "rating": ("rating", "ratings", "score", "stars"),
    "timestamp": ("timestamp", "time", "date", "ts"),
}
SEPARATORS = ("::", "\t", ",", ";", "|")
SEP_NAMES = {"::": "'::'", "\t": "tab", ",": "comma", ";": "semicolon", "|": "pipe"}
DAT_SEP = "\x1f"  # ASCII unit separator: stands in for "::" so pandas' C parser can split
YEAR = re.compile(r".*\((\d{4})\)")  # the last "(YYYY)" in a title
PARQUET_SUFFIXES = (".parquet", ".pq", ".parq")


@dataclass
class RatingsData:
    """A ratings dataset in the canonical schema, with item and user metadata where present.

    Attributes:
        name: Dataset name (``"ml-100k"``) or the file's stem.
        ratings: ``user_id``, ``item_id`` (int64 or str), ``rating`` (float32), ``timestamp``
            (int64 unix seconds, 0 when absent), one row per rating in file order.
        items: ``item_id``, ``title`` (str), ``year`` (Int64, may be <NA>), ``genres``
            (str, ``"Action|Comedy"``, ``""`` when none); None for a generic ratings file.
        users: ``user_id``, ``age``, ``gender``, ``occupation``, ``zip_code`` for ml-100k and
            ml-1m; None otherwise.
        layout: ``"ml-100k"``, ``"ml-1m"``, ``"ml-10m"``, ``"ml-csv"`` or ``"ratings-file"``.
        rating_scale: (lowest, highest) possible rating: (1, 5) for ml-100k/ml-1m, (0.5, 5) for
            ml-10m and the CSV family, the data's (min, max) for a generic file.
        source: The folder or file read.
    """

    name: str
    ratings: pd.DataFrame
    items: pd.DataFrame | None
    users: pd.DataFrame | None
    layout: str
    rating_scale: tuple[float, float]
    source: Path


# --- low-level parsing ---------------------------------------------------------------------------


def _read_text(
    path: Path,
    *,
    sep: str,
    names: Sequence[str] | None = None,
    header: int | None = None,
    encoding: str = "utf-8",
    quoting: int = csv.QUOTE_MINIMAL,
    dtype: Any = None,
) -> pd.DataFrame:
    """``pd.read_csv`` with the C engine; ``::`` rewritten first; errors become DataError."""
    _check_file(path)
    source: Any = path
    if sep == "::":
        source = io.BytesIO(path.read_bytes().replace(b"::", DAT_SEP.encode()))
        sep = DAT_SEP
    try:
        with warnings.catch_warnings():
            # pandas only warns (and drops data) when a line has more fields than names.
            warnings.simplefilter("error", pd.errors.ParserWarning)
            return pd.read_csv(
                source,
                sep=sep,
                names=names,
                header=header,
                index_col=False,
                encoding=encoding,
                quoting=quoting,
                dtype=dtype,
                engine="c",
                skip_blank_lines=True,
                keep_default_na=dtype is None,
            )
    except pd.errors.ParserWarning as err:
        expected = len(names) if names is not None else "header's"
        raise DataError(
            f"{path}: some lines have more than the {expected} fields expected; each line "
            f"needs exactly the same fields"
        ) from err
    except UnicodeDecodeError as err:
        raise DataError(
            f"{path} is not {encoding} text ({err.reason} at byte {err.start}); convert it to "
            f"{encoding}"
        ) from err
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path} has no data rows; it is empty") from err
    except (pd.errors.ParserError, ValueError, OSError) as err:
        raise DataError(f"cannot parse {path}: {_first_line(err)}") from err


def _first_line(err: BaseException) -> str:
    text = str(err).strip()
    return text.splitlines()[0] if text else type(err).__name__


def _check_file(path: Path) -> None:
    if not path.exists():
        raise DataError(f"{path} does not exist; check the path")
    if not path.is_file():
        raise DataError(f"{path} is not a file")
    if path.stat().st_size == 0:
        raise DataError(f"{path} is empty; it should hold ratings, one per line")


def _decode_dat(path: Path, preferred: str) -> str:
    """``preferred`` if the file decodes with it, else latin-1 (which decodes anything)."""
    try:
        with path.open(encoding=preferred) as handle:
            while handle.read(1 << 20):
                pass
    except UnicodeDecodeError:
        return "latin-1"
    return preferred


# --- normalising columns -------------------------------------------------------------------------


def _ids(values: pd.Series, what: str, path: Path, line_offset: int) -> pd.Series:
    """int64 if every ID is an integer, str otherwise; missing IDs are an error."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{path}: {what} is missing on {_where(path, line_offset, missing)}; every rating "
            f"needs a user and an item"
        )
    if pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(np.int64)
    if pd.api.types.is_float_dtype(values.dtype):
        floats = values.to_numpy(dtype=np.float64)
        if np.all(np.isfinite(floats)) and np.all(np.mod(floats, 1) == 0):
            return values.astype(np.int64)
    return values.astype(str)


def _where(path: Path, line_offset: int, bad: np.ndarray) -> str:
    """Where the first True of ``bad`` is: a line of a text file or a row of a Parquet file."""
    row = int(np.flatnonzero(bad)[0])
    if _is_parquet(path):
        return f"row {row + 1}"
    return f"line {row + 1 + line_offset}"


def _ratings_column(values: pd.Series, path: Path, line_offset: int) -> pd.Series:
    numbers = pd.to_numeric(values, errors="coerce")
    as_float = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    bad = ~np.isfinite(as_float)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: the rating on {_where(path, line_offset, bad)} is {values.iloc[row]!r}, "
            f"not a finite number; fix or remove that line"
        )
    return pd.Series(as_float.astype(np.float32), index=values.index, name="rating")


def _timestamps(values: pd.Series | None, n: int, path: Path, line_offset: int) -> pd.Series:
    """int64 unix seconds from numbers or dates (naive dates are UTC); zeros when absent."""
    if values is None:
        return pd.Series(np.zeros(n, dtype=np.int64))
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        as_float = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(as_float)
        if bad.any():
            raise DataError(
                f"{path}: the timestamp on {_where(path, line_offset, bad)} is missing; fill it "
                f"or drop the timestamp column"
            )
        return pd.Series(np.floor(as_float).astype(np.int64), index=values.index)
    try:
        # ISO 8601 is parsed fast and vectorised; only what it misses is parsed per element.
        dates = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
        if (missed := dates.isna() & values.notna()).any():
            dates[missed] = pd.to_datetime(
                values[missed], utc=True, errors="coerce", format="mixed"
            )
    except (ValueError, TypeError) as err:
        raise DataError(f"{path}: cannot read the timestamps as dates: {err}") from err
    bad = dates.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: the timestamp on {_where(path, line_offset, bad)} is "
            f"{values.iloc[row]!r}, neither unix seconds nor a date"
        )
    seconds = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.astype(np.int64)


def _canonical(
    frame: pd.DataFrame, sources: dict[str, str | None], path: Path, line_offset: int
) -> pd.DataFrame:
    """The four canonical columns from ``frame``'s columns named in ``sources``."""
    if frame.empty:
        raise DataError(f"{path} has a header but no ratings")
    stamp = sources.get("timestamp")
    ratings = pd.DataFrame(
        {
            "user_id": _ids(frame[sources["user_id"]], "the user ID", path, line_offset),
            "item_id": _ids(frame[sources["item_id"]], "the item ID", path, line_offset),
            "rating": _ratings_column(frame[sources["rating"]], path, line_offset),
            "timestamp": _timestamps(
                frame[stamp] if stamp else None, len(frame), path, line_offset
            ).to_numpy(),
        }
    )
    return ratings.reset_index(drop=True)


def _check_fields(frame: pd.DataFrame, path: Path, needed: int, example: str) -> None:
    """ML files have a fixed field count; short lines are read as NaN in the last column."""
    short = frame.iloc[:, needed - 1].isna().to_numpy()
    if short.any():
        raise DataError(
            f"{path}: {_where(path, 0, short)} has fewer than {needed} fields; each line should "
            f"be {example}"
        )


def _year(title: pd.Series, fallback: pd.Series | None = None) -> pd.Series:
    years = title.str.extract(YEAR, expand=False)
    if fallback is not None:
        years = years.fillna(fallback.str.extract(r"(\d{4})\s*$", expand=False))
    return pd.to_numeric(years, errors="coerce").astype("Int64")


def _items(
    ids: pd.Series,
    titles: pd.Series,
    genres: pd.Series,
    path: Path,
    year_from: pd.Series | None = None,
) -> pd.DataFrame:
    """The items frame; ``year`` from the title's last "(YYYY)", else from ``year_from``."""
    titles = titles.fillna("").astype(str)
    return pd.DataFrame(
        {
            "item_id": _ids(ids, "the item ID", path, 0).to_numpy(),
            "title": titles.to_numpy(),
            "year": _year(titles, year_from).array,
            "genres": genres.fillna("").astype(str).replace("(no genres listed)", "").to_numpy(),
        }
    ).astype({"title": "str", "genres": "str"})


# --- MovieLens layouts ---------------------------------------------------------------------------


def _read_ml100k(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    path = folder / "u.data"
    raw = _read_text(path, sep="\t", names=COLUMNS, quoting=csv.QUOTE_NONE)
    _check_fields(raw, path, 4, "user<TAB>item<TAB>rating<TAB>timestamp")
    ratings = _canonical(raw, dict(zip(COLUMNS, COLUMNS, strict=True)), path, 0)
    items = users = None
    if (item_path := folder / "u.item").is_file():
        names = ["item_id", "title", "release", "video", "url", *ML100K_GENRES]
        raw_items = _read_text(
            item_path, sep="|", names=names, encoding="latin-1", quoting=csv.QUOTE_NONE
        )
        flags = raw_items[list(ML100K_GENRES)].fillna(0).astype(np.int64).to_numpy()
        # Column by column (19 of them), not row by row: "Action|" where flagged, "" otherwise.
        joined = np.full(len(raw_items), "", dtype=object)
        for j, genre in enumerate(ML100K_GENRES):
            joined = joined + np.where(flags[:, j] == 1, genre + "|", "")
        genres = pd.Series(joined, dtype=str).str.rstrip("|")
        release = raw_items["release"].fillna("").astype(str)
        items = _items(raw_items["item_id"], raw_items["title"], genres, item_path, release)
    if (user_path := folder / "u.user").is_file():
        names = ["user_id", "age", "gender", "occupation", "zip_code"]
        raw_users = _read_text(
            user_path, sep="|", names=names, dtype=str, encoding="latin-1", quoting=csv.QUOTE_NONE
        )
        users = _users(raw_users, user_path)
    return ratings, items, users


def _users(raw: pd.DataFrame, path: Path) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "user_id": _ids(
                pd.to_numeric(raw["user_id"], errors="coerce"), "the user ID", path, 0
            ).to_numpy(),
            "age": pd.to_numeric(raw["age"], errors="coerce").astype("Int64").array,
            "gender": raw["gender"].to_numpy(),
            "occupation": raw["occupation"].to_numpy(),
            "zip_code": raw["zip_code"].to_numpy(),
        }
    ).astype({"gender": "str", "occupation": "str", "zip_code": "str"})


def _read_dat(
    folder: Path, movies_encoding: str
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """ml-1m and ml-10m: ``::``-separated ratings, movies and (1m only) users."""
    path = folder / "ratings.dat"
    raw = _read_text(path, sep="::", names=COLUMNS, quoting=csv.QUOTE_NONE)
    _check_fields(raw, path, 4, "UserID::MovieID::Rating::Timestamp")
    ratings = _canonical(raw, dict(zip(COLUMNS, COLUMNS, strict=True)), path, 0)
    items = users = None
    if (movie_path := folder / "movies.dat").is_file():
        raw_items = _read_text(
            movie_path,
            sep="::",
            names=["item_id", "title", "genres"],
            dtype=str,
            encoding=_decode_dat(movie_path, movies_encoding),
            quoting=csv.QUOTE_NONE,
        )
        items = _items(
            pd.to_numeric(raw_items["item_id"], errors="coerce"),
            raw_items["title"],
            raw_items["genres"],
            movie_path,
        )
    if (user_path := folder / "users.dat").is_file():
        raw_users = _read_text(
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


def _read_ml_csv(folder: Path) -> tuple[pd.DataFrame, pd.DataFrame | None, None]:
    """ml-20m/25m/32m/latest/latest-small: ``ratings.csv`` and ``movies.csv`` with headers."""
    path = folder / "ratings.csv"
    raw = _read_text(path, sep=",", header=0)
    expected = ["userId", "movieId", "rating", "timestamp"]
    if list(raw.columns[:4]) != expected:
        raise DataError(
            f"{path} has columns {list(map(str, raw.columns))}, expected {expected}; is it a "
            f"MovieLens ratings.csv? Otherwise read it as a ratings file"
        )
    ratings = _canonical(raw, dict(zip(COLUMNS, expected, strict=True)), path, 1)
    items = None
    if (movie_path := folder / "movies.csv").is_file():
        raw_items = _read_text(movie_path, sep=",", header=0, dtype=str)
        missing = {"movieId", "title", "genres"} - set(raw_items.columns)
        if missing:
            raise DataError(f"{movie_path} lacks the columns {sorted(missing)}")
        items = _items(
            pd.to_numeric(raw_items["movieId"], errors="coerce"),
            raw_items["title"],
            raw_items["genres"],
            movie_path,
        )
    return ratings, items, None


def _dataset_name(folder: Path, given: Path) -> str:
    by_folder = {spec.folder: spec.name for spec in CATALOGUE.values()}
    for candidate in (folder.name, given.name):
        if candidate in CATALOGUE:
            return candidate
        if candidate in by_folder:
            return by_folder[candidate]
    return folder.name or str(folder)


def read_movielens(directory: Path) -> RatingsData:
    """Read a MovieLens folder, whichever release it is.

    Args:
        directory: The extracted folder (``ml-100k``), or a folder holding just that one.

    Returns:
        The ratings with item metadata (and user metadata for ml-100k and ml-1m).

    Raises:
        DataError: The folder does not exist, holds no MovieLens ratings file, or a file in it
            cannot be read.
    """
    directory = Path(directory).expanduser()
    if not directory.exists():
        raise DataError(f"{directory} does not exist; check the path")
    if not directory.is_dir():
        raise DataError(f"{directory} is not a folder; to read a ratings file use the file path")
    folder = find_ratings_folder(directory)
    if folder is None:
        raise DataError(
            f"{directory} holds no MovieLens ratings file ({', '.join(RATINGS_FILES)}), nor "
            f"a single subfolder with one; pass the extracted MovieLens folder or a ratings file"
        )
    if (folder / "u.data").is_file():
        layout, scale = "ml-100k", (1.0, 5.0)
        ratings, items, users = _read_ml100k(folder)
    elif (folder / "ratings.dat").is_file():
        is_1m = (folder / "users.dat").is_file()
        layout, scale = ("ml-1m", (1.0, 5.0)) if is_1m else ("ml-10m", (0.5, 5.0))
        ratings, items, users = _read_dat(folder, "latin-1" if is_1m else "utf-8")
    else:
        layout, scale = "ml-csv", (0.5, 5.0)
        ratings, items, users = _read_ml_csv(folder)
    return RatingsData(
        _dataset_name(folder, directory), ratings, items, users, layout, scale, folder
    )


# --- generic ratings files -----------------------------------------------------------------------


def _is_parquet(path: Path) -> bool:
    return path.suffix.lower() in PARQUET_SUFFIXES


def _first_line_of(path: Path) -> str:
    with path.open("rb") as handle:
        for raw in handle:
            if raw.strip():
                return raw.decode("utf-8", errors="replace").rstrip("\r\n")
    raise DataError(f"{path} holds only blank lines; it should hold ratings, one per line")


def sniff_separator(line: str) -> str | None:
    """The separator of a delimited line: ``::`` if present, else the most frequent of
    tab, comma, semicolon and pipe; None if the line has none of them."""
    if "::" in line:
        return "::"
    counts = {sep: line.count(sep) for sep in SEPARATORS[1:]}
    best = max(counts, key=lambda sep: counts[sep])
    return best if counts[best] else None


def _split_fields(line: str, sep: str) -> list[str]:
    if sep == "::":
        return line.split("::")
    return next(csv.reader([line], delimiter=sep))


def _is_number(text: str) -> bool:
    try:
        float(text)
    except ValueError:
        return False
    return True


def _match_columns(
    seen: Sequence[str], columns: Sequence[str] | None, path: Path
) -> dict[str, str | None]:
    """Which of ``seen`` holds the user, item, rating and timestamp."""
    lower = {str(name).strip().lower(): str(name) for name in seen}
    hint = (
        "; name them with --columns user,item,rating[,timestamp] "
        "(columns=[...] in Python), in that order"
    )
    found: dict[str, str | None] = {}
    if columns is not None:
        for role, wanted in zip(COLUMNS, columns, strict=False):
            key = str(wanted).strip().lower()
            if key not in lower:
                raise DataError(
                    f"{path} has no column {wanted!r} (given for {role}); its columns are "
                    f"{list(map(str, seen))}{hint}"
                )
            found[role] = lower[key]
        found.setdefault("timestamp", None)
        return found
    for role, aliases in ALIASES.items():
        found[role] = next((lower[a] for a in aliases if a in lower), None)
    lacking = [role for role in COLUMNS[:3] if found[role] is None]
    if lacking:
        raise DataError(
            f"{path}: found no {' / '.join(r.removesuffix('_id') for r in lacking)} column among "
            f"{list(map(str, seen))}{hint}"
        )
    return found


def _check_columns_arg(columns: Sequence[str] | None) -> None:
    if columns is not None and not 3 <= len(columns) <= 4:
        raise DataError(
            f"columns must name 3 or 4 columns (user, item, rating[, timestamp]), got "
            f"{list(columns)}"
        )


def read_ratings_file(
    path: Path, columns: Sequence[str] | None = None, sep: str | None = None
) -> RatingsData:
    """Read a generic ratings file: delimited text or Parquet.

    Text files: the separator is sniffed from the first line (``::``, tab, comma, semicolon,
    pipe) unless ``sep`` is given. The first line is a header unless its third field is a
    number; a header-less file is read as ``user, item, rating[, timestamp]`` or, with
    ``columns``, as columns named ``columns`` in order. Columns are found by common names,
    case-insensitively (``user``/``userId``/``customer``..., ``item``/``movieId``...,
    ``rating``/``score``/``stars``, ``timestamp``/``time``/``date``/``ts``), or named by
    ``columns`` in the order user, item, rating[, timestamp]. Dates become unix seconds (UTC).

    Args:
        path: The file.
        columns: Names of the user, item, rating and (optional) timestamp columns.
        sep: The separator of a text file, when sniffing would guess wrong.

    Returns:
        The ratings (no item or user metadata); ``rating_scale`` is the data's (min, max).

    Raises:
        DataError: The file is missing, empty or unreadable, a column cannot be found, or a
            rating is not a finite number.
    """
    path = Path(path).expanduser()
    _check_file(path)
    _check_columns_arg(columns)
    if _is_parquet(path):
        frame = _read_parquet(path)
        line_offset = 0
    else:
        first = _first_line_of(path)
        sep = sep or sniff_separator(first)
        if sep is None:
            raise DataError(
                f"cannot tell the separator of {path} from its first line {first[:80]!r}; use "
                f"tab, comma, semicolon, pipe or '::' between fields"
            )
        fields = _split_fields(first, sep)
        known = {str(c).strip().lower() for c in columns or ()}
        has_header = not (len(fields) >= 3 and _is_number(fields[2].strip())) or bool(
            known & {f.strip().lower() for f in fields}
        )
        if has_header:
            frame = _read_text(path, sep=sep, header=0)
            line_offset = 1
        else:
            if len(fields) < 3:
                raise DataError(f"{path}: line 1 has {len(fields)} fields; need at least 3")
            names = list(columns) if columns else list(COLUMNS[: min(len(fields), 4)])
            names += [f"column_{i + 1}" for i in range(len(names), len(fields))]
            frame = _read_text(path, sep=sep, names=names, header=None)
            line_offset = 0
            if columns is None:
                columns = names[: min(len(fields), 4)]
    frame.columns = [str(c) for c in frame.columns]
    sources = _match_columns(list(frame.columns), columns, path)
    ratings = _canonical(frame, sources, path, line_offset)
    scale = (float(ratings["rating"].min()), float(ratings["rating"].max()))
    return RatingsData(path.stem, ratings, None, None, "ratings-file", scale, path)


def _read_parquet(path: Path) -> pd.DataFrame:
    try:
        import pyarrow.parquet as pq

        return pq.read_table(path).to_pandas()
    except (OSError, ValueError) as err:  # pyarrow.ArrowInvalid is a ValueError
        raise DataError(f"cannot read {path} as Parquet: {_first_line(err)}") from err


# --- one entry point -----------------------------------------------------------------------------


def load_data(
    spec: str, *, columns: Sequence[str] | None = None, progress: bool = True
) -> RatingsData:
    """Load a catalogue dataset (fetching it if needed), a MovieLens folder, or a ratings file.

    Args:
        spec: A catalogue name (``"ml-100k"``), a folder, or a file.
        columns: For a ratings file: names of its user, item, rating[, timestamp] columns.
        progress: Show a download progress bar on stderr if the dataset must be fetched.

    Returns:
        The dataset in the canonical schema.

    Raises:
        DataError: ``spec`` is none of these, or the data cannot be read or fetched.
    """
    text = str(spec)
    if text in CATALOGUE:
        result = fetch(text, progress=progress)
        return dataclasses.replace(read_movielens(result.path), name=text)
    path = Path(text).expanduser()
    if path.is_dir():
        return read_movielens(path)
    if path.is_file():
        return read_ratings_file(path, columns=columns)
    raise DataError(
        f"{text!r} is neither a dataset name (known: {known_names()}) nor a file or directory"
    )
