"""Item and user metadata from wherever it is: a DataFrame, a file, or beside the ratings.

- :func:`read_items`: titles and genres (and any other columns) from a DataFrame or a file;
  the ID, title and genres columns are found by common names (``item``/``movieId``...,
  ``title``/``name``..., ``genres``/``genre``...) or named by ``columns``. MovieLens' own item
  files (``u.item``, ``movies.dat``, ``movies.csv``) are read by their layouts.
- :func:`read_users`: user metadata (a ``user``/``userId``... column and any others).
- :func:`sibling_items`: the MovieLens item file beside a ratings file, if there is one.
- :func:`with_metadata`: a :class:`~movierec.data.schema.RatingsData` with the metadata given.
- :func:`check_references`: ratings whose item (user) the metadata lacks, counted in the
  report and warned about, or refused.

Every value goes through the ratings readers' checks (:func:`~movierec.data.schema.id_column`,
:func:`~movierec.data.files.match_columns`), and a problem is a :class:`DataError` naming the
file and line, or the frame and row.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.files import ALIASES, match_columns
from movierec.data.movielens import ITEM_FILES, items_frame, read_item_file
from movierec.data.parsing import (
    ITEMS_FRAME,
    USERS_FRAME,
    check_file,
    check_text,
    first_text_line,
    guard,
    is_parquet,
    read_text,
    sniff_separator,
)
from movierec.data.schema import RatingsData, id_column
from movierec.errors import DataError, MovieRecWarning

ITEM_ALIASES: dict[str, tuple[str, ...]] = {
    "item_id": (*ALIASES["item_id"], "id"),  # an item table's own "id" is the item's
    "title": ("title", "name", "movie_title", "item_title"),
    "genres": ("genres", "genre", "categories", "category", "tags"),
}
USER_ALIASES: dict[str, tuple[str, ...]] = {"user_id": ALIASES["user_id"]}
ITEMS_HINT = (
    "; name them with --item-columns id,title[,genres] (item_columns=[...] in Python), in "
    "that order"
)
USERS_HINT = "; name the user ID column with user_columns=[...]"

# What metadata can be given as: a frame, or a path to a file.
Source = pd.DataFrame | str | Path


def read_items(source: Source, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The items frame from a DataFrame or a file.

    Args:
        source: A DataFrame, or a delimited text / Parquet file with a header row; a file named
            ``u.item``, ``movies.dat`` or ``movies.csv`` is read as MovieLens' own (unless
            ``columns`` are given).
        columns: Names of the ID, title and (optional) genres columns; None finds them by
            common names. The title is required, genres are optional.

    Returns:
        ``item_id`` (int64 when every ID is an integer, else str), ``title`` (str), ``year``
        (Int64, from the title's last "(YYYY)"), ``genres`` (str, ``"Action|Comedy"``), then
        the source's other columns as they are.

    Raises:
        DataError: The file cannot be read, a column is missing or named twice, an ID is
            missing, or ``columns`` does not name 2 or 3 columns.
    """
    if columns is not None and not 2 <= len(columns) <= 3:
        raise DataError(
            f"item columns must name 2 or 3 columns (id, title[, genres]), got {list(columns)}"
        )
    if not isinstance(source, pd.DataFrame) and columns is None:
        path = Path(source).expanduser()
        if path.name in ITEM_FILES:
            return read_item_file(path)
    return _items_by_names(source, columns)


def _items_by_names(source: Source, columns: Sequence[str] | None) -> pd.DataFrame:
    """:func:`read_items` for any frame or file with a header (no MovieLens layouts)."""
    frame, path, offset = _frame_of(source, ITEMS_FRAME)
    with guard(path):
        found = match_columns(
            list(frame.columns), columns, path, aliases=ITEM_ALIASES, required=2, hint=ITEMS_HINT
        )
        if frame.empty:
            raise DataError(f"{path} has no items; it should hold one row per item")
        genres = frame[found["genres"]] if found["genres"] else pd.Series("", index=frame.index)
        # A list of genres per item (a frame built in Python) is joined as MovieLens writes it.
        genres = genres.map(lambda g: "|".join(map(str, g)) if isinstance(g, list | tuple) else g)
        items = items_frame(
            frame[found["item_id"]],
            frame[found["title"]],
            genres.astype(object),
            path,
            line_offset=offset,
            integer_ids=False,
        )
        extra = [c for c in frame.columns if c not in found.values()]
        extra = [c for c in extra if c not in items.columns]
        for column in extra:
            items[column] = frame[column].to_numpy()
    return items


def read_users(source: Source, columns: Sequence[str] | None = None) -> pd.DataFrame:
    """The users frame from a DataFrame or a file: ``user_id`` (found by common names, or
    ``columns[0]``) first, then the other columns as they are.

    Raises:
        DataError: The file cannot be read, the ID column is missing or named twice, or an ID
            is missing.
    """
    frame, path, offset = _frame_of(source, USERS_FRAME)
    with guard(path):
        found = match_columns(
            list(frame.columns), columns, path, aliases=USER_ALIASES, required=1, hint=USERS_HINT
        )
        if frame.empty:
            raise DataError(f"{path} has no users; it should hold one row per user")
        ids = id_column(frame[found["user_id"]], "the user ID", path, offset)
        users = pd.DataFrame({"user_id": ids.to_numpy()})
        for column in frame.columns:
            if column != found["user_id"] and column != "user_id":
                users[column] = frame[column].to_numpy()
    return users


def sibling_items(ratings_file: Path) -> pd.DataFrame | None:
    """The items of the MovieLens item file beside ``ratings_file`` (the first of
    :data:`~movierec.data.movielens.ITEM_FILES` there), or None when there is none.

    A ``movies.csv`` that is not MovieLens' own is read by its column names (:func:`read_items`).

    Raises:
        DataError: The file beside it cannot be read either way; the message says how to name
            another item file instead.
    """
    folder = Path(ratings_file).expanduser().parent
    for name in ITEM_FILES:
        if not (path := folder / name).is_file():
            continue
        try:
            return read_item_file(path)
        except DataError as own:
            if name == "movies.csv":  # a CSV of someone's own, with a header
                try:
                    return _items_by_names(path, None)
                except DataError:
                    pass
            raise DataError(
                f"{own}; it was read as the item file beside {ratings_file}: fix it, or name "
                f"the right item file with --items (items= in Python)"
            ) from own
    return None


def with_metadata(
    data: RatingsData,
    items: Source | None = None,
    users: Source | None = None,
    *,
    item_columns: Sequence[str] | None = None,
) -> RatingsData:
    """``data`` with the items and users given (each read by :func:`read_items` and
    :func:`read_users`) in place of what it had; None keeps what it had."""
    changes: dict[str, Any] = {}
    if items is not None:
        changes["items"] = read_items(items, item_columns)
    if users is not None:
        changes["users"] = read_users(users)
    return dataclasses.replace(data, **changes) if changes else data


def _frame_of(source: Source, frame_name: Path) -> tuple[pd.DataFrame, Path, int]:
    """The raw frame of ``source``, its name for messages, and the lines before its row 1."""
    if isinstance(source, pd.DataFrame):
        frame = source.copy(deep=False)
        frame.columns = [str(c) for c in frame.columns]
        return frame, frame_name, 0
    if not isinstance(source, str | Path):
        raise DataError(
            f"metadata must be a pandas DataFrame or a file path, got {type(source).__name__}"
        )
    path = Path(source).expanduser()
    check_file(path)
    if is_parquet(path):
        with guard(path):
            frame = pd.read_parquet(path)
        frame.columns = [str(c) for c in frame.columns]
        return frame, path, 0
    check_text(path)
    first = first_text_line(path)
    sep = sniff_separator(first)
    if sep is None:
        raise DataError(
            f"cannot tell the separator of {path} from its first line {first[:80]!r}; use "
            f"tab, comma, semicolon, pipe or '::' between fields, with a header row"
        )
    frame = read_text(path, sep=sep, header=0, checked=True)
    frame.columns = [str(c) for c in frame.columns]
    return frame, path, 1


def check_references(data: RatingsData, policy: str = "warn") -> RatingsData:
    """Count the ratings whose item is missing from ``data.items`` (and user from
    ``data.users``) into the report (``ratings_unknown_item``, ``ratings_unknown_user``; only
    for the metadata present), and warn about them in one line or refuse them.

    Such ratings still train (an item gets its ID as title), but usually mean the ratings and
    the metadata come from different releases, or a stray line.

    Args:
        data: Ratings with their metadata.
        policy: ``"warn"`` (a :class:`~movierec.errors.MovieRecWarning`) or ``"error"``
            (:data:`~movierec.data.policies.REFERENCE_POLICIES`).

    Raises:
        DataError: With ``"error"``, when any rating names an item or user the metadata lacks.
    """
    report = dict(data.report)
    problems = []
    for kind, meta in (("item", data.items), ("user", data.users)):
        if meta is None or f"{kind}_id" not in meta:
            continue
        ids = data.ratings[f"{kind}_id"]
        unknown = ~_isin(ids, meta[f"{kind}_id"])
        count = int(unknown.sum())
        report[f"ratings_unknown_{kind}"] = count
        if count:
            first = ids.to_numpy()[np.flatnonzero(unknown)[0]]
            problems.append(
                f"{count:,} of {len(ids):,} ratings name a{'n' if kind == 'item' else ''} "
                f"{kind} missing from the {kind} metadata (first: {kind} {first})"
            )
    if problems:
        message = f"{data.source}: {'; '.join(problems)}"
        if policy == "error":
            raise DataError(
                f"{message}; fix the ratings or the metadata file, or train without --strict "
                f"(references='warn')"
            )
        warnings.warn(
            f"{message}; they train, but those items show their ID as title (--strict refuses "
            f"such data)",
            MovieRecWarning,
            stacklevel=3,
        )
    return dataclasses.replace(data, report=report)


def _isin(ids: pd.Series, known: pd.Series) -> np.ndarray:
    """``ids.isin(known)``, comparing as text when one side has integer and the other text
    IDs (a metadata file read separately may differ in kind)."""
    if (ids.dtype == np.int64) != (known.dtype == np.int64):
        return ids.astype(str).isin(known.astype(str)).to_numpy()
    return ids.isin(known).to_numpy()
