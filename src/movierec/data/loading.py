"""One entry point for any ratings data: a catalogue name, a folder, a file or a DataFrame.

:func:`load_data` fetches a catalogue dataset if needed and hands folders to
:func:`~movierec.data.movielens.read_movielens`, files to
:func:`~movierec.data.files.read_ratings_file` (with the MovieLens item file beside them, if
any) and DataFrames to :func:`~movierec.data.files.read_frame`, with one
:class:`~movierec.data.policies.DataPolicy` for duplicates and the rating scale. Every problem
a file (or frame) can have becomes a :class:`DataError` naming the file, the line (or Parquet
row and row group, or the frame's row) where it can, and what to do; see ``docs/reliability.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

import pandas as pd

from movierec.data.catalogue import CATALOGUE, fetch, known_names
from movierec.data.files import read_frame, read_ratings_file
from movierec.data.metadata import Source, check_references, sibling_items, with_metadata
from movierec.data.movielens import read_movielens
from movierec.data.policies import DataPolicy
from movierec.data.schema import RatingsData
from movierec.errors import DataError


def load_data(
    spec: str | Path | pd.DataFrame,
    *,
    columns: Sequence[str] | None = None,
    policy: DataPolicy | None = None,
    items: Source | None = None,
    users: Source | None = None,
    item_columns: Sequence[str] | None = None,
    progress: bool = True,
) -> RatingsData:
    """Load a catalogue dataset (fetching it if needed), a MovieLens folder, a ratings file or
    a DataFrame of ratings.

    Args:
        spec: A catalogue name (``"ml-100k"``), a folder, a file, or a pandas DataFrame with
            one rating per row.
        columns: For a ratings file or a DataFrame: names of its user, item, rating[,
            timestamp] columns (default: found by common names).
        policy: Duplicates and the rating scale (default :class:`DataPolicy`); without a
            declared ``rating_scale`` the MovieLens release's scale applies, or a ratings
            file's (or frame's) is inferred.
        items: Item metadata (titles, genres, any other columns) as a DataFrame or a file, in
            place of what the data has (see :func:`~movierec.data.metadata.read_items`). A
            ratings file picks up the MovieLens item file beside it (``movies.csv``,
            ``movies.dat``, ``u.item``) without it.
        users: User metadata as a DataFrame or a file (a user ID column and any others).
        item_columns: Names of the items' ID, title[, genres] columns (default: found).
        progress: Show a download progress bar on stderr if the dataset must be fetched, and
            a reading bar while a large text file is parsed.

    Returns:
        The dataset in the canonical schema; ``report`` counts what the policies did, and the
        ratings whose item (user) the metadata lacks (a MovieRecWarning when there are any;
        see :func:`~movierec.data.metadata.check_references`).

    Raises:
        DataError: ``spec`` is none of these, the data cannot be read or fetched, a column is
            missing or named twice, or a policy set to ``"error"`` applies.
    """
    data = _load_ratings(spec, columns, policy, progress, beside=items is None)
    data = with_metadata(data, items, users, item_columns=item_columns)
    return check_references(data, (policy or DataPolicy()).references)


def _load_ratings(
    spec: str | Path | pd.DataFrame,
    columns: Sequence[str] | None,
    policy: DataPolicy | None,
    progress: bool,
    beside: bool,
) -> RatingsData:
    """The ratings of ``spec``; ``beside``: a ratings file takes the item file beside it."""
    if isinstance(spec, pd.DataFrame):
        return read_frame(spec, columns, policy=policy)
    if not isinstance(spec, str | Path):
        raise DataError(
            f"expected a dataset name, a path or a pandas DataFrame of ratings, got "
            f"{type(spec).__name__}"
        )
    text = str(spec)
    if text in CATALOGUE:
        result = fetch(text, progress=progress)
        data = read_movielens(result.path, progress=progress, policy=policy)
        return dataclasses.replace(data, name=text)
    path = Path(text).expanduser()
    if path.is_dir():
        return read_movielens(path, progress=progress, policy=policy)
    if path.is_file():
        data = read_ratings_file(path, columns=columns, progress=progress, policy=policy)
        return dataclasses.replace(data, items=sibling_items(path)) if beside else data
    raise DataError(
        f"{text!r} is neither a dataset name (known: {known_names()}) nor a file or directory"
    )
