"""IdEncoder: the one place where raw dataset IDs become contiguous indices and back.

Raw IDs (``user_id``, ``item_id``) are whatever the ratings file holds: integers or strings.
Models only ever see indices (``user_idx``, ``item_idx``) in ``0..n-1``. The encoder is fitted on
the ratings a model is trained on and saved with the model, so a loaded model decodes the same way.

Unknown-ID policy: ``encode`` returns ``-1`` for IDs the encoder never saw (so vectorised callers
can route them to a fallback), and ``encode_one`` raises :class:`UnknownIdError` with a message
that says which ID and how many are known.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from movierec.errors import ArtifactError, UnknownIdError, UnknownIdsError

# Integer IDs are encoded through a dense table when their range is at most this many slots per
# ID (and at most DENSE_SPAN_MAX slots, 128 MiB); sparser or wider IDs use a hash lookup.
DENSE_SPAN_PER_ID = 16
DENSE_SPAN_MAX = 1 << 24


def normalise_ids(values: Any) -> pd.Index:
    """Build an index of raw IDs whose dtype is int64 for integer IDs that fit in it, str
    otherwise."""
    index = pd.Index(values)
    if pd.api.types.is_integer_dtype(index.dtype):
        if index.dtype.kind == "u" and len(index) and int(index.max()) > np.iinfo(np.int64).max:
            return index.astype(str)  # int64 would wrap 2**64 - 1 to -1
        return index.astype("int64")
    if pd.api.types.is_float_dtype(index.dtype) and bool(np.all(np.mod(index, 1) == 0)):
        return index.astype("int64")
    return index.astype(str)


def _show(raw: Any) -> str:
    """An ID as a person would type it: 196, not np.int64(196); strings quoted."""
    value = raw.item() if isinstance(raw, np.generic) else raw
    return repr(value) if isinstance(value, str) and not value.lstrip("-").isdigit() else str(value)


@dataclass(frozen=True)
class _Axis:
    """Raw IDs of one kind (users or items), in index order."""

    kind: str
    ids: pd.Index

    @functools.cached_property
    def _table(self) -> tuple[int, np.ndarray] | None:
        """(lowest ID, index of ID ``lowest + j`` at ``j`` or -1) for integer IDs that cover
        their range densely enough (MovieLens' do); None otherwise."""
        if self.ids.dtype != np.int64 or len(self.ids) == 0:
            return None
        ids = self.ids.to_numpy()
        low, span = int(ids.min()), int(ids.max()) - int(ids.min()) + 1
        if span > min(DENSE_SPAN_MAX, DENSE_SPAN_PER_ID * len(ids) + 1024):
            return None
        table = np.full(span, -1, dtype=np.int64)
        table[ids - low] = np.arange(len(ids), dtype=np.int64)
        return low, table

    def encode(self, raw: Any) -> np.ndarray:
        values = np.asarray(raw)
        if values.ndim == 1 and values.dtype.kind == "i" and self._table is not None:
            # A gather from a small table: about 10x quicker than a hash lookup for 20M IDs.
            low, table = self._table
            values = values.astype(np.int64, copy=False)
            inside = (values >= low) & (values < low + len(table))
            if inside.all():
                return table[values - low]
            found = np.full(len(values), -1, dtype=np.int64)
            found[inside] = table[values[inside] - low]
            return found
        raw_index = pd.Index(values)
        if self.ids.dtype == np.int64 and not pd.api.types.is_integer_dtype(raw_index.dtype):
            # Strings like "196" from a URL or command line still name user 196.
            numeric = pd.to_numeric(raw_index, errors="coerce")
            raw_index = pd.Index(numeric)
        elif self.ids.dtype != np.int64:
            raw_index = raw_index.astype(str)
        return self.ids.get_indexer(raw_index).astype(np.int64)

    def encode_known(self, raw: Any, where: str) -> np.ndarray:
        """:meth:`encode`, or :class:`UnknownIdsError` naming every unknown ID (ten shown)."""
        found = self.encode(raw)
        unknown = found < 0
        if unknown.any():
            missing = pd.unique(np.asarray(raw, dtype=object)[unknown])
            shown = ", ".join(_show(v) for v in missing[:10])
            more = f" and {len(missing) - 10} more" if len(missing) > 10 else ""
            raise UnknownIdsError(
                f"{len(missing)} {self.kind} ID(s) {where} are not in the model's training data: "
                f"{shown}{more} ({self.describe()}); remove them or use IDs from the ratings the "
                f"model was trained on"
            )
        return found

    def describe(self) -> str:
        count = len(self.ids)
        if count == 0:
            return f"no {self.kind}s are known"
        if self.ids.dtype == np.int64:
            return f"{count} {self.kind}s are known, IDs {self.ids.min()}..{self.ids.max()}"
        return f"{count} {self.kind}s are known, e.g. {', '.join(map(str, self.ids[:3]))}"


class IdEncoder:
    """Maps raw user and item IDs to contiguous indices and back.

    Args:
        user_ids: Raw user IDs in index order (no duplicates).
        item_ids: Raw item IDs in index order (no duplicates).
    """

    def __init__(self, user_ids: Sequence[Any] | pd.Index, item_ids: Sequence[Any] | pd.Index):
        users = normalise_ids(user_ids)
        items = normalise_ids(item_ids)
        for kind, ids in (("user", users), ("item", items)):
            if not ids.is_unique:
                raise ArtifactError(f"the {kind} ID map has duplicate IDs; the run is corrupt")
        self._users = _Axis("user", users)
        self._items = _Axis("item", items)

    @classmethod
    def fit(cls, ratings: pd.DataFrame) -> IdEncoder:
        """Index the users and items of ``ratings`` in sorted raw-ID order."""
        return cls(
            np.sort(ratings["user_id"].unique()),
            np.sort(ratings["item_id"].unique()),
        )

    @property
    def n_users(self) -> int:
        return len(self._users.ids)

    @property
    def n_items(self) -> int:
        return len(self._items.ids)

    @property
    def user_ids(self) -> pd.Index:
        return self._users.ids

    @property
    def item_ids(self) -> pd.Index:
        return self._items.ids

    def encode_users(self, raw: Any) -> np.ndarray:
        """Raw user IDs -> int64 indices; ``-1`` where the ID is unknown."""
        return self._users.encode(raw)

    def encode_items(self, raw: Any) -> np.ndarray:
        """Raw item IDs -> int64 indices; ``-1`` where the ID is unknown."""
        return self._items.encode(raw)

    def user_index(self, raw: Any) -> int:
        """One raw user ID -> its index, or :class:`UnknownIdError`."""
        return self._one(self._users, raw)

    def item_index(self, raw: Any) -> int:
        """One raw item ID -> its index, or :class:`UnknownIdError`."""
        return self._one(self._items, raw)

    def encode_known_users(self, raw: Any, where: str = "given") -> np.ndarray:
        """Raw user IDs -> int64 indices; :class:`UnknownIdsError` names every unknown one
        (``where`` says where they came from, e.g. "in users.csv")."""
        return self._users.encode_known(raw, where)

    def encode_known_items(self, raw: Any, where: str = "given") -> np.ndarray:
        """Raw item IDs -> int64 indices; :class:`UnknownIdsError` names every unknown one."""
        return self._items.encode_known(raw, where)

    def decode_users(self, idx: Any) -> np.ndarray:
        return self._users.ids.take(np.asarray(idx, dtype=np.int64)).to_numpy()

    def decode_items(self, idx: Any) -> np.ndarray:
        return self._items.ids.take(np.asarray(idx, dtype=np.int64)).to_numpy()

    @staticmethod
    def _one(axis: _Axis, raw: Any) -> int:
        index = int(axis.encode([raw])[0])
        if index < 0:
            raise UnknownIdError(
                f"{axis.kind} {_show(raw)} is not in the model's training data "
                f"({axis.describe()}); "
                f"use {'an item' if axis.kind == 'item' else 'a user'} ID from the "
                f"ratings the model was trained on"
            )
        return index

    def to_json(self) -> dict[str, list[Any]]:
        """Plain lists of raw IDs, JSON-serialisable (ints stay ints)."""
        return {"users": self._users.ids.tolist(), "items": self._items.ids.tolist()}

    @classmethod
    def from_json(cls, payload: dict[str, list[Any]]) -> IdEncoder:
        try:
            return cls(payload["users"], payload["items"])
        except (KeyError, TypeError) as exc:
            raise ArtifactError(f"the ID map is malformed ({exc}); the run is corrupt") from exc
