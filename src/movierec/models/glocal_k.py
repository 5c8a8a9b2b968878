"""GLocal-K (Han et al., CIKM 2021): Sparse FC pre-trained, then fine-tuned through a global
convolution kernel built from its own item representation.

Two stages, in the one training loop:

1. **Pre-training** (the first ``pretrain_epochs`` epochs): exactly
   :class:`~movierec.models.sparse_fc.SparseFC`, the local-kernel autoencoder over each
   item's column of training ratings.
2. **Fine-tuning** (every epoch after): the autoencoder's reconstruction of the training
   matrix ``R`` (``n_items x n_users``) is average-pooled per item into ``mu`` (one number per
   item); ``mu`` weights ``n_items`` learned ``k x k`` kernels into one global kernel
   ``G = dot_scale * sum_i mu_i k_i``; ``R`` convolved with ``G`` (a 2-D convolution over the
   item x user matrix, zero-padded to its own size) is the input of the same autoencoder,
   whose output is the prediction. The local kernels keep training; the global kernel is
   rebuilt from the current reconstruction at every step, so both passes get gradients.

The stage is counted by the model itself: each training forward adds its batch's rows to
``ratings_seen`` (times the number of ranks under torchrun, where each sees its shard), and
the model fine-tunes once that passes ``pretrain_epochs`` epochs' worth of training ratings.
``fine_tuning`` records the stage of the last training forward, so the validation after an
epoch measures the model that epoch trained, and the best epoch's weights (restored by early
stopping, saved in a run) predict in the stage they were validated in. Both counters are
buffers: a checkpoint resumes in the right stage.

The kernels ``k_i`` start so that ``G`` is close to the identity (a 1 at its centre) when
the training ratings' mean is the pooled value: fine-tuning starts from the pre-trained
model's own predictions, and learns how far to mix neighbouring cells of ``R``.

Fine-tuning reconstructs the whole matrix twice per step whatever the batch (the pooling
reads every item), so it is meant to train full-batch (the configs' choice; one step an
epoch). Predictions read only the stored training ratings, as in pre-training.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch
import torch.nn.functional as F
from torch import nn

from movierec.errors import ConfigError
from movierec.models.sparse_fc import SparseFC, SparseFCConfig


@dataclass(frozen=True)
class GLocalKConfig(SparseFCConfig):
    """Sparse FC's options (the local kernel), plus the global kernel's.

    Attributes:
        pretrain_epochs: Epochs of pre-training (plain Sparse FC) before fine-tuning with the
            global kernel; 0 fine-tunes from the first step.
        kernel_size: Side of the global convolution kernel (odd; the paper's 3).
        dot_scale: Factor on the pooled-weighted kernel sum (the paper's 1).
        kernel_lr_scale: How far one optimiser step moves the global kernel, relative to the
            local weights: the kernels are stored divided by it, so Adam's step of about
            ``lr`` per parameter moves ``G`` by about ``kernel_lr_scale * lr * mu``. The same
            model for any value; measured on u1: at 1 the first fine-tuning epochs swung the
            validation RMSE by up to 0.03.
    """

    pretrain_epochs: int = 100
    kernel_size: int = 3
    dot_scale: float = 1.0
    kernel_lr_scale: float = 0.1

    def __post_init__(self) -> None:
        super().__post_init__()
        if self.factors:
            raise ConfigError(
                f"glocal-k has no side term (got factors = {self.factors}); the factorised "
                f"side term with features is Sparse FC's: use --model sparse-fc with factors"
            )
        if self.pretrain_epochs < 0:
            raise ConfigError(f"glocal-k pretrain_epochs must be >= 0 (got {self.pretrain_epochs})")
        if self.kernel_size < 1 or self.kernel_size % 2 == 0:
            raise ConfigError(
                f"glocal-k kernel_size must be an odd number >= 1 (got {self.kernel_size}), "
                f"so that the convolved matrix keeps the rating matrix's size; the paper's is 3"
            )
        if not (math.isfinite(self.dot_scale) and self.dot_scale > 0):
            raise ConfigError(
                f"glocal-k dot_scale must be a finite number > 0 (got {self.dot_scale})"
            )
        if not (math.isfinite(self.kernel_lr_scale) and self.kernel_lr_scale > 0):
            raise ConfigError(
                f"glocal-k kernel_lr_scale must be a finite number > 0 (got {self.kernel_lr_scale})"
            )

    def _label(self) -> str:
        return "glocal-k"


class GLocalK(SparseFC):
    """Sparse FC pre-trained, then fine-tuned on the rating matrix convolved with a global
    kernel derived from its own reconstruction."""

    name = "glocal-k"
    config_class = GLocalKConfig
    config: GLocalKConfig

    def __init__(
        self,
        n_users: int,
        n_items: int,
        rating_scale: tuple[float, float],
        config: GLocalKConfig | None = None,
    ):
        super().__init__(n_users, n_items, rating_scale, config)
        size = self.config.kernel_size
        self.global_weights = nn.Parameter(torch.zeros(n_items, size, size))
        self._start_global_kernel(sum(rating_scale) / 2.0)
        self.register_buffer("ratings_seen", torch.tensor(0.0, dtype=torch.float64))
        self.register_buffer("fine_tuning", torch.tensor(0.0))

    def _start_global_kernel(self, typical_rating: float) -> None:
        """Stored weights ``1 / (dot_scale * kernel_lr_scale * typical_rating)`` at the centre
        and 0 elsewhere, so that ``G`` (:meth:`global_kernel`) is near the identity while the
        pooled values are near that rating."""
        centre = self.config.kernel_size // 2
        config = self.config
        with torch.no_grad():
            self.global_weights.zero_()
            scale = config.dot_scale * config.kernel_lr_scale * max(typical_rating, 1e-6)
            self.global_weights[:, centre, centre] = 1.0 / scale

    def init_from_data(
        self, user_idx: torch.Tensor, item_idx: torch.Tensor, rating: torch.Tensor
    ) -> None:
        super().init_from_data(user_idx, item_idx, rating)
        if rating.numel():
            self._start_global_kernel(float(rating.float().mean()))
        with torch.no_grad():
            self.ratings_seen.zero_()
            self.fine_tuning.zero_()

    @property
    def fine_tuned(self) -> bool:
        """Whether the model predicts through the global kernel (the last training forward
        was a fine-tuning one)."""
        return bool(self.fine_tuning)

    def global_kernel(self, pooled: torch.Tensor) -> torch.Tensor:
        """``G = dot_scale * sum_i mu_i k_i`` from ``pooled``, float ``[n_items]``, each item's
        reconstruction averaged over the users: float ``[kernel_size, kernel_size]``.

        ``global_weights`` holds ``n_items * k_i / kernel_lr_scale``, so ``G`` is their
        ``mu``-weighted *mean* (times the scales): Adam moves every parameter by about ``lr``
        per step, which on the ``k_i`` themselves would move ``G`` by ``n_items * lr``
        (measured: the first fine-tuning step threw the validation RMSE back to the untrained
        model's); the model is the same.
        """
        weighted = torch.einsum("i,ikl->kl", pooled, self.global_weights)
        config = self.config
        return config.dot_scale * config.kernel_lr_scale * weighted / self.n_items

    def convolved_columns(self, columns: torch.Tensor, kernel: torch.Tensor) -> torch.Tensor:
        """The rating matrix ``columns`` (``[n_items, n_users]``) convolved with ``kernel``,
        zero-padded so that it keeps its shape."""
        padding = self.config.kernel_size // 2
        return F.conv2d(columns[None, None], kernel[None, None], padding=padding)[0, 0]

    def fine_tuned_codes(self) -> torch.Tensor:
        """Every item's code in the fine-tuning stage: from its column of the training matrix
        convolved with the global kernel, ``[n_items, hidden[-1]]``."""
        kernel = self.global_kernel(self.pooled_decode(self.item_codes()))
        return self.encode(self.convolved_columns(self.training_columns(), kernel))

    def forward(self, user_idx: torch.Tensor, item_idx: torch.Tensor) -> torch.Tensor:
        if self.training:
            due = self.pretrain_epochs_done()
            with torch.no_grad():
                self.fine_tuning.fill_(float(due))
                self.ratings_seen.add_(user_idx.numel() * _world_size())
        if not self.fine_tuned:
            return super().forward(user_idx, item_idx)
        return self.decode(self.fine_tuned_codes())[item_idx, user_idx]

    def pretrain_epochs_done(self) -> bool:
        """Whether the training forwards so far cover ``pretrain_epochs`` epochs."""
        return float(self.ratings_seen) >= self.config.pretrain_epochs * float(self.n_ratings)

    def item_vectors(self) -> torch.Tensor:
        """Each item's code from the input the current stage reads: ``[n_items, hidden[-1]]``."""
        return self.fine_tuned_codes() if self.fine_tuned else self.item_codes()

    def reconstruction(self) -> torch.Tensor:
        return self.decode(self.item_vectors())


def _world_size() -> int:
    """Processes training together (1 outside torchrun): each forward sees 1/world of a step."""
    if torch.distributed.is_available() and torch.distributed.is_initialized():
        return torch.distributed.get_world_size()
    return 1
