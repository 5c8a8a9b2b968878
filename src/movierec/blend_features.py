"""Meta-features for a feature-weighted blend (``movierec blend --features``).

A plain blend gives every member one weight. Members are not equally good everywhere: an
item autoencoder is at its best on well-rated movies, a biased MF on users with few ratings.
Feature-weighted linear stacking (Sill, Takács, Mackey and Lin, 2009) lets each weight move
linearly with a few facts about the pair:

    blend(u, i) = b + sum_m (w_m + sum_k v_mk f_k(u, i)) p_m(u, i) + sum_k c_k f_k(u, i)

which is still a ridge regression, on the columns ``p_m``, ``p_m * f_k`` and ``f_k``.

The facts (:data:`META_FEATURES`) describe the user and the item only through the ratings the
members' early-stopped models learnt from (the training part without the carve-out), so a
carve-out rating never describes itself, and the test pairs get the very same facts:

- ``user_count`` / ``item_count``: log(1 + number of ratings);
- ``user_std`` / ``item_std``: the standard deviation of those ratings (the pooled one where a
  user or item has fewer than two, or is unknown).

Each is standardised with its mean and deviation over the carve-out's pairs.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

from movierec.errors import ArtifactError, ConfigError

META_FEATURES = ("user_count", "item_count", "user_std", "item_std")
USERS_FILE, ITEMS_FILE = "user_features.parquet", "item_features.parquet"
_SIDES = {"user": ("user_id", USERS_FILE), "item": ("item_id", ITEMS_FILE)}


def parse_features(value: str | Sequence[str]) -> tuple[str, ...] | None:
    """``--features``: ``auto`` (None: the carve-out decides), ``none`` (a plain blend) or
    names of :data:`META_FEATURES`, comma-separated.

    Raises:
        ConfigError: An unknown or repeated name.
    """
    if isinstance(value, str):
        if value.strip() == "auto":
            return None
        if value.strip() == "none":
            return ()
        value = [part.strip() for part in value.split(",") if part.strip()]
    names = tuple(value)
    unknown = [name for name in names if name not in META_FEATURES]
    if unknown or len(set(names)) < len(names) or not names:
        raise ConfigError(
            f"--features must be auto, none or names of {', '.join(META_FEATURES)} (comma-"
            f"separated, each once), got {','.join(names) or 'nothing'!r}"
        )
    return names


@dataclass(frozen=True)
class MetaFeatures:
    """Per-user and per-item counts and deviations, and how each feature is standardised.

    Attributes:
        names: The features used, in column order.
        users: Indexed by raw user ID: ``count`` and ``std`` (NaN below two ratings).
        items: The same per raw item ID.
        pooled_std: The deviation of all the ratings counted (the fill for NaN or unknown).
        centre, scale: Per feature, its mean and deviation over the carve-out's pairs.
    """

    names: tuple[str, ...]
    users: pd.DataFrame
    items: pd.DataFrame
    pooled_std: float
    centre: np.ndarray
    scale: np.ndarray

    @classmethod
    def fit(
        cls,
        learnt: pd.DataFrame,
        carve_out: pd.DataFrame,
        names: Sequence[str] = META_FEATURES,
    ) -> MetaFeatures:
        """The facts of ``learnt`` (``user_id``, ``item_id``, ``rating``: what the members'
        validated models trained on), standardised over ``carve_out``'s pairs."""
        ratings = learnt["rating"].to_numpy(dtype=np.float64)
        tables = {
            side: learnt.groupby(column, sort=False)["rating"].agg(["count", "std"])
            for side, (column, _) in _SIDES.items()
        }
        unscaled = cls(
            tuple(names), tables["user"], tables["item"], float(np.std(ratings, ddof=1)),
            np.zeros(len(names)), np.ones(len(names)),
        )  # fmt: skip
        raw = unscaled.matrix(carve_out["user_id"].to_numpy(), carve_out["item_id"].to_numpy())
        scale = raw.std(axis=0)
        return dataclasses.replace(
            unscaled, centre=raw.mean(axis=0), scale=np.where(scale > 0, scale, 1.0)
        )

    def _raw(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        ids = {"user": user_ids, "item": item_ids}
        tables = {"user": self.users, "item": self.items}
        columns = []
        for name in self.names:
            side, fact = name.split("_")
            values = tables[side][fact].reindex(ids[side]).to_numpy(dtype=np.float64)
            if fact == "count":
                columns.append(np.log1p(np.nan_to_num(values, nan=0.0)))
            else:
                columns.append(np.nan_to_num(values, nan=self.pooled_std))
        return np.column_stack(columns) if columns else np.zeros((len(user_ids), 0))

    def matrix(self, user_ids: np.ndarray, item_ids: np.ndarray) -> np.ndarray:
        """The standardised features of the pairs: float64 ``[N, K]``."""
        return (self._raw(np.asarray(user_ids), np.asarray(item_ids)) - self.centre) / self.scale

    def save(self, folder: Path) -> list[str]:
        """Write the two tables into ``folder``; the files' names."""
        for side, (column, file) in _SIDES.items():
            table = self.users if side == "user" else self.items
            table.rename_axis(column).reset_index().to_parquet(folder / file, index=False)
        return [USERS_FILE, ITEMS_FILE]

    def describe(self) -> dict[str, object]:
        """What ``blend.json`` records besides the tables."""
        return {
            "names": list(self.names),
            "pooled_std": self.pooled_std,
            "centre": self.centre.tolist(),
            "scale": self.scale.tolist(),
        }

    @classmethod
    def load(cls, folder: Path, described: dict[str, object]) -> MetaFeatures:
        """The features a blend folder saved (:meth:`save`, :meth:`describe`).

        Raises:
            ArtifactError: A table is missing or not as written.
        """
        tables = {}
        for side, (column, file) in _SIDES.items():
            path = folder / file
            try:
                tables[side] = pd.read_parquet(path).set_index(column)[["count", "std"]]
            except (OSError, KeyError, ValueError) as error:
                raise ArtifactError(
                    f"{path} is missing or unreadable ({error}); fit the blend again with "
                    "movierec blend"
                ) from error
        return cls(
            tuple(described["names"]), tables["user"], tables["item"],  # type: ignore[arg-type]
            float(described["pooled_std"]),  # type: ignore[arg-type]
            np.asarray(described["centre"], dtype=np.float64),
            np.asarray(described["scale"], dtype=np.float64),
        )  # fmt: skip


def design(predictions: np.ndarray, features: np.ndarray | None) -> np.ndarray:
    """The regression's columns: the members' predictions ``[N, M]``, then each prediction times
    each feature (member-major), then the features ``[N, K]``."""
    if features is None or features.shape[1] == 0:
        return predictions
    products = (predictions[:, :, None] * features[:, None, :]).reshape(len(predictions), -1)
    return np.column_stack([predictions, products, features])


def learnt_part(train: pd.DataFrame, carve_out: pd.DataFrame) -> pd.DataFrame:
    """``train`` without the rows of ``carve_out`` (matched on user, item and rating, each
    carve-out row removing one training row)."""
    keys = ["user_id", "item_id", "rating"]
    left = train[keys].assign(_n=train.groupby(keys, sort=False).cumcount())
    right = carve_out[keys].assign(_n=carve_out.groupby(keys, sort=False).cumcount())
    merged = left.merge(right, on=[*keys, "_n"], how="left", indicator=True)
    if int((merged["_merge"] == "both").sum()) != len(carve_out):
        raise ConfigError(
            "the runs' validation rows are not all in the training part of the data they name: "
            "the data changed since they were trained; retrain them, or blend with --features "
            "none"
        )
    return merged.loc[merged["_merge"] == "left_only", keys].reset_index(drop=True)
