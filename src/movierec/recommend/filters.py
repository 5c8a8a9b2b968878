"""Allow- and deny-lists of items: which items no list may hold.

``Recommender.recommend``, ``top_n``, ``similar_items`` and ``recommend_for_ratings`` take
``items`` (only these may be listed) and ``filter_items`` (never these); the command line's
``--only`` and ``--exclude`` pass them on. Both are raw item IDs; an ID the model never saw is
refused (:class:`UnknownIdsError`, every unknown one named) rather than silently ignored, since
a filter that names a missing item is almost always a typo or a file for another dataset.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import torch

from movierec.data.encoder import IdEncoder
from movierec.errors import UnknownIdsError


def banned_items(
    encoder: IdEncoder,
    n_items: int,
    items: Any = None,
    filter_items: Any = None,
    *,
    where: tuple[str, str] = ("in the allow-list", "in the deny-list"),
) -> torch.Tensor | None:
    """Bool ``[n_items]``, True for items no list may hold; None when neither list is given.

    Args:
        encoder: The run's ID maps.
        n_items: The catalogue size.
        items: Allow-list of raw item IDs (only these), or None.
        filter_items: Deny-list of raw item IDs (never these), or None.
        where: How an error names each list (the CLI names its flags).

    Raises:
        UnknownIdsError: Either list names items the model never saw ("a filter naming
            unknown items", each one named).
    """
    if items is None and filter_items is None:
        return None
    banned = torch.zeros(n_items, dtype=torch.bool)
    if items is not None:
        banned[:] = True
        banned[torch.from_numpy(_known(encoder, items, where[0]))] = False
    if filter_items is not None:
        banned[torch.from_numpy(_known(encoder, filter_items, where[1]))] = True
    return banned


def _known(encoder: IdEncoder, values: Any, where: str) -> np.ndarray:
    try:
        return encoder.encode_known_items(ids(values), where)
    except UnknownIdsError as exc:
        raise UnknownIdsError(f"a filter naming unknown items: {exc}") from None


def ids(values: Any) -> np.ndarray:
    """An allow- or deny-list (any iterable, a set included) as a 1-D array of raw IDs."""
    return np.atleast_1d(
        np.asarray(list(values) if isinstance(values, (set, frozenset)) else values)
    )
