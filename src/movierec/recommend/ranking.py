"""Ranking: the key a run's lists are ordered by, and users ranked a block at a time.

:class:`Ranking` is the part of :class:`~movierec.recommend.recommender.Recommender` that turns
a model's scores into top-k indices; the Recommender sets the attributes it declares.

- the key (:meth:`Ranking._score`): a ``joint`` run's ranking head, unclipped; a rating run's
  clipped prediction less :meth:`Ranking.shrink_penalty` (``rank_by="shrunk"``) or alone
  (``"raw"``); a ranking run's score;
- the shown score (:meth:`Ranking._shown`): the predicted rating where the run predicts them;
- blocks (:meth:`Ranking.top_indices`): :data:`SCORE_ROWS` (user, item) scores a block, one
  mask and one ``topk`` each; the model keeps its own work per block cache-sized (the
  EmbeddingNet's ``pair_chunks``).
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from movierec.data.encoder import IdEncoder
from movierec.data.tensors import SeenItems
from movierec.models.base import SCORE_BLOCK, RatingModel, in_fixed_blocks

SCORE_ROWS = 1 << 16  # users x items scored (and ranked by one topk) per block
SHOWN_PAIRS = 256  # a joint run's shown ratings: pairs per fixed-shape forward (batch-invariant)


class Ranking:
    """Top-k indices for user indices, as every list of a Recommender ranks them.

    Attributes (set by the Recommender): ``model``, ``encoder``, ``seen``, ``objective``,
    ``predicts_ratings``, ``rating_scale``, ``_rank_by``, and the caches ``_scores``,
    ``_seen_from``, ``_item_side_cache``, ``_penalty``.
    """

    model: RatingModel
    encoder: IdEncoder
    seen: SeenItems
    objective: str
    _rank_by: str
    _scores: torch.Tensor | None
    _seen_from: list[int]
    _item_side_cache: torch.Tensor | None
    _penalty: torch.Tensor | None

    @property
    def predicts_ratings(self) -> bool:  # the Recommender's (run and model decide)
        raise NotImplementedError

    @property
    def rating_scale(self) -> tuple[float, float]:
        return self.model.rating_scale

    @torch.inference_mode()
    def precompute_scores(self, budget_bytes: int) -> bool:
        """Score every known user once, so :meth:`top_indices` only masks and ranks.

        Worth it while the model is frozen and served. Users are scored in blocks of
        :data:`SCORE_ROWS` scores, as :meth:`top_indices` scores them: scoring is
        batch-invariant (:meth:`_score`), so the stored rows are the bits :meth:`top_n` computes
        for one user alone.

        Args:
            budget_bytes: Most bytes the float32 ``[n_users, n_items]`` matrix may take; over
                it (or at 0) nothing is stored and users are scored per call.

        Returns:
            Whether the matrix fitted and is now used.
        """
        n_users, n_items = self.encoder.n_users, self.model.n_items
        if 4 * n_users * n_items > budget_bytes:
            self._scores = None
            return False
        scores = torch.empty(n_users, n_items)
        item_side = self.item_side()
        per_block = self._users_per_block()
        for start in range(0, n_users, per_block):
            users = torch.arange(start, min(start + per_block, n_users))
            scores[start : start + len(users)] = self._score(users, item_side)
        # The row offsets first: a request on another thread that sees the matrix needs them.
        self._seen_from = self.seen.indptr.tolist()
        self._scores = scores
        return True

    def _users_per_block(self) -> int:
        """Users scored and ranked per block: :data:`SCORE_ROWS` scores, and whole blocks of
        :data:`SCORE_BLOCK` users for models scored in fixed blocks (a large catalogue would
        otherwise pad each user alone to a block)."""
        per_block = max(1, SCORE_ROWS // max(1, self.model.n_items))
        if getattr(self.model, "batch_invariant", False):
            return per_block
        return max(1, per_block // SCORE_BLOCK) * SCORE_BLOCK

    @property
    def precomputed_scores(self) -> torch.Tensor | None:
        """The float32 ``[n_users, n_items]`` matrix :meth:`precompute_scores` stored, or None."""
        return self._scores

    @torch.inference_mode()
    def top_indices(
        self,
        user_idx: torch.Tensor,
        k: int,
        exclude: SeenItems | None = None,
        *,
        banned: torch.Tensor | None = None,
        on_block: Callable[[int], None] | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """Top-``k`` item indices and scores for each user index, batched over users.

        A block of users is scored as one ``[block, n_items]`` matrix, masked, and ranked by
        one ``topk``: no Python loop per user.

        Args:
            user_idx: int64 ``[U]`` user indices.
            k: How many items per user (capped at the catalogue size).
            exclude: Items to leave out per user (normally the training ratings), or None.
            banned: bool ``[n_items]``, True for items no list may hold (outside an allow-list,
                or on a deny-list), or None.
            on_block: Called with the number of users of each block once it is ranked
                (a progress bar).

        Returns:
            ``(item_idx [U, k] int64, score [U, k] float32)``, best first; excluded slots that
            had to be filled (a user who rated nearly everything) score ``-inf``. With
            :meth:`precompute_scores` the stored rows are ranked: the same scores ``top_n``
            computes, bit for bit.
        """
        k = min(k, self.model.n_items)
        per_batch = self._users_per_block()
        items_out, scores_out = [], []
        item_side = self.item_side()
        for start in range(0, len(user_idx), per_batch):
            batch = user_idx[start : start + per_batch]
            cached = self._scores
            scores = self._score(batch, item_side) if cached is None else cached[batch]
            if exclude is not None:
                scores = scores.masked_fill(exclude.mask(batch), float("-inf"))
            if banned is not None:
                scores = scores.masked_fill(banned, float("-inf"))
            top = torch.topk(scores, k, dim=1)
            items_out.append(top.indices)
            scores_out.append(self._shown(batch, top.indices, top.values))
            if on_block is not None:
                on_block(len(batch))
        if not items_out:
            empty = torch.empty(0, k)
            return empty.long(), empty
        return torch.cat(items_out), torch.cat(scores_out)

    def top_for_user(
        self, user: int, k: int, *, exclude_seen: bool = True
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """One user's top-``k`` ``(item_idx [k], score [k])``, best first, as :meth:`top_n` ranks.

        With :meth:`precompute_scores` this is the stored row, its seen items masked, and one
        ``topk``: microseconds, cheap enough for serving's event loop (no grad mode to enter:
        the stored scores carry no graph). Otherwise one row of :meth:`top_indices`. Slots a
        user who rated nearly everything could not fill score ``-inf``.
        """
        if self._scores is None:
            found, scores = self.top_indices(
                torch.tensor([user]), k, self.seen if exclude_seen else None
            )
            return found[0], scores[0]
        row = self._scores[user]
        if exclude_seen:
            seen = self.seen.indices[self._seen_from[user] : self._seen_from[user + 1]]
            row = row.index_fill(0, seen, float("-inf"))
        top = torch.topk(row, min(k, row.shape[0]))
        return top.indices, self._shown(torch.tensor([user]), top.indices[None], top.values[None])[
            0
        ]

    def item_side(self) -> torch.Tensor | None:
        """The user-independent part of scoring, computed once: the model is frozen here."""
        if self._item_side_cache is None:
            with torch.inference_mode():
                self._item_side_cache = self.model.item_side()
        return self._item_side_cache

    @torch.inference_mode()
    def score_users(self, users: torch.Tensor) -> torch.Tensor:
        """Every item's score for each user index ``[U] -> [U, n_items]``, as ``top_n`` ranks
        them: ratings clamped to the scale, or raw scores for runs that rank."""
        return self._score(users, self.item_side())

    def _score(self, users: torch.Tensor, item_side: torch.Tensor | None) -> torch.Tensor:
        """The ranking key of every item for ``users`` ``[U, n_items]`` (what top-k sorts).

        - a ``joint`` run: its ranking head (:meth:`RatingModel.rank_items`), unclipped;
        - a rating run with ``rank_by="shrunk"``: the clipped predicted rating less
          :meth:`shrink_penalty` (a lower confidence bound: few training ratings, less trust);
        - otherwise the model's score, clipped to the scale when it is a rating.

        Batch-invariant: a user's row is the same bits whichever users share the call (models
        that do not promise it themselves, ``RatingModel.batch_invariant``, are called on
        fixed blocks of users), so ``top_n``, blocks of ``recommend``, evaluation and the
        precomputed matrix rank alike.
        """
        ranks = self.objective == "joint"
        method = self.model.rank_items if ranks else self.model.score_items
        if getattr(self.model, "batch_invariant", False):  # (a duck-typed model: no)
            scores = method(users, item_side)
        else:
            scores = in_fixed_blocks(lambda block: method(block, item_side), users)
        if ranks or not self.predicts_ratings:
            return scores.float()
        scores = scores.clamp(*self.rating_scale)
        if self._rank_by == "shrunk":
            scores = scores - self.shrink_penalty()
        return scores

    def shrink_penalty(self) -> torch.Tensor:
        """Per item ``[n_items]``: ``s / sqrt(n_i + 1)`` rating points (``n_i``: training ratings).

        A predicted mean resting on one rating is as uncertain as that rating (the spread of
        ratings, ``s``, taken as a quarter of the scale's width plus one: 1.25 on 1-5, about
        MovieLens' rating standard deviation); on 100 ratings it is ten times surer. Subtracting
        this lower-confidence margin keeps the order of well-rated items and stops films rated
        by one or two people from topping every list; an item never outranks a more rated one
        with the same prediction.
        """
        if self._penalty is None:
            counts = torch.bincount(self.seen.indices, minlength=self.model.n_items)
            low, high = self.rating_scale
            spread = (high - low + 1.0) / 4.0
            self._penalty = (spread / torch.sqrt(counts.double() + 1.0)).float()
        return self._penalty

    def _shown(self, users: torch.Tensor, items: torch.Tensor, keys: torch.Tensor) -> torch.Tensor:
        """The scores a list shows for its ranked ``items [U, k]``: predicted ratings for runs
        that predict them (whatever ranked them), the ranking key otherwise; ``-inf`` slots kept."""
        if not self.predicts_ratings:
            return keys
        if self.objective == "joint":
            with torch.inference_mode():
                pairs = torch.stack([users[:, None].expand_as(items), items], dim=-1)
                shown = in_fixed_blocks(
                    lambda rows: self.model(rows[:, 0], rows[:, 1]), pairs.view(-1, 2), SHOWN_PAIRS
                )
                shown = shown.view_as(items).float()
            shown = shown.clamp(*self.rating_scale)
        elif self._rank_by == "shrunk":
            shown = keys + self.shrink_penalty()[items]
        else:
            shown = keys
        return torch.where(torch.isfinite(keys), shown, keys)
