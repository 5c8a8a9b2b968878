"""The Netflix Prize layout: ``combined_data_*.txt`` and ``movie_titles.csv``, read vectorised.

- :func:`find_netflix_folder`: the folder (or its one subfolder) holding ``combined_data_*.txt``.
- :func:`read_netflix`: the ratings (layout ``"netflix"``, scale 1..5) and the movies.

``combined_data_N.txt`` holds blocks: a line ``MovieID:`` then ``CustomerID,Rating,Date`` lines
(``Date`` is ``YYYY-MM-DD``, read as midnight UTC). The movie lines are found on the raw bytes
with numpy (the only ``:`` in the file ends them), the colon becomes two commas so every line has
three fields, pandas' C parser splits the file once, and the movie ID is carried forward to the
ratings below it with a cumulative count of movie lines: no Python loop per line. Dates are parsed
once per distinct date. ``movie_titles.csv`` is latin-1 ``MovieID,YearOfRelease,Title`` without a
header; the title may hold commas and the year may be ``NULL``.
"""

from __future__ import annotations

import csv
import io
import re
import warnings
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.data.parsing import (
    PARSER_FIELDS,
    check_file,
    check_text,
    decode_error,
    first_error_line,
    guard,
)
from movierec.data.policies import DataPolicy, apply_policy
from movierec.data.schema import RatingsData, id_column
from movierec.errors import DataError

NETFLIX_SCALE = (1.0, 5.0)
DATA_FILE = re.compile(r"combined_data_(\d+)\.txt")
EXAMPLE = "'MovieID:' lines, each followed by 'CustomerID,Rating,YYYY-MM-DD' lines"


def _data_files(folder: Path) -> list[Path]:
    """``combined_data_*.txt`` in ``folder``, by their number."""
    found = [
        (m, p) for p in folder.glob("combined_data_*.txt") if (m := DATA_FILE.fullmatch(p.name))
    ]
    return [p for m, p in sorted(found, key=lambda pair: int(pair[0].group(1))) if p.is_file()]


def find_netflix_folder(directory: Path) -> Path | None:
    """``directory`` if it holds ``combined_data_*.txt``, else its one subfolder that does."""
    directory = Path(directory)
    if not directory.is_dir():
        return None
    if _data_files(directory):
        return directory
    nested = [
        child
        for child in sorted(directory.iterdir())
        if child.is_dir() and not child.name.startswith(".") and _data_files(child)
    ]
    return nested[0] if len(nested) == 1 else None


def _parse_file(path: Path) -> tuple[pd.DataFrame, np.ndarray]:
    """One ``combined_data`` file as ``item_id, user_id, rating, date`` (date as str) and the
    1-based line of each row."""
    check_file(path)
    check_text(path)
    data = path.read_bytes()
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    colons = np.flatnonzero(raw == ord(":"))
    colon_lines = np.searchsorted(newlines, colons)  # 0-based line of each colon
    # A movie line ends with its colon (before an optional \r).
    line_end = np.append(newlines, len(raw))[colon_lines]
    after = colons + 1
    at_end = (after == line_end) | (
        (after + 1 == line_end) & (raw[np.minimum(after, len(raw) - 1)] == 13)
    )
    if not at_end.all():
        line = int(colon_lines[np.flatnonzero(~at_end)[0]]) + 1
        raise DataError(f"{path}: line {line} has a ':' inside it; the file should be {EXAMPLE}")
    if np.unique(colon_lines).size != colon_lines.size:
        line = int(colon_lines[np.flatnonzero(np.diff(colon_lines) == 0)[0]]) + 1
        raise DataError(f"{path}: line {line} has two ':'; the file should be {EXAMPLE}")
    try:
        with warnings.catch_warnings():
            warnings.simplefilter("error", pd.errors.ParserWarning)
            frame = pd.read_csv(
                io.BytesIO(data.replace(b":", b",,")),
                sep=",",
                names=["a", "rating", "date"],
                header=None,
                index_col=False,
                quoting=csv.QUOTE_NONE,
                dtype={"date": "category"},
                engine="c",
                skip_blank_lines=False,
            )
    except pd.errors.ParserWarning as err:
        counts = np.bincount(
            np.searchsorted(newlines, np.flatnonzero(raw == ord(","))), minlength=len(newlines) + 1
        )
        line = int(np.flatnonzero(counts > 2)[0]) + 1
        raise DataError(
            f"{path}: line {line} has more than 3 fields; the file should be {EXAMPLE}"
        ) from err
    except UnicodeDecodeError as err:
        raise DataError(decode_error(path, "utf-8", err)) from err
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path} has no data rows; it is empty") from err
    except pd.errors.ParserError as err:
        if match := PARSER_FIELDS.search(str(err)):
            line, seen = match.group(2), match.group(3)
            raise DataError(
                f"{path}: line {line} has {seen} fields, more than 3; the file should be {EXAMPLE}"
            ) from err
        raise DataError(f"cannot parse {path}: {first_error_line(err)}") from err
    except (ValueError, OSError) as err:
        raise DataError(f"cannot parse {path}: {first_error_line(err)}") from err
    del data, raw
    n = len(frame)
    is_movie = np.zeros(n, dtype=bool)
    is_movie[colon_lines[colon_lines < n]] = True
    ids = pd.to_numeric(frame["a"], errors="coerce").to_numpy(dtype=np.float64, na_value=np.nan)
    blank = np.isnan(ids) & frame["rating"].isna().to_numpy() & frame["date"].isna().to_numpy()
    blank &= ~is_movie
    if not is_movie.any():
        raise DataError(f"{path} has no 'MovieID:' line; the file should be {EXAMPLE}")
    first_movie = int(np.flatnonzero(is_movie)[0])
    if (before := np.flatnonzero(~blank[:first_movie])).size:
        raise DataError(
            f"{path}: line {int(before[0]) + 1} is a rating before the first 'MovieID:' line; "
            f"the file should be {EXAMPLE}"
        )
    with np.errstate(invalid="ignore"):
        bad_id = ~np.isfinite(ids) | (np.mod(ids, 1) != 0) | (ids < 0) | (ids >= 2.0**53)
    if (bad := bad_id & ~blank).any():
        line = int(np.flatnonzero(bad)[0])
        what = "movie ID" if is_movie[line] else "customer ID"
        raise DataError(
            f"{path}: line {line + 1} has {frame['a'].iloc[line]!r} as the {what}, not a whole "
            f"number; the file should be {EXAMPLE}"
        )
    ids = np.where(blank, 0, ids).astype(np.int64)
    movie_of = np.flatnonzero(is_movie)[np.cumsum(is_movie) - 1]  # the movie line above each row
    rows = np.flatnonzero(~is_movie & ~blank)
    ratings = pd.DataFrame(
        {
            "item_id": ids[movie_of[rows]],
            "user_id": ids[rows],
            "rating": frame["rating"].to_numpy()[rows],
            "date": frame["date"].take(rows).reset_index(drop=True),
        }
    )
    return ratings, rows + 1


def _ratings(values: np.ndarray, path: Path, lines: np.ndarray) -> np.ndarray:
    as_float = pd.to_numeric(pd.Series(values), errors="coerce").to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    as_float32 = as_float.astype(np.float32)
    if (bad := ~np.isfinite(as_float32)).any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: the rating on line {int(lines[row])} is {values[row]!r}, not a finite "
            f"number; fix or remove that line"
        )
    return as_float32


def _seconds(dates: pd.Series, path: Path, lines: np.ndarray) -> np.ndarray:
    """Unix seconds of ``YYYY-MM-DD`` dates (categorical): each distinct date parsed once."""
    categories = pd.Series(dates.cat.categories.astype(str))
    parsed = pd.to_datetime(categories, format="%Y-%m-%d", errors="coerce", utc=True)
    seconds = ((parsed - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)).to_numpy(
        dtype=np.float64, na_value=np.nan
    )
    codes = dates.cat.codes.to_numpy()
    values = np.where(codes >= 0, seconds[np.maximum(codes, 0)], np.nan)
    if (bad := np.isnan(values)).any():
        row = int(np.flatnonzero(bad)[0])
        shown = "missing" if codes[row] < 0 else repr(categories.iloc[codes[row]])
        raise DataError(
            f"{path}: the date on line {int(lines[row])} is {shown}, not a YYYY-MM-DD date; "
            f"fix or remove that line"
        )
    return values.astype(np.int64)


def read_movie_titles(path: Path) -> pd.DataFrame:
    """``movie_titles.csv`` as the items frame: ``item_id`` int64, ``title`` str, ``year``
    Int64 (<NA> for ``NULL``), ``genres`` ``""``."""
    check_file(path)
    lines = pd.Series(path.read_text(encoding="latin-1").splitlines(), dtype=str)
    lines = lines[lines.str.strip() != ""].reset_index(drop=True)
    parts = lines.str.split(",", n=2, expand=True).reindex(columns=[0, 1, 2])
    if parts[2].isna().any():
        line = int(np.flatnonzero(parts[2].isna().to_numpy())[0]) + 1
        raise DataError(
            f"{path}: line {line} has fewer than 3 fields; each line should be "
            f"MovieID,YearOfRelease,Title"
        )
    return pd.DataFrame(
        {
            "item_id": id_column(parts[0], "the movie ID", path, 0, integer=True).to_numpy(),
            "title": parts[2].to_numpy(),
            "year": pd.to_numeric(parts[1], errors="coerce").astype("Int64").array,
            "genres": np.full(len(parts), ""),
        }
    ).astype({"title": "str", "genres": "str"})


def read_netflix(
    directory: Path,
    *,
    policy: DataPolicy | None = None,
) -> RatingsData:
    """Read a Netflix Prize folder: every ``combined_data_*.txt`` in number order.

    Args:
        directory: The folder holding ``combined_data_*.txt`` (and ``movie_titles.csv``), or a
            folder holding just that one.
        policy: Duplicates and the rating scale (default :class:`DataPolicy`); a declared
            ``rating_scale`` overrides the layout's 1..5.

    Returns:
        :class:`~movierec.data.schema.RatingsData` with layout ``"netflix"``: ratings in file
        order (movie by movie), items from ``movie_titles.csv`` (None without it), no users.

    Raises:
        DataError: No ``combined_data_*.txt``, a malformed line (named with its file and line:
            a rating before the first movie line, a bad ID, rating or date), or a policy set to
            ``"error"`` applies.
    """
    policy = policy if policy is not None else DataPolicy()
    folder = find_netflix_folder(Path(directory).expanduser())
    if folder is None:
        raise DataError(f"{directory} holds no combined_data_*.txt; pass the Netflix Prize folder")
    files = _data_files(folder)
    with guard(folder):
        parts, sources, line_of = [], [], []
        for number, path in enumerate(files):
            frame, lines = _parse_file(path)
            parts.append(
                pd.DataFrame(
                    {
                        "user_id": frame["user_id"].to_numpy(),
                        "item_id": frame["item_id"].to_numpy(),
                        "rating": _ratings(frame["rating"].to_numpy(), path, lines),
                        "timestamp": _seconds(frame["date"], path, lines),
                    }
                )
            )
            sources.append(np.full(len(lines), number, dtype=np.int16))
            line_of.append(lines.astype(np.int64))
        ratings = pd.concat(parts, ignore_index=True) if len(parts) > 1 else parts[0]
        del parts
        if ratings.empty:
            raise DataError(f"{files[0]} has movie lines but no ratings")
        file_of, line_at = np.concatenate(sources), np.concatenate(line_of)

        def locate(row: int) -> str:
            return f"line {int(line_at[row])} of {files[int(file_of[row])].name}"

        where = str(files[0]) if len(files) == 1 else f"{folder}/combined_data_*.txt"
        ratings, scale, report = apply_policy(
            ratings, policy, where, locate, layout_scale=NETFLIX_SCALE
        )
        titles = folder / "movie_titles.csv"
        items = read_movie_titles(titles) if titles.is_file() else None
    return RatingsData(folder.name, ratings, items, None, "netflix", scale, folder, report)
