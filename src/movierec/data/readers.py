"""Readers: every MovieLens layout and generic ratings files, normalised to one schema.

- :func:`read_movielens`: a MovieLens folder, its layout detected from the files present
  (``u.data``: ml-100k; ``ratings.dat``: ml-1m, or ml-10m when there is no ``users.dat``;
  ``ratings.csv``: the CSV family of 20m/25m/32m/latest/latest-small; ``combined_data_*.txt``:
  the Netflix Prize layout, read by :mod:`movierec.data.netflix`).
- :func:`read_ratings_file`: a CSV/TSV/``::``/pipe text file or a Parquet file, its columns
  found by common names (or named with ``columns``).
- :func:`load_data`: a catalogue name, a folder or a file, whichever ``spec`` is.

Every reader returns :class:`RatingsData`, whose ``ratings`` frame has exactly the columns
``user_id, item_id, rating, timestamp``: raw IDs as int64 when they are all integers and str
otherwise, ratings as float32, timestamps as int64 unix seconds (0 when the file has none). Rows
keep the file's order: ml-100k's canonical u1..u5 folds are ranges of ``u.data`` lines.

Parsing is vectorised (pandas' C parser, pyarrow for Parquet); ``::`` separators are rewritten to
a one-byte separator in memory first, because pandas parses multi-character separators with its
slow Python engine. Parquet reads only the columns it needs, and clean columns (integer IDs and
timestamps, numeric ratings, no nulls) go from Arrow to numpy with one copy each; anything else
takes the text files' pandas path and checks. With ``progress``, text files of 64 MiB and up
show a bar of the bytes parsed (25M ratings are a 615 MiB CSV).

Every problem a file can have becomes a :class:`DataError` naming the file, the line (or Parquet
row and row group) where it can, and what to do: an empty or binary file,
undecodable text, the wrong separator, missing or extra fields, non-integer MovieLens IDs,
ratings that are not finite numbers, and a rating scale that makes no sense.

After parsing, the policies of :mod:`movierec.data.policies` decide what happens to ratings
outside the rating scale (``out_of_scale``) and to repeated (user, item) pairs (``duplicates``);
:attr:`RatingsData.report` counts what they did. See ``docs/reliability.md``.
"""

from __future__ import annotations

import contextlib
import csv
import dataclasses
import io
import re
import warnings
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field
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
from movierec.data.mirror import ML100K_GENRES
from movierec.data.policies import (
    DEFAULT_DUPLICATES,
    DEFAULT_OUT_OF_SCALE,
    DUPLICATE_POLICIES,
    OUT_OF_SCALE_POLICIES,
    REPORT_KEYS,
    apply_scale,
    check_declared_scale,
    check_inferred_scale,
    check_policy,
    resolve_duplicates,
)
from movierec.errors import DataError

COLUMNS = ("user_id", "item_id", "rating", "timestamp")
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
SCAN_CHUNK = 1 << 22  # bytes per read while looking for NUL bytes
PROGRESS_BYTES = 64 << 20  # text files from this size show a reading bar (when asked to)
# Leading bytes of files people mistake for ratings text.
MAGIC = (
    (b"PK\x03\x04", "a zip archive; extract it first and pass the extracted file or folder"),
    (b"\x1f\x8b", "gzip-compressed; decompress it first"),
    (b"PAR1", "a Parquet file; give it a .parquet suffix"),
    (b"\x89PNG", "a PNG image, not ratings"),
    (b"\xff\xfe", "UTF-16 text; convert it to UTF-8"),
    (b"\xfe\xff", "UTF-16 text; convert it to UTF-8"),
)
PARSER_FIELDS = re.compile(r"Expected (\d+) fields in line (\d+), saw (\d+)")


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
        rating_scale: (lowest, highest) possible rating: the declared ``rating_scale`` if one
            was given, else (1, 5) for ml-100k/ml-1m, (0.5, 5) for ml-10m and the CSV family,
            the data's (min, max) for a generic file.
        source: The folder or file read.
        report: What reading did, as counts: ``rows_read`` (rating rows parsed),
            ``duplicates_resolved`` (rows merged away by the duplicates policy),
            ``out_of_scale_clipped`` and ``out_of_scale_dropped``. Empty when the data was not
            read from a file.
    """

    name: str
    ratings: pd.DataFrame
    items: pd.DataFrame | None
    users: pd.DataFrame | None
    layout: str
    rating_scale: tuple[float, float]
    source: Path
    report: dict[str, int] = field(default_factory=dict)


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
    checked: bool = False,
    progress: bool = False,
) -> pd.DataFrame:
    """``pd.read_csv`` with the C engine; ``::`` rewritten first; errors become DataError.

    ``checked``: the caller has already run :func:`_check_text` on ``path``. ``progress``: show
    a bar of the bytes parsed on stderr when the file has at least :data:`PROGRESS_BYTES`.
    """
    if not checked:
        _check_file(path)
        _check_text(path)
    source: Any = path
    given_sep = sep
    if sep == "::":
        source = io.BytesIO(path.read_bytes().replace(b"::", DAT_SEP.encode()))
        sep = DAT_SEP
    try:
        with warnings.catch_warnings(), _progress_source(source, path, progress) as source:
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
        expected = len(names) if names is not None else None
        raise DataError(_too_many_fields(path, given_sep, expected)) from err
    except UnicodeDecodeError as err:
        raise DataError(_decode_error(path, encoding, err)) from err
    except pd.errors.EmptyDataError as err:
        raise DataError(f"{path} has no data rows; it is empty") from err
    except pd.errors.ParserError as err:
        if match := PARSER_FIELDS.search(str(err)):
            expected_count, line, seen = match.groups()
            raise DataError(
                f"{path}: line {line} has {seen} fields, expected {expected_count} like the "
                f"lines before it; each line needs the same fields (is a field quoted badly?)"
            ) from err
        raise DataError(f"cannot parse {path}: {_first_line(err)}") from err
    except (ValueError, OSError) as err:
        raise DataError(f"cannot parse {path}: {_first_line(err)}") from err


@contextlib.contextmanager
def _progress_source(source: Path | io.BytesIO, path: Path, show: bool) -> Iterator[Any]:
    """``source`` as pandas should read it: itself, or (``show``, and a file of at least
    :data:`PROGRESS_BYTES`) a buffered reader that advances a bar of the bytes read on stderr.

    pandas' C parser pulls a file object in blocks, so the bar costs one update per block and
    the parse (its speed, results and errors) stays exactly that of reading the path.
    """
    size = path.stat().st_size
    if not show or size < PROGRESS_BYTES:
        yield source
        return
    from tqdm.auto import tqdm

    with (
        tqdm(
            total=size,
            desc=f"reading {path.name}",
            unit="B",
            unit_scale=True,
            unit_divisor=1024,
            leave=False,
        ) as bar,
        source if isinstance(source, io.BytesIO) else path.open("rb") as raw,
    ):
        yield io.BufferedReader(_CountingReader(raw, bar.update), buffer_size=1 << 20)


class _CountingReader(io.RawIOBase):
    """A binary stream that reports how many bytes each read returned (for a progress bar)."""

    def __init__(self, raw: Any, advance: Any) -> None:
        super().__init__()
        self._raw, self._advance = raw, advance

    def readable(self) -> bool:
        return True

    def readinto(self, buffer: Any) -> int:
        count = self._raw.readinto(buffer) or 0
        self._advance(count)
        return count


def _check_text(path: Path) -> None:
    """Refuse a file that is not text: known binary formats by their first bytes, and any
    NUL byte (never in UTF-8 or latin-1 ratings text), with the line it is on."""
    with path.open("rb") as handle:
        chunk = handle.read(SCAN_CHUNK)
        for magic, what in MAGIC:
            if chunk.startswith(magic):
                raise DataError(f"{path} is not a ratings text file: it is {what}")
        offset = 0
        while chunk:
            if (at := chunk.find(b"\x00")) >= 0:
                line = _line_at(path, offset + at)
                raise DataError(
                    f"{path}: line {line} holds a NUL byte (byte {offset + at:,}); this is "
                    f"binary data, not ratings text. Pass the right file, or re-export it as "
                    f"UTF-8 text"
                )
            offset += len(chunk)
            chunk = handle.read(SCAN_CHUNK)


def _line_at(path: Path, offset: int) -> int:
    """The 1-based line holding byte ``offset`` of ``path`` (error path only)."""
    with path.open("rb") as handle:
        return handle.read(offset).count(b"\n") + 1


def _decode_error(path: Path, encoding: str, err: UnicodeDecodeError) -> str:
    """Where the first undecodable byte of ``path`` is; pandas' offset is within a chunk."""
    data = path.read_bytes()
    try:
        data.decode(encoding)
        start, reason = err.start, err.reason
    except UnicodeDecodeError as full:
        start, reason = full.start, full.reason
    line = data.count(b"\n", 0, start) + 1
    return (
        f"{path}: line {line} is not {encoding} text ({reason} at byte {start:,}); convert the "
        f"file to {encoding}, or check that it is a ratings file at all"
    )


def _fields_per_line(path: Path, sep: str) -> np.ndarray:
    """Fields on each physical line of ``path`` (quotes ignored; error path only)."""
    data = path.read_bytes()
    if sep == "::":
        data = data.replace(b"::", DAT_SEP.encode())
        sep = DAT_SEP
    raw = np.frombuffer(data, dtype=np.uint8)
    newlines = np.flatnonzero(raw == ord("\n"))
    seps = np.flatnonzero(raw == ord(sep))
    return np.bincount(np.searchsorted(newlines, seps), minlength=len(newlines) + 1) + 1


def _too_many_fields(path: Path, sep: str, expected: int | None) -> str:
    hint = "each line needs exactly the same fields"
    if len(sep) == 1 or sep == "::":
        counts = _fields_per_line(path, sep)
        if expected is None:  # a header: the first non-blank line's count
            expected = int(counts[0])
        longer = np.flatnonzero(counts > expected)
        if len(longer):
            line = int(longer[0])
            return (
                f"{path}: line {line + 1} has {int(counts[line])} fields, more than the "
                f"{expected} expected; {hint}"
            )
    wanted = f"the {expected} fields expected" if expected else "the header's fields"
    return f"{path}: some lines have more than {wanted}; {hint}"


def _separator_hint(path: Path, expected: str) -> str:
    """``"; the file seems to use comma ..."`` when its first line is split by another one."""
    try:
        found = sniff_separator(_first_line_of(path))
    except DataError:
        return ""
    if found is None or found == expected:
        return ""
    return (
        f"; its first line seems to use {SEP_NAMES[found]} between fields, not "
        f"{SEP_NAMES.get(expected, repr(expected))}: is it the wrong file or separator?"
    )


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


def _ids(
    values: pd.Series, what: str, path: Path, line_offset: int, *, integer: bool = False
) -> pd.Series:
    """int64 if every ID is an integer, str otherwise; missing IDs are an error, and so are
    non-integer IDs when ``integer`` (MovieLens files)."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{path}: {what} is missing on {_where(path, line_offset, missing)}; every rating "
            f"needs a user and an item"
        )
    if pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return values.astype(np.int64)
    if pd.api.types.is_numeric_dtype(values.dtype) or integer:
        numbers = pd.to_numeric(values, errors="coerce")
        if pd.api.types.is_integer_dtype(numbers.dtype):
            return numbers.astype(np.int64)
        floats = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(floats) | (np.mod(floats, 1) != 0) | (np.abs(floats) >= 2.0**63)
        if not bad.any():
            return pd.Series(floats.astype(np.int64), index=values.index, name=values.name)
        if integer:
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: {what} on {_where(path, line_offset, bad)} is {_show(values.iloc[row])}, "
                f"not an integer; MovieLens IDs are whole numbers, so the line is corrupt or "
                f"this is not a MovieLens file"
            )
    return values.astype(str)


def _show(value: Any) -> str:
    """A value from a file for a message: numpy scalars as plain Python, strings quoted."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def _where(path: Path, line_offset: int, bad: np.ndarray) -> str:
    """Where the first True of ``bad`` is: a line of a text file or a row of a Parquet file."""
    return _locate(path, line_offset, int(np.flatnonzero(bad)[0]))


def _locate(path: Path, line_offset: int, row: int) -> str:
    """Row ``row`` (0-based, in file order) as a person finds it: a line, or a Parquet row and
    its row group."""
    if _is_parquet(path):
        return f"row {row + 1}{_row_group(path, row)}"
    return f"line {row + 1 + line_offset}"


def _row_group(path: Path, row: int) -> str:
    try:
        import pyarrow.parquet as pq

        metadata = pq.ParquetFile(path).metadata
        ends = np.cumsum([metadata.row_group(g).num_rows for g in range(metadata.num_row_groups)])
    except Exception:  # only decorates a message that is already being raised
        return ""
    group = int(np.searchsorted(ends, row, side="right"))
    return f" (row group {group})" if group < len(ends) else ""


def _ratings_column(values: pd.Series, path: Path, line_offset: int) -> pd.Series:
    if pd.api.types.is_float_dtype(values.dtype) or pd.api.types.is_integer_dtype(values.dtype):
        as_float = values.to_numpy(dtype=np.float64, na_value=np.nan)
    elif pd.api.types.is_numeric_dtype(values.dtype) or pd.api.types.is_string_dtype(values.dtype):
        numbers = pd.to_numeric(values, errors="coerce")
        as_float = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
    else:  # dates, lists, mixed objects
        raise DataError(
            f"{path}: the rating column holds {values.dtype} values, not numbers; name the "
            f"right column with --columns"
        )
    with np.errstate(over="ignore"):
        as_float32 = as_float.astype(np.float32)
    bad = ~np.isfinite(as_float32)
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        value = values.iloc[row]
        shown = "empty or NaN (or the line has too few fields)" if pd.isna(value) else _show(value)
        raise DataError(
            f"{path}: the rating on {_where(path, line_offset, bad)} is {shown}, not a finite "
            f"number; fix or remove that line"
        )
    return pd.Series(as_float32, index=values.index, name="rating")


def _timestamps(values: pd.Series | None, n: int, path: Path, line_offset: int) -> pd.Series:
    """int64 unix seconds from numbers or dates (naive dates are UTC); zeros when absent."""
    if values is None:
        return pd.Series(np.zeros(n, dtype=np.int64))
    if pd.api.types.is_integer_dtype(values.dtype) and not values.hasnans:
        return values.astype(np.int64)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        as_float = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(as_float)
        if bad.any():
            raise DataError(
                f"{path}: the timestamp on {_where(path, line_offset, bad)} is missing; fill it "
                f"or drop the timestamp column"
            )
        if (huge := np.abs(as_float) >= 2.0**63).any():
            raise DataError(
                f"{path}: the timestamp on {_where(path, line_offset, huge)} is too large for "
                f"unix seconds; fix that line"
            )
        return pd.Series(np.floor(as_float).astype(np.int64), index=values.index)
    try:
        # ISO 8601 is parsed fast and vectorised; only what it misses is parsed per element.
        dates = pd.to_datetime(values, utc=True, errors="coerce", format="ISO8601")
        if (missed := dates.isna() & values.notna()).any():
            dates[missed] = pd.to_datetime(
                values[missed], utc=True, errors="coerce", format="mixed"
            )
    except (ValueError, TypeError, OverflowError) as err:
        raise DataError(f"{path}: cannot read the timestamps as dates: {_first_line(err)}") from err
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
    frame: pd.DataFrame,
    sources: dict[str, str | None],
    path: Path,
    line_offset: int,
    *,
    integer_ids: bool = False,
) -> pd.DataFrame:
    """The four canonical columns from ``frame``'s columns named in ``sources``."""
    if frame.empty:
        has = "a header but no ratings" if line_offset else "no ratings"
        raise DataError(f"{path} has {has}")
    stamp = sources.get("timestamp")
    users, items = frame[sources["user_id"]], frame[sources["item_id"]]
    return _frame_of(
        _ids(users, "the user ID", path, line_offset, integer=integer_ids),
        _ids(items, "the item ID", path, line_offset, integer=integer_ids),
        _ratings_column(frame[sources["rating"]], path, line_offset),
        _timestamps(frame[stamp] if stamp else None, len(frame), path, line_offset),
    )


def _frame_of(*columns: pd.Series | np.ndarray) -> pd.DataFrame:
    """The canonical frame (fresh RangeIndex) from its four columns, without copying them.

    pandas' default would consolidate the three int64 columns into one new block: a 600 MB copy
    and about a second for 25M ratings.
    """
    arrays = [values if isinstance(values, np.ndarray) else _plain(values) for values in columns]
    return pd.DataFrame(dict(zip(COLUMNS, arrays, strict=True)), copy=False)


def _plain(values: pd.Series) -> Any:
    """A Series' values without its index: the numpy array, or the extension array (str)."""
    return values.to_numpy() if isinstance(values.dtype, np.dtype) else values.array


def _check_fields(frame: pd.DataFrame, path: Path, needed: int, example: str) -> None:
    """ML files have a fixed field count; short lines are read as NaN in the last column."""
    short = frame.iloc[:, needed - 1].isna().to_numpy()
    if short.any():
        sep = "\t" if "<TAB>" in example else "::" if "::" in example else "|"
        raise DataError(
            f"{path}: {_where(path, 0, short)} has fewer than {needed} fields; each line should "
            f"be {example}{_separator_hint(path, sep)}"
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
    line_offset: int = 0,
) -> pd.DataFrame:
    """The items frame; ``year`` from the title's last "(YYYY)", else from ``year_from``."""
    titles = titles.fillna("").astype(str)
    return pd.DataFrame(
        {
            "item_id": _ids(ids, "the item ID", path, line_offset, integer=True).to_numpy(),
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
    ratings = _canonical(raw, dict(zip(COLUMNS, COLUMNS, strict=True)), path, 0, integer_ids=True)
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
            "user_id": _ids(raw["user_id"], "the user ID", path, 0, integer=True).to_numpy(),
            "age": pd.to_numeric(raw["age"], errors="coerce").astype("Int64").array,
            "gender": raw["gender"].to_numpy(),
            "occupation": raw["occupation"].to_numpy(),
            "zip_code": raw["zip_code"].to_numpy(),
        }
    ).astype({"gender": "str", "occupation": "str", "zip_code": "str"})


def _read_dat(
    folder: Path, movies_encoding: str, progress: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame | None, pd.DataFrame | None]:
    """ml-1m and ml-10m: ``::``-separated ratings, movies and (1m only) users."""
    path = folder / "ratings.dat"
    raw = _read_text(path, sep="::", names=COLUMNS, quoting=csv.QUOTE_NONE, progress=progress)
    _check_fields(raw, path, 4, "UserID::MovieID::Rating::Timestamp")
    ratings = _canonical(raw, dict(zip(COLUMNS, COLUMNS, strict=True)), path, 0, integer_ids=True)
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
            raw_items["item_id"],
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


def _read_ml_csv(
    folder: Path, progress: bool = False
) -> tuple[pd.DataFrame, pd.DataFrame | None, None]:
    """ml-20m/25m/32m/latest/latest-small: ``ratings.csv`` and ``movies.csv`` with headers."""
    path = folder / "ratings.csv"
    raw = _read_text(path, sep=",", header=0, progress=progress)
    expected = ["userId", "movieId", "rating", "timestamp"]
    if list(raw.columns[:4]) != expected:
        raise DataError(
            f"{path} has columns {list(map(str, raw.columns))}, expected {expected}; is it a "
            f"MovieLens ratings.csv? Otherwise read it as a ratings file"
            f"{_separator_hint(path, ',')}"
        )
    ratings = _canonical(raw, dict(zip(COLUMNS, expected, strict=True)), path, 1, integer_ids=True)
    items = None
    if (movie_path := folder / "movies.csv").is_file():
        raw_items = _read_text(movie_path, sep=",", header=0, dtype=str)
        missing = {"movieId", "title", "genres"} - set(raw_items.columns)
        if missing:
            raise DataError(f"{movie_path} lacks the columns {sorted(missing)}")
        items = _items(
            raw_items["movieId"],
            raw_items["title"],
            raw_items["genres"],
            movie_path,
            line_offset=1,
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


def read_movielens(
    directory: Path,
    *,
    duplicates: str = DEFAULT_DUPLICATES,
    rating_scale: tuple[float, float] | None = None,
    out_of_scale: str = DEFAULT_OUT_OF_SCALE,
    progress: bool = False,
) -> RatingsData:
    """Read a MovieLens folder, whichever release it is.

    Args:
        directory: The extracted folder (``ml-100k``), or a folder holding just that one.
        duplicates: What to do with repeated (user, item) pairs: ``"keep-last"`` (default),
            ``"mean"`` or ``"error"``; see :mod:`movierec.data.policies`.
        rating_scale: ``(min, max)`` overriding the release's own scale ((1, 5) or (0.5, 5)).
        out_of_scale: What to do with ratings outside the scale: ``"error"`` (default),
            ``"clip"`` or ``"drop"``.
        progress: Show a bar on stderr while a large ratings file (ml-10m and up) is parsed.

    Returns:
        The ratings with item metadata (and user metadata for ml-100k and ml-1m), and in
        ``report`` the counts of what the policies did.

    Raises:
        DataError: The folder does not exist, holds no MovieLens ratings file, a file in it
            cannot be read, an ID is not an integer, a rating is not a finite number, or a
            policy set to ``"error"`` applies.
    """
    declared = _check_options(duplicates, rating_scale, out_of_scale)
    directory = Path(directory).expanduser()
    if not directory.exists():
        raise DataError(f"{directory} does not exist; check the path")
    if not directory.is_dir():
        raise DataError(f"{directory} is not a folder; to read a ratings file use the file path")
    folder = find_ratings_folder(directory)
    if folder is None:
        from movierec.data.netflix import find_netflix_folder, read_netflix  # imports this module

        if find_netflix_folder(directory) is not None:
            return read_netflix(
                directory,
                duplicates=duplicates,
                rating_scale=rating_scale,
                out_of_scale=out_of_scale,
            )
        raise DataError(
            f"{directory} holds no MovieLens ratings file ({', '.join(RATINGS_FILES)}), nor "
            f"a single subfolder with one; pass the extracted MovieLens folder or a ratings file"
        )
    with _guard(folder):
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
        ratings, scale, report = _apply_policies(
            ratings, path, offset, declared or scale, duplicates, out_of_scale
        )
    return RatingsData(
        _dataset_name(folder, directory), ratings, items, users, layout, scale, folder, report
    )


def _check_options(
    duplicates: str, rating_scale: tuple[float, float] | None, out_of_scale: str
) -> tuple[float, float] | None:
    """Validate the policy options before any file is read; the declared scale as floats."""
    check_policy("duplicates", duplicates, DUPLICATE_POLICIES)
    check_policy("out_of_scale", out_of_scale, OUT_OF_SCALE_POLICIES)
    return check_declared_scale(rating_scale)


def _apply_policies(
    ratings: pd.DataFrame,
    path: Path,
    line_offset: int,
    scale: tuple[float, float] | None,
    duplicates: str,
    out_of_scale: str,
) -> tuple[pd.DataFrame, tuple[float, float], dict[str, int]]:
    """The scale policy, then the duplicates policy, vectorised; their counts.

    ``scale`` is the declared or layout scale, or None to infer it from the data (which must
    then make sense, see :func:`~movierec.data.policies.check_inferred_scale`).
    """

    def locate(row: int) -> str:
        return _locate(path, line_offset, row)

    report = dict.fromkeys(REPORT_KEYS, 0)
    report["rows_read"] = len(ratings)
    if scale is None:
        scale = check_inferred_scale(ratings["rating"].to_numpy(), str(path), locate)
    else:
        ratings, clipped, dropped = apply_scale(ratings, scale, out_of_scale, str(path), locate)
        report["out_of_scale_clipped"], report["out_of_scale_dropped"] = clipped, dropped
    ratings, report["duplicates_resolved"] = resolve_duplicates(
        ratings, duplicates, str(path), locate
    )
    return ratings, scale, report


@contextlib.contextmanager
def _guard(path: Path) -> Iterator[None]:
    """Turn what pandas, numpy or pyarrow raise on odd content into a DataError naming ``path``;
    the specific checks above catch what they can with a line number first."""
    try:
        yield
    except DataError:
        raise
    except (
        ValueError,
        TypeError,
        OverflowError,
        KeyError,
        IndexError,
        OSError,
        csv.Error,
    ) as err:
        raise DataError(f"cannot read {path}: {_first_line(err)}") from err


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
    try:
        return next(csv.reader([line], delimiter=sep))
    except csv.Error:  # a stray carriage return or quote: the parser will say where
        return line.split(sep)


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
    path: Path,
    columns: Sequence[str] | None = None,
    sep: str | None = None,
    *,
    duplicates: str = DEFAULT_DUPLICATES,
    rating_scale: tuple[float, float] | None = None,
    out_of_scale: str = DEFAULT_OUT_OF_SCALE,
    progress: bool = False,
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
        duplicates: What to do with repeated (user, item) pairs: ``"keep-last"`` (default),
            ``"mean"`` or ``"error"``; see :mod:`movierec.data.policies`.
        rating_scale: The declared ``(min, max)``; None infers it from the data, which must
            then make sense (not all equal, some rating above 0, none beyond ±1e6).
        out_of_scale: What to do with ratings outside a declared scale: ``"error"`` (default),
            ``"clip"`` or ``"drop"``.
        progress: Show a bar on stderr while a large text file (64 MiB and up) is parsed.

    Returns:
        The ratings (no item or user metadata); ``rating_scale`` is the declared scale or the
        data's (min, max); ``report`` counts what the policies did.

    Raises:
        DataError: The file is missing, empty, binary or unreadable, a column cannot be found,
            a rating is not a finite number, the scale makes no sense, or a policy set to
            ``"error"`` applies.
    """
    declared = _check_options(duplicates, rating_scale, out_of_scale)
    path = Path(path).expanduser()
    _check_file(path)
    _check_columns_arg(columns)
    with _guard(path):
        if _is_parquet(path):
            ratings, line_offset = _read_parquet(path, columns), 0
        else:
            frame, columns, line_offset = _read_generic(path, columns, sep, progress)
            frame.columns = [str(c) for c in frame.columns]
            sources = _match_columns(list(frame.columns), columns, path)
            ratings = _canonical(frame, sources, path, line_offset)
            del frame  # the parsed text columns: as large again as the ratings
        ratings, scale, report = _apply_policies(
            ratings, path, line_offset, declared, duplicates, out_of_scale
        )
    return RatingsData(path.stem, ratings, None, None, "ratings-file", scale, path, report)


def _read_generic(
    path: Path, columns: Sequence[str] | None, sep: str | None, progress: bool = False
) -> tuple[pd.DataFrame, Sequence[str] | None, int]:
    """The raw frame of a generic text file, the columns to match, and the lines before row 1."""
    _check_text(path)
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
        frame = _read_text(path, sep=sep, header=0, checked=True, progress=progress)
        line_offset = 1
        if len(frame.columns) == 1 and columns is None:
            raise DataError(
                f"{path}: line 1 has a single field {first[:80]!r}; need user, item and "
                f"rating fields{_separator_hint(path, sep)}"
            )
    else:
        if len(fields) < 3:
            raise DataError(
                f"{path}: line 1 has {len(fields)} fields; need at least 3 (user, item, "
                f"rating){_separator_hint(path, sep)}"
            )
        names = list(columns) if columns else list(COLUMNS[: min(len(fields), 4)])
        names += [f"column_{i + 1}" for i in range(len(names), len(fields))]
        frame = _read_text(path, sep=sep, names=names, header=None, checked=True, progress=progress)
        line_offset = 0
        if columns is None:
            columns = names[: min(len(fields), 4)]
    return frame, columns, line_offset


def _read_parquet(path: Path, columns: Sequence[str] | None) -> pd.DataFrame:
    """The canonical ratings of a Parquet file, reading only the columns they come from.

    Clean columns (integer IDs and timestamps, numeric ratings, no nulls) go from Arrow to numpy
    with one copy each and are checked with numpy; any other column goes through pandas and the
    same checks as text files, which also word every error.
    """
    import pyarrow as pa
    import pyarrow.parquet as pq

    try:
        schema = pq.read_schema(path)
        hidden = _pandas_index_columns(schema)
        names = [str(name) for name in schema.names if name not in hidden]
        sources = _match_columns(names, columns, path)
        wanted = list(dict.fromkeys(name for name in sources.values() if name is not None))
        table = pq.read_table(path, columns=wanted)
    except (pa.lib.ArrowException, OSError, ValueError, TypeError) as err:
        raise DataError(
            f"cannot read {path} as Parquet ({_first_line(err)}); is it a complete Parquet file?"
        ) from err
    if table.num_rows == 0:
        raise DataError(f"{path} has no ratings")
    n = table.num_rows
    converted: dict[str, pd.Series | np.ndarray] = {}
    for role in COLUMNS:
        name = sources.get(role)
        if name is None:  # no timestamp column
            converted[role] = _timestamps(None, n, path, 0)
            continue
        fast = _arrow_ratings if role == "rating" else _arrow_ints
        values = fast(table.column(name))
        if values is None:  # anything unusual: pandas, the text files' checks and messages
            series = table.select([name]).to_pandas()[name]
            if role == "rating":
                values = _ratings_column(series, path, 0)
            elif role == "timestamp":
                values = _timestamps(series, n, path, 0)
            else:
                what = "the user ID" if role == "user_id" else "the item ID"
                values = _ids(series, what, path, 0)
        converted[role] = values
        if name not in [sources.get(later) for later in COLUMNS[COLUMNS.index(role) + 1 :]]:
            table = table.drop_columns([name])  # frees Arrow's copy of the column now
    del table
    # Arrow's allocator keeps freed pages for reuse (about 500 MB after 25M ratings): give them
    # back, since nothing else here allocates through it.
    pa.default_memory_pool().release_unused()
    return _frame_of(*(converted[role] for role in COLUMNS))


def _pandas_index_columns(schema: Any) -> set[str]:
    """Columns pandas wrote for a frame's index (``__index_level_0__``): not ratings data."""
    metadata = schema.pandas_metadata or {}
    return {name for name in metadata.get("index_columns", []) if isinstance(name, str)}


def _arrow_ints(column: Any) -> np.ndarray | None:
    """An Arrow integer column without nulls as int64 (one copy); None for anything else."""
    import pyarrow as pa

    if not pa.types.is_integer(column.type) or column.null_count:
        return None
    return np.asarray(column.to_numpy()).astype(np.int64, copy=False)


def _arrow_ratings(column: Any) -> np.ndarray | None:
    """An Arrow numeric column without nulls as finite float32, converted the way
    :func:`_ratings_column` converts; None for anything else, or when a value is not finite
    (then the slow path says where)."""
    import pyarrow as pa

    kind = column.type
    if not (pa.types.is_integer(kind) or pa.types.is_floating(kind)) or column.null_count:
        return None
    values = np.asarray(column.to_numpy())
    if pa.types.is_integer(kind):
        values = values.astype(np.float64)  # then float32, exactly as the slow path rounds
    with np.errstate(over="ignore"):
        values = values.astype(np.float32, copy=False)
    return values if bool(np.isfinite(values).all()) else None


# --- one entry point -----------------------------------------------------------------------------


def load_data(
    spec: str,
    *,
    columns: Sequence[str] | None = None,
    progress: bool = True,
    duplicates: str = DEFAULT_DUPLICATES,
    rating_scale: tuple[float, float] | None = None,
    out_of_scale: str = DEFAULT_OUT_OF_SCALE,
) -> RatingsData:
    """Load a catalogue dataset (fetching it if needed), a MovieLens folder, or a ratings file.

    Args:
        spec: A catalogue name (``"ml-100k"``), a folder, or a file.
        columns: For a ratings file: names of its user, item, rating[, timestamp] columns.
        progress: Show a download progress bar on stderr if the dataset must be fetched, and
            a reading bar while a large text file is parsed.
        duplicates: Repeated (user, item) pairs: ``"keep-last"`` (default), ``"mean"`` or
            ``"error"``.
        rating_scale: The declared ``(min, max)``; None uses the MovieLens release's scale, or
            infers it from a ratings file.
        out_of_scale: Ratings outside the scale: ``"error"`` (default), ``"clip"`` or
            ``"drop"``.

    Returns:
        The dataset in the canonical schema; ``report`` counts what the policies did.

    Raises:
        DataError: ``spec`` is none of these, the data cannot be read or fetched, or a policy
            set to ``"error"`` applies.
    """
    policies: dict[str, Any] = {
        "duplicates": duplicates,
        "rating_scale": rating_scale,
        "out_of_scale": out_of_scale,
    }
    _check_options(duplicates, rating_scale, out_of_scale)
    text = str(spec)
    if text in CATALOGUE:
        result = fetch(text, progress=progress)
        data = read_movielens(result.path, progress=progress, **policies)
        return dataclasses.replace(data, name=text)
    path = Path(text).expanduser()
    if path.is_dir():
        return read_movielens(path, progress=progress, **policies)
    if path.is_file():
        return read_ratings_file(path, columns=columns, progress=progress, **policies)
    raise DataError(
        f"{text!r} is neither a dataset name (known: {known_names()}) nor a file or directory"
    )
