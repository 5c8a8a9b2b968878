"""Biased matrix factorisation: ``mu + b_u + b_i + p_u . q_i`` (Funk/Koren SVD), trained by the
shared loop with per-example L2 on the rows each batch touches, as SGD-style MF does."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from movierec.errors import ConfigError
from movierec.models.base import FoldInOptions, RatingModel, VisitorRanker
from movierec.models.bias import Biases, fit_biases

# Ranking objectives: more epochs and sampled negatives per rated pair. First settings that
# train well on ml-100k's stratified split; not yet tuned on a validation carve-out.
_RANKING_SETTINGS: dict[str, Any] = {
    "lr": 5e-3,
    "weight_decay": 0.0,
    "batch_size": 1024,
    "epochs": 50,
    "patience": 5,
    "negatives": 4,
}
# The same settings serve both ranking objectives.
# ``joint`` samples negatives like them and reads the ranking settings too (its MSE half is the
# rating objective's loss; first settings, not tuned).
RANKING_TRAIN: dict[str, dict[str, Any]] = {
    "bpr": _RANKING_SETTINGS,
    "bce": _RANKING_SETTINGS,
    "softmax": _RANKING_SETTINGS,
    "joint": _RANKING_SETTINGS,
}


@dataclass(frozen=True)
class MFConfig:
    """Hyperparameters of biased matrix factorisation.

    Attributes:
        n_factors: Dimension of the user and item factor vectors.
        reg_factors: L2 weight on ``|p_u|^2 + |q_i|^2`` per rating in the batch.
        reg_bias: L2 weight on ``b_u^2 + b_i^2`` per rating in the batch.
        init_std: Standard deviation of the initial factors.
    """

    n_factors: int = 64
    reg_factors: float = 0.05
    reg_bias: float = 0.005
    init_std: float = 0.01
    ranking_head: bool = False

    def __post_init__(self) -> None:
        if self.n_factors < 1:
            raise ConfigError(f"mf needs n_factors >= 1 (got {self.n_factors})")
        values = (self.reg_factors, self.reg_bias, self.init_std)
        if not all(value >= 0 for value in values):  # NaN compares False
            raise ConfigError(f"mf's reg_* and init_std must be >= 0 (got {list(values)})")


class MatrixFactorization(RatingModel):
    """Dot product of user and item factors plus biases, starting from the closed-form biases."""

    name = "mf"
    fold_in_method = "ridge"
    ranking_fold_in_method = "adam"
    config_class = MFConfig

    def __init__(
        self,
        n_users: int,
        n_items: int,
        rating_scale: tuple[float, float],
        config: MFConfig | None = None,
    ):
        super().__init__(n_users, n_items, rating_scale)
        self.config = config or MFConfig()
        dim = self.config.n_factors
        self.user_factors = nn.Embedding(n_users, dim)
        self.item_factors = nn.Embedding(n_items, dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.register_buffer("global_mean", torch.tensor(sum(rating_scale) / 2.0))
        nn.init.normal_(self.user_factors.weight, std=self.config.init_std)
        nn.init.normal_(self.item_factors.weight, std=self.config.init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)
        if self.config.ranking_head:
            # The ranking logit shares the factors but has its own item offsets: popularity
            # (what sampled negatives teach) lands there, not in the rating biases.
            self.rank_item_bias = nn.Embedding(n_items, 1)
            self.rank_offset = nn.Parameter(torch.zeros(1))
            nn.init.zeros_(self.rank_item_bias.weight)

    @classmethod
    def default_train_overrides(cls, objective: str = "rating") -> dict[str, Any]:
        # Regularisation lives in `penalty`; Adam's weight decay would shrink untouched rows too.
        if objective == "rating":
            return {
                "lr": 3e-3,
                "weight_decay": 0.0,
                "batch_size": 1024,
                "epochs": 40,
                "patience": 4,
            }
        return RANKING_TRAIN[objective]

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        dot = (self.user_factors(user_idx) * self.item_factors(item_idx)).sum(dim=1)
        return (
            self.global_mean
            + self.user_bias(user_idx).squeeze(1)
            + self.item_bias(item_idx).squeeze(1)
            + dot
        )

    def logits(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """``b_u + b_i + p_u . q_i``: the forward output less the constant global mean; with a
        ranking head, ``c + r_i + p_u . q_i`` (its own item offsets)."""
        if not self.config.ranking_head:
            return self.forward(user_idx, item_idx) - self.global_mean
        dot = (self.user_factors(user_idx) * self.item_factors(item_idx)).sum(dim=1)
        return self.rank_offset + self.rank_item_bias(item_idx).squeeze(1) + dot

    def rank_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        if not self.config.ranking_head:
            return self.score_items(user_idx, item_side)
        return (
            self.user_factors(user_idx) @ self.item_factors.weight.T + self.rank_item_bias.weight.T
        )

    def score_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        dots = self.user_factors(user_idx) @ self.item_factors.weight.T
        return (
            self.global_mean
            + self.user_bias(user_idx)  # [U, 1] broadcasts over items
            + self.item_bias.weight.T
            + dots
        )

    def item_vectors(self) -> torch.Tensor:
        return self.item_factors.weight

    def visitor_ranker(self, item_side: torch.Tensor | None = None) -> VisitorRanker:
        """The visitor's factors ``p`` ranked as :meth:`rank_items` ranks: ``q_i . p`` plus the
        item offsets (the ranking head's, else the biases; the user's own bias orders nothing)."""
        factors = self.item_factors.weight.detach()
        offsets = (
            self.rank_item_bias if self.config.ranking_head else self.item_bias
        ).weight.detach()[:, 0]
        return VisitorRanker(
            self.user_factors.weight.detach().mean(dim=0),
            lambda user: factors @ user + offsets,
            self.config.reg_factors,
        )

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        biases = fit_biases(
            user_idx.cpu(), item_idx.cpu(), rating.cpu(), self.n_users, self.n_items
        )
        with torch.no_grad():
            self.global_mean.fill_(biases.global_mean)
            self.user_bias.weight.copy_(biases.user_bias[:, None])
            self.item_bias.weight.copy_(biases.item_bias[:, None])

    def penalty(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        factors = self.user_factors(user_idx).pow(2).sum(1) + self.item_factors(item_idx).pow(
            2
        ).sum(1)
        biases = self.user_bias(user_idx).pow(2).squeeze(1) + self.item_bias(item_idx).pow(
            2
        ).squeeze(1)
        return (self.config.reg_factors * factors + self.config.reg_bias * biases).mean()

    @torch.inference_mode()
    def fold_in(
        self,
        items: torch.Tensor,
        values: torch.Tensor,
        fallback: Biases,
        options: FoldInOptions,
        item_side: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Closed form: ``min |y - Q p - b|^2 + n (reg_f |p|^2 + reg_b b^2)`` over ``(p, b)``.

        A ridge regression of the visitor's vector and bias against the frozen item factors;
        see :meth:`RatingModel.fold_in` for the arguments (``options`` is not needed).
        """
        q = self.item_factors.weight.double()  # [n_items, d]
        item_bias = self.item_bias.weight.double().squeeze(1)  # [n_items]
        mu = float(self.global_mean)
        features = torch.cat([q[items], torch.ones(len(items), 1, dtype=torch.float64)], dim=1)
        target = values - mu - item_bias[items]
        n, dim = len(items), q.shape[1]
        # Training charges the L2 per rating, so a user with n ratings carries n times the
        # weight; the floor keeps the system well posed for a single rating.
        reg = torch.full((dim + 1,), max(self.config.reg_factors * n, 1e-3), dtype=torch.float64)
        reg[-1] = max(self.config.reg_bias * n, 1e-3)
        gram = features.T @ features + torch.diag(reg)
        solution = torch.linalg.solve(gram, features.T @ target)
        user_vector, user_bias = solution[:dim], solution[dim]
        return mu + user_bias + item_bias + q @ user_vector
