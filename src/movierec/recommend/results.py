"""What a Recommender hands back: :class:`Recommendation` rows, list frames, plain raw IDs.

Raw IDs leave the package as Python scalars of the dataset's own type (an int for MovieLens,
a str for string IDs), so every JSON document carries the same type for the same ID.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from movierec.data.encoder import IdEncoder
from movierec.errors import ConfigError

MAX_K = 1000  # the longest list a Recommender makes (cli/options.py's --k range says the same)


@dataclass(frozen=True)
class Recommendation:
    """One recommended or similar item (raw ID)."""

    item: Any
    title: str
    score: float
    genres: str = ""

    def to_dict(self) -> dict[str, Any]:
        return {"item": self.item, "title": self.title, "score": self.score, "genres": self.genres}


def check_k(k: int) -> None:
    """ConfigError unless ``1 <= k <= MAX_K``."""
    if not 1 <= k <= MAX_K:
        raise ConfigError(f"k must be between 1 and {MAX_K}, got {k}")


def plain(value: Any) -> Any:
    """numpy scalars -> Python scalars, so results serialise to JSON as they are."""
    return value.item() if hasattr(value, "item") else value


def as_recommendations(
    encoder: IdEncoder,
    titles: np.ndarray,
    genres: np.ndarray,
    items: list[int],
    scores: list[float],
) -> list[Recommendation]:
    """:class:`Recommendation` rows for item indices and their scores (non-finite left out)."""
    kept = [(i, s) for i, s in zip(items, scores, strict=True) if np.isfinite(s)]
    raw = encoder.decode_items([i for i, _ in kept])
    return [
        Recommendation(plain(rid), str(titles[i]), float(s), str(genres[i]))
        for rid, (i, s) in zip(raw, kept, strict=True)
    ]


def as_frame(
    encoder: IdEncoder,
    titles: np.ndarray,
    user_idx: np.ndarray,
    found: np.ndarray,
    scores: np.ndarray,
) -> pd.DataFrame:
    """Rows of ``Recommender.recommend`` from ``[U, k]`` item indices and scores (-inf: no
    item): ``user, rank, item, title, score``."""
    keep = np.isfinite(scores).ravel()
    width = found.shape[1]
    flat = found.ravel()[keep]
    return pd.DataFrame(
        {
            "user": np.repeat(encoder.decode_users(user_idx), width)[keep],
            "rank": np.tile(np.arange(1, width + 1, dtype=np.int64), len(user_idx))[keep],
            "item": encoder.decode_items(flat),
            "title": titles[flat].astype(str),
            "score": scores.ravel()[keep],
        }
    )
