"""Sparse FC (Muller et al. 2018): an item-based autoencoder with kernelised weight matrices.

Every layer's weight matrix ``W`` (``n_in x n_out``) is used as ``W * K(U, V)``, element-wise,
where ``K(u_i, v_j) = max(0, 1 - |u_i - v_j|^2)`` compares a learned position ``u_i`` of each
input unit with a learned position ``v_j`` of each output unit, in a space of
``position_dim`` dimensions. The kernel has finite support: units more than distance 1 apart
are not connected at all, so the sparsity penalty on ``K`` prunes connections by moving
positions apart, and the L2 penalty on ``W`` shrinks the weights of those that stay.

As in I-AutoRec (:mod:`movierec.models.autorec`) each item's column of training ratings over
all users (0 where unrated) is the input, two sigmoid layers of 500 units encode it, and a
kernelised identity-output layer reconstructs a rating for every user; the loss is on observed
ratings only. It is GLocal-K's local kernel (:mod:`movierec.models.glocal_k`), and the
published ml-100k u1 RMSE of the architecture is about 0.895.

With ``factors > 0`` a factorised term with side features is added to every output
(:class:`~movierec.models.side_factors.SideFactors`: user and item vectors, one vector per
metadata value, and optionally each user's rated items), trained with the autoencoder in the
same loss: the autoencoder sees only an item's column of ratings, the term who the user is and
what the metadata says. On u1 it is worth about 0.007 of validation RMSE (docs/results.md).
Films that only the metadata names (no training rating) stay out of its catalogue and get the
bias fallback: an empty column is an input the autoencoder never met, and scoring held-out
films through it (plus their features in the side term) measured worse than ``mu + b_u``
(RMSE 1.053 against 1.021 on the item cold-start protocol, seed 0; 1.027 with the trained
films' mean code in its place).

It trains in the shared loop on batches of ``(user, item, rating)``: each batch reconstructs
its distinct items' columns from the stored training ratings (CSR buffers set by
``init_from_data``) and reads off the batch users' outputs. With a batch as large as the
training set (the configs' choice) one epoch is one full-batch step, like the paper's
full-batch optimiser. Prediction reads the same stored training columns, never the ratings
being predicted.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from movierec.errors import ConfigError
from movierec.models.base import RatingModel
from movierec.models.features import EncodedFeature
from movierec.models.interactions import CsrBuffers, csr, gather_rows, resize_to_state
from movierec.models.side_factors import SideFactors

_COLUMNS = CsrBuffers("item_ptr", "item_users", "item_ratings", rows="items", cols="users")
SIDE_HISTORY = CsrBuffers(
    "side_term.user_ptr", "side_term.user_items", "side_term.user_values", "users", "items"
)


def local_kernel(u: torch.Tensor, v: torch.Tensor) -> torch.Tensor:
    """``max(0, 1 - |u_i - v_j|^2)`` for every pair of rows: float ``[n_in, n_out]``.

    Args:
        u: float ``[n_in, d]`` positions of the input units.
        v: float ``[n_out, d]`` positions of the output units.
    """
    # |u|^2 + |v|^2 - 2 u.v keeps the memory at n_in x n_out (not x d); rounding can make
    # a squared distance slightly negative, hence the clamp before the kernel's own.
    squared = u.pow(2).sum(1, keepdim=True) + v.pow(2).sum(1) - 2.0 * u @ v.T
    return (1.0 - squared.clamp(min=0.0)).clamp(min=0.0)


class LocalKernelLayer(nn.Module):
    """``x @ (W * K(U, V)) + b``: a dense layer whose connections the kernel can switch off.

    Args:
        n_in: Input units.
        n_out: Output units.
        position_dim: Dimension of the unit positions ``u_i``, ``v_j``.
        position_std: Standard deviation of the positions' normal start. Small: every
            pair starts close to distance 0 (kernel near 1), so training starts from a plain
            dense layer and the sparsity penalty decides what to cut.
    """

    def __init__(self, n_in: int, n_out: int, position_dim: int, position_std: float) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.empty(n_in, n_out))
        self.bias = nn.Parameter(torch.zeros(n_out))
        self.u = nn.Parameter(torch.randn(n_in, position_dim) * position_std)
        self.v = nn.Parameter(torch.randn(n_out, position_dim) * position_std)
        bound = math.sqrt(6.0 / (n_in + n_out))  # Glorot
        nn.init.uniform_(self.weight, -bound, bound)

    def kernel(self) -> torch.Tensor:
        """The layer's kernel ``K(U, V)``: float ``[n_in, n_out]`` in ``[0, 1]``."""
        return local_kernel(self.u, self.v)

    def forward(self, x: torch.Tensor, kernel: torch.Tensor | None = None) -> torch.Tensor:
        """``[rows, n_in] -> [rows, n_out]`` (``kernel``: :meth:`kernel`, if already built)."""
        kernel = self.kernel() if kernel is None else kernel
        return x @ (self.weight * kernel) + self.bias


@dataclass(frozen=True)
class SparseFCConfig:
    """Hyperparameters of the Sparse FC autoencoder (GLocal-K's local kernel).

    Attributes:
        hidden: Width of each sigmoid hidden layer (the paper: two of 500).
        position_dim: Dimension of the unit positions the kernel compares (the paper: 5).
        reg: The paper's lambda_2, the L2 weight on every ``W``; with ``reg_kernel``,
            relative to *half* the sum of squared errors over all training ratings, as the
            paper's objective is written (the per-batch penalty divides by the number of
            training ratings).
        reg_kernel: The paper's lambda_s, the sparsity weight on every kernel ``K``.
        position_std: Spread of the positions' start (near 0: the kernel starts near 1).
        factors: Width of the factorised side term added to the output (0: none, the paper's
            model).
        reg_factors: L2 weight on the side term's vectors, scaled as ``reg``.
        user_features: User metadata columns in the side term (``age``, ``gender``,
            ``occupation``, ``zip_code``); needs ``factors``.
        item_features: Item metadata columns in the side term (``genres``, ``year``).
        implicit: Add each user's training items (SVD++'s implicit feedback) to the user's
            vector in the side term.
    """

    hidden: tuple[int, ...] = (500, 500)
    position_dim: int = 5
    reg: float = 20.0
    reg_kernel: float = 0.006
    position_std: float = 1e-3
    factors: int = 0
    reg_factors: float = 10.0
    user_features: tuple[str, ...] = ()
    item_features: tuple[str, ...] = ()
    implicit: bool = False

    def __post_init__(self) -> None:
        label = self._label()
        # TOML and JSON give lists; the config is hashable and compared as tuples.
        object.__setattr__(self, "user_features", tuple(self.user_features))
        object.__setattr__(self, "item_features", tuple(self.item_features))
        if not self.hidden or any(width < 1 for width in self.hidden):
            raise ConfigError(
                f"{label} needs at least one hidden layer, each >= 1 unit (got hidden = "
                f"{list(self.hidden)}); the paper's is [500, 500]"
            )
        if self.position_dim < 1:
            raise ConfigError(f"{label} needs position_dim >= 1 (got {self.position_dim})")
        if self.factors < 0:
            raise ConfigError(f"{label} needs factors >= 0 (got {self.factors})")
        side = [n for n in ("user_features", "item_features") if getattr(self, n)]
        if self.implicit:
            side.append("implicit")
        if side and not self.factors:
            raise ConfigError(
                f"{label} {' and '.join(side)} belong to the side term, which factors = 0 "
                f"leaves out; set factors (e.g. 64) or drop them"
            )
        for name in ("user_features", "item_features"):
            names = getattr(self, name)
            if len(set(names)) != len(names):
                raise ConfigError(f"{label} {name} names a column twice: {list(names)}")
        for name in ("reg", "reg_kernel", "position_std", "reg_factors"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value >= 0):
                raise ConfigError(f"{label} {name} must be a finite number >= 0 (got {value})")

    def _label(self) -> str:
        """The model name the messages give."""
        return "sparse-fc"


class SparseFC(RatingModel):
    """Item-based kernelised autoencoder: training column of an item -> every user's rating."""

    name = "sparse-fc"
    config_class = SparseFCConfig
    csr_buffers = (_COLUMNS,)

    def __init__(
        self,
        n_users: int,
        n_items: int,
        rating_scale: tuple[float, float],
        config: SparseFCConfig | None = None,
    ):
        super().__init__(n_users, n_items, rating_scale)
        self.config = config or self.config_class()
        widths = [n_users, *self.config.hidden, n_users]
        self.layers = nn.ModuleList(
            LocalKernelLayer(n_in, n_out, self.config.position_dim, self.config.position_std)
            for n_in, n_out in itertools.pairwise(widths)
        )
        nn.init.constant_(self.layers[-1].bias, sum(rating_scale) / 2.0)
        # Empty columns until init_from_data; the count scales the penalty.
        self.register_buffer("item_ptr", torch.zeros(n_items + 1, dtype=torch.long))
        self.register_buffer("item_users", torch.zeros(0, dtype=torch.long))
        self.register_buffer("item_ratings", torch.zeros(0))
        self.register_buffer("n_ratings", torch.tensor(1.0))
        config = self.config
        self.side_term = (
            SideFactors(
                n_users,
                n_items,
                config.factors,
                config.user_features,
                config.item_features,
                config.implicit,
            )
            if config.factors
            else None
        )
        if config.implicit:  # the side term's user histories, checked on load like the columns
            self.csr_buffers = (_COLUMNS, SIDE_HISTORY)

    @classmethod
    def default_train_overrides(cls, objective: str = "rating") -> dict[str, Any]:
        if objective != "rating":
            raise ConfigError(f"{cls.name} is trained on ratings only; use --objective rating")
        # Full batch (one step per epoch); the L2 lives in `penalty`, no Adam weight decay.
        return {
            "lr": 1e-2,
            "weight_decay": 0.0,
            "batch_size": 1_000_000,
            "epochs": 300,
            "patience": 20,
        }

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        ptr, users, values = csr(item_idx, user_idx, rating.float(), self.n_items)
        device = self.layers[-1].bias.device
        self.item_ptr, self.item_users, self.item_ratings = (
            ptr.to(device),
            users.to(device),
            values.to(device),
        )
        with torch.no_grad():
            self.n_ratings.fill_(max(1, rating.numel()))
            if rating.numel():
                self.layers[-1].bias.fill_(float(rating.float().mean()))
        if self.side_term is not None:
            self.side_term.init_from_data(user_idx, item_idx)

    def attach_features(self, users: list[EncodedFeature], items: list[EncodedFeature]) -> None:
        """Take the encoded side features (in the order of ``user_features`` and
        ``item_features``) before training; they become buffers, saved with the weights."""
        if self.side_term is None:
            raise ConfigError(f"this {self.name} has no side term (factors = 0)")
        self.side_term.attach(users, items)

    def _load_from_state_dict(self, state_dict, prefix, *args, **kwargs):  # type: ignore[override]
        resize_to_state(self, state_dict, prefix, _COLUMNS.names)
        super()._load_from_state_dict(state_dict, prefix, *args, **kwargs)

    def training_columns(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """The stored training ratings of ``items`` (all when None), 0 where unrated:
        float ``[len(items), n_users]``, one row per item."""
        device = self.item_ptr.device
        if items is None:
            items = torch.arange(self.n_items, device=device)
        positions, offsets = gather_rows(self.item_ptr, items)
        lengths = torch.diff(offsets, append=offsets.new_tensor([positions.numel()]))
        rows = torch.repeat_interleave(torch.arange(items.numel(), device=device), lengths)
        dense = torch.zeros(items.numel(), self.n_users, device=device)
        dense[rows, self.item_users[positions]] = self.item_ratings[positions]
        return dense

    def encode(self, columns: torch.Tensor) -> torch.Tensor:
        """The last hidden layer's code of each row of dense ``columns`` (``[rows, n_users]``):
        ``[rows, hidden[-1]]``."""
        return self._hidden(self.layers[0](columns))

    def item_codes(self, items: torch.Tensor | None = None) -> torch.Tensor:
        """:meth:`encode` of the training columns of ``items`` (all when None), summed over
        each column's ratings only: the cost follows the ratings, not ``n_users``."""
        if items is None:
            items = torch.arange(self.n_items, device=self.item_ptr.device)
        first = self.layers[0]
        positions, offsets = gather_rows(self.item_ptr, items)
        summed = F.embedding_bag(
            self.item_users[positions],
            first.weight * first.kernel(),
            offsets,
            mode="sum",
            per_sample_weights=self.item_ratings[positions],
        )
        return self._hidden(summed + first.bias)

    def _hidden(self, pre: torch.Tensor) -> torch.Tensor:
        """The sigmoid of the first layer's ``pre``-activation, through the other hidden layers."""
        code = torch.sigmoid(pre)
        for layer in self.layers[1:-1]:
            code = torch.sigmoid(layer(code))
        return code

    def decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Every user's rating from each item code: ``[rows, hidden[-1]] -> [rows, n_users]``."""
        return self.layers[-1](codes)

    def pooled_decode(self, codes: torch.Tensor) -> torch.Tensor:
        """Each item's reconstruction averaged over all users, ``decode(codes).mean(1)``,
        without building the ``[rows, n_users]`` matrix: ``[rows]``."""
        last = self.layers[-1]
        return codes @ (last.weight * last.kernel()).mean(1) + last.bias.mean()

    def reconstruction(self) -> torch.Tensor:
        """Every item's reconstructed column from the training ratings: ``[n_items, n_users]``."""
        return self.decode(self.item_codes())

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        unique, inverse = torch.unique(item_idx, return_inverse=True)
        # The whole output row of each distinct item: one dense matmul is far cheaper than
        # gathering the batch users' output columns (whose backward is a scattered add).
        out = self.decode(self.item_codes(unique))[inverse, user_idx]
        if self.side_term is not None:
            out = out + self.side_term(user_idx, item_idx)
        return out

    def item_side(self) -> torch.Tensor:
        """The whole predicted matrix ``[n_items, n_users]`` (the reconstruction, plus the side
        term): what every user's scores are read from."""
        scores = self.reconstruction()
        if self.side_term is not None:
            scores = scores + self.side_term.matrix()
        return scores

    def score_items(
        self, user_idx: torch.Tensor, item_side: torch.Tensor | None = None
    ) -> torch.Tensor:
        if item_side is None:
            item_side = self.item_side()
        return item_side[:, user_idx].T

    def item_vectors(self) -> torch.Tensor:
        """Each item's code from its training column: ``[n_items, hidden[-1]]``."""
        return self.item_codes()

    def penalty(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        weights = sum(layer.weight.pow(2).sum() for layer in self.layers)
        kernels = sum(layer.kernel().pow(2).sum() for layer in self.layers)
        config = self.config
        total = config.reg * weights + config.reg_kernel * kernels
        if self.side_term is not None:
            total = total + config.reg_factors * self.side_term.squared_norm()
        return total / self.n_ratings
