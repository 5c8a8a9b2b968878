"""Batch questions to a saved run, file in and file out: every user's list, many predictions.

- :func:`read_ids`: a file of raw IDs (one per line, or a CSV with a ``user`` column).
- :func:`id_list`: a flag's value that is a file of IDs or IDs separated by commas
  (``--only``, ``--exclude``).
- :func:`read_pairs`: a CSV of ``user,item`` pairs.
- :func:`predict_pairs`: their predicted ratings, every unknown ID named before anything runs.
- :func:`write_table`: a frame to ``.parquet`` or ``.csv`` (chosen by the suffix), written to a
  temporary sibling and renamed into place, so a failure leaves no half-written file.

The ranking itself is :meth:`movierec.recommend.Recommender.recommend`; nothing here ranks.
"""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.artifacts import atomic_write
from movierec.errors import ConfigError, DataError, UnknownIdsError
from movierec.recommend import Recommender

TABLE_SUFFIXES = (".parquet", ".csv")


def check_table_path(path: Path) -> Path:
    """``path`` if its suffix names a table format and its folder exists, else ConfigError."""
    path = Path(path)
    if path.suffix.lower() not in TABLE_SUFFIXES:
        raise ConfigError(
            f"--out {path}: the suffix chooses the format; use a name ending in "
            f"{' or '.join(TABLE_SUFFIXES)}"
        )
    if not path.parent.is_dir():
        raise ConfigError(f"--out {path}: folder {path.parent} does not exist; create it first")
    return path


def write_table(frame: pd.DataFrame, path: Path) -> Path:
    """Write ``frame`` to ``path`` (parquet or CSV by suffix) atomically; returns the path."""
    path = check_table_path(path)
    with atomic_write(path, "wb") as handle:
        if path.suffix.lower() == ".parquet":
            frame.to_parquet(handle, index=False)
        else:
            frame.to_csv(handle, index=False, encoding="utf-8")
    return path


def read_ids(path: Path, column: str = "user") -> np.ndarray:
    """Raw IDs from ``path``: a CSV with a ``column`` (or ``column_id``) header, or one ID a
    line with no header. IDs are read as text; the run's ID map decides what they name.

    Raises:
        DataError: The file is missing, unreadable or holds no IDs.
    """
    frame = _read_csv(path)
    first = [str(v).strip().lower() for v in frame.iloc[0]]
    if column in first or f"{column}_id" in first:  # a header row: take that column
        at = first.index(column) if column in first else first.index(f"{column}_id")
        values = frame.iloc[1:, at]
    elif frame.shape[1] == 1:
        values = frame.iloc[:, 0]
    else:
        raise DataError(f"{path}: give one {column} ID a line, or a CSV with a {column!r} column")
    values = values.dropna().str.strip()
    values = values[values != ""]
    if values.empty:
        raise DataError(f"{path} holds no {column} IDs")
    return values.to_numpy(dtype=object)


ID_FILE_SUFFIXES = (".csv", ".txt", ".tsv")


def id_list(text: str, flag: str, column: str = "item") -> np.ndarray:
    """The raw IDs a flag names: the file ``text`` when it is one (as :func:`read_ids` reads
    it), else ``text`` split on commas (``50,172,181``). IDs stay text; the run's ID map
    decides what they name.

    Raises:
        DataError: ``text`` looks like a file name (a folder in it, or a .csv/.txt/.tsv
            suffix) but no such file exists, or the file holds no IDs.
        ConfigError: No IDs between the commas.
    """
    path = Path(text)
    if path.is_file():
        return read_ids(path, column)
    if os.sep in text or path.suffix.lower() in ID_FILE_SUFFIXES:
        raise DataError(
            f"{flag} {text}: no such file; give a file of {column} IDs (one a line, or a "
            f"{column!r} column) or IDs separated by commas"
        )
    values = [part.strip() for part in text.split(",") if part.strip()]
    if not values:
        raise ConfigError(f"{flag} names no {column} IDs; give IDs separated by commas or a file")
    return np.asarray(values, dtype=object)


def read_pairs(path: Path) -> pd.DataFrame:
    """The ``user,item`` (or ``user_id,item_id``) columns of a CSV, as text.

    Raises:
        DataError: The file is missing, unreadable, lacks the columns or holds no rows.
    """
    frame = _read_csv(path, header=0)
    frame.columns = [str(c).strip().lower() for c in frame.columns]
    frame = frame.rename(columns={"user_id": "user", "item_id": "item"})
    missing = [c for c in ("user", "item") if c not in frame.columns]
    if missing:
        raise DataError(
            f"{path} lacks the column(s) {', '.join(missing)}; give a CSV with a header "
            f"user,item (got {', '.join(map(str, frame.columns)) or 'no columns'})"
        )
    frame = frame[["user", "item"]]
    if frame.empty:
        raise DataError(f"{path} holds no pairs")
    if frame.isna().any(axis=None):
        row = int(np.flatnonzero(frame.isna().any(axis=1).to_numpy())[0]) + 2
        raise DataError(f"{path}, line {row}: a pair lacks its user or item")
    return frame


def predict_pairs(recommender: Recommender, pairs: pd.DataFrame, where: str) -> pd.DataFrame:
    """``user, item, prediction`` for each row of ``pairs``, in their order.

    The IDs come back as the dataset spells them (integers for MovieLens, whatever text the
    file held), as every other command writes them, not as the text the file was read as.

    Raises:
        UnknownIdsError: Users or items the run never saw (all named, up to ten each).
        MovieRecError: The run predicts ranking scores, not ratings.
    """
    encoder = recommender.encoder
    users = pairs["user"].to_numpy(dtype=object)
    items = pairs["item"].to_numpy(dtype=object)
    found, problems = [], []
    for check, ids in ((encoder.encode_known_users, users), (encoder.encode_known_items, items)):
        try:
            found.append(check(ids, where))
        except UnknownIdsError as exc:
            problems.append(str(exc))
    if problems:  # users and items both named in one line
        raise UnknownIdsError("; ".join(problems))
    user_idx, item_idx = found
    user_ids, item_ids = encoder.decode_users(user_idx), encoder.decode_items(item_idx)
    predicted = recommender.predict(user_ids, item_ids, unknown="error")
    return pd.DataFrame({"user": user_ids, "item": item_ids, "prediction": predicted})


def _read_csv(path: Path, header: int | None = None) -> pd.DataFrame:
    try:
        return pd.read_csv(path, header=header, dtype=str, skip_blank_lines=True)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path} cannot be read as CSV ({exc})") from None
