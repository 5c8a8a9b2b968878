"""Negative sampling for the ranking objectives: items a user did not rate in training.

:class:`NegativeSampler` is built once from the training ``(user_idx, item_idx)`` pairs and draws
whole batches at a time on tensors, never a Python loop per rating:

1. draw candidates for every row at once, uniformly (``torch.randint``) or in proportion to item
   popularity (``torch.multinomial`` over training counts);
2. find the candidates the user rated with one ``torch.searchsorted`` against the sorted keys
   ``user * n_items + item`` of the training pairs, and redraw only those, a few rounds;
3. rows still colliding after that (users who rated most of the catalogue) are drawn exactly from
   the user's unrated items, with the rated items' weights zeroed.

A returned item is therefore never one the user rated in training. Randomness comes from the
``torch.Generator`` passed in, so draws are reproducible under a seed.
"""

from __future__ import annotations

import torch

from movierec.errors import ConfigError, DataError

SAMPLING = ("uniform", "popularity")
REJECTION_ROUNDS = 8


class NegativeSampler:
    """Draws items each user did not rate in training.

    Args:
        user_idx: int64 ``[N]`` training users.
        item_idx: int64 ``[N]`` training items (same length).
        n_items: Size of the item axis.
        sampling: ``uniform`` over the catalogue, or ``popularity``: in proportion to each item's
            training count (at least 1, so every item can be drawn).
        generator: Source of randomness, on the device the samples should live on.
    """

    def __init__(
        self,
        user_idx: torch.Tensor,
        item_idx: torch.Tensor,
        n_items: int,
        *,
        sampling: str = "uniform",
        generator: torch.Generator | None = None,
    ):
        if sampling not in SAMPLING:
            raise ConfigError(
                f"negative_sampling must be one of {', '.join(SAMPLING)} (got {sampling!r})"
            )
        if n_items < 1:
            raise ConfigError("negative sampling needs at least one item")
        self.n_items = n_items
        self.sampling = sampling
        self.device = user_idx.device
        self.generator = generator or torch.Generator(device=self.device)
        self.keys = torch.unique(user_idx * n_items + item_idx)  # sorted
        self.weights = (
            torch.bincount(item_idx, minlength=n_items).float().clamp_min(1.0)
            if sampling == "popularity"
            else None
        )

    def _draw(self, count: int) -> torch.Tensor:
        if self.weights is None:
            return torch.randint(
                self.n_items, (count,), generator=self.generator, device=self.device
            )
        return torch.multinomial(self.weights, count, replacement=True, generator=self.generator)

    def rated(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """Bool, same shape: True where the user rated the item in training."""
        if self.keys.numel() == 0:
            return torch.zeros_like(user_idx, dtype=torch.bool)
        query = user_idx * self.n_items + item_idx
        position = torch.searchsorted(self.keys, query).clamp_max(self.keys.numel() - 1)
        return self.keys[position] == query

    def sample(self, user_idx: torch.Tensor, n: int = 1) -> torch.Tensor:
        """``n`` negatives per user: int64 ``[B, n]`` item indices none of which the user rated.

        Raises:
            DataError: A user rated every item that can be drawn, so has no negative.
        """
        users = user_idx.repeat_interleave(n)
        items = self._draw(users.numel())
        bad = torch.nonzero(self.rated(users, items)).squeeze(1)
        for _ in range(REJECTION_ROUNDS):
            if bad.numel() == 0:
                break
            items[bad] = self._draw(bad.numel())
            bad = bad[self.rated(users[bad], items[bad])]
        if bad.numel():
            items[bad] = self._exact(users[bad])
        return items.view(-1, n)

    def _exact(self, users: torch.Tensor) -> torch.Tensor:
        """Draw from each user's unrated items with the rated ones' weights zeroed."""
        weights = (
            torch.ones(self.n_items, device=self.device) if self.weights is None else self.weights
        )
        grid = weights.expand(users.numel(), self.n_items).clone()
        all_items = torch.arange(self.n_items, device=self.device)
        rated = self.rated(users[:, None].expand_as(grid), all_items.expand_as(grid))
        grid[rated] = 0.0
        if bool((grid.sum(1) == 0).any()):
            raise DataError(
                "a user rated every item, so no negative item can be sampled for them; "
                "drop such users or train with --objective rating"
            )
        return torch.multinomial(grid, 1, generator=self.generator).squeeze(1)
