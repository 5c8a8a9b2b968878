"""A visitor's list: their ratings read from a mapping or a frame, and the fold-in ranked.

The fold-in itself (how a fresh user is fitted, as the run was trained) is
:mod:`movierec.coldstart`; this module turns its scores into a list.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

import pandas as pd
import torch

from movierec.coldstart import VisitorScores
from movierec.errors import ConfigError
from movierec.recommend.results import plain


def rank_visitor(
    found: VisitorScores, k: int, banned: torch.Tensor | None = None
) -> tuple[torch.Tensor, torch.Tensor]:
    """The top ``k`` of a visitor's scores: ``(item_idx [<=k] int64, shown [<=k] float32)``.

    Ranked by ``found.key`` (unclipped, so ratings the list shows clipped at the top of the
    scale still come in the model's order); equal keys (a sigmoid saturated in float32) by
    ``found.tie_break``, higher first, then by the lower item index: the same visitor always
    gets the same list. The rated items and ``banned`` ones are left out.
    """
    key = found.key.clone()
    key[found.rated] = float("-inf")
    if banned is not None:
        key[banned] = float("-inf")
    # Lexicographic (key, tie_break, -index): stable sorts from the last criterion to the first.
    order = torch.sort(found.tie_break, descending=True, stable=True).indices
    order = order[torch.sort(key[order], descending=True, stable=True).indices]
    order = order[: min(k, int(torch.isfinite(key).sum()))]
    return order, found.shown[order]


def visitor_ratings(ratings: Any) -> tuple[list[Any], list[float]]:
    """A visitor's ratings, a mapping or a frame, as item IDs and ratings (checked later)."""
    if isinstance(ratings, pd.DataFrame):
        column = next((c for c in ("item", "item_id") if c in ratings.columns), None)
        if column is None or "rating" not in ratings.columns:
            raise ConfigError(
                f"a visitor's ratings need an item (or item_id) and a rating column; got "
                f"{', '.join(map(str, ratings.columns)) or 'no columns'}"
            )
        values = pd.to_numeric(ratings["rating"], errors="coerce").astype(float)
        return [plain(i) for i in ratings[column].tolist()], values.tolist()
    if isinstance(ratings, Mapping):
        return list(ratings.keys()), [_number(v) for v in ratings.values()]
    raise ConfigError(
        f"give a visitor's ratings as a mapping item -> rating or a DataFrame with item and "
        f"rating columns, not {type(ratings).__name__}"
    )


def _number(value: Any) -> float:
    """A rating as a float; NaN (refused as off the scale, naming the item) when not a number."""
    try:
        return float(value)
    except (TypeError, ValueError):
        return float("nan")
