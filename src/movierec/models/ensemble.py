"""A seed ensemble of EmbeddingNets: ``members`` independently initialised nets, averaged.

The nets overfit ml-100k within a few epochs and each lands somewhere different; averaging
their predictions cancels part of that variance. They are trained together, in the one loop, on
the same batches, yet each on its *own* squared error: the loop's loss is on the average ``f``,
whose gradient reaches member ``k`` as ``2/K (f - r)``; :meth:`EmbeddingNetEnsemble.penalty` adds
``1/K sum_k (p_k - stopgrad(f))^2``, whose gradient is ``2/K (p_k - f)``, so the sum is
``2/K (p_k - r)``: exactly the gradient of independent training, and no member co-adapts to
the others. To do so the penalty reads the member outputs of the forward pass just before it
(the loop calls ``forward`` then ``penalty`` on the same batch).
"""

from __future__ import annotations

import dataclasses
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from movierec.errors import ConfigError
from movierec.models.base import RatingModel
from movierec.models.embedding_net import EmbeddingNet, EmbeddingNetConfig


@dataclass(frozen=True)
class EmbeddingNetEnsembleConfig(EmbeddingNetConfig):
    """Every EmbeddingNet option (shared by all members), plus how many members.

    Attributes:
        members: Number of independently initialised nets whose predictions are averaged.
    """

    members: int = 3

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.members < 1:
            raise ConfigError(f"embedding-net-ensemble needs members >= 1 (got {self.members})")

    def member_config(self) -> EmbeddingNetConfig:
        """The configuration each member net is built with."""
        values = dataclasses.asdict(self)
        values.pop("members")
        return EmbeddingNetConfig(**values)


class EmbeddingNetEnsemble(RatingModel):
    """The average of ``members`` EmbeddingNets, each trained on its own error."""

    name = "embedding-net-ensemble"
    config_class = EmbeddingNetEnsembleConfig
    batch_invariant = True  # its members are, and their mean is taken element by element

    def __init__(
        self,
        n_users: int,
        n_items: int,
        rating_scale: tuple[float, float],
        config: EmbeddingNetEnsembleConfig | None = None,
    ):
        super().__init__(n_users, n_items, rating_scale)
        self.config = config or EmbeddingNetEnsembleConfig()
        member = self.config.member_config()
        self.nets = nn.ModuleList(
            EmbeddingNet(n_users, n_items, rating_scale, member) for _ in range(self.config.members)
        )
        self._member_outputs: torch.Tensor | None = None

    @classmethod
    def default_train_overrides(cls, objective: str = "rating") -> dict[str, Any]:
        return EmbeddingNet.default_train_overrides(objective)

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        for net in self.nets:
            net.init_from_data(user_idx, item_idx, rating)

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        outputs = torch.stack([net(user_idx, item_idx) for net in self.nets])  # [K, B]
        self._member_outputs = outputs if self.training else None
        return outputs.mean(0)

    def logits(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """The averaged rating: the score that ranks like :meth:`score_items`."""
        return self.forward(user_idx, item_idx)

    def penalty(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor | None:
        """The members' own penalties, averaged, plus the term that decouples their training."""
        terms = [p for p in (net.penalty(user_idx, item_idx) for net in self.nets) if p is not None]
        total = torch.stack(terms).sum() / len(self.nets) if terms else None
        outputs, self._member_outputs = self._member_outputs, None
        if outputs is not None and outputs.shape[1] == user_idx.shape[0] and len(self.nets) > 1:
            spread = (outputs - outputs.mean(0).detach()).pow(2).mean()
            total = spread if total is None else total + spread
        return total

    def item_side(self) -> torch.Tensor:
        """Every member's item half of its first layer: ``[members, n_items, h1]``."""
        return torch.stack([net.item_side() for net in self.nets])

    def score_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        if item_side is None:
            item_side = self.item_side()
        for net in self.nets:  # the members score as the ensemble was asked to
            net.scoring_dtype = self.scoring_dtype
        scores = [
            net.score_items(user_idx, side) for net, side in zip(self.nets, item_side, strict=True)
        ]
        return torch.stack(scores).mean(0)

    def item_vectors(self) -> torch.Tensor:
        return torch.cat([net.item_vectors() for net in self.nets], dim=1)
