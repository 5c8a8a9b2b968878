"""One entry point for any ratings data: a catalogue name, a folder or a file.

:func:`load_data` fetches a catalogue dataset if needed and hands folders to
:func:`~movierec.data.movielens.read_movielens` and files to
:func:`~movierec.data.files.read_ratings_file`, with one :class:`~movierec.data.policies.DataPolicy`
for duplicates and the rating scale. Every problem a file can have becomes a :class:`DataError`
naming the file, the line (or Parquet row and row group) where it can, and what to do; see
``docs/reliability.md``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path

from movierec.data.catalogue import CATALOGUE, fetch, known_names
from movierec.data.files import read_ratings_file
from movierec.data.movielens import read_movielens
from movierec.data.policies import DataPolicy
from movierec.data.schema import RatingsData
from movierec.errors import DataError


def load_data(
    spec: str,
    *,
    columns: Sequence[str] | None = None,
    policy: DataPolicy | None = None,
    progress: bool = True,
) -> RatingsData:
    """Load a catalogue dataset (fetching it if needed), a MovieLens folder, or a ratings file.

    Args:
        spec: A catalogue name (``"ml-100k"``), a folder, or a file.
        columns: For a ratings file: names of its user, item, rating[, timestamp] columns.
        policy: Duplicates and the rating scale (default :class:`DataPolicy`); without a
            declared ``rating_scale`` the MovieLens release's scale applies, or a ratings
            file's is inferred.
        progress: Show a download progress bar on stderr if the dataset must be fetched, and
            a reading bar while a large text file is parsed.

    Returns:
        The dataset in the canonical schema; ``report`` counts what the policies did.

    Raises:
        DataError: ``spec`` is none of these, the data cannot be read or fetched, or a policy
            set to ``"error"`` applies.
    """
    text = str(spec)
    if text in CATALOGUE:
        result = fetch(text, progress=progress)
        data = read_movielens(result.path, progress=progress, policy=policy)
        return dataclasses.replace(data, name=text)
    path = Path(text).expanduser()
    if path.is_dir():
        return read_movielens(path, progress=progress, policy=policy)
    if path.is_file():
        return read_ratings_file(path, columns=columns, progress=progress, policy=policy)
    raise DataError(
        f"{text!r} is neither a dataset name (known: {known_names()}) nor a file or directory"
    )
