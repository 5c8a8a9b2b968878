"""I-AutoRec (Sedhain et al. 2015): an autoencoder over each item's column of ratings.

Item ``i``'s training ratings over all users, ``r_i`` (0 where unrated), are encoded into
``h_i = g(V r_i + b)`` (``hidden`` units, sigmoid by default) and decoded into a rating for every
user, ``r_hat_ui = W_u . h_i + c_u``. The loss is the squared error on observed entries only,
plus ``reg / 2 * (|V|^2 + |W|^2)`` over the whole training objective.

It trains in the shared loop on batches of ``(user, item, rating)``: each batch encodes its
distinct items once from the training ratings (CSR buffers set by ``init_from_data``, summed
with an embedding bag so the cost follows the ratings touched) and reads off the batch users'
outputs. At prediction time the input is the same stored training matrix, never the ratings
being predicted. ``exclude_target`` drops the rating being fitted from its own item's input,
so that training sees what prediction sees: a column without the entry asked for.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from movierec.errors import ConfigError
from movierec.models.base import RatingModel
from movierec.models.bias import fit_biases
from movierec.models.interactions import CsrBuffers, csr, gather_rows, resize_to_state

_COLUMNS = CsrBuffers("item_ptr", "item_users", "item_ratings", rows="items", cols="users")
ACTIVATIONS = {"sigmoid": torch.sigmoid, "relu": torch.relu, "elu": F.elu, "tanh": torch.tanh}


@dataclass(frozen=True)
class AutoRecConfig:
    """Hyperparameters of I-AutoRec.

    Attributes:
        hidden: Width of the item code ``h_i``.
        activation: Hidden activation: sigmoid (the paper's), relu, elu or tanh.
        reg: The paper's lambda: L2 weight ``reg / 2`` on the encoder and decoder weights,
            relative to the *sum* of squared errors over all training ratings (the per-batch
            penalty divides it by the number of training ratings).
        input_dropout: Share of each encoded column's ratings dropped during training
            (denoising); 0 keeps the paper's plain autoencoder.
        exclude_target: Leave the rating being fitted out of its item's input while training.
        dropout: Dropout on the item code ``h_i`` during training.
        residual: Encode and predict what the closed-form biases leave over: the input column
            holds ``r_ui - (mu + b_u + b_i)`` and the output adds ``b_i`` to the user's bias
            ``c_u`` (started at ``mu + b_u``), so an empty entry means "as the biases expect".
    """

    hidden: int = 500
    activation: str = "sigmoid"
    reg: float = 1.0
    input_dropout: float = 0.0
    exclude_target: bool = False
    dropout: float = 0.0
    residual: bool = False

    def __post_init__(self) -> None:
        if self.hidden < 1:
            raise ConfigError(f"autorec needs hidden >= 1 (got {self.hidden})")
        if self.activation not in ACTIVATIONS:
            raise ConfigError(
                f"autorec activation must be one of {', '.join(ACTIVATIONS)} "
                f"(got {self.activation!r})"
            )
        if self.reg < 0:
            raise ConfigError(f"autorec reg must be >= 0 (got {self.reg})")
        if not 0.0 <= self.input_dropout < 1.0:
            raise ConfigError(f"autorec input_dropout must be in [0, 1) (got {self.input_dropout})")
        if not 0.0 <= self.dropout < 1.0:
            raise ConfigError(f"autorec dropout must be in [0, 1) (got {self.dropout})")
        if self.input_dropout > 0 and self.exclude_target:
            # The own-entry subtraction assumes the target is in the (undropped) column.
            raise ConfigError(
                "autorec input_dropout and exclude_target cannot be combined; set one to 0/false"
            )


class AutoRec(RatingModel):
    """Item-based autoencoder: training column of an item -> code -> every user's rating."""

    name = "autorec"
    config_class = AutoRecConfig
    csr_buffers = (_COLUMNS,)

    def __init__(
        self,
        n_users: int,
        n_items: int,
        rating_scale: tuple[float, float],
        config: AutoRecConfig | None = None,
    ):
        super().__init__(n_users, n_items, rating_scale)
        self.config = config or AutoRecConfig()
        hidden = self.config.hidden
        # The encoder's weight V is stored transposed, one row per input user, for the bag sum.
        self.encoder = nn.Embedding(n_users, hidden)
        self.encoder_bias = nn.Parameter(torch.zeros(hidden))
        self.decoder = nn.Embedding(n_users, hidden)
        self.decoder_bias = nn.Embedding(n_users, 1)
        bound = math.sqrt(6.0 / (n_users + hidden))  # Glorot, as for a dense n_users x hidden
        nn.init.uniform_(self.encoder.weight, -bound, bound)
        nn.init.uniform_(self.decoder.weight, -bound, bound)
        nn.init.constant_(self.decoder_bias.weight, sum(rating_scale) / 2.0)
        # Empty columns until init_from_data; the count scales the penalty.
        self.register_buffer("item_ptr", torch.zeros(n_items + 1, dtype=torch.long))
        self.register_buffer("item_users", torch.zeros(0, dtype=torch.long))
        self.register_buffer("item_ratings", torch.zeros(0))
        self.register_buffer("n_ratings", torch.tensor(1.0))
        if self.config.residual:
            self.item_bias = nn.Embedding(n_items, 1)
            nn.init.zeros_(self.item_bias.weight)

    @classmethod
    def default_train_overrides(cls, objective: str = "rating") -> dict[str, Any]:
        if objective != "rating":
            raise ConfigError("autorec is trained on ratings only; use --objective rating")
        # The L2 lives in `penalty`, scaled as in the paper; no Adam weight decay on top.
        return {"lr": 1e-3, "weight_decay": 0.0, "batch_size": 1024, "epochs": 200, "patience": 10}

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        values = rating.float()
        if self.config.residual:
            biases = fit_biases(
                user_idx.cpu(), item_idx.cpu(), rating.cpu(), self.n_users, self.n_items
            )
            user_bias = biases.user_bias.to(rating.device)
            item_bias = biases.item_bias.to(rating.device)
            values = values - (biases.global_mean + user_bias[user_idx] + item_bias[item_idx])
            with torch.no_grad():
                self.item_bias.weight.copy_(item_bias[:, None])
        ptr, users, values = csr(item_idx, user_idx, values, self.n_items)
        device = self.decoder_bias.weight.device
        self.item_ptr, self.item_users, self.item_ratings = (
            ptr.to(device),
            users.to(device),
            values.to(device),
        )
        with torch.no_grad():
            self.n_ratings.fill_(max(1, rating.numel()))
            if self.config.residual:
                self.decoder_bias.weight.copy_(biases.global_mean + user_bias[:, None])
            elif rating.numel():
                self.decoder_bias.weight.fill_(float(rating.float().mean()))

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        resize_to_state(self, state_dict, prefix, _COLUMNS.names)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def _pre_activation(self, items: torch.Tensor) -> torch.Tensor:
        """``V r_i + b`` for each item in ``items``: ``[len(items), hidden]``."""
        positions, offsets = gather_rows(self.item_ptr, items)
        weights = self.item_ratings[positions]
        if self.training and self.config.input_dropout > 0:
            keep = torch.rand_like(weights) >= self.config.input_dropout
            weights = weights * keep / (1.0 - self.config.input_dropout)
        summed = F.embedding_bag(
            self.item_users[positions],
            self.encoder.weight,
            offsets,
            mode="sum",
            per_sample_weights=weights,
        )
        return summed + self.encoder_bias

    def _activate(self, pre: torch.Tensor) -> torch.Tensor:
        return ACTIVATIONS[self.config.activation](pre)

    def item_side(self) -> torch.Tensor:
        """Every item's code ``h_i`` from the training ratings: ``[n_items, hidden]``."""
        items = torch.arange(self.n_items, device=self.item_ptr.device)
        return self._activate(self._pre_activation(items))

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        unique, inverse = torch.unique(item_idx, return_inverse=True)
        pre = self._pre_activation(unique)[inverse]
        if self.training and self.config.exclude_target:
            pre = pre - self._own_entry(user_idx, item_idx)
        codes = F.dropout(self._activate(pre), self.config.dropout, self.training)
        out = (self.decoder(user_idx) * codes).sum(1) + self.decoder_bias(user_idx).squeeze(1)
        if self.config.residual:
            out = out + self.item_bias(item_idx).squeeze(1)
        return out

    def _own_entry(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """``r_ui V_u`` for pairs whose rating is in the stored columns (0 rows otherwise)."""
        stored = self._stored_rating(user_idx, item_idx)
        return stored[:, None] * self.encoder(user_idx)

    def _stored_rating(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        """The training rating of each ``(user, item)`` pair, 0 where there is none."""
        if self.item_users.numel() == 0:
            return torch.zeros(user_idx.shape, device=user_idx.device)
        # The columns are sorted by (item, user), so these keys are ascending.
        keys = self.item_users + self.n_users * torch.repeat_interleave(
            torch.arange(self.n_items, device=self.item_ptr.device), self.item_ptr.diff()
        )
        wanted = user_idx + self.n_users * item_idx
        where = torch.searchsorted(keys, wanted).clamp(max=keys.numel() - 1)
        return torch.where(keys[where] == wanted, self.item_ratings[where], 0.0)

    def score_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        if item_side is None:
            item_side = self.item_side()
        scores = self.decoder(user_idx) @ item_side.T + self.decoder_bias(user_idx)
        if self.config.residual:
            scores = scores + self.item_bias.weight.T
        return scores

    def item_vectors(self) -> torch.Tensor:
        return self.item_side()

    def penalty(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        squares = self.encoder.weight.pow(2).sum() + self.decoder.weight.pow(2).sum()
        return self.config.reg / 2.0 * squares / self.n_ratings
