"""Biases: Koren's baseline ``r_ui ~ mu + b_u + b_i`` in closed form, and the model made of it.

- :func:`fit_biases` / :class:`Biases`: the closed-form fit, by alternating regularised means: a
  few vectorised passes that need no learning rate and cannot diverge. The bias baseline model,
  the starting point of matrix factorisation, and the fallback for users or items a model never
  saw all use this one function.
- :class:`BiasModel` / :class:`BiasConfig`: the user + item bias baseline (no gradient training).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch

from movierec.errors import ConfigError
from movierec.models.base import FoldInOptions, RatingModel, bias_fold_in


@dataclass(frozen=True)
class Biases:
    """Global mean and per-user / per-item offsets (float32 ``[n_users]``, ``[n_items]``)."""

    global_mean: float
    user_bias: torch.Tensor
    item_bias: torch.Tensor


def fit_biases(
    user_idx: torch.Tensor,
    item_idx: torch.Tensor,
    rating: torch.Tensor,
    n_users: int,
    n_items: int,
    *,
    reg_user: float = 15.0,
    reg_item: float = 10.0,
    iterations: int = 10,
) -> Biases:
    """Fit ``mu + b_u + b_i`` by alternating shrunken means.

    Args:
        user_idx: int64 ``[N]`` user indices.
        item_idx: int64 ``[N]`` item indices.
        rating: float ``[N]`` ratings.
        n_users: Size of the user axis (users without ratings get bias 0).
        n_items: Size of the item axis.
        reg_user: Shrinkage of user biases toward 0, in pseudo-ratings.
        reg_item: Shrinkage of item biases toward 0, in pseudo-ratings.
        iterations: Alternating passes; 10 is well past convergence on MovieLens.
    """
    rating = rating.double()
    mu = float(rating.mean()) if rating.numel() else 0.0
    user_count = torch.bincount(user_idx, minlength=n_users).double()
    item_count = torch.bincount(item_idx, minlength=n_items).double()
    user_bias = torch.zeros(n_users, dtype=torch.float64)
    item_bias = torch.zeros(n_items, dtype=torch.float64)
    residual = rating - mu
    for _ in range(iterations):
        item_sum = torch.zeros(n_items, dtype=torch.float64).index_add_(
            0, item_idx, residual - user_bias[user_idx]
        )
        item_bias = item_sum / (item_count + reg_item)
        user_sum = torch.zeros(n_users, dtype=torch.float64).index_add_(
            0, user_idx, residual - item_bias[item_idx]
        )
        user_bias = user_sum / (user_count + reg_user)
    return Biases(mu, user_bias.float(), item_bias.float())


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

    def __post_init__(self) -> None:
        if not (self.reg_user >= 0 and self.reg_item >= 0) or self.iterations < 1:
            raise ConfigError(
                f"bias needs reg_user, reg_item >= 0 and iterations >= 1 (got "
                f"{self.reg_user}, {self.reg_item}, {self.iterations})"
            )


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

    @torch.inference_mode()
    def fold_in(
        self,
        items: torch.Tensor,
        values: torch.Tensor,
        fallback: Biases,
        options: FoldInOptions,
        item_side: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The visitor's bias from this model's own terms and user regulariser."""
        return bias_fold_in(
            items, values, float(self.global_mean), self.item_bias.double(), self.config.reg_user
        )
