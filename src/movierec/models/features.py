"""Side features: user and item metadata columns as index tensors a model can embed.

A model never sees frames or raw IDs, so the metadata is encoded here, once, into tensors in
the encoder's index order (row ``i`` is user or item index ``i``), which the model keeps as
buffers and saves with its weights: a saved run predicts without the metadata files.

How a column is encoded follows from its name, then its dtype:

- ``genres`` (text, ``"Action|Comedy"``): multi-hot float32 ``[n, V]``, one column per genre.
- ``zip_code`` / ``zip`` (text): categorical on the first :data:`ZIP_PREFIX` characters (the
  US postal region; the full code has a handful of users each).
- any numeric column (``year``, ``age``...): categorical on its quantile bucket (at most
  :data:`NUMERIC_BUCKETS`; fewer when it has fewer distinct values, as ml-1m's age groups).
- any text column (``gender``, ``occupation``...): categorical on the value.

A categorical feature is int64 ``[n]`` with code 0 for "unknown" (missing value, or a row the
metadata lacks: a new visitor, an item without metadata), codes ``1..V`` for the values. A
feature column that is missing, or whose values are neither text nor numbers, is one
:class:`~movierec.errors.ConfigError` / :class:`~movierec.errors.DataError` line.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch
import torch.nn.functional as F
from torch import nn

from movierec.errors import ArtifactError, ConfigError, DataError

NUMERIC_BUCKETS = 10
"""Quantile buckets of a numeric column (release year, age): enough to tell decades and age
groups apart, few enough that each bucket holds many users or items on ml-100k."""
ZIP_PREFIX = 1
"""Characters of a ZIP code kept: its first digit is one of ten US regions."""
ZIP_COLUMNS = ("zip_code", "zip")
MULTI_HOT_COLUMNS = ("genres",)
HOW_TO_GIVE = {
    "user": "a MovieLens folder with u.user or users.dat, or users= in Python",
    "item": "--items FILE, items= in Python, or a MovieLens folder with its item file",
}


@dataclass(frozen=True)
class EncodedFeature:
    """One metadata column of every user (or item), in index order.

    Attributes:
        name: The metadata column.
        codes: int64 ``[n]`` (categorical; 0 is unknown, ``1..V`` the values) or float32
            ``[n, V]`` multi-hot (a row of zeros is unknown).
        vocabulary: The label of each value, ``V`` of them (code ``c`` is ``vocabulary[c-1]``).
    """

    name: str
    codes: torch.Tensor
    vocabulary: tuple[str, ...]

    @property
    def multi_hot(self) -> bool:
        return self.codes.dim() == 2

    @property
    def rows(self) -> int:
        """Rows of the feature's embedding table: one per value, plus unknown (categorical)."""
        return len(self.vocabulary) + (0 if self.multi_hot else 1)


def encode_features(
    frame: pd.DataFrame | None,
    id_column: str,
    ids: pd.Index,
    names: Sequence[str],
    kind: str,
) -> list[EncodedFeature]:
    """Encode ``names`` of a metadata frame for the rows ``ids`` (raw IDs in index order).

    Args:
        frame: The users or items frame (``RatingsData.users`` / ``items``); None when the data
            has none.
        id_column: ``user_id`` or ``item_id``.
        ids: The encoder's raw IDs in index order; IDs the frame lacks get the unknown code.
        names: The columns to encode (``[model] user_features`` or ``item_features``).
        kind: ``user`` or ``item``, for messages.

    Raises:
        ConfigError: Features are asked for but there is no metadata, or a column is missing.
        DataError: A column holds values that are neither text nor numbers (lists, dates...),
            or ``genres`` is not text.
    """
    if not names:
        return []
    if frame is None:
        raise ConfigError(
            f"[model] {kind}_features asks for {list(names)} but the data has no {kind} "
            f"metadata; give it ({HOW_TO_GIVE[kind]}) or drop {kind}_features"
        )
    if missing := [n for n in names if n not in frame.columns or n == id_column]:
        columns = [c for c in frame.columns if c != id_column]
        raise ConfigError(
            f"[model] {kind}_features names {missing[0]!r}, which the {kind} metadata lacks "
            f"(its columns: {', '.join(map(str, columns)) or 'none'}); use one of those"
        )
    # A repeated ID: its first row describes it.
    frame = frame.drop_duplicates(id_column, keep="first").reset_index(drop=True)
    known = pd.Index(frame[id_column])
    if (known.dtype == np.int64) != (ids.dtype == np.int64):  # a file read on its own
        known, ids = known.astype(str), ids.astype(str)
    rows = known.get_indexer(ids)  # -1 where the metadata lacks the ID
    return [_encode_column(frame[name], rows, name, kind) for name in names]


def _encode_column(values: pd.Series, rows: np.ndarray, name: str, kind: str) -> EncodedFeature:
    """One column as codes for ``rows`` (positions in ``values``, -1: unknown)."""
    if name in MULTI_HOT_COLUMNS:
        return _multi_hot(values, rows, name, kind)
    if name in ZIP_COLUMNS:
        labels = _text(values, name, kind).str.slice(0, ZIP_PREFIX)
        vocabulary = tuple(sorted(labels.dropna().unique()))
    elif pd.api.types.is_numeric_dtype(values.dtype) and not pd.api.types.is_bool_dtype(
        values.dtype
    ):
        labels, vocabulary = _buckets(values)
    else:
        labels = _text(values.astype(object), name, kind)
        vocabulary = tuple(sorted(labels.dropna().unique()))
    lookup = {label: code for code, label in enumerate(vocabulary, start=1)}
    per_row = labels.map(lookup).fillna(0).to_numpy(dtype=np.int64)
    codes = np.where(rows >= 0, per_row[np.maximum(rows, 0)], 0) if len(per_row) else rows * 0
    return EncodedFeature(name, torch.from_numpy(codes.astype(np.int64)), vocabulary)


def _multi_hot(values: pd.Series, rows: np.ndarray, name: str, kind: str) -> EncodedFeature:
    text = _text(values, name, kind).fillna("")
    split = text.str.get_dummies(sep="|")
    vocabulary = tuple(str(c) for c in split.columns if str(c).strip())
    table = split[list(vocabulary)].to_numpy(dtype=np.float32)
    codes = np.zeros((len(rows), len(vocabulary)), dtype=np.float32)
    codes[rows >= 0] = table[rows[rows >= 0]]
    return EncodedFeature(name, torch.from_numpy(codes), vocabulary)


def _text(values: pd.Series, name: str, kind: str) -> pd.Series:
    """The column as text (missing and blank are missing); values that are neither text nor
    whole numbers (lists, floats, dates) are one DataError line."""
    present = values.dropna()
    good = present.map(lambda v: isinstance(v, str | int | bool | np.integer | np.bool_))
    good = good.to_numpy(dtype=bool)
    if not good.all():
        bad = present.iloc[int(np.flatnonzero(~good)[0])]
        wanted = "text like 'Action|Comedy'" if name in MULTI_HOT_COLUMNS else "text or numbers"
        raise DataError(
            f"{kind} feature column {name!r} holds {type(bad).__name__} values (first: "
            f"{str(bad)[:40]!r}), not {wanted}; convert the column or drop it from "
            f"[model] {kind}_features"
        )
    text = values.astype("string").str.strip()
    return text.mask(text == "")


def _buckets(values: pd.Series) -> tuple[pd.Series, tuple[str, ...]]:
    """Each value's quantile bucket label (``"1990-1994"``; missing stays missing) and the
    labels in bucket order."""
    numbers = values.to_numpy(dtype=np.float64, na_value=np.nan)
    finite = np.isfinite(numbers)
    distinct = np.unique(numbers[finite])
    if len(distinct) <= NUMERIC_BUCKETS:
        edges = distinct
    else:
        quantiles = np.linspace(0, 1, NUMERIC_BUCKETS + 1)[:-1]
        edges = np.unique(np.quantile(numbers[finite], quantiles, method="lower"))
    labels = tuple(
        f"{low:g}+" if b == len(edges) - 1 else f"{low:g}-{edges[b + 1]:g}"
        for b, low in enumerate(edges)
    )
    bucket = np.searchsorted(edges, np.where(finite, numbers, 0.0), side="right") - 1
    out = np.full(len(numbers), None, dtype=object)
    if len(edges):
        out[finite] = np.asarray(labels, dtype=object)[np.clip(bucket[finite], 0, None)]
    return pd.Series(out, index=values.index), labels


class FeatureTable(nn.Module):
    """One feature of every user (or item): its codes as a buffer, one embedding per value.

    The codes are buffers, not inputs, so a saved model carries them: ``forward(rows)`` needs
    only indices. A categorical feature embeds its code (row 0: unknown); a multi-hot one
    averages the embeddings of the values a row has (zeros when it has none).

    Args:
        n_rows: Users (items) of the model.
        dim: Width of the embedding.
        multi_hot: Whether the codes are ``[n_rows, V]`` flags rather than ``[n_rows]`` codes.
    """

    def __init__(self, n_rows: int, dim: int, multi_hot: bool):
        super().__init__()
        self.multi_hot = multi_hot
        # Placeholders (no values: only unknown) until attach(); a saved state resizes them.
        shape = (n_rows, 0) if multi_hot else (n_rows,)
        self.register_buffer(
            "codes", torch.zeros(shape, dtype=torch.float32 if multi_hot else torch.long)
        )
        self.weight = nn.Parameter(torch.empty(0 if multi_hot else 1, dim))
        nn.init.uniform_(self.weight, -0.05, 0.05)

    def attach(self, feature: EncodedFeature) -> None:
        """Take ``feature``'s codes and give each of its values a fresh embedding."""
        if feature.multi_hot != self.multi_hot or feature.codes.shape[0] != self.codes.shape[0]:
            raise ConfigError(
                f"feature {feature.name!r} has {feature.codes.shape[0]} rows for a table of "
                f"{self.codes.shape[0]}; encode it for the model's users (items)"
            )
        device = self.weight.device
        self.codes = feature.codes.to(device)
        self.weight = nn.Parameter(torch.empty(feature.rows, self.weight.shape[1], device=device))
        nn.init.uniform_(self.weight, -0.05, 0.05)

    def forward(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """Embeddings ``[B, dim]`` of ``rows`` (int64 ``[B]``; None: every row)."""
        codes = self.codes if rows is None else self.codes[rows]
        if not self.multi_hot:
            return F.embedding(codes, self.weight)
        return (codes @ self.weight) / codes.sum(dim=1, keepdim=True).clamp(min=1.0)

    def unknown(self) -> torch.Tensor:
        """The embedding ``[dim]`` of a row with no known value (a new visitor)."""
        if self.multi_hot:
            return torch.zeros(self.weight.shape[1], device=self.weight.device)
        return self.weight[0]

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        # The vocabulary's size is the data's, unknown when a saved run rebuilds the model.
        weight, codes = state_dict.get(prefix + "weight"), state_dict.get(prefix + "codes")
        if weight is not None and weight.dim() == 2 and weight.shape != self.weight.shape:
            self.weight = nn.Parameter(
                torch.empty(weight.shape, dtype=self.weight.dtype, device=self.weight.device)
            )
        if (
            codes is not None
            and self.multi_hot
            and codes.dim() == 2
            and codes.shape[0] == self.codes.shape[0]
        ):
            self.codes = torch.empty(codes.shape, dtype=self.codes.dtype, device=self.codes.device)
        if codes is not None and weight is not None and not codes.is_meta and codes.numel():
            _check_codes(codes, weight, prefix)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)


def _check_codes(codes: torch.Tensor, weight: torch.Tensor, prefix: str) -> None:
    """Saved codes must index the saved table (a tampered run would index out of range)."""
    if codes.dim() == 1 and codes.dtype == torch.long:
        bad = int(codes.min()) < 0 or int(codes.max()) >= weight.shape[0]
    else:
        bad = codes.dim() == 2 and codes.shape[1] != weight.shape[0]
    if bad:
        raise ArtifactError(
            f"the saved feature codes {prefix}codes do not index its table of "
            f"{weight.shape[0]} rows; the run is corrupt or was edited, retrain it"
        )


class SideFeatures(nn.Module):
    """Every side feature of a model's users and items, and which items training saw.

    ``user(idx)`` / ``item(idx)`` concatenate the features' embeddings (``dim`` each) into the
    vector placed beside the ID embedding. ``trained`` (bool ``[n_items]``, set from the
    training ratings) marks the items whose ID embedding was learned; :meth:`cold` says which
    of a batch's items must be scored from their features alone.

    Args:
        n_users: Users of the model.
        n_items: Items of the model.
        user_names: User metadata columns, in order.
        item_names: Item metadata columns, in order.
        dim: Width of each feature's embedding.
        id_dropout: Training only: the share of examples whose item ID embedding (and bias) is
            replaced as for an unseen item, so the net learns to predict from features alone.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        user_names: tuple[str, ...],
        item_names: tuple[str, ...],
        dim: int,
        id_dropout: float = 0.0,
    ):
        super().__init__()
        self.user_names, self.item_names = user_names, item_names
        self.id_dropout = id_dropout
        self.users = nn.ModuleList(
            FeatureTable(n_users, dim, n in MULTI_HOT_COLUMNS) for n in user_names
        )
        self.items = nn.ModuleList(
            FeatureTable(n_items, dim, n in MULTI_HOT_COLUMNS) for n in item_names
        )
        self.user_width, self.item_width = dim * len(user_names), dim * len(item_names)
        self.register_buffer("trained", torch.ones(n_items, dtype=torch.bool))

    def attach(self, users: Sequence[EncodedFeature], items: Sequence[EncodedFeature]) -> None:
        """Take the encoded features (from :func:`encode_features`, in the names' order)."""
        for tables, features in ((self.users, users), (self.items, items)):
            for table, feature in zip(tables, features, strict=True):
                table.attach(feature)

    def mark_trained(self, item_idx: torch.Tensor) -> None:
        """Record which items the training ratings ``item_idx`` (int64 ``[N]``) hold."""
        counts = torch.bincount(item_idx, minlength=self.trained.shape[0])
        self.trained = (counts > 0).to(self.trained.device)

    def user(self, rows: torch.Tensor | None = None) -> torch.Tensor | None:
        """``[B, user_width]`` for user indices ``rows`` (None: every user); None if none."""
        return torch.cat([t(rows) for t in self.users], dim=1) if len(self.users) else None

    def item(self, rows: torch.Tensor | None = None) -> torch.Tensor | None:
        """``[B, item_width]`` for item indices ``rows`` (None: every item); None if none."""
        return torch.cat([t(rows) for t in self.items], dim=1) if len(self.items) else None

    def unknown_user(self) -> torch.Tensor | None:
        """The feature vector ``[user_width]`` of a visitor whose metadata is unknown."""
        return torch.cat([t.unknown() for t in self.users]) if len(self.users) else None

    def cold(self, item_idx: torch.Tensor | None, training: bool) -> torch.Tensor | None:
        """Bool ``[B]`` (None: every item): items to score from features alone. In training,
        a random ``id_dropout`` share; otherwise the items training never saw. None: none."""
        if not len(self.items):
            return None
        if training:
            if not self.id_dropout or item_idx is None:
                return None
            return torch.rand(item_idx.shape, device=item_idx.device) < self.id_dropout
        cold = ~self.trained if item_idx is None else ~self.trained[item_idx]
        return cold if bool(cold.any()) else None
