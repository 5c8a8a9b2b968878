"""The canonical ratings schema every reader returns, and the conversions into it.

- :class:`RatingsData`: ratings with item and user metadata, the layout, the rating scale and
  what reading did (``report``).
- :data:`COLUMNS`: ``user_id, item_id, rating, timestamp``: raw IDs as int64 when they are all
  integers that fit in it and str otherwise (never wrapped), ratings as float32, timestamps as
  int64 unix seconds (0 when the file has none). Rows keep the file's order: ml-100k's
  canonical u1..u5 folds are ranges of ``u.data`` lines.
- :func:`id_column`, :func:`rating_column`, :func:`timestamp_column`: one raw column in the
  canonical dtype, vectorised, a bad value a :class:`DataError` naming its line.
- :func:`canonical_ratings`, :func:`canonical_frame`: the canonical frame from a parsed frame or
  from four converted columns (without copying them).
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.parsing import FRAMES, first_error_line, locate_first
from movierec.data.policies import DataPolicy
from movierec.errors import DataError

COLUMNS = ("user_id", "item_id", "rating", "timestamp")


@dataclass
class RatingsData:
    """A ratings dataset in the canonical schema, with item and user metadata where present.

    Attributes:
        name: Dataset name (``"ml-100k"``) or the file's stem.
        ratings: ``user_id``, ``item_id`` (int64 or str), ``rating`` (float32), ``timestamp``
            (int64 unix seconds, 0 when absent), one row per rating in file order.
        items: ``item_id``, ``title`` (str), ``year`` (Int64, may be <NA>), ``genres``
            (str, ``"Action|Comedy"``, ``""`` when none), then any other columns of the
            metadata given; None for a generic ratings file with no MovieLens item file beside
            it and no ``items`` given.
        users: ``user_id``, ``age``, ``gender``, ``occupation``, ``zip_code`` for ml-100k and
            ml-1m; None otherwise.
        layout: ``"ml-100k"``, ``"ml-1m"``, ``"ml-10m"``, ``"ml-csv"``, ``"ratings-file"`` or
            ``"dataframe"``.
        rating_scale: (lowest, highest) possible rating: the declared ``rating_scale`` if one
            was given, else (1, 5) for ml-100k/ml-1m, (0.5, 5) for ml-10m and the CSV family,
            the data's (min, max) for a generic file or a DataFrame.
        source: The folder or file read (``the ratings DataFrame`` for a frame).
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

    @classmethod
    def from_frame(
        cls,
        frame: pd.DataFrame,
        *,
        columns: Sequence[str] | None = None,
        policy: DataPolicy | None = None,
        items: pd.DataFrame | str | Path | None = None,
        users: pd.DataFrame | str | Path | None = None,
        item_columns: Sequence[str] | None = None,
    ) -> RatingsData:
        """Ratings from a DataFrame, checked exactly as a ratings file is.

        The same as ``load_data(frame, ...)`` (:func:`movierec.data.loading.load_data`):
        columns found by common names or named by ``columns`` (user, item, rating[,
        timestamp]), the :class:`~movierec.data.policies.DataPolicy` applied, and ``items`` /
        ``users`` (DataFrames or files) attached as metadata.

        Raises:
            DataError: What a ratings file with the same content would raise, rows named by
                position (``row 3 (iloc 2)``).
        """
        from movierec.data.loading import load_data  # loading reads into this class

        return load_data(
            frame,
            columns=columns,
            policy=policy,
            items=items,
            users=users,
            item_columns=item_columns,
            progress=False,
        )


def id_column(
    values: pd.Series, what: str, path: Path, line_offset: int, *, integer: bool = False
) -> pd.Series:
    """int64 if every ID is an integer, str otherwise; missing IDs are an error, and so are
    non-integer IDs when ``integer`` (MovieLens files)."""
    missing = values.isna().to_numpy()
    if missing.any():
        raise DataError(
            f"{path}: {what} is missing on {locate_first(path, line_offset, missing)}; every "
            f"rating needs a user and an item"
        )
    if pd.api.types.is_integer_dtype(values.dtype) or pd.api.types.is_bool_dtype(values.dtype):
        return _as_int64(values, values, what, path, line_offset, integer)
    if pd.api.types.is_numeric_dtype(values.dtype) or integer:
        numbers = pd.to_numeric(values, errors="coerce")
        if pd.api.types.is_integer_dtype(numbers.dtype):
            return _as_int64(numbers, values, what, path, line_offset, integer)
        floats = numbers.to_numpy(dtype=np.float64, na_value=np.nan)
        with np.errstate(invalid="ignore"):
            bad = ~np.isfinite(floats) | (np.mod(floats, 1) != 0) | (np.abs(floats) >= 2.0**63)
        if not bad.any():
            return pd.Series(floats.astype(np.int64), index=values.index, name=values.name)
        if integer:
            row = int(np.flatnonzero(bad)[0])
            raise DataError(
                f"{path}: {what} on {locate_first(path, line_offset, bad)} is "
                f"{_show(values.iloc[row])}, not an integer; MovieLens IDs are whole numbers, so "
                f"the line is corrupt or this is not a MovieLens file"
            )
    return values.astype(str)


INT64_MAX = np.iinfo(np.int64).max


def _as_int64(
    numbers: pd.Series, values: pd.Series, what: str, path: Path, line_offset: int, integer: bool
) -> pd.Series:
    """Integer IDs as int64, unless some do not fit (a uint64 above 2**63 - 1, which a cast
    would wrap to a negative ID that another one may already be): then as text, the digits
    as written, or (``integer``: MovieLens files) a DataError naming the line."""
    if numbers.dtype.kind != "u" or numbers.empty or int(numbers.max()) <= INT64_MAX:
        return numbers.astype(np.int64)
    if integer:
        huge = (numbers > INT64_MAX).to_numpy()
        row = int(np.flatnonzero(huge)[0])
        raise DataError(
            f"{path}: {what} on {locate_first(path, line_offset, huge)} is "
            f"{int(numbers.iloc[row])}, larger than any 64-bit signed integer "
            f"({INT64_MAX}); MovieLens IDs are small whole numbers, so the line is corrupt"
        )
    return numbers.astype(str)


def _show(value: Any) -> str:
    """A value from a file for a message: numpy scalars as plain Python, strings quoted."""
    return repr(value.item() if isinstance(value, np.generic) else value)


def rating_column(values: pd.Series, path: Path, line_offset: int) -> pd.Series:
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
        line = "row" if path in FRAMES else "line"
        shown = _show(value)
        if pd.isna(value):
            shown = "NaN" if path in FRAMES else "empty or NaN (or the line has too few fields)"
        raise DataError(
            f"{path}: the rating on {locate_first(path, line_offset, bad)} is {shown}, not a "
            f"finite number; fix or remove that {line}"
        )
    return pd.Series(as_float32, index=values.index, name="rating")


def timestamp_column(values: pd.Series | None, n: int, path: Path, line_offset: int) -> pd.Series:
    """int64 unix seconds from numbers or dates (naive dates are UTC); zeros when absent."""
    if values is None:
        return pd.Series(np.zeros(n, dtype=np.int64))
    if pd.api.types.is_integer_dtype(values.dtype) and values.dtype.kind == "u":
        values = values.astype(np.float64)  # uint64 beyond int64 is refused below, not wrapped
    if pd.api.types.is_integer_dtype(values.dtype) and not values.hasnans:
        return values.astype(np.int64)
    if pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(values.dtype):
        as_float = values.to_numpy(dtype=np.float64, na_value=np.nan)
        bad = ~np.isfinite(as_float)
        if bad.any():
            raise DataError(
                f"{path}: the timestamp on {locate_first(path, line_offset, bad)} is missing; "
                f"fill it or drop the timestamp column"
            )
        if (huge := np.abs(as_float) >= 2.0**63).any():
            raise DataError(
                f"{path}: the timestamp on {locate_first(path, line_offset, huge)} is too large "
                f"for unix seconds; fix that line"
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
        raise DataError(
            f"{path}: cannot read the timestamps as dates: {first_error_line(err)}"
        ) from err
    bad = dates.isna().to_numpy()
    if bad.any():
        row = int(np.flatnonzero(bad)[0])
        raise DataError(
            f"{path}: the timestamp on {locate_first(path, line_offset, bad)} is "
            f"{values.iloc[row]!r}, neither unix seconds nor a date"
        )
    seconds = (dates - pd.Timestamp(0, tz="UTC")) // pd.Timedelta(seconds=1)
    return seconds.astype(np.int64)


def canonical_ratings(
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
    return canonical_frame(
        id_column(users, "the user ID", path, line_offset, integer=integer_ids),
        id_column(items, "the item ID", path, line_offset, integer=integer_ids),
        rating_column(frame[sources["rating"]], path, line_offset),
        timestamp_column(frame[stamp] if stamp else None, len(frame), path, line_offset),
    )


def canonical_frame(*columns: pd.Series | np.ndarray) -> pd.DataFrame:
    """The canonical frame (fresh RangeIndex) from its four columns, without copying them.

    pandas' default would consolidate the three int64 columns into one new block: a 600 MB copy
    and about a second for 25M ratings.
    """
    arrays = [values if isinstance(values, np.ndarray) else _plain(values) for values in columns]
    return pd.DataFrame(dict(zip(COLUMNS, arrays, strict=True)), copy=False)


def _plain(values: pd.Series) -> Any:
    """A Series' values without its index: the numpy array, or the extension array (str)."""
    return values.to_numpy() if isinstance(values.dtype, np.dtype) else values.array
