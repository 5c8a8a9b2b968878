"""Batch questions to a saved run, file in and file out: every user's list, many predictions.

- :func:`read_ids`: a file of raw IDs (one per line, or a CSV with a ``user`` column).
- :func:`read_pairs`: a CSV of ``user,item`` pairs.
- :func:`predict_pairs`: their predicted ratings, every unknown ID named before anything runs.
- :func:`write_table`: a frame to ``.parquet`` or ``.csv`` (chosen by the suffix), written to a
  temporary sibling and renamed into place, so a failure leaves no half-written file.

The ranking itself is :meth:`movierec.recommend.Recommender.recommend`; nothing here ranks.
"""

from __future__ import annotations

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
    """``user, item, prediction`` for each row of ``pairs`` (raw IDs kept as given).

    Raises:
        UnknownIdsError: Users or items the run never saw (all named, up to ten each).
        MovieRecError: The run predicts ranking scores, not ratings.
    """
    users = pairs["user"].to_numpy(dtype=object)
    items = pairs["item"].to_numpy(dtype=object)
    problems = []
    for check, ids in (
        (recommender.encoder.encode_known_users, users),
        (recommender.encoder.encode_known_items, items),
    ):
        try:
            check(ids, where)
        except UnknownIdsError as exc:
            problems.append(str(exc))
    if problems:  # users and items both named in one line
        raise UnknownIdsError("; ".join(problems))
    predicted = recommender.predict(users, items, unknown="error")
    return pd.DataFrame({"user": users, "item": items, "prediction": predicted})


def _read_csv(path: Path, header: int | None = None) -> pd.DataFrame:
    try:
        return pd.read_csv(path, header=header, dtype=str, skip_blank_lines=True)
    except FileNotFoundError:
        raise DataError(f"{path} does not exist") from None
    except pd.errors.EmptyDataError:
        raise DataError(f"{path} is empty") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError) as exc:
        raise DataError(f"{path} cannot be read as CSV ({exc})") from None
