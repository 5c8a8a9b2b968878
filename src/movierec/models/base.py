"""The interface every rating model shares.

A model maps index tensors to predicted ratings and knows nothing of files, frames or raw IDs.
Subclasses implement :meth:`RatingModel.forward`; the rest have sensible defaults:

- :meth:`score_items` scores a batch of users against the whole catalogue (one matrix per batch),
  which evaluation, ``top_n`` and serving use. Models override it when part of the work depends
  only on the items and can be shared across users.
- :meth:`item_side` is the part of :meth:`score_items` shared by every user (None when
  there is none), computed once by callers that score many users.
- :meth:`item_vectors` returns the item embeddings that ``similar_items`` compares by cosine.
- :meth:`init_from_data` sets a closed-form starting point (global mean, biases) before training.
- :meth:`penalty` adds a per-batch regulariser to the loss (per-example L2, for instance);
  :meth:`joint_penalty` is the one ``joint`` training adds.
- :meth:`ranking_only_prefix` names the parameters only the ranking score reads (a ranking
  tower), which ``joint`` training keeps at their own best validation epoch.
- :meth:`logits` is the unbounded score the ranking objectives (BPR, BCE) train; by default the
  forward output. It must rank items in the same order as :meth:`score_items`.
- :meth:`fold_in` scores the whole catalogue for a visitor the model never saw, from a few of
  their ratings, without changing the model (cold start); ``fold_in_method`` names how. The
  default is bias-only; models with a user representation fit a fresh one.
- For runs that rank (``bpr``, ``bce``, ``softmax``, ``joint``, or a ranking-only model) the
  visitor's ranking comes from :meth:`fold_in_history` where the ranking is a closed form of
  the history (EASE's ``x B``, popularity's counts), else from :meth:`visitor_ranker`: the
  fresh user vector and the ranking scores it gives, which :mod:`movierec.coldstart` fits
  with the run's ranking loss; ``ranking_fold_in_method`` names which.
- :meth:`explain_weights` gives each rated item's exact share of a score where the model has
  one (EASE); the recommender explains other models by item-vector cosine.
- ``predicts_ratings`` is False for ranking-only models (EASE, popularity), whose outputs are
  scores: evaluation reports no RMSE for them and the recommender does not clip them.
- ``batch_invariant`` says that :meth:`score_items` and :meth:`rank_items` give each user's row
  the same bits whichever other users share the call; callers score other models in calls of
  exactly :data:`SCORE_BLOCK` users (:func:`in_fixed_blocks`), which makes them so.
- ``scoring_dtype``: the dtype a model may run the matrix products of catalogue scoring in
  (``torch.bfloat16`` where the hardware multiplies it natively); None, the default, is float32.
  :meth:`forward` (rating prediction, RMSE) is float32 whatever it says.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, ClassVar

import torch
from torch import nn

if TYPE_CHECKING:
    from movierec.models.bias import Biases  # bias.py holds a model, so it imports this module
    from movierec.models.interactions import CsrBuffers

FOLD_IN_REG_USER = 15.0  # the visitor's bias shrinkage when the model has no reg of its own
SCORE_BLOCK = 32
"""Users per call of :func:`in_fixed_blocks`. A matrix product's last bits depend on its shape
(one user takes a matrix-vector kernel, many a blocked one), but not on where a row sits in a
product of one fixed shape: calls of exactly this many rows give every user the same scores
alone or in a batch of thousands. 32 rows cost a batch of one little (one user's scores of a
59k-item catalogue by 64 factors: 3 ms) and keep products of many users near full speed."""


def in_fixed_blocks(
    fn: Callable[[torch.Tensor], torch.Tensor], rows: torch.Tensor, block: int = SCORE_BLOCK
) -> torch.Tensor:
    """``fn(rows)`` computed ``block`` rows per call, the last call padded with copies of its
    first row: batch-invariant (see :data:`SCORE_BLOCK`) where ``fn`` maps row ``r`` of its input
    to row ``r`` of its output with matrix products.

    Args:
        fn: Maps ``[block, ...]`` to ``[block, ...]`` (a model's ``score_items`` on user indices).
        rows: ``[N, ...]``, ``N >= 0``.
        block: Rows per call.

    Returns:
        ``fn``'s rows for ``rows``, ``[N, ...]``.
    """
    if rows.shape[0] == 0:
        return fn(rows)
    out = []
    for start in range(0, rows.shape[0], block):
        part = rows[start : start + block]
        short = block - part.shape[0]
        if short:
            part = torch.cat([part, part[:1].expand(short, *part.shape[1:])])
        out.append(fn(part)[: block - short])
    return out[0] if len(out) == 1 else torch.cat(out)


@dataclass(frozen=True)
class FoldInOptions:
    """Budget of an iterative fold-in (closed forms ignore it).

    Attributes:
        steps: Optimiser steps on the visitor's representation.
        lr: The optimiser's learning rate.
        l2: Pull of the visitor's representation toward its start, per unit distance.
        max_seconds: Wall-clock cap on the steps; the best representation so far is kept
            (the rating fold-in's; the ranking fold-in runs every step, so that its lists do
            not depend on the machine's load).
    """

    steps: int = 60
    lr: float = 0.05
    l2: float = 1e-3
    max_seconds: float = 0.25


@dataclass(frozen=True)
class VisitorRanker:
    """What a ranking fold-in fits: a fresh user vector and the ranking scores it gives.

    Attributes:
        start: float32 ``[d]`` the vector's starting point (the mean trained user vector).
        scores: Maps a float32 ``[d]`` user vector to float32 ``[n_items]`` ranking scores,
            differentiable in the vector and ordered as the model's ranking score orders items
            (the model's weights are only read).
        reg: Pull of the vector toward ``start`` per unit squared distance (the model's own
            per-example L2 where it has one).
    """

    start: torch.Tensor
    scores: Callable[[torch.Tensor], torch.Tensor]
    reg: float


class RatingModel(nn.Module):
    """Base class: ``forward(user_idx, item_idx) -> predicted rating``.

    Args:
        n_users: Number of user rows (indices ``0..n_users-1``).
        n_items: Number of item rows.
        rating_scale: ``(min, max)`` of the ratings the model is trained on.
    """

    name: ClassVar[str]
    config_class: ClassVar[type]
    predicts_ratings: ClassVar[bool] = True
    fold_in_method: ClassVar[str] = "biases"
    ranking_fold_in_method: ClassVar[str] = "biases"
    # Buffers holding the training ratings as CSR (SVD++, AutoRec): their values are indices,
    # checked when a run is loaded.
    csr_buffers: ClassVar[tuple[CsrBuffers, ...]] = ()
    batch_invariant: ClassVar[bool] = False  # see the module doc
    # Whether items that only the item metadata names (no training rating) join the catalogue
    # and get the model's own scores (from their features); otherwise they stay unknown and
    # get the bias fallback, like any unknown item.
    scores_unrated_items: ClassVar[bool] = False

    def __init__(self, n_users: int, n_items: int, rating_scale: tuple[float, float]):
        super().__init__()
        self.scoring_dtype: torch.dtype | None = None  # see the module doc
        self.n_users = n_users
        self.n_items = n_items
        self.rating_scale = (float(rating_scale[0]), float(rating_scale[1]))

    @classmethod
    def default_train_overrides(cls, objective: str = "rating") -> dict[str, Any]:
        """Training hyperparameters this model prefers over :class:`TrainConfig`'s defaults,
        for the given training objective."""
        return {}

    @property
    def trainable(self) -> bool:
        """Whether gradient training changes anything (the global mean has no parameters)."""
        return any(p.requires_grad for p in self.parameters())

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """Predict ratings.

        Args:
            user_idx: int64 tensor ``[B]`` of user indices.
            item_idx: int64 tensor ``[B]`` of item indices.

        Returns:
            float32 tensor ``[B]`` of predicted ratings.
        """
        raise NotImplementedError

    def item_side(self) -> torch.Tensor | None:
        """The user-independent part of :meth:`score_items`, or None when there is none.

        Callers that score many batches of users against a frozen model compute it once and
        pass it back to :meth:`score_items`; models with nothing to share return None.
        """
        return None

    def score_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Predict every item for each user: float tensor ``[U, n_items]``.

        ``item_side`` is :meth:`item_side`'s result for the current weights (None: computed
        here when the model has one). The default broadcasts :meth:`forward` over the
        catalogue; callers batch users so that ``U * n_items`` stays a few hundred thousand
        rows.
        """
        n_users = user_idx.shape[0]
        items = torch.arange(self.n_items, device=user_idx.device)
        users = user_idx.repeat_interleave(self.n_items)
        return self.forward(users, items.repeat(n_users)).view(n_users, self.n_items)

    def logits(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """Unbounded scores ``[B]`` for the ranking losses (default: :meth:`forward`)."""
        return self.forward(user_idx, item_idx)

    def rank_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Every item's ranking score ``[U, n_items]``, ordered as :meth:`logits` orders them.

        The default is :meth:`score_items`: one score both predicts and ranks. A model with a
        ranking head of its own (``joint`` training) ranks by that head instead.
        """
        return self.score_items(user_idx, item_side)

    def item_vectors(self) -> torch.Tensor | None:
        """Item embeddings ``[n_items, d]`` for cosine similarity, or None if the model has none."""
        return None

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        """Set a closed-form starting point from the training ratings (default: nothing)."""

    def penalty(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor | None:
        """An extra loss term for this batch (default: none)."""
        return None

    def joint_penalty(
        self,
        rated: tuple[torch.Tensor, torch.Tensor],
        scored: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor | None:
        """The regulariser of a ``joint`` batch: ``rated`` are its ``(user_idx, item_idx)``
        rated pairs, ``scored`` those plus the sampled negatives.

        By default :meth:`penalty` over every scored pair, as the ranking objectives charge
        it; a model with a ranking tower charges its rating part on the rated pairs only, as
        ``rating`` training would, and the tower on all of them.
        """
        return self.penalty(*scored)

    def ranking_only_prefix(self) -> str | None:
        """State-dict prefix of the parameters only the ranking score reads, or None.

        When a model has such parameters, ``joint`` training stops early on each half by its
        own measure (validation RMSE for the rest, NDCG@10 for these) and keeps each at its
        best epoch.
        """
        return None

    @torch.inference_mode()
    def fold_in(
        self,
        items: torch.Tensor,
        values: torch.Tensor,
        fallback: Biases,
        options: FoldInOptions,
        item_side: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Scores of every item for a new visitor who gave ``values`` to ``items``.

        The model is only read. The default is ``mu + b_u + b_i`` from the bias baseline, with
        the visitor's bias a shrunken mean of their residuals: right for any model, and the
        best a model without a user representation can do.

        Args:
            items: int64 ``[m]`` distinct item indices the visitor rated.
            values: float64 ``[m]`` their ratings, within the rating scale.
            fallback: The bias baseline fitted on the training ratings.
            options: Budget of iterative fold-ins.
            item_side: :meth:`item_side` for the current weights, when the caller has it.

        Returns:
            ``[n_items]`` scores in item-index order, not yet clipped to the rating scale.
        """
        return bias_fold_in(
            items, values, fallback.global_mean, fallback.item_bias.double(), FOLD_IN_REG_USER
        )

    def fold_in_history(self, items: torch.Tensor) -> torch.Tensor | None:
        """Ranking scores ``[n_items]`` of a visitor from the items they rated alone, where the
        model's ranking is a closed form of the history (EASE) or ignores the user
        (popularity); None (the default) where a user vector must be fitted.

        Args:
            items: int64 ``[m]`` distinct item indices the visitor rated.
        """
        return None

    def visitor_ranker(self, item_side: torch.Tensor | None = None) -> VisitorRanker | None:
        """The user vector a ranking fold-in fits and the ranking scores it gives, or None
        (the default: no user vector; such a model ranks a visitor by :meth:`fold_in`)."""
        return None

    def explain_weights(self, user: int, item: int) -> tuple[torch.Tensor, torch.Tensor] | None:
        """Each item ``user`` rated and its exact share of the user's score of ``item``:
        ``(item_idx [m] int64, weight [m] float)``, the weights summing to the score; None
        (the default) where a score does not split over rated items."""
        return None


def bias_fold_in(
    items: torch.Tensor,
    values: torch.Tensor,
    global_mean: float,
    item_bias: torch.Tensor,
    reg_user: float,
) -> torch.Tensor:
    """``mu + b_u + b_i`` for every item, ``b_u`` the visitor's shrunken mean residual.

    Shared by the default :meth:`RatingModel.fold_in` (the fallback's biases) and the bias
    model (its own trained biases and user regulariser).
    """
    user_bias = float(torch.sum(values - global_mean - item_bias[items])) / (len(items) + reg_user)
    return global_mean + user_bias + item_bias
