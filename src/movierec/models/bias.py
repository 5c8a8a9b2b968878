"""User + item bias baseline: ``mu + b_u + b_i``, fitted in closed form (no gradient training)."""

from __future__ import annotations

from dataclasses import dataclass

import torch

from movierec.models.base import RatingModel
from movierec.models.biases import fit_biases


@dataclass(frozen=True)
class BiasConfig:
    """Shrinkage of the biases toward zero, in pseudo-ratings (Surprise's BaselineOnly defaults).

    Attributes:
        reg_user: Regularisation of user biases.
        reg_item: Regularisation of item biases.
        iterations: Alternating least-squares passes.
    """

    reg_user: float = 15.0
    reg_item: float = 10.0
    iterations: int = 10


class BiasModel(RatingModel):
    """Global mean plus regularised user and item offsets."""

    name = "bias"
    config_class = BiasConfig

    def __init__(
        self,
        n_users: int,
        n_items: int,
        rating_scale: tuple[float, float],
        config: BiasConfig | None = None,
    ):
        super().__init__(n_users, n_items, rating_scale)
        self.config = config or BiasConfig()
        self.register_buffer("global_mean", torch.tensor(sum(rating_scale) / 2.0))
        self.register_buffer("user_bias", torch.zeros(n_users))
        self.register_buffer("item_bias", torch.zeros(n_items))

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        return self.global_mean + self.user_bias[user_idx] + self.item_bias[item_idx]

    def score_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.global_mean + self.user_bias[user_idx, None] + self.item_bias[None, :]

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        biases = fit_biases(
            user_idx.cpu(),
            item_idx.cpu(),
            rating.cpu(),
            self.n_users,
            self.n_items,
            reg_user=self.config.reg_user,
            reg_item=self.config.reg_item,
            iterations=self.config.iterations,
        )
        self.global_mean.fill_(biases.global_mean)
        self.user_bias.copy_(biases.user_bias)
        self.item_bias.copy_(biases.item_bias)
