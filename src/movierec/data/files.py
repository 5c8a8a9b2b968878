"""Generic ratings files: delimited text (CSV, TSV, ``::``, semicolon, pipe) or Parquet, and
ratings already in a pandas DataFrame.

- :func:`read_ratings_file`: the separator sniffed from the first line, a header detected, the
  user, item, rating and timestamp columns found by common names (or named with ``columns``).
- :func:`read_frame`: a DataFrame through the same column matching, dtype checks and
  :class:`~movierec.data.policies.DataPolicy` as a file, its rows named by position.
- :func:`match_columns`: which column holds which role, by common names or as named (the item
  and user metadata readers use it too).

Parquet reads only the columns it needs, and clean columns (integer IDs and timestamps, numeric
ratings, no nulls) go from Arrow to numpy with one copy each; anything else takes the text files'
pandas path and checks.
"""

from __future__ import annotations

import csv
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.parsing import (
    FRAME,
    check_file,
    check_text,
    first_error_line,
    first_text_line,
    guard,
    is_parquet,
    read_text,
    row_locator,
    separator_hint,
    sniff_separator,
)
from movierec.data.policies import DataPolicy, apply_policy
from movierec.data.schema import (
    COLUMNS,
    RatingsData,
    canonical_frame,
    canonical_ratings,
    id_column,
    rating_column,
    timestamp_column,
)
from movierec.errors import DataError

ALIASES: dict[str, tuple[str, ...]] = {
    "user_id": ("user", "user_id", "userid", "uid", "customer", "customerid", "customer_id"),
    "item_id": ("item", "item_id", "itemid", "movie", "movie_id", "movieid", "iid"),
    "rating": ("rating", "ratings", "score", "stars"),
    "timestamp": ("timestamp", "time", "date", "ts"),
}


def read_ratings_file(
    path: Path,
    columns: Sequence[str] | None = None,
    sep: str | None = None,
    *,
    policy: DataPolicy | None = None,
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
        policy: Duplicates and the rating scale (default :class:`DataPolicy`); without a
            declared ``rating_scale`` it is inferred from the data, which must then make sense
            (not all equal, some rating above 0, none beyond ±1e6).
        progress: Show a bar on stderr while a large text file (64 MiB and up) is parsed.

    Returns:
        The ratings (no item or user metadata); ``rating_scale`` is the declared scale or the
        data's (min, max); ``report`` counts what the policies did.

    Raises:
        DataError: The file is missing, empty, binary or unreadable, a column cannot be found,
            a rating is not a finite number, the scale makes no sense, or a policy set to
            ``"error"`` applies.
    """
    policy = policy if policy is not None else DataPolicy()
    path = Path(path).expanduser()
    check_file(path)
    _check_columns_arg(columns)
    with guard(path):
        if is_parquet(path):
            ratings, line_offset = _read_parquet(path, columns), 0
        else:
            frame, columns, line_offset = _read_generic(path, columns, sep, progress)
            frame.columns = [str(c) for c in frame.columns]
            sources = match_columns(list(frame.columns), columns, path)
            ratings = canonical_ratings(frame, sources, path, line_offset)
            del frame  # the parsed text columns: as large again as the ratings
        ratings, scale, report = apply_policy(
            ratings, policy, str(path), row_locator(path, line_offset)
        )
    return RatingsData(path.stem, ratings, None, None, "ratings-file", scale, path, report)


def read_frame(
    frame: pd.DataFrame,
    columns: Sequence[str] | None = None,
    *,
    policy: DataPolicy | None = None,
    name: str = "dataframe",
) -> RatingsData:
    """Ratings from a DataFrame, checked exactly as a ratings file's columns are.

    Columns are found by the same common names as in a file (``user``/``userId``...,
    ``item``/``movieId``..., ``rating``/``score``..., ``timestamp``/``date``...) or named by
    ``columns`` in the order user, item, rating[, timestamp]; datetime columns become unix
    seconds. Errors name the row by position (``row 3 (iloc 2)``).

    Args:
        frame: One rating per row; other columns are ignored. Not modified.
        columns: Names of the user, item, rating and (optional) timestamp columns.
        policy: Duplicates and the rating scale (default :class:`DataPolicy`); without a
            declared ``rating_scale`` it is inferred from the data, as for a file.
        name: The dataset's name in run records.

    Returns:
        The ratings in the canonical schema (layout ``"dataframe"``, no metadata).

    Raises:
        DataError: ``frame`` is not a DataFrame or has no rows, a column is missing or named
            twice, an ID is missing, a rating is not a finite number, the scale makes no sense,
            or a policy set to ``"error"`` applies.
    """
    policy = policy if policy is not None else DataPolicy()
    if not isinstance(frame, pd.DataFrame):
        raise DataError(
            f"expected ratings as a pandas DataFrame (or a dataset name or path), got "
            f"{type(frame).__name__}"
        )
    _check_columns_arg(columns)
    sources = match_columns([str(c) for c in frame.columns], columns, FRAME)
    # The matched columns by position: a frame's labels need not be strings.
    labels = {str(c): c for c in frame.columns}
    picked = pd.DataFrame(
        {role: frame[labels[src]] for role, src in sources.items() if src is not None}, copy=False
    )
    roles = {role: (role if src is not None else None) for role, src in sources.items()}
    with guard(FRAME):
        ratings = canonical_ratings(picked, roles, FRAME, 0)
        ratings, scale, report = apply_policy(ratings, policy, str(FRAME), row_locator(FRAME, 0))
    return RatingsData(name, ratings, None, None, "dataframe", scale, FRAME, report)


def _read_generic(
    path: Path, columns: Sequence[str] | None, sep: str | None, progress: bool = False
) -> tuple[pd.DataFrame, Sequence[str] | None, int]:
    """The raw frame of a generic text file, the columns to match, and the lines before row 1."""
    check_text(path)
    first = first_text_line(path)
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
        frame = read_text(path, sep=sep, header=0, checked=True, progress=progress)
        line_offset = 1
        if len(frame.columns) == 1 and columns is None:
            raise DataError(
                f"{path}: line 1 has a single field {first[:80]!r}; need user, item and "
                f"rating fields{separator_hint(path, sep)}"
            )
    else:
        if len(fields) < 3:
            raise DataError(
                f"{path}: line 1 has {len(fields)} fields; need at least 3 (user, item, "
                f"rating){separator_hint(path, sep)}"
            )
        names = list(columns) if columns else list(COLUMNS[: min(len(fields), 4)])
        names += [f"column_{i + 1}" for i in range(len(names), len(fields))]
        frame = read_text(path, sep=sep, names=names, header=None, checked=True, progress=progress)
        line_offset = 0
        if columns is None:
            columns = names[: min(len(fields), 4)]
    return frame, columns, line_offset


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


RATINGS_HINT = (
    "; name them with --columns user,item,rating[,timestamp] (columns=[...] in Python), in "
    "that order"
)


def match_columns(
    seen: Sequence[str],
    columns: Sequence[str] | None,
    path: Path,
    *,
    aliases: dict[str, tuple[str, ...]] = ALIASES,
    required: int = 3,
    hint: str = RATINGS_HINT,
) -> dict[str, str | None]:
    """Which of ``seen`` holds each role of ``aliases`` (ratings: user, item, rating and
    timestamp), by the roles' common names case-insensitively, or by ``columns`` in role order.

    Args:
        seen: The column names there are.
        columns: The names given for the roles, in order; None: find them by ``aliases``.
        path: The file (or :data:`~movierec.data.parsing.FRAME`), for messages.
        aliases: Role -> the names it goes by, in the order of the roles.
        required: The first ``required`` roles must be found; the rest map to None if absent.
        hint: How to name the columns, appended to a message.

    Raises:
        DataError: Two columns differ only in case or spaces, a given name is not a column,
            or a required role is found under none of its names.
    """
    lower: dict[str, str] = {}
    for name in map(str, seen):
        if (key := name.strip().lower()) in lower:
            raise DataError(
                f"{path} has two columns named {lower[key]!r} and {name!r}; rename or drop one "
                f"so each column is found once"
            )
        lower[key] = name
    roles = list(aliases)
    found: dict[str, str | None] = dict.fromkeys(roles)
    if columns is not None:
        for role, wanted in zip(roles, columns, strict=False):
            key = str(wanted).strip().lower()
            if key not in lower:
                raise DataError(
                    f"{path} has no column {wanted!r} (given for {role}); its columns are "
                    f"{list(map(str, seen))}{hint}"
                )
            found[role] = lower[key]
        return found
    for role, names in aliases.items():
        found[role] = next((lower[a] for a in names if a in lower), None)
    lacking = [role for role in roles[:required] if found[role] is None]
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
        sources = match_columns(names, columns, path)
        wanted = list(dict.fromkeys(name for name in sources.values() if name is not None))
        table = pq.read_table(path, columns=wanted)
    except DataError:  # a column not found: already worded (DataError is a ValueError)
        raise
    except (pa.lib.ArrowException, OSError, ValueError, TypeError) as err:
        raise DataError(
            f"cannot read {path} as Parquet ({first_error_line(err)}); is it a complete "
            f"Parquet file?"
        ) from err
    if table.num_rows == 0:
        raise DataError(f"{path} has no ratings")
    n = table.num_rows
    converted: dict[str, pd.Series | np.ndarray] = {}
    for role in COLUMNS:
        name = sources.get(role)
        if name is None:  # no timestamp column
            converted[role] = timestamp_column(None, n, path, 0)
            continue
        fast = _arrow_ratings if role == "rating" else _arrow_ints
        values = fast(table.column(name))
        if values is None:  # anything unusual: pandas, the text files' checks and messages
            series = table.select([name]).to_pandas()[name]
            if role == "rating":
                values = rating_column(series, path, 0)
            elif role == "timestamp":
                values = timestamp_column(series, n, path, 0)
            else:
                what = "the user ID" if role == "user_id" else "the item ID"
                values = id_column(series, what, path, 0)
        converted[role] = values
        if name not in [sources.get(later) for later in COLUMNS[COLUMNS.index(role) + 1 :]]:
            table = table.drop_columns([name])  # frees Arrow's copy of the column now
    del table
    # Arrow's allocator keeps freed pages for reuse (about 500 MB after 25M ratings): give them
    # back, since nothing else here allocates through it.
    pa.default_memory_pool().release_unused()
    return canonical_frame(*(converted[role] for role in COLUMNS))


def _pandas_index_columns(schema: Any) -> set[str]:
    """Columns pandas wrote for a frame's index (``__index_level_0__``): not ratings data."""
    metadata = schema.pandas_metadata or {}
    return {name for name in metadata.get("index_columns", []) if isinstance(name, str)}


def _arrow_ints(column: Any) -> np.ndarray | None:
    """An Arrow integer column without nulls as int64 (one copy); None for anything else."""
    import pyarrow as pa
    import pyarrow.compute as pc

    if not pa.types.is_integer(column.type) or column.null_count:
        return None
    if pa.types.is_uint64(column.type) and len(column) and pc.max(column).as_py() >> 63:
        return None  # int64 would wrap it: the checks of id_column / timestamp_column decide
    return np.asarray(column.to_numpy()).astype(np.int64, copy=False)


def _arrow_ratings(column: Any) -> np.ndarray | None:
    """An Arrow numeric column without nulls as finite float32, converted the way
    :func:`rating_column` converts; None for anything else, or when a value is not finite
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
