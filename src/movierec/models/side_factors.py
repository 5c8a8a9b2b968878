"""A factorised term with side features, added to a model's rating: ``p~_u . q~_i``.

An item autoencoder (Sparse FC) predicts each rating from the item's column of training
ratings alone: it cannot see who the user is beyond that column, nor anything the metadata
says (the user's age or occupation, the film's genres and year). This term adds what it
misses, as SVDFeature (Chen et al., 2012) does for matrix factorisation:

    p~_u = p_u + sum_f e_f(user feature f of u) + |N(u)|^-1/2 sum_{j in N(u)} y_j
    q~_i = q_i + sum_f e_f(item feature f of i)

where ``p_u`` / ``q_i`` are free vectors per user / item, ``e_f`` one learned vector per value
of each metadata column (:class:`~movierec.models.features.FeatureTable`; a multi-hot column
such as genres averages its values'), and, with ``implicit``, ``N(u)`` the items ``u`` rated
in training (SVD++'s implicit feedback). So a 25-year-old student's vector and a 1990s
comedy's meet in one dot product, which the owning model adds to its own output and trains
with its own loss: one model, one objective, not a blend.

An item with no training rating would have an untrained ``q_i`` (shrunk to zero by the L2
penalty) and only its features here; Sparse FC, the model that uses this term, leaves such
items to the bias fallback (``RatingModel.scores_unrated_items``), which measured better.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch
import torch.nn.functional as F
from torch import nn

from movierec.models.features import MULTI_HOT_COLUMNS, EncodedFeature, FeatureTable
from movierec.models.interactions import CsrBuffers, csr, gather_rows, resize_to_state

INIT_STD = 0.01
"""Standard deviation of every vector's normal start: small, so training starts from the owning
model alone (the term is ~1e-4 at first) and grows only what the data supports."""
_RATED = CsrBuffers("user_ptr", "user_items", "user_values", rows="users", cols="items")


class SideFactors(nn.Module):
    """``p~_u . q~_i`` for pairs, or for every item and user (:meth:`matrix`).

    Args:
        n_users: Users of the model.
        n_items: Items of the model.
        factors: Width of every vector.
        user_features: User metadata columns, in order.
        item_features: Item metadata columns, in order.
        implicit: Add the normalised sum of ``y_j`` over each user's training items to ``p_u``.
    """

    def __init__(
        self,
        n_users: int,
        n_items: int,
        factors: int,
        user_features: Sequence[str] = (),
        item_features: Sequence[str] = (),
        implicit: bool = False,
    ) -> None:
        super().__init__()
        self.n_users, self.n_items, self.factors = n_users, n_items, factors
        self.user_names, self.item_names = tuple(user_features), tuple(item_features)
        self.user_vectors = nn.Parameter(torch.randn(n_users, factors) * INIT_STD)
        self.item_vectors = nn.Parameter(torch.randn(n_items, factors) * INIT_STD)
        self.user_tables = nn.ModuleList(
            FeatureTable(n_users, factors, name in MULTI_HOT_COLUMNS) for name in user_features
        )
        self.item_tables = nn.ModuleList(
            FeatureTable(n_items, factors, name in MULTI_HOT_COLUMNS) for name in item_features
        )
        self.implicit = implicit
        if implicit:
            self.implicit_vectors = nn.Parameter(torch.randn(n_items, factors) * INIT_STD)
            # Each user's training items, empty until init_from_data (values unused: ones).
            self.register_buffer("user_ptr", torch.zeros(n_users + 1, dtype=torch.long))
            self.register_buffer("user_items", torch.zeros(0, dtype=torch.long))
            self.register_buffer("user_values", torch.zeros(0))

    def attach(self, users: Sequence[EncodedFeature], items: Sequence[EncodedFeature]) -> None:
        """Take the encoded metadata (in the order of the names); every value's vector starts
        small, like the others."""
        for tables, features in ((self.user_tables, users), (self.item_tables, items)):
            for table, feature in zip(tables, features, strict=True):
                table.attach(feature)
                nn.init.normal_(table.weight, 0.0, INIT_STD)

    def init_from_data(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> None:
        """Record each user's training items (the implicit feedback), if used."""
        if not self.implicit:
            return
        device = self.user_vectors.device
        ptr, items, values = csr(user_idx, item_idx, torch.ones(user_idx.shape), self.n_users)
        self.user_ptr, self.user_items = ptr.to(device), items.to(device)
        self.user_values = values.to(device)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        if self.implicit:
            resize_to_state(self, state_dict, prefix, _RATED.names)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def user(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``p~_u`` of user indices ``rows`` (None: every user): ``[B, factors]``."""
        if rows is None:
            rows = torch.arange(self.n_users, device=self.user_vectors.device)
        vectors = self.user_vectors[rows] + self._features(self.user_tables, rows)
        if self.implicit:
            distinct, inverse = torch.unique(rows, return_inverse=True)
            positions, offsets = gather_rows(self.user_ptr, distinct)
            counts = (self.user_ptr[distinct + 1] - self.user_ptr[distinct]).clamp(min=1)
            summed = F.embedding_bag(
                self.user_items[positions], self.implicit_vectors, offsets, mode="sum"
            )
            vectors = vectors + (summed / counts.to(summed.dtype).sqrt()[:, None])[inverse]
        return vectors

    def item(self, rows: torch.Tensor | None = None) -> torch.Tensor:
        """``q~_i`` of item indices ``rows`` (None: every item): ``[B, factors]``."""
        if rows is None:
            rows = torch.arange(self.n_items, device=self.item_vectors.device)
        return self.item_vectors[rows] + self._features(self.item_tables, rows)

    @staticmethod
    def _features(tables: nn.ModuleList, rows: torch.Tensor) -> torch.Tensor | float:
        """The sum of the rows' feature vectors (0 with no features)."""
        return sum((table(rows) for table in tables), start=0.0)

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """``p~_u . q~_i`` of each pair: ``[B]``."""
        return (self.user(user_idx) * self.item(item_idx)).sum(1)

    def matrix(self) -> torch.Tensor:
        """The term for every item and user: ``[n_items, n_users]``."""
        return self.item() @ self.user().T

    def squared_norm(self) -> torch.Tensor:
        """Sum of squares of every learned vector (the L2 penalty's)."""
        tensors = [self.user_vectors, self.item_vectors]
        tensors += [table.weight for table in (*self.user_tables, *self.item_tables)]
        if self.implicit:
            tensors.append(self.implicit_vectors)
        return sum(tensor.pow(2).sum() for tensor in tensors)
