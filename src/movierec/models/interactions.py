"""The training ratings as compressed rows, for models that read a user's or an item's history.

SVD++ sums factors over the items each user rated; I-AutoRec encodes each item's column of
ratings. Both keep those histories as CSR buffers (``ptr``, ``index``, ``value``) built from the
training tensors in ``init_from_data``, and gather the rows of a batch into the flat
``(input, offsets, per_sample_weights)`` triple that :func:`torch.nn.functional.embedding_bag`
sums: cost proportional to the ratings touched, not to ``n_users x n_items``.

The buffers' lengths are the number of training ratings, unknown when a saved run rebuilds the
model, so :func:`resize_to_state` lets ``load_state_dict`` accept the saved lengths. A model
names its buffers with :class:`CsrBuffers` (``RatingModel.csr_buffers``), so a run's loader can
check their values (:func:`movierec.run_checks.check_state`) as it checks the seen items.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Literal

import torch
from torch import nn


@dataclass(frozen=True)
class CsrBuffers:
    """The names of a model's CSR buffers (from :func:`csr`) and what they index.

    Attributes:
        ptr: int64 ``[n_rows + 1]`` row pointers.
        index: int64 ``[N]`` column of each entry.
        value: float ``[N]`` value of each entry.
        rows: What a row is: ``"users"`` or ``"items"``.
        cols: What a column (``index``) is.
    """

    ptr: str
    index: str
    value: str
    rows: Literal["users", "items"]
    cols: Literal["users", "items"]

    @property
    def names(self) -> tuple[str, str, str]:
        return (self.ptr, self.index, self.value)


def csr(
    rows: torch.Tensor, cols: torch.Tensor, values: torch.Tensor, n_rows: int
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
    """Group ``(row, col, value)`` triples by row, columns ascending within a row.

    Args:
        rows: int64 ``[N]`` row of each entry (user or item index).
        cols: int64 ``[N]`` column of each entry.
        values: float ``[N]`` value of each entry.
        n_rows: Size of the row axis; rows without entries get empty segments.

    Returns:
        ``ptr`` int64 ``[n_rows + 1]`` (row ``r`` is ``ptr[r]:ptr[r+1]``), ``index`` int64
        ``[N]`` (columns, grouped by row) and ``value`` float32 ``[N]``.
    """
    width = int(cols.max()) + 1 if cols.numel() else 1
    order = torch.argsort(rows * width + cols)
    counts = torch.bincount(rows, minlength=n_rows)
    ptr = torch.zeros(n_rows + 1, dtype=torch.long, device=rows.device)
    ptr[1:] = torch.cumsum(counts, 0)
    return ptr, cols[order].long(), values[order].float()


def gather_rows(ptr: torch.Tensor, rows: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    """Positions of the entries of ``rows`` in a CSR structure, as embedding-bag bags.

    Args:
        ptr: int64 ``[n_rows + 1]`` row pointers from :func:`csr`.
        rows: int64 ``[B]`` rows wanted (repeats allowed).

    Returns:
        ``positions`` int64 ``[M]`` into ``index``/``value`` (row after row) and ``offsets``
        int64 ``[B]``, where bag ``b`` starts in ``positions``.
    """
    starts = ptr[rows]
    lengths = ptr[rows + 1] - starts
    offsets = torch.zeros_like(lengths)
    if lengths.numel() > 1:
        offsets[1:] = torch.cumsum(lengths[:-1], 0)
    total = int(lengths.sum())
    within = torch.arange(total, device=ptr.device) - offsets.repeat_interleave(lengths)
    return starts.repeat_interleave(lengths) + within, offsets


def resize_to_state(
    module: nn.Module, state_dict: Mapping[str, torch.Tensor], prefix: str, names: Iterable[str]
) -> None:
    """Give the named buffers the shapes found in ``state_dict``, so a strict load copies them.

    Call from ``_load_from_state_dict`` before the base class's copy.
    """
    for name in names:
        saved = state_dict.get(prefix + name)
        if saved is not None and saved.shape != getattr(module, name).shape:
            current = getattr(module, name)
            fresh = torch.empty(saved.shape, dtype=current.dtype, device=current.device)
            setattr(module, name, fresh)
