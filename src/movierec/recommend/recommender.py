"""The :class:`Recommender`: a trained model behind raw IDs (see :mod:`movierec.recommend`)."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any, Literal

import numpy as np
import pandas as pd
import torch

from movierec.coldstart import fold_in_method, visitor_scores
from movierec.config import ModelSpec, check_rank_by
from movierec.data.encoder import IdEncoder, normalise_ids
from movierec.data.tensors import SeenItems
from movierec.errors import ConfigError, MovieRecError
from movierec.models.base import FoldInOptions, RatingModel
from movierec.models.bias import Biases
from movierec.recommend.explain import SimilaritySources, explain_indices, similar_indices
from movierec.recommend.filters import banned_items
from movierec.recommend.ranking import SCORE_ROWS, Ranking
from movierec.recommend.results import (
    Recommendation,
    as_frame,
    as_recommendations,
    check_k,
    plain,
)
from movierec.recommend.visitor import rank_visitor, visitor_ratings
from movierec.similarity import CoOccurrence, CosineOfVectors
from movierec.train.objectives import OBJECTIVES, predicts_ratings
from movierec.train.precision import PRECISIONS, native_bf16

if TYPE_CHECKING:
    from movierec.train import FitResult


class Recommender(Ranking):
    """A trained model with its ID maps, fallback, seen items and item metadata.

    Args:
        model: The trained model (moved to the CPU and put in eval mode).
        encoder: Raw ID <-> index maps the model was trained with.
        fallback: Bias baseline for IDs the model never saw.
        seen: Items each user rated in training (excluded from recommendations).
        items: Optional metadata frame with ``item_id``, ``title``, ``genres``.
        objective: The objective the model was trained with (one of
            :data:`movierec.train.objectives.OBJECTIVES`); it decides whether outputs are ratings.
        info: Free-form run facts (model name, dataset, split, ...), kept for display only.
        rank_by: How a run that predicts ratings orders its lists: ``"shrunk"`` (default: the
            prediction less a margin for items with few training ratings,
            :meth:`shrink_penalty`) or ``"raw"`` (the predicted rating alone). Shown scores are
            the predicted ratings either way; ranking runs and ``joint`` runs are unaffected.
        training: The fit's history (per-epoch losses, best epoch) when the recommender was
            just trained; None for a loaded run.
        spec: The model spec it was trained with (its options and training options, which
            :func:`movierec.experiment.save_recommender` writes to ``run.json``); None for a
            loaded run.
        precision: How catalogue scoring (lists, ranking metrics) multiplies matrices:
            ``fp32`` (exact, the default), ``bf16`` or ``auto`` (bfloat16 where the CPU has
            native bf16 units, AMX or AVX-512 BF16; float32 elsewhere). Only models with a deep
            per-pair network use it (the EmbeddingNet's layers after the first); rating
            predictions and RMSE are float32 whatever it says.

    Attributes:
        validation: For a recommender just trained with a validation carve-out, the
            predictions for it of the model that never learnt from it (the early-stopped
            model, before a refit): ``user_id``, ``item_id``, ``rating``, ``prediction``
            (:func:`movierec.pipeline.validation_predictions`); saved as the run's
            ``validation.parquet``, a blend's training rows. None otherwise.

    Raises:
        ConfigError: An unknown objective.
    """

    def __init__(
        self,
        model: RatingModel,
        encoder: IdEncoder,
        fallback: Biases,
        seen: SeenItems,
        items: pd.DataFrame | None = None,
        *,
        objective: str = "rating",
        info: dict[str, Any] | None = None,
        training: FitResult | None = None,
        rank_by: str = "shrunk",
        spec: ModelSpec | None = None,
        precision: str = "fp32",
    ):
        if objective not in OBJECTIVES:
            raise ConfigError(
                f"objective must be one of {', '.join(OBJECTIVES)} (got {objective!r})"
            )
        self.objective = objective
        self._rank_by = check_rank_by(rank_by)
        self.model = model.cpu().eval()
        self.encoder = encoder
        self.fallback = fallback
        self.seen = seen
        self.items = items
        self.info = dict(info or {})
        self.training = training
        self.spec = spec
        self.validation: pd.DataFrame | None = None
        self._titles, self._genres = self._align_metadata(items)
        self._similarity = SimilaritySources(
            self.model, seen, self.info.get("model", type(self.model).__name__)
        )
        self._item_side_cache: torch.Tensor | None = None
        self._scores: torch.Tensor | None = None
        self._seen_from: list[int] = []  # seen.indptr as ints, with the scores: [u]..[u+1]
        self._user_lookup: dict[str, int] | None = None
        self._penalty: torch.Tensor | None = None
        self.precision = precision

    def _align_metadata(self, items: pd.DataFrame | None) -> tuple[np.ndarray, np.ndarray]:
        """Titles and genres in item-index order ('' where the metadata has no row)."""
        ids = self.encoder.item_ids
        if items is None or items.empty:
            return np.array([str(i) for i in ids], dtype=object), np.full(
                len(ids), "", dtype=object
            )
        meta = items.drop_duplicates("item_id").set_index("item_id")
        meta.index = normalise_ids(meta.index)
        aligned = meta.reindex(ids)
        missing = aligned["title"].isna().to_numpy()
        titles = np.where(missing, ids.astype(str), aligned["title"].astype(str).to_numpy())
        genres = aligned["genres"].fillna("").astype(str).to_numpy(dtype=object)
        return titles.astype(object), genres

    @property
    def genres_by_index(self) -> np.ndarray:
        """Each item's ``|``-separated genres in item-index order ('' where unknown)."""
        return self._genres

    @property
    def rank_by(self) -> str:
        return self._rank_by

    @rank_by.setter
    def rank_by(self, value: str) -> None:
        self._rank_by = check_rank_by(value)
        self._scores = None  # a precomputed cache holds the old order

    @property
    def precision(self) -> str:
        """``fp32``, ``bf16`` or ``auto``: how lists are scored (see the class doc)."""
        return self._precision

    @precision.setter
    def precision(self, value: str) -> None:
        if value not in PRECISIONS:
            raise ConfigError(f"precision must be one of {', '.join(PRECISIONS)} (got {value!r})")
        # bf16 only where the CPU multiplies it natively (emulated, it is slower than fp32);
        # the model scores on the CPU (see __init__).
        native = value != "fp32" and native_bf16(torch.device("cpu"))
        self.model.scoring_dtype = torch.bfloat16 if native else None
        self._precision = value
        self._scores = None  # a precomputed cache holds the old scores

    @property
    def predicts_ratings(self) -> bool:
        """Whether the model's outputs are ratings (else ranking scores, see the module doc)."""
        return self.model.predicts_ratings and predicts_ratings(self.objective)

    def _require_ratings(self) -> None:
        if not self.predicts_ratings:
            model = self.info.get("model", self.model.name)
            why = (
                f"was trained with --objective {self.objective}"
                if not predicts_ratings(self.objective)
                else "is a ranking-only model"
            )
            raise MovieRecError(
                f"run of model {model!r} {why}: it predicts ranking scores, not ratings, so it "
                f"cannot predict a rating; use top-N recommendations, or train with "
                f"--objective rating for rating predictions"
            )

    def title(self, item_idx: int) -> str:
        return str(self._titles[item_idx])

    # -- rating prediction -------------------------------------------------------------------

    @torch.inference_mode()
    def predict(
        self,
        user_ids: Any,
        item_ids: Any,
        *,
        unknown: Literal["fallback", "error"] = "fallback",
    ) -> np.ndarray:
        """Predicted ratings for pairs of raw IDs (float64 ``[N]``), vectorised.

        Raises:
            MovieRecError: The run predicts ranking scores, not ratings (see the module doc).
        """
        self._require_ratings()
        users = self.encoder.encode_users(np.atleast_1d(np.asarray(user_ids)))
        items = self.encoder.encode_items(np.atleast_1d(np.asarray(item_ids)))
        if users.shape != items.shape:
            raise ConfigError(f"got {users.size} users but {items.size} items to pair")
        known = (users >= 0) & (items >= 0)
        if unknown == "error" and not known.all():
            first = int(np.argmin(known))
            if users[first] < 0:
                self.encoder.user_index(np.atleast_1d(user_ids)[first])
            self.encoder.item_index(np.atleast_1d(item_ids)[first])
        out = np.empty(users.shape, dtype=np.float64)
        if known.any():
            out[known] = self._model_predict(users[known], items[known])
        if not known.all():
            out[~known] = self._fallback_predict(users[~known], items[~known])
        return np.clip(out, *self.rating_scale)

    def _model_predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        user_t, item_t = torch.from_numpy(users), torch.from_numpy(items)
        chunks = [
            self.model(user_t[s : s + SCORE_ROWS], item_t[s : s + SCORE_ROWS])
            for s in range(0, len(users), SCORE_ROWS)
        ]
        return torch.cat(chunks).double().numpy()

    def _fallback_predict(self, users: np.ndarray, items: np.ndarray) -> np.ndarray:
        user_bias = self.fallback.user_bias.double().numpy()
        item_bias = self.fallback.item_bias.double().numpy()
        known_user, known_item = users >= 0, items >= 0
        estimate = np.full(users.shape, self.fallback.global_mean, dtype=np.float64)
        estimate[known_user] += user_bias[users[known_user]]
        estimate[known_item] += item_bias[items[known_item]]
        return estimate

    def user_index(self, raw: Any) -> int:
        """The index of a raw user ID, in about a microsecond for an ID as the data spells it.

        :meth:`IdEncoder.user_index` goes through a pandas Index (hundreds of microseconds a
        call); a dict of the IDs' text answers the common case, and anything else ("0196" for
        user 196) falls through to the encoder's rules.

        Raises:
            UnknownIdError: A user the model never saw.
        """
        if self._user_lookup is None:
            ids = self.encoder.user_ids.tolist()
            self._user_lookup = {str(plain(raw)): idx for idx, raw in enumerate(ids)}
        found = self._user_lookup.get(str(raw))
        return found if found is not None else self.encoder.user_index(raw)

    def top_n(
        self,
        user_id: Any,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        filter_items: Any = None,
    ) -> list[Recommendation]:
        """The ``k`` best items for a known user, with titles and predicted ratings (or ranking
        scores, for runs that do not predict ratings); ``items`` / ``filter_items`` as in
        :meth:`recommend`."""
        check_k(k)
        user = self.encoder.user_index(user_id)
        banned = banned_items(self.encoder, self.model.n_items, items, filter_items)
        if banned is None:
            found, scores = self.top_for_user(user, k, exclude_seen=exclude_seen)
        else:
            exclude = self.seen if exclude_seen else None
            found, scores = self.top_indices(torch.tensor([user]), k, exclude, banned=banned)
            found, scores = found[0], scores[0]
        return self._as_recommendations(found, scores)

    def recommend(
        self,
        users: Any = None,
        k: int = 10,
        *,
        exclude_seen: bool = True,
        items: Any = None,
        filter_items: Any = None,
        on_block: Callable[[int], None] | None = None,
    ) -> pd.DataFrame:
        """Top-``k`` lists for many users at once, ranked exactly as :meth:`top_n` ranks.

        Users are scored in blocks (:meth:`top_indices`: one score matrix, one mask and one
        ``topk`` per block), with the same ranking key and shown scores as :meth:`top_n`.

        Args:
            users: Raw user IDs, in the order wanted; None for every user the model knows.
            k: Items per user (1..1000); fewer where the allowed, unseen items run out.
            exclude_seen: Leave out the items each user rated in training.
            items: Allow-list of raw item IDs (only these may be recommended), or None.
            filter_items: Deny-list of raw item IDs (never recommended), or None.
            on_block: Called with the number of users of each ranked block (progress).

        Returns:
            One row per recommendation: ``user``, ``rank`` (1..k), ``item`` (raw IDs),
            ``title``, ``score`` (float32: predicted rating, or ranking score for runs that
            rank), users in the given order and each user's rows best first.

        Raises:
            UnknownIdsError: Users, or items of either list, the model never saw (a
                ``ValueError``; the message names them).
        """
        check_k(k)
        if users is None:
            user_idx = np.arange(self.encoder.n_users, dtype=np.int64)
        else:
            user_idx = self.encoder.encode_known_users(np.atleast_1d(np.asarray(users)), "asked")
        banned = banned_items(self.encoder, self.model.n_items, items, filter_items)
        found, scores = self.top_indices(
            torch.from_numpy(user_idx),
            k,
            self.seen if exclude_seen else None,
            banned=banned,
            on_block=on_block,
        )
        return as_frame(self.encoder, self._titles, user_idx, found.numpy(), scores.numpy())

    # -- a visitor the model never saw, and explanations --------------------------------------

    @property
    def fold_in_method(self) -> str:
        """How a visitor is folded in (:func:`movierec.coldstart.fold_in_method`)."""
        return fold_in_method(self)

    def top_for_ratings(
        self,
        item_ids: Any,
        ratings: Any,
        k: int,
        *,
        options: FoldInOptions | None = None,
        banned: torch.Tensor | None = None,
    ) -> tuple[torch.Tensor, torch.Tensor]:
        """A visitor's top-``k`` ``(item_idx [<=k] int64, score [<=k] float32)``, best first.

        The fold-in is :func:`movierec.coldstart.visitor_scores`; items are ranked by
        :func:`movierec.recommend.visitor.rank_visitor` (the unclipped key), the visitor's
        rated items and ``banned`` ones (bool ``[n_items]``) left out, and each shows the
        clipped predicted rating where the run predicts ratings, else its ranking score.
        :meth:`recommend_for_ratings` is this with raw IDs and titles.
        """
        check_k(k)
        found = visitor_scores(self, list(item_ids), list(ratings), options)
        return rank_visitor(found, k, banned)

    def recommend_for_ratings(
        self,
        ratings: Any,
        k: int = 10,
        *,
        options: FoldInOptions | None = None,
        items: Any = None,
        filter_items: Any = None,
    ) -> list[Recommendation]:
        """The ``k`` best items for a visitor the model never saw, from their ratings.

        The model is not changed: a fresh user is folded in as the run was trained (a rating
        fold-in for rating runs, a ranking-loss fold-in for bpr/bce/softmax/joint runs, EASE's
        exact ``x B``; see :mod:`movierec.coldstart`). ``movierec recommend RUN --ratings`` and
        ``POST /recommendations`` call this, so all three give the same list.

        Args:
            ratings: The visitor's ratings: a mapping of raw item ID -> rating, or a DataFrame
                with an ``item`` (or ``item_id``) and a ``rating`` column.
            k: How many items (1..1000); fewer when the unrated items run out.
            options: The fold-in's budget (steps, learning rate, pull, time cap).
            items: Allow-list of raw item IDs (only these may be listed), or None.
            filter_items: Deny-list of raw item IDs (never listed), or None.

        Returns:
            A list like :meth:`top_n`'s, best first, never an item the visitor rated: ``score``
            is the predicted rating clipped to the scale where the run predicts ratings, else
            the ranking score.

        Raises:
            UnknownIdError: An item the model never saw (the message names it).
            UnknownIdsError: A filter naming items the model never saw.
            ConfigError: No ratings, more than 1000, a repeated item, a rating outside the
                scale, or a frame without the columns.
        """
        item_ids, values = visitor_ratings(ratings)
        banned = banned_items(self.encoder, self.model.n_items, items, filter_items)
        found, scores = self.top_for_ratings(item_ids, values, k, options=options, banned=banned)
        return self._as_recommendations(found, scores)

    def explain(self, user_id: Any, item_id: Any, n: int = 3) -> list[Recommendation]:
        """The user's rated items that contributed most to their score of ``item_id``.

        - EASE: exact. Rated item ``j`` contributes ``B[j, item]`` and the contributions of all
          the user's rated items sum to the user's score of the item (``n`` at least the number
          rated returns them all).
        - Other models with item vectors (MF, the EmbeddingNet, ...): not a share of the score
          but the user's rated items nearest to ``item_id`` by cosine of the model's item
          vectors (:meth:`RatingModel.item_vectors`); the weight is that cosine.
        - Models without item vectors (biases, popularity, mean): nearest by Jaccard
          co-occurrence in training.

        Args:
            user_id: A raw user ID the model knows.
            item_id: A raw item ID the model knows (normally one recommended to the user).
            n: How many rated items, at least 1.

        Returns:
            Up to ``n`` rated items, largest weight first (ties: the lower item index), each a
            :class:`Recommendation` whose ``score`` is the contribution or the similarity.

        Raises:
            UnknownIdError: A user or item the model never saw.
            ConfigError: ``n`` below 1.
        """
        if n < 1:
            raise ConfigError(f"n must be at least 1, got {n}")
        user, item = self.encoder.user_index(user_id), self.encoder.item_index(item_id)
        rated, weights = self.explain_indices(user, item, n)
        return self._as_recommendations(rated, weights)

    def explain_indices(self, user: int, item: int, n: int) -> tuple[torch.Tensor, torch.Tensor]:
        """:meth:`explain` on indices: ``(item_idx [<=n] int64, weight [<=n] float32)``."""
        return explain_indices(self.model, self.seen, self._similarity, user, item, n)

    def similar_items(
        self,
        item_id: Any,
        k: int = 10,
        *,
        similarity: str | None = None,
        items: Any = None,
        filter_items: Any = None,
    ) -> list[Recommendation]:
        """The ``k`` items most similar to ``item_id`` (itself excluded).

        ``similarity`` (:data:`movierec.similarity.SIMILARITIES`): ``jaccard`` (default: who
        rated both, over who rated either, in training) or ``cosine`` (the model's item
        embeddings). The measured item-to-item hit rates that chose the default are in the
        issue notes and docs. ``items`` / ``filter_items``: allow- and deny-lists of raw item
        IDs, as in :meth:`recommend`.
        """
        check_k(k)
        item = self.encoder.item_index(item_id)
        banned = banned_items(self.encoder, self.model.n_items, items, filter_items)
        found, scores = similar_indices(self.similarity_source(similarity), item, k, banned)
        return self._as_recommendations(found, scores)

    def similarity_source(self, similarity: str | None = None) -> CoOccurrence | CosineOfVectors:
        """The object that scores item-item similarity rows, built once per kind."""
        return self._similarity.get(similarity)

    def _as_recommendations(
        self, items: torch.Tensor, scores: torch.Tensor
    ) -> list[Recommendation]:
        return as_recommendations(
            self.encoder, self._titles, self._genres, items.tolist(), scores.tolist()
        )
