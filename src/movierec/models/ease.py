"""EASE (Steck, 2019): a closed-form item-item linear model for top-N ranking.

With ``X`` the binary user x item matrix of training ratings (1 where the user rated the item,
whatever the rating) and ``G = X^T X + l2 * I``, the item-item weights are
``B = I - P / diag(P)`` with ``P = G^{-1}`` (so ``diag(B) = 0``: an item never explains itself).
A user's scores are ``X_u B``. No gradient training; one ``n_items x n_items`` inverse, so the
catalogue is capped at :data:`MAX_ITEMS`.

EASE ranks; it does not predict ratings: ``predicts_ratings`` is False, evaluation reports no RMSE
for it, and the recommender refuses rating predictions.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import torch

from movierec.errors import ConfigError
from movierec.models.base import RatingModel

MAX_ITEMS = 20_000


@dataclass(frozen=True)
class EASEConfig:
    """Hyperparameters of EASE.

    Attributes:
        l2: L2 regularisation added to the Gram matrix's diagonal (Steck's lambda).
    """

    l2: float = 500.0

    def __post_init__(self) -> None:
        if not self.l2 > 0:
            raise ConfigError(f"EASE needs l2 > 0 (got {self.l2})")


class EASE(RatingModel):
    """Scores ``X_u B`` from the user's training items and the closed-form item weights."""

    name = "ease"
    config_class = EASEConfig
    predicts_ratings = False
    ranking_fold_in_method = "exact"

    def __init__(
        self,
        n_users: int,
        n_items: int,
        rating_scale: tuple[float, float],
        config: EASEConfig | None = None,
    ):
        super().__init__(n_users, n_items, rating_scale)
        self.config = config or EASEConfig()
        if n_items > MAX_ITEMS:
            raise ConfigError(
                f"EASE inverts an n_items x n_items matrix; {n_items:,} items is more than "
                f"{MAX_ITEMS:,}. Use mf or embedding-net with --objective bpr on this dataset"
            )
        self.register_buffer("user_items", torch.zeros(n_users, n_items))
        self.register_buffer("weights", torch.zeros(n_items, n_items))

    @classmethod
    def default_train_overrides(cls, objective: str = "rating") -> dict[str, Any]:
        # Closed form: nothing to stop early, so keep every training rating.
        return {"validation_fraction": 0.0}

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        return (self.user_items[user_idx] * self.weights[:, item_idx].T).sum(dim=1)

    def score_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        return self.user_items[user_idx] @ self.weights

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        device = self.weights.device
        matrix = torch.zeros(self.n_users, self.n_items, dtype=torch.float64, device=device)
        matrix[user_idx, item_idx] = 1.0
        gram = matrix.T @ matrix
        gram.diagonal().add_(self.config.l2)
        precision = torch.linalg.inv(gram)
        weights = -precision / precision.diagonal()[None, :]
        weights.diagonal().zero_()
        self.user_items.copy_(matrix.float())
        self.weights.copy_(weights.float())

    def fold_in_history(self, items: torch.Tensor) -> torch.Tensor:
        """Exact: the visitor's binary history row ``x`` (1 at ``items``) times ``B``, as a
        known user's ``X_u B``; the ratings' values do not enter, as in training."""
        return self.weights[items].sum(dim=0)

    def explain_weights(self, user: int, item: int) -> tuple[torch.Tensor, torch.Tensor]:
        """``B[j, item]`` for each item ``j`` the user rated: their sum is ``X_u B[:, item]``."""
        rated = torch.nonzero(self.user_items[user], as_tuple=True)[0]
        return rated, self.weights[rated, item]
