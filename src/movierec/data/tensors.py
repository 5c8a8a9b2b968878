"""Encoded ratings as whole tensors: the form the training loop and evaluation consume.

Rows whose user or item the encoder does not know are left out (and counted), because a model can
only score indices it has rows for; callers that must score them use the recommender's fallback.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import torch

from movierec.data.encoder import IdEncoder


@dataclass(frozen=True)
class RatingTensors:
    """Contiguous tensors of equal length ``N``.

    Attributes:
        user_idx: int64 ``[N]``.
        item_idx: int64 ``[N]``.
        rating: float32 ``[N]``.
        n_unknown: Rows dropped because their user or item is unknown to the encoder.
    """

    user_idx: torch.Tensor
    item_idx: torch.Tensor
    rating: torch.Tensor
    n_unknown: int = 0

    def __len__(self) -> int:
        return int(self.user_idx.shape[0])

    def to(self, device: torch.device | str) -> RatingTensors:
        return RatingTensors(
            self.user_idx.to(device),
            self.item_idx.to(device),
            self.rating.to(device),
            self.n_unknown,
        )

    @classmethod
    def from_frame(cls, ratings: pd.DataFrame, encoder: IdEncoder) -> RatingTensors:
        """Encode a canonical ratings frame, dropping rows with unknown IDs.

        The encoded indices become the tensors as they are when every ID is known (no copy of
        them: 300 MB for 18M ratings); the ratings are always copied, so that the tensors
        never share memory with the frame.
        """
        users = encoder.encode_users(ratings["user_id"].to_numpy())
        items = encoder.encode_items(ratings["item_id"].to_numpy())
        known = (users >= 0) & (items >= 0)
        n_unknown = int(len(known) - np.count_nonzero(known))
        values = ratings["rating"].to_numpy(dtype=np.float32, copy=not n_unknown)
        if n_unknown:
            users, items, values = users[known], items[known], values[known]
        return cls(
            torch.from_numpy(np.ascontiguousarray(users)),
            torch.from_numpy(np.ascontiguousarray(items)),
            torch.from_numpy(np.ascontiguousarray(values)),
            n_unknown,
        )


@dataclass(frozen=True)
class SeenItems:
    """Which items each user rated in training, as CSR arrays (``indptr [n_users+1]``, ``indices``).

    Used to leave already-rated items out of recommendations and ranking candidates.
    """

    indptr: torch.Tensor
    indices: torch.Tensor
    n_items: int

    @classmethod
    def from_tensors(cls, tensors: RatingTensors, n_users: int, n_items: int) -> SeenItems:
        """Sort the (user, item) pairs as one int64 key each, in place, and read the items back
        from the sorted keys: one array of N keys is all the extra memory (an argsort would add
        its indices, its sorted values and a gather: about 1 GB more for 20M ratings)."""
        # int64 keys whatever the index dtype: users x items passes 2**31 at MovieLens-25M size.
        keys = tensors.user_idx.cpu().numpy().astype(np.int64) * n_items
        keys += tensors.item_idx.cpu().numpy()
        keys.sort()
        if n_items:
            np.remainder(keys, n_items, out=keys)
        counts = torch.bincount(tensors.user_idx.cpu(), minlength=n_users)
        indptr = torch.zeros(n_users + 1, dtype=torch.int64)
        indptr[1:] = torch.cumsum(counts, 0)
        return cls(indptr, torch.from_numpy(keys), n_items)

    @property
    def n_users(self) -> int:
        return int(self.indptr.shape[0]) - 1

    def items_of(self, user: int) -> torch.Tensor:
        """Item indices rated by one user (int64 ``[n]``)."""
        return self.indices[self.indptr[user] : self.indptr[user + 1]]

    def mask(self, user_idx: torch.Tensor) -> torch.Tensor:
        """Bool ``[U, n_items]``: True where user ``user_idx[u]`` rated the item in training."""
        starts, ends = self.indptr[user_idx], self.indptr[user_idx + 1]
        lengths = ends - starts
        rows = torch.repeat_interleave(torch.arange(len(user_idx)), lengths)
        offsets = torch.arange(int(lengths.sum())) - torch.repeat_interleave(
            torch.cumsum(lengths, 0) - lengths, lengths
        )
        cols = self.indices[torch.repeat_interleave(starts, lengths) + offsets]
        mask = torch.zeros(len(user_idx), self.n_items, dtype=torch.bool)
        mask[rows, cols] = True
        return mask
