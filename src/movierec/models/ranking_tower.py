"""A ranking head with factors of its own: ``c + r_i + p_u . q_i`` beside a rating model.

``joint`` training asks one model for two things that pull apart: ratings (MSE on observed
pairs, where a rarely rated film's noisy mean looks good) and lists (rated vs unrated items,
where popularity counts). A head that reads the rating model's own features bends them toward
one of the two; measured on ml-100k, shared factors gave either the rating RMSE or the ranking
NDCG, never both. The tower keeps the two apart: the rating model predicts ratings as it would
alone, the tower's dot product (MF trained with BCE/BPR, the strongest neural ranker we have
measured) ranks, and the training loop keeps each half at its own best validation epoch
(:meth:`movierec.models.base.RatingModel.ranking_only_prefix`).
"""

from __future__ import annotations

import math

import torch
from torch import nn

from movierec.errors import ConfigError

PREFIX = "rank_tower."
"""State-dict prefix of the tower's parameters inside the model that holds it."""


class RankingTower(nn.Module):
    """User and item factors plus item offsets, scored by a dot product.

    Args:
        n_users: User rows.
        n_items: Item rows.
        n_factors: Dimension of the tower's factors (>= 1).
        reg: Per-example L2 weight on the batch's factor rows (as MF's ``reg_factors``).
        init_std: Standard deviation of the initial factors.
    """

    def __init__(
        self, n_users: int, n_items: int, n_factors: int, reg: float, init_std: float = 0.01
    ) -> None:
        super().__init__()
        self.reg = reg
        self.user_factors = nn.Embedding(n_users, n_factors)
        self.item_factors = nn.Embedding(n_items, n_factors)
        self.item_offset = nn.Embedding(n_items, 1)
        nn.init.normal_(self.user_factors.weight, std=init_std)
        nn.init.normal_(self.item_factors.weight, std=init_std)
        nn.init.zeros_(self.item_offset.weight)

    def logits(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """Ranking logits ``[B]`` of int64 ``[B]`` pairs."""
        dot = (self.user_factors(user_idx) * self.item_factors(item_idx)).sum(dim=1)
        return dot + self.item_offset(item_idx).squeeze(1)

    def rank_items(self, user_idx: torch.Tensor) -> torch.Tensor:
        """Every item's logit for each user: ``[U, n_items]``, one matrix product."""
        return self.user_factors(user_idx) @ self.item_factors.weight.T + self.item_offset.weight.T

    def penalty(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """Per-example L2 on the rows of the batch, averaged over it."""
        rows = self.user_factors(user_idx).pow(2).sum(1) + self.item_factors(item_idx).pow(2).sum(1)
        return self.reg * rows.mean()

    def item_vectors(self) -> torch.Tensor:
        """The tower's item factors ``[n_items, d]``."""
        return self.item_factors.weight


def check_rank_tower(model: str, ranking_head: bool, rank_factors: int, rank_reg: float) -> None:
    """Refuse tower options that cannot work, naming the option and what is allowed."""
    if isinstance(rank_factors, bool) or not isinstance(rank_factors, int) or rank_factors < 0:
        raise ConfigError(
            f"{model}'s rank_factors must be an integer >= 0 (0: no ranking tower), "
            f"got {rank_factors!r}"
        )
    if rank_factors and not ranking_head:
        raise ConfigError(
            f"{model}'s rank_factors = {rank_factors} is the size of a ranking head's tower; "
            f"set ranking_head = true with it, or rank_factors = 0"
        )
    if not (isinstance(rank_reg, (int, float)) and math.isfinite(rank_reg) and rank_reg >= 0):
        raise ConfigError(f"{model}'s rank_reg must be a finite number >= 0, got {rank_reg!r}")


def add_penalties(*terms: torch.Tensor | None) -> torch.Tensor | None:
    """The sum of the terms that are not None (None when all are)."""
    present = [term for term in terms if term is not None]
    return sum(present[1:], present[0]) if present else None
