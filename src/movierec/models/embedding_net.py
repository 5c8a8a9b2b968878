"""EmbeddingNet: the model movierec was founded on.

A user embedding and an item embedding (``n_factors`` each) are concatenated, passed through
embedding dropout, then fully connected layers with ReLU (and dropout after the first
``len(dropouts)`` of them), a final linear unit, and a sigmoid scaled to the rating range.
Following the founding article, the sigmoid is stretched to ``[min - 0.5, max + 0.5]`` so the
extreme ratings are reachable without saturating it; predictions are clipped to the rating scale
at the recommender's edge.

Options beyond the article (all off by default, leaving the article's model as it was) target
its overfitting on small data: ``biases`` adds user and item bias terms to the output, started
from the closed-form biases, so the network only models what the biases leave over;
``reg_embeddings`` and ``reg_bias`` are per-example L2 penalties on the embedding and bias rows
of each batch, so a row is pulled toward zero as often as it is used (frequency-proportional
regularisation, as SGD-trained MF does), unlike Adam's weight decay. ``interaction =
"concat+product"`` adds NeuMF's GMF branch: the element-wise product of the two embeddings is
concatenated with the last hidden layer before the final linear unit, so the dot-product
signal MF learns easily does not have to be rebuilt by the MLP. ``ranking_head`` with
``rank_factors > 0`` gives ``joint`` training a ranking tower of its own
(:mod:`movierec.models.ranking_tower`): the network predicts ratings as it would alone and the
tower's dot product ranks.

Side features (``user_features``, ``item_features``: metadata columns such as ``genres``,
``year``, ``age``, ``gender``, ``occupation``, ``zip_code``; :mod:`movierec.models.features`)
are embedded (``feature_factors`` each) and concatenated with the ID embeddings: the user's
beside the user's, the item's beside the item's. They also score items training never saw
(item cold start): such an item's ID embedding is untrained, so it is replaced by
``cold_items`` (the mean trained item embedding, or zeros) and its bias is 0;
``item_id_dropout`` replaces it the same way in a share of training examples, so that the net
learns to predict from the features alone. Without features the model is exactly as before.
"""

from __future__ import annotations

import itertools
import math
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from movierec.errors import ConfigError
from movierec.models.base import FoldInOptions, RatingModel, VisitorRanker, in_fixed_blocks
from movierec.models.bias import Biases, fit_biases
from movierec.models.features import EncodedFeature, SideFeatures
from movierec.models.ranking_tower import PREFIX, RankingTower, add_penalties, check_rank_tower

# Ranking objectives: sampled negatives per rated pair. First settings that train well on
# ml-100k's stratified split; not yet tuned (that belongs to the rating-quality work).
_RANKING_SETTINGS: dict[str, Any] = {
    "lr": 1e-3,
    "weight_decay": 0.0,
    "batch_size": 1024,
    "epochs": 30,
    "patience": 3,
    "negatives": 4,
}
# The same settings serve both ranking objectives.
# ``joint`` samples negatives like them and reads the ranking settings too (its MSE half is the
# rating objective's loss; first settings, not tuned).
CHUNK_BYTES = 1 << 19
"""Activations of the widest layer per chunk of scored pairs (:meth:`EmbeddingNet.pair_chunks`):
half a MiB sits in one core's L2 cache; on ml-100k's article net (300 wide: 436 pairs a chunk)
chunks of 256-512 pairs scored in 0.39-0.46 s per 100 users against 0.67 s for 32,768 (one
thread, AMD EPYC)."""
BF16_CHUNK_BYTES = 1 << 23
"""The same with ``scoring_dtype`` bfloat16: AMX tiles want long products, and each chunk pays
fixed costs (the cast to bf16 and back, the output unit). Measured on the article net, 578 users
x 10k items (one thread, Xeon with AMX): 21.0, 15.4, 12.8, 11.3, 8.8 and 9.4 ms a user for
0.5, 1, 2, 4, 8 and 16 MiB."""

INTERACTIONS = ("concat", "concat+product")
"""How the embeddings meet: the MLP on their concatenation, or that plus their product."""

COLD_ITEMS = ("mean", "zero")
"""What stands in for the ID embedding of an item training never saw."""

RANKING_TRAIN: dict[str, dict[str, Any]] = {
    "bpr": _RANKING_SETTINGS,
    "bce": _RANKING_SETTINGS,
    "softmax": _RANKING_SETTINGS,
    "joint": _RANKING_SETTINGS,
}


@dataclass(frozen=True)
class EmbeddingNetConfig:
    """Architecture of the EmbeddingNet; the defaults are the founding article's example.

    Attributes:
        n_factors: Dimension of each of the user and item embeddings.
        hidden: Widths of the fully connected layers.
        dropouts: Dropout rate after each of the first ``len(dropouts)`` hidden layers.
        embedding_dropout: Dropout on the concatenated embeddings.
        biases: Add user and item biases (started from the closed-form ones) to the output.
        reg_embeddings: Per-example L2 weight on the batch's user and item embedding rows.
        reg_bias: Per-example L2 weight on the batch's user and item biases (with ``biases``).
        interaction: ``concat`` (the article's MLP on the concatenated embeddings) or
            ``concat+product`` (plus the GMF branch ``e_u * e_i`` beside the last hidden layer).
        ranking_head: Rank by a score of its own (``joint`` training): a second output unit on
            the network's features, or with ``rank_factors`` a separate ranking tower.
        rank_factors: Factors of the ranking tower (0: the head shares the network's features).
        rank_reg: Per-example L2 weight on the tower's factor rows.
        user_features: User metadata columns embedded beside the user ID (``age``,
            ``gender``, ``occupation``, ``zip_code``...).
        item_features: Item metadata columns embedded beside the item ID (``genres``,
            ``year``...).
        feature_factors: Width of each feature's embedding.
        cold_items: ``mean`` or ``zero``: the ID embedding of an item training never saw.
        item_id_dropout: Share of training examples whose item is treated as unseen (ID
            embedding replaced by ``cold_items``, bias dropped); needs ``item_features``.
    """

    n_factors: int = 150
    hidden: tuple[int, ...] = field(default=(100, 200, 300))
    dropouts: tuple[float, ...] = field(default=(0.25, 0.5))
    embedding_dropout: float = 0.02
    biases: bool = False
    ranking_head: bool = False
    reg_embeddings: float = 0.0
    reg_bias: float = 0.0
    interaction: str = "concat"
    rank_factors: int = 0
    rank_reg: float = 0.01
    user_features: tuple[str, ...] = ()
    item_features: tuple[str, ...] = ()
    feature_factors: int = 16
    cold_items: str = "mean"
    item_id_dropout: float = 0.0

    def __post_init__(self) -> None:
        # TOML and JSON give lists; a frozen config holds tuples so it stays hashable.
        object.__setattr__(self, "hidden", tuple(int(h) for h in self.hidden))
        object.__setattr__(self, "dropouts", tuple(float(d) for d in self.dropouts))
        for name in ("user_features", "item_features"):
            object.__setattr__(self, name, tuple(getattr(self, name)))
        self._check_features()
        if self.n_factors < 1 or not self.hidden or min(self.hidden) < 1:
            raise ConfigError(
                f"EmbeddingNet needs n_factors >= 1 and at least one hidden layer of width >= 1 "
                f"(got n_factors={self.n_factors}, hidden={list(self.hidden)})"
            )
        if len(self.dropouts) > len(self.hidden):
            raise ConfigError(
                f"EmbeddingNet has {len(self.hidden)} hidden layers but {len(self.dropouts)} "
                f"dropout rates; give at most one rate per hidden layer"
            )
        rates = (*self.dropouts, self.embedding_dropout)
        if any(not 0.0 <= rate < 1.0 for rate in rates):
            raise ConfigError(f"dropout rates must be in [0, 1), got {list(rates)}")
        if self.reg_embeddings < 0 or self.reg_bias < 0:
            raise ConfigError(
                f"EmbeddingNet's reg_embeddings and reg_bias must be >= 0 "
                f"(got {self.reg_embeddings}, {self.reg_bias})"
            )
        check_rank_tower("EmbeddingNet", self.ranking_head, self.rank_factors, self.rank_reg)
        if self.interaction not in INTERACTIONS:
            raise ConfigError(
                f"EmbeddingNet's interaction must be one of {', '.join(INTERACTIONS)} "
                f"(got {self.interaction!r})"
            )

    def _check_features(self) -> None:
        for kind in ("user", "item"):
            names = getattr(self, f"{kind}_features")
            if not all(isinstance(n, str) and n for n in names) or len(set(names)) < len(names):
                raise ConfigError(
                    f"EmbeddingNet's {kind}_features must list distinct column names, got "
                    f"{list(names)}"
                )
        if self.feature_factors < 1:
            raise ConfigError(
                f"EmbeddingNet's feature_factors must be >= 1 (got {self.feature_factors})"
            )
        if self.cold_items not in COLD_ITEMS:
            raise ConfigError(
                f"EmbeddingNet's cold_items must be one of {', '.join(COLD_ITEMS)} "
                f"(got {self.cold_items!r})"
            )
        if not 0.0 <= self.item_id_dropout < 1.0 or (
            self.item_id_dropout and not self.item_features
        ):
            raise ConfigError(
                f"EmbeddingNet's item_id_dropout must be in [0, 1) and needs item_features "
                f"(got {self.item_id_dropout}, item_features={list(self.item_features)})"
            )

    @property
    def has_features(self) -> bool:
        return bool(self.user_features or self.item_features)


class EmbeddingNet(RatingModel):
    """User and item embeddings -> MLP -> scaled sigmoid."""

    name = "embedding-net"
    batch_invariant = True  # see score_items
    scores_unrated_items = True  # from their features (cold_items, item_id_dropout)
    fold_in_method = "adam"
    ranking_fold_in_method = "adam"
    config_class = EmbeddingNetConfig

    def __init__(
        self,
        n_users: int,
        n_items: int,
        rating_scale: tuple[float, float],
        config: EmbeddingNetConfig | None = None,
    ):
        super().__init__(n_users, n_items, rating_scale)
        self.config = config or EmbeddingNetConfig()
        cfg = self.config
        self.user_embedding = nn.Embedding(n_users, cfg.n_factors)
        self.item_embedding = nn.Embedding(n_items, cfg.n_factors)
        self.embedding_dropout = nn.Dropout(cfg.embedding_dropout)
        self.side = (
            SideFeatures(
                n_users,
                n_items,
                cfg.user_features,
                cfg.item_features,
                cfg.feature_factors,
                cfg.item_id_dropout,
            )
            if cfg.has_features
            else None
        )
        # The first layer reads [user ID, user features, item ID, item features].
        self.user_width = cfg.n_factors + (self.side.user_width if self.side else 0)
        self.item_width = cfg.n_factors + (self.side.item_width if self.side else 0)
        layers: list[nn.Module] = []
        width = self.user_width + self.item_width
        for depth, out in enumerate(cfg.hidden):
            layers += [nn.Linear(width, out), nn.ReLU()]
            if depth < len(cfg.dropouts):
                layers.append(nn.Dropout(cfg.dropouts[depth]))
            width = out
        self.hidden = nn.Sequential(*layers)
        self.product = cfg.interaction == "concat+product"
        self.output = nn.Linear(width + (cfg.n_factors if self.product else 0), 1)
        self.rank_tower = (
            RankingTower(n_users, n_items, cfg.rank_factors, cfg.rank_reg)
            if cfg.rank_factors
            else None
        )
        if cfg.ranking_head and self.rank_tower is None:
            # A second unit on the same features: the ranking logit of ``joint`` training, so
            # what sampled negatives teach (popularity) does not bend the predicted ratings.
            self.rank_output = nn.Linear(self.output.in_features, 1)
        low, high = self.rating_scale
        self.register_buffer("offset", torch.tensor(low - 0.5))
        self.register_buffer("span", torch.tensor(high - low + 1.0))
        self._init_weights()
        if cfg.biases:
            self.user_bias = nn.Embedding(n_users, 1)
            self.item_bias = nn.Embedding(n_items, 1)
            nn.init.zeros_(self.user_bias.weight)
            nn.init.zeros_(self.item_bias.weight)

    def _init_weights(self) -> None:
        # The article's initialisation: small uniform embeddings, Xavier linear layers.
        nn.init.uniform_(self.user_embedding.weight, -0.05, 0.05)
        nn.init.uniform_(self.item_embedding.weight, -0.05, 0.05)
        for module in [*self.hidden, self.output]:
            if isinstance(module, nn.Linear):
                nn.init.xavier_uniform_(module.weight)
                nn.init.constant_(module.bias, 0.01)

    @classmethod
    def default_train_overrides(cls, objective: str = "rating") -> dict[str, Any]:
        if objective == "rating":
            return {"lr": 1e-3, "weight_decay": 1e-5, "batch_size": 2000}
        return RANKING_TRAIN[objective]

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        """With ``biases``: closed-form biases, and the sigmoid centred on the global mean, so
        training starts from ``mu + b_u + b_i`` (the article's model starts from scratch).
        With side features, also which items training saw (the others are cold)."""
        if self.side is not None:
            self.side.mark_trained(item_idx)
        if not self.config.biases:
            return
        biases = fit_biases(
            user_idx.cpu(), item_idx.cpu(), rating.cpu(), self.n_users, self.n_items
        )
        centre = (biases.global_mean - float(self.offset)) / float(self.span)
        centre = min(max(centre, 0.01), 0.99)
        with torch.no_grad():
            self.user_bias.weight.copy_(biases.user_bias[:, None])
            self.item_bias.weight.copy_(biases.item_bias[:, None])
            self.output.bias.fill_(math.log(centre / (1.0 - centre)))

    def attach_features(self, users: list[EncodedFeature], items: list[EncodedFeature]) -> None:
        """Take the encoded side features (:func:`~movierec.models.features.encode_features`,
        in the order of ``user_features`` and ``item_features``) before training; they become
        buffers, saved with the weights."""
        if self.side is None:
            raise ConfigError("this EmbeddingNet has no user_features or item_features")
        self.side.attach(users, items)

    def penalty(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor | None:
        """Per-example L2 on the rows the batch uses (None when both weights are 0)."""
        cfg = self.config
        if cfg.reg_embeddings == 0 and (cfg.reg_bias == 0 or not cfg.biases):
            return None
        total = cfg.reg_embeddings * (
            self.user_embedding(user_idx).pow(2).sum(1)
            + self.item_embedding(item_idx).pow(2).sum(1)
        )
        if cfg.biases and cfg.reg_bias:
            total = total + cfg.reg_bias * (
                self.user_bias(user_idx).pow(2).squeeze(1)
                + self.item_bias(item_idx).pow(2).squeeze(1)
            )
        return total.mean()

    def joint_penalty(
        self,
        rated: tuple[torch.Tensor, torch.Tensor],
        scored: tuple[torch.Tensor, torch.Tensor],
    ) -> torch.Tensor | None:
        """With a tower: the network's penalty on the rated pairs, the tower's on all."""
        if self.rank_tower is None:
            return self.penalty(*scored)
        return add_penalties(self.penalty(*rated), self.rank_tower.penalty(*scored))

    def ranking_only_prefix(self) -> str | None:
        return PREFIX if self.rank_tower is not None else None

    def _biases(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, cold: torch.Tensor | None = None
    ) -> torch.Tensor:
        item = self.item_bias(item_idx).squeeze(1)
        if cold is not None:  # an unseen item has no bias of its own
            item = item.masked_fill(cold, 0.0)
        return self.user_bias(user_idx).squeeze(1) + item

    def _item_biases(self) -> torch.Tensor:
        """Every item's bias ``[n_items]``, 0 for the items training never saw."""
        bias = self.item_bias.weight[:, 0]
        cold = None if self.side is None else self.side.cold(None, training=False)
        return bias if cold is None else bias.masked_fill(cold, 0.0)

    def _cold_embedding(self) -> torch.Tensor:
        """``[n_factors]``: what stands in for an unseen item's ID embedding (``cold_items``)."""
        weight = self.item_embedding.weight.detach()
        if self.config.cold_items == "mean" and self.side is not None and self.side.trained.any():
            return weight[self.side.trained].mean(dim=0)
        return torch.zeros(weight.shape[1], device=weight.device, dtype=weight.dtype)

    def _inputs(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """The first layer's input ``[B, user_width + item_width]`` and which items are cold
        (bool ``[B]``, or None when none are)."""
        users, items = self.user_embedding(user_idx), self.item_embedding(item_idx)
        if self.side is None:
            return _concat([users, items]), None
        cold = self.side.cold(item_idx, self.training)
        if cold is not None:
            items = torch.where(cold[:, None], self._cold_embedding(), items)
        parts = [users, self.side.user(user_idx), items, self.side.item(item_idx)]
        return _concat([p for p in parts if p is not None]), cold

    def _user_vectors(self, user_idx: torch.Tensor) -> torch.Tensor:
        """``[U, user_width]``: each user's ID embedding and features."""
        users = self.user_embedding(user_idx)
        features = None if self.side is None else self.side.user(user_idx)
        return users if features is None else torch.cat([users, features], dim=1)

    def _item_ids(self) -> torch.Tensor:
        """Every item's ID embedding ``[n_items, n_factors]``, cold ones replaced."""
        weight = self.item_embedding.weight
        cold = None if self.side is None else self.side.cold(None, training=False)
        return (
            weight if cold is None else torch.where(cold[:, None], self._cold_embedding(), weight)
        )

    def _all_items(self) -> torch.Tensor:
        """``[n_items, item_width]``: every item's ID embedding (cold ones replaced) and
        features."""
        features = None if self.side is None else self.side.item()
        ids = self._item_ids()
        return ids if features is None else torch.cat([ids, features], dim=1)

    def _visitor_side(self) -> torch.Tensor | None:
        """The first layer's share ``[h1]`` of a visitor's features (all unknown), or None."""
        unknown = None if self.side is None else self.side.unknown_user()
        if unknown is None:
            return None
        return self.hidden[0].weight[:, self.config.n_factors : self.user_width] @ unknown

    def _scale(self, logits: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(logits) * self.span + self.offset

    def logits(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """The pre-sigmoid output ``[B]``: what BCE-with-logits and BPR train.

        With ``biases`` the biases sit after the sigmoid, so the score that ranks like
        :meth:`score_items` is the rating itself.
        """
        if self.rank_tower is not None:
            return self.rank_tower.logits(user_idx, item_idx)
        if self.config.ranking_head:
            return self.rank_output(self._features(user_idx, item_idx)).squeeze(1)
        if self.config.biases:
            return self.forward(user_idx, item_idx)
        return self._logits(user_idx, item_idx)

    def _features(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """What the output unit reads: the last hidden layer (and the GMF branch)."""
        return self._hidden(user_idx, item_idx)[0]

    def _hidden(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor
    ) -> tuple[torch.Tensor, torch.Tensor | None]:
        """:meth:`_features` and which items are cold (see :meth:`_inputs`)."""
        inputs, cold = self._inputs(user_idx, item_idx)
        dropped = self.embedding_dropout(inputs)
        hidden = self.hidden(dropped)
        if self.product:  # the ID embeddings' product: [:n] and [user_width:user_width + n]
            n, at = self.config.n_factors, self.user_width
            hidden = torch.cat([hidden, dropped[:, :n] * dropped[:, at : at + n]], dim=1)
        return hidden, cold

    def _logits(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        return self.output(self._features(user_idx, item_idx)).squeeze(1)

    def _product_weight(self, unit: nn.Linear | None = None) -> torch.Tensor:
        """The final unit's weights on the GMF branch ``[n_factors]`` (``concat+product``)."""
        return (unit or self.output).weight[0, -self.config.n_factors :]

    def rank_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        """With a ranking head, its logit for every item (batched as :meth:`score_items`)."""
        if not self.config.ranking_head:
            return self.score_items(user_idx, item_side)
        if self.rank_tower is not None:  # one product per fixed block: batch-invariant
            return in_fixed_blocks(self.rank_tower.rank_items, user_idx)
        if item_side is None:
            item_side = self.item_side()
        unit = self.rank_output
        user_side = self._user_half(user_idx)
        scores = self._pair_logits(user_side, item_side, unit)
        if self.product:
            weight = self._product_weight(unit)
            items = self._item_ids()
            scores = scores + in_fixed_blocks(
                lambda rows: (
                    (self._user_vectors(rows)[:, : self.config.n_factors] * weight) @ items.T
                ),
                user_idx,
            )
        return scores

    def product_logits(self, user: torch.Tensor, items: torch.Tensor) -> torch.Tensor | None:
        """The GMF branch's share of the logit, ``(e_u * w) . e_i``, for every user x item.

        The final unit is linear, so the branch folds into one matrix product instead of a
        ``[U, n_items, n_factors]`` tensor. ``user`` float ``[U, n]`` (or ``[n]``), ``items``
        float ``[m, n]``; returns ``[U, m]`` (or ``[m]``), or None for ``concat``.
        """
        if not self.product:
            return None
        return (user * self._product_weight()) @ items.T

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        # The scaled sigmoid is monotone, so a ranking-trained net ranks the same by either.
        hidden, cold = self._hidden(user_idx, item_idx)
        rating = self._scale(self.output(hidden).squeeze(1))
        if self.config.biases:
            rating = rating + self._biases(user_idx, item_idx, cold)
        return rating

    def item_side(self) -> torch.Tensor:
        """The item half of the first layer for every item, bias included: ``[n_items, h1]``.

        It does not depend on the user, so scoring a batch of users computes it once; a server
        can compute it once at load time.
        """
        first = self.hidden[0]
        return self._all_items() @ first.weight[:, self.user_width :].T + first.bias

    def score_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Score all items for each user without re-embedding the catalogue per user.

        Splits the first layer ``W [e_u; e_i] + b`` into ``W_u e_u`` (per user) plus
        :meth:`item_side` (shared), then runs the remaining layers on chunks of
        :meth:`pair_chunks` pairs, so each layer's output stays in a core's cache instead of
        one ``[U * n_items, width]`` tensor per layer (about 2x quicker on ml-100k's article
        net, benchmarks/recommend_all.py). Only valid in eval mode (dropout off), which is
        how scoring is used.

        Batch-invariant (``batch_invariant``): the user half and the GMF branch are products
        of fixed blocks of users (:func:`in_fixed_blocks`), and a chunk of pairs never spans
        two users, so a user's scores are the same bits alone or among thousands. With
        ``scoring_dtype`` bfloat16 the layers after the first run in bf16 (the first layer's
        halves, their sum and the output unit stay float32).
        """
        if item_side is None:
            item_side = self.item_side()
        user_side = self._user_half(user_idx)
        if self.product or self.scoring_dtype is not None:
            product = None
            if self.product:
                items = self._item_ids()
                product = in_fixed_blocks(
                    lambda rows: self.product_logits(
                        self._user_vectors(rows)[:, : self.config.n_factors], items
                    ),
                    user_idx,
                )
            scores = self._pair_logits(user_side, item_side, self.output, product, scale=True)
        else:  # the float32 path as it always was: the output unit as nn.Linear
            scores = torch.empty(user_idx.shape[0], self.n_items, dtype=user_side.dtype)
            for rows, cols in self.pair_chunks(user_idx.shape[0]):
                pre = user_side[rows, None, :] + item_side[None, cols, :]  # [1, i, h1]
                scores[rows, cols] = self.head(pre.reshape(-1, pre.shape[-1])).view(
                    pre.shape[0], pre.shape[1]
                )
        if self.config.biases:
            scores = scores + self.user_bias(user_idx) + self._item_biases()[None, :]
        return scores

    def _user_half(self, user_idx: torch.Tensor) -> torch.Tensor:
        """Each user's half of the first layer ``[U, h1]``: products of fixed blocks of users,
        so batch-invariant."""
        weight = self.hidden[0].weight[:, : self.user_width]
        return in_fixed_blocks(lambda rows: self._user_vectors(rows) @ weight.T, user_idx)

    def _pair_logits(
        self,
        user_side: torch.Tensor,
        item_side: torch.Tensor,
        unit: nn.Linear,
        product: torch.Tensor | None = None,
        *,
        scale: bool = False,
    ) -> torch.Tensor:
        """``unit``'s logit ``[U, n_items]`` of every pair (plus the GMF branch's ``product``
        ``[U, n_items]``; through the scaled sigmoid with ``scale``): the layers after the first
        on :meth:`pair_chunks`, in ``scoring_dtype``. Everything but exact additions happens
        per chunk, so a user's scores never depend on where they sit in the batch (a vectorised
        sigmoid rounds the tail of a row otherwise than its body)."""
        layers = scoring_layers(self.hidden, self.scoring_dtype)
        scores = torch.empty(user_side.shape[0], self.n_items, dtype=torch.float32)
        weight, bias = unit.weight[0].float(), unit.bias[0].float()
        for rows, cols in self.pair_chunks(user_side.shape[0]):
            pre = user_side[rows, None, :] + item_side[None, cols, :]  # [1, i, h1]
            hidden = layers(pre.reshape(-1, pre.shape[-1])).float()
            logits = (hidden @ weight[: hidden.shape[-1]] + bias).view(pre.shape[0], -1)
            if product is not None:
                logits = logits + product[rows, cols]
            scores[rows, cols] = self._scale(logits) if scale else logits
        return scores

    def pair_chunks(self, n_users: int) -> list[tuple[slice, slice]]:
        """(users, items) slices covering ``[n_users, n_items]``: one user each, items in ranges
        of about :data:`CHUNK_BYTES` (:data:`BF16_CHUNK_BYTES` in bf16) of the widest layer's
        activations (the whole catalogue where it is small). A chunk never spans two users, so
        a user's pairs go through the same shapes of products alone as in a batch of thousands."""
        budget = CHUNK_BYTES if self.scoring_dtype is None else BF16_CHUNK_BYTES
        pairs = max(1, budget // (4 * max(self.config.hidden)))
        width = min(self.n_items, pairs) or 1
        return [
            (slice(u, u + 1), slice(i, i + width))
            for u in range(n_users)
            for i in range(0, self.n_items, width)
        ]

    def head(
        self, first_layer: torch.Tensor, product_logits: torch.Tensor | None = None
    ) -> torch.Tensor:
        """Everything after the first linear layer: ``[N, h1]`` pre-activations -> ``[N]`` ratings.

        Lets callers that assemble the first layer themselves (batched scoring, cold-start
        fold-in of a new user) reuse the rest of the network. With ``biases`` the user and item
        biases are not included: callers add them. With ``concat+product`` the caller passes
        the GMF branch's logits ``[N]`` (:meth:`product_logits`).
        """
        hidden = self._after_first(first_layer)
        if not self.product:
            return self._scale(self.output(hidden)).squeeze(-1)
        width = hidden.shape[-1]
        logits = hidden @ self.output.weight[0, :width] + self.output.bias[0]
        if product_logits is not None:
            logits = logits + product_logits
        return self._scale(logits)

    def _after_first(self, first_layer: torch.Tensor) -> torch.Tensor:
        """ReLU, then the hidden layers after the first (``self.hidden[1:]`` without building
        a new Sequential per call: scoring calls this once per chunk of pairs)."""
        hidden = torch.relu(first_layer)
        for layer in itertools.islice(self.hidden, 1, None):
            hidden = layer(hidden)
        return hidden

    def item_vectors(self) -> torch.Tensor:
        """The ID embeddings; with item features, those and the features (so that an item
        training never saw is compared by its features)."""
        if self.side is None or not self.side.item_width:
            return self.item_embedding.weight
        return self._all_items()

    def visitor_ranker(self, item_side: torch.Tensor | None = None) -> VisitorRanker:
        """The user vector the ranking score reads and every item's score from it.

        With a ranking tower: the tower's user factors (``q_i . p + r_i``). Otherwise the user
        embedding through the network: the ranking head's logit, else the output logit (with
        ``biases``, the rating less the user's bias, which orders nothing).
        """
        if self.rank_tower is not None:
            tower = self.rank_tower
            factors = tower.item_factors.weight.detach()
            offsets = tower.item_offset.weight.detach()[:, 0]
            return VisitorRanker(
                tower.user_factors.weight.detach().mean(dim=0),
                lambda user: factors @ user + offsets,
                tower.reg,
            )
        with torch.no_grad():
            side = (self.item_side() if item_side is None else item_side).detach()
        unit = self.rank_output if self.config.ranking_head else self.output
        item_bias = (
            self._item_biases().detach()
            if self.config.biases and not self.config.ranking_head
            else None
        )

        def scores(user: torch.Tensor) -> torch.Tensor:
            logits = self._item_logits(user, side, unit)
            return logits if item_bias is None else self._scale(logits) + item_bias

        return VisitorRanker(
            self.user_embedding.weight.detach().mean(dim=0), scores, self.config.reg_embeddings
        )

    def _item_logits(
        self, user: torch.Tensor, item_side: torch.Tensor, unit: nn.Linear
    ) -> torch.Tensor:
        """``unit``'s logit of every item ``[n_items]`` for one user embedding ``[n]``."""
        n = self.config.n_factors
        pre = item_side + user @ self.hidden[0].weight[:, :n].T
        if (visitor := self._visitor_side()) is not None:
            pre = pre + visitor
        hidden = self.hidden[1:](torch.relu(pre))  # [n_items, width]
        width = hidden.shape[-1]
        logits = hidden @ unit.weight[0, :width] + unit.bias[0]
        if self.product:
            logits = logits + (user * self._product_weight(unit)) @ self._item_ids().T
        return logits

    def fold_in(
        self,
        items: torch.Tensor,
        values: torch.Tensor,
        fallback: Biases,
        options: FoldInOptions,
        item_side: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """Full-batch Adam on one fresh user embedding; the network's weights are only read.

        The embedding starts at the mean trained user embedding and is pulled back toward it
        (``options.l2``); the steps stop at ``options.max_seconds``, keeping the best embedding
        so far. See :meth:`RatingModel.fold_in` for the arguments.
        """
        deadline = time.perf_counter() + options.max_seconds
        n = self.config.n_factors
        first = self.hidden[0]
        with torch.no_grad():
            start = self.user_embedding.weight.mean(dim=0)
            user_weight = first.weight[:, :n].detach().clone()  # [h1, n]
            # The visitor's features are unknown: their share of the first layer is constant.
            visitor = self._visitor_side()
            rated_side = (
                self._all_items()[items] @ first.weight[:, self.user_width :].T + first.bias
            ).detach()  # [m, h1]
            if visitor is not None:
                rated_side = rated_side + visitor.detach()
            item_ids = self._item_ids().detach()
        target = values.float()
        # With bias terms the visitor also gets a user bias, learned beside the embedding from
        # 0 under the same pull; the item biases are read like the rest.
        item_bias = self._item_biases().detach() if self.config.biases else None
        user = start.clone().requires_grad_(True)
        user_bias = torch.zeros(1, requires_grad=True)
        learned = [user, user_bias] if self.config.biases else [user]
        optimiser = torch.optim.Adam(learned, lr=options.lr)
        best, best_bias, best_loss = start.clone(), torch.zeros(1), float("inf")
        for _ in range(options.steps):
            with torch.enable_grad():
                pre = rated_side + user @ user_weight.T
                rated = item_ids[items]
                predicted = self.head(pre, self.product_logits(user, rated))
                if item_bias is not None:
                    predicted = predicted + item_bias[items] + user_bias
                fit = torch.mean((predicted - target) ** 2)
                penalty = torch.sum((user - start) ** 2) + torch.sum(user_bias**2)
                loss = fit + options.l2 * penalty
                # Gradients for the visitor only: nothing accumulates on the frozen weights.
                grads = torch.autograd.grad(loss, learned)
            value = float(loss.detach())
            if value < best_loss:
                best_loss, best = value, user.detach().clone()
                best_bias = user_bias.detach().clone()
            for parameter, grad in zip(learned, grads, strict=True):
                parameter.grad = grad
            optimiser.step()
            if time.perf_counter() > deadline:
                break
        with torch.inference_mode():
            if item_side is None:
                item_side = self.item_side()
            product = self.product_logits(best, item_ids)
            if visitor is not None:
                item_side = item_side + visitor
            scores = self.head(item_side + best @ user_weight.T, product)
            if item_bias is not None:
                scores = scores + item_bias + best_bias
            return scores


def _concat(parts: list[torch.Tensor]) -> torch.Tensor:
    """The first layer's input: ``parts`` side by side, in the autocast dtype under autocast.

    The first layer casts its input to that dtype anyway; casting each part before the
    concatenation moves half the bytes, and in the backward pass each part's gradient comes
    back to float32 as one contiguous tensor (no copy of a strided slice per table).
    """
    device = parts[0].device.type
    if torch.is_autocast_enabled(device):
        dtype = torch.get_autocast_dtype(device)
        parts = [part.to(dtype) for part in parts]
    return torch.cat(parts, dim=1)


def scoring_layers(
    hidden: nn.Sequential, dtype: torch.dtype | None
) -> Callable[[torch.Tensor], torch.Tensor]:
    """The ReLU of the first layer and the layers after it, as catalogue scoring runs them:
    ``[N, h1]`` float32 pre-activations -> ``[N, width]`` (float32, or ``dtype``).

    With ``dtype`` bfloat16 the weights are cast once per call and each linear layer with its
    ReLU is one oneDNN kernel where PyTorch has it (about 6x the float32 layers on a CPU with
    AMX, 943 x 1,682 pairs of the article net); the inputs arrive float32 and are cast after
    the first ReLU.
    """
    linears = [m for m in itertools.islice(hidden, 1, None) if isinstance(m, nn.Linear)]
    if dtype is None or not linears:
        return lambda pre: _after_relu(torch.relu(pre), linears)
    weights = [(m.weight.to(dtype), m.bias.to(dtype)) for m in linears]
    fused = _fused_linear_relu()

    def run(pre: torch.Tensor) -> torch.Tensor:
        out = torch.relu(pre).to(dtype)
        for weight, bias in weights:
            out = fused(out, weight, bias) if fused else torch.relu(F.linear(out, weight, bias))
        return out

    return run


def _after_relu(hidden: torch.Tensor, linears: list[nn.Linear]) -> torch.Tensor:
    for layer in linears:
        hidden = torch.relu(layer(hidden))
    return hidden


def _fused_linear_relu() -> Callable[..., torch.Tensor] | None:
    """oneDNN's linear + ReLU in one kernel (``torch.ops.mkldnn._linear_pointwise``, what
    ``torch.compile`` emits on CPU), or None where this PyTorch has no oneDNN."""
    if not torch.backends.mkldnn.is_available():
        return None
    op = getattr(torch.ops.mkldnn, "_linear_pointwise", None)
    if op is None:
        return None
    return lambda x, weight, bias: op(x, weight, bias, "relu", [], "")
