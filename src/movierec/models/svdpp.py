"""SVD++ (Koren 2008): biased MF whose user vector also sums factors of the items the user rated.

``r_ui ~ mu + b_u + b_i + q_i . (p_u + |N(u)|^-1/2 sum_{j in N(u)} y_j)``

``N(u)`` is the set of items user ``u`` rated in the training ratings handed to
``init_from_data`` (the fit part of the split, never validation or test ratings), kept as CSR
buffers. Knowing *which* films someone chose to rate says something about them beyond the
ratings themselves, and it lets a user with few ratings borrow strength from the items' ``y``.
Trained by the shared loop with per-example L2, as Surprise's SGD does.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from movierec.errors import ConfigError
from movierec.models.base import RatingModel
from movierec.models.bias import fit_biases
from movierec.models.interactions import CsrBuffers, csr, gather_rows, resize_to_state
from movierec.models.mf import RANKING_TRAIN

_HISTORY = CsrBuffers("user_ptr", "user_items", "user_weights", rows="users", cols="items")


@dataclass(frozen=True)
class SVDppConfig:
    """Hyperparameters of SVD++.

    Attributes:
        n_factors: Dimension of ``p_u``, ``q_i`` and ``y_j``.
        reg_factors: L2 weight on ``|p_u|^2 + |q_i|^2`` per rating in the batch.
        reg_implicit: L2 weight on ``|N(u)|^-1/2 sum_{j in N(u)} |y_j|^2`` per rating in the
            batch (each implicit factor the prediction used, weighted as in the sum).
        reg_bias: L2 weight on ``b_u^2 + b_i^2`` per rating in the batch.
        init_std: Standard deviation of the initial factors.
    """

    n_factors: int = 64
    reg_factors: float = 0.05
    reg_implicit: float = 0.05
    reg_bias: float = 0.005
    init_std: float = 0.01

    def __post_init__(self) -> None:
        if self.n_factors < 1:
            raise ConfigError(f"svdpp needs n_factors >= 1 (got {self.n_factors})")
        regs = (self.reg_factors, self.reg_implicit, self.reg_bias, self.init_std)
        if min(regs) < 0:
            raise ConfigError(f"svdpp's reg_* and init_std must be >= 0 (got {list(regs)})")


class SVDpp(RatingModel):
    """Biased MF plus implicit feedback from each user's rated items."""

    name = "svdpp"
    config_class = SVDppConfig
    csr_buffers = (_HISTORY,)

    def __init__(
        self,
        n_users: int,
        n_items: int,
        rating_scale: tuple[float, float],
        config: SVDppConfig | None = None,
    ):
        super().__init__(n_users, n_items, rating_scale)
        self.config = config or SVDppConfig()
        dim = self.config.n_factors
        self.user_factors = nn.Embedding(n_users, dim)
        self.item_factors = nn.Embedding(n_items, dim)
        self.implicit_factors = nn.Embedding(n_items, dim)
        self.user_bias = nn.Embedding(n_users, 1)
        self.item_bias = nn.Embedding(n_items, 1)
        self.register_buffer("global_mean", torch.tensor(sum(rating_scale) / 2.0))
        # Empty histories until init_from_data: the model is then plain biased MF.
        self.register_buffer("user_ptr", torch.zeros(n_users + 1, dtype=torch.long))
        self.register_buffer("user_items", torch.zeros(0, dtype=torch.long))
        self.register_buffer("user_weights", torch.zeros(0))
        for table in (self.user_factors, self.item_factors, self.implicit_factors):
            nn.init.normal_(table.weight, std=self.config.init_std)
        nn.init.zeros_(self.user_bias.weight)
        nn.init.zeros_(self.item_bias.weight)

    @classmethod
    def default_train_overrides(cls, objective: str = "rating") -> dict[str, Any]:
        if objective != "rating":
            return RANKING_TRAIN[objective]
        # Regularisation lives in `penalty`; Adam's weight decay would shrink untouched rows too.
        return {"lr": 3e-3, "weight_decay": 0.0, "batch_size": 1024, "epochs": 40, "patience": 4}

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        biases = fit_biases(
            user_idx.cpu(), item_idx.cpu(), rating.cpu(), self.n_users, self.n_items
        )
        counts = torch.bincount(user_idx, minlength=self.n_users).float()
        weights = counts.clamp(min=1).rsqrt()[user_idx]
        ptr, items, values = csr(user_idx, item_idx, weights, self.n_users)
        device = self.global_mean.device
        with torch.no_grad():
            self.global_mean.fill_(biases.global_mean)
            self.user_bias.weight.copy_(biases.user_bias[:, None])
            self.item_bias.weight.copy_(biases.item_bias[:, None])
        self.user_ptr, self.user_items, self.user_weights = (
            ptr.to(device),
            items.to(device),
            values.to(device),
        )

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        resize_to_state(self, state_dict, prefix, _HISTORY.names)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _implicit(self, users: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
        """``|N(u)|^-1/2 sum_{j in N(u)} weight[j]`` for each user: ``[U, weight.shape[1]]``."""
        positions, offsets = gather_rows(self.user_ptr, users)
        return F.embedding_bag(
            self.user_items[positions],
            weight,
            offsets,
            mode="sum",
            per_sample_weights=self.user_weights[positions],
        )

    def user_vectors(self, user_idx: torch.Tensor) -> torch.Tensor:
        """``p_u + |N(u)|^-1/2 sum y_j``: ``[B, n_factors]``, each distinct user summed once."""
        unique, inverse = torch.unique(user_idx, return_inverse=True)
        implicit = self._implicit(unique, self.implicit_factors.weight)
        return self.user_factors(user_idx) + implicit[inverse]

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        dot = (self.user_vectors(user_idx) * self.item_factors(item_idx)).sum(dim=1)
        return (
            self.global_mean
            + self.user_bias(user_idx).squeeze(1)
            + self.item_bias(item_idx).squeeze(1)
            + dot
        )

    def score_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        dots = self.user_vectors(user_idx) @ self.item_factors.weight.T
        return self.global_mean + self.user_bias(user_idx) + self.item_bias.weight.T + dots

    def item_vectors(self) -> torch.Tensor:
        return self.item_factors.weight

    def penalty(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        cfg = self.config
        factors = self.user_factors(user_idx).pow(2).sum(1) + self.item_factors(item_idx).pow(
            2
        ).sum(1)
        biases = self.user_bias(user_idx).pow(2).squeeze(1) + self.item_bias(item_idx).pow(
            2
        ).squeeze(1)
        unique, inverse = torch.unique(user_idx, return_inverse=True)
        squared = self.implicit_factors.weight.pow(2).sum(1, keepdim=True)  # [n_items, 1]
        implicit = self._implicit(unique, squared).squeeze(1)[inverse]
        return (
            cfg.reg_factors * factors + cfg.reg_implicit * implicit + cfg.reg_bias * biases
        ).mean()
