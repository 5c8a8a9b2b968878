"""Item-to-item similarity: which movies go with a movie, by the model or by who watched them.

- ``cosine``: cosine of the model's item vectors (:meth:`RatingModel.item_vectors`), as
  ``similar`` computed before; a model without item vectors has none.
- ``jaccard``: co-occurrence over the training users, ``|U_i & U_j| / |U_i | U_j|`` with
  ``U_i`` the users who rated ``i``. It needs no model, is exact for the data it saw, and on
  ml-100k its neighbours are the films the same people watched (see the issue notes for the
  measured item-to-item hit rate of each).

Rows are computed in blocks of items with one sparse x dense product per block, so asking for
one item's neighbours touches only the users who rated it, and all items' neighbours
(:func:`neighbours`) never build an ``n_items x n_items`` matrix.
"""

from __future__ import annotations

import torch

from movierec.data.tensors import SeenItems
from movierec.errors import ConfigError

SIMILARITIES = ("jaccard", "cosine")
DEFAULT_SIMILARITY = "jaccard"
BLOCK = 256  # items per sparse x dense product


def check_similarity(name: str) -> str:
    """``name`` if it is one of :data:`SIMILARITIES`, else a one-line ConfigError."""
    if name not in SIMILARITIES:
        raise ConfigError(f"similarity must be one of {', '.join(SIMILARITIES)} (got {name!r})")
    return name


class CoOccurrence:
    """Jaccard similarity of items over the users who rated them in training.

    Args:
        seen: Each user's training items (CSR by user).
        n_items: Catalogue size.
    """

    def __init__(self, seen: SeenItems, n_items: int):
        users = torch.repeat_interleave(torch.arange(len(seen.indptr) - 1), torch.diff(seen.indptr))
        items = seen.indices
        self.n_items = n_items
        self.n_users = len(seen.indptr) - 1
        self.counts = torch.bincount(items, minlength=n_items).float()
        order = torch.argsort(items, stable=True)
        self._users_by_item = users[order]
        self._item_from = torch.cat(
            [
                torch.zeros(1, dtype=torch.long),
                torch.cumsum(torch.bincount(items, minlength=n_items), 0),
            ]
        )
        values = torch.ones(len(items))
        self._item_user = torch.sparse_coo_tensor(
            torch.stack([items, users]), values, (n_items, self.n_users), check_invariants=False
        ).coalesce()

    def rows(self, items: torch.Tensor) -> torch.Tensor:
        """Jaccard similarity ``[len(items), n_items]`` of each of ``items`` to every item."""
        columns = torch.zeros(self.n_users, len(items))
        for j, item in enumerate(items.tolist()):
            raters = self._users_by_item[self._item_from[item] : self._item_from[item + 1]]
            columns[raters, j] = 1.0
        shared = torch.sparse.mm(self._item_user, columns).T  # [B, n_items]
        union = self.counts[items][:, None] + self.counts[None, :] - shared
        return torch.where(union > 0, shared / union.clamp(min=1.0), torch.zeros_like(shared))


class CosineOfVectors:
    """Cosine of item vectors (a model's item embeddings)."""

    def __init__(self, vectors: torch.Tensor):
        self._unit = torch.nn.functional.normalize(vectors.detach().float(), dim=1)

    def rows(self, items: torch.Tensor) -> torch.Tensor:
        return self._unit[items] @ self._unit.T


def neighbours(source: CoOccurrence | CosineOfVectors, n_items: int, k: int) -> torch.Tensor:
    """Every item's ``k`` most similar other items ``[n_items, k]`` (itself left out)."""
    out = []
    for start in range(0, n_items, BLOCK):
        items = torch.arange(start, min(start + BLOCK, n_items))
        rows = source.rows(items)
        rows[torch.arange(len(items)), items] = float("-inf")
        out.append(torch.topk(rows, min(k, n_items - 1), dim=1).indices)
    return torch.cat(out)
