"""Item popularity: every user gets the items rated by the most users in training.

The yardstick every top-N number must beat. Scores are training rating counts, not ratings:
``predicts_ratings`` is False, so evaluation reports no RMSE and the recommender refuses rating
predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from movierec.models.base import RatingModel


@dataclass(frozen=True)
class PopularityConfig:
    """Item popularity has no hyperparameters."""


class Popularity(RatingModel):
    """Scores each item by how many training ratings it has, the same for every user."""

    name = "popularity"
    config_class = PopularityConfig
    predicts_ratings = False
    ranking_fold_in_method = "popularity"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        rating_scale: tuple[float, float],
        config: PopularityConfig | None = None,
    ):
        super().__init__(n_users, n_items, rating_scale)
        self.config = config or PopularityConfig()
        self.register_buffer("counts", torch.zeros(n_items))

    @classmethod
    def default_train_overrides(cls, objective: str = "rating") -> dict[str, Any]:
        return {"validation_fraction": 0.0}

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        return self.counts[item_idx]

    def score_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.counts.expand(user_idx.shape[0], self.n_items)

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        self.counts.copy_(torch.bincount(item_idx, minlength=self.n_items).float())

    def fold_in_history(self, items: torch.Tensor) -> torch.Tensor:
        """A visitor gets what everyone gets: the training counts."""
        return self.counts.clone()
