"""The global mean: every prediction is the mean training rating. The floor any model must beat."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from movierec.models.base import RatingModel


@dataclass(frozen=True)
class GlobalMeanConfig:
    """The global mean has no hyperparameters."""


class GlobalMean(RatingModel):
    """Predicts the training mean for every (user, item)."""

    name = "mean"
    config_class = GlobalMeanConfig

    def __init__(
        self,
        n_users: int,
        n_items: int,
        rating_scale: tuple[float, float],
        config: GlobalMeanConfig | None = None,
    ):
        super().__init__(n_users, n_items, rating_scale)
        self.config = config or GlobalMeanConfig()
        self.register_buffer("global_mean", torch.tensor(sum(rating_scale) / 2.0))

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        return self.global_mean.expand(user_idx.shape[0])

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        self.global_mean.fill_(float(rating.float().mean()))
