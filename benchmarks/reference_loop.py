"""The plain loop: the article's network trained the way a PyTorch user writes it in 30 lines.

Issue #16's reference for "the default path well ahead of a plain loop": the whole training set
already in tensors on the device, one ``randperm`` an epoch, index the batch, forward, MSE,
backward, dense ``torch.optim.Adam`` (PyTorch's own default implementation), fp32 throughout. No
``Dataset``/``DataLoader`` (that slower reference is :mod:`reference_dataloader`), no fused
kernels, no mixed precision. The network is :class:`reference_dataloader.ArticleEmbeddingNet`
(same architecture, initialisation and FLOPs per rating as :class:`movierec.models.EmbeddingNet`).

    python benchmarks/reference_loop.py --epochs 3           # ratings/s per epoch on ml-100k u1
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import torch
from reference_dataloader import ArticleEmbeddingNet


class PlainLoop:
    """Model, optimiser and data of the plain loop; :meth:`epoch` trains one shuffled pass.

    Args:
        users, items: int64 ``[N]`` encoded indices (``0..n-1``), on ``device``.
        ratings: float32 ``[N]`` ratings, on ``device``.
        n_factors, hidden, dropouts: The article network's shape.
        batch_size, lr, weight_decay: The article's training settings.
        seed: Seeds the initialisation and the shuffling.
    """

    def __init__(
        self,
        users: torch.Tensor,
        items: torch.Tensor,
        ratings: torch.Tensor,
        *,
        n_factors: int = 150,
        hidden: Sequence[int] = (100, 200, 300),
        dropouts: Sequence[float] = (0.25, 0.5),
        batch_size: int = 2000,
        lr: float = 1e-3,
        weight_decay: float = 1e-5,
        seed: int = 0,
    ) -> None:
        torch.manual_seed(seed)
        n_users, n_items = int(users.max()) + 1, int(items.max()) + 1
        low, high = float(ratings.min()), float(ratings.max())
        self.model = ArticleEmbeddingNet(
            n_users, n_items, n_factors, hidden, dropouts, min_rating=low, max_rating=high
        ).to(users.device)
        self.optimizer = torch.optim.Adam(self.model.parameters(), lr=lr, weight_decay=weight_decay)
        self.users, self.items, self.ratings = users, items, ratings
        self.batch_size = batch_size

    def epoch(self) -> float:
        """One pass in shuffled batches; returns its seconds (synchronised on CUDA)."""
        started = time.perf_counter()
        self.model.train()
        order = torch.randperm(len(self.ratings), device=self.ratings.device)
        for start in range(0, len(order), self.batch_size):
            batch = order[start : start + self.batch_size]
            predicted = self.model(self.users[batch], self.items[batch]).squeeze(1)
            loss = torch.nn.functional.mse_loss(predicted, self.ratings[batch])
            self.optimizer.zero_grad()
            loss.backward()
            self.optimizer.step()
        if self.ratings.is_cuda:
            torch.cuda.synchronize()
        return time.perf_counter() - started


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from movierec.data import load_data
    from movierec.data.encoder import IdEncoder
    from movierec.data.splits import make_split
    from movierec.data.tensors import RatingTensors

    data = load_data("ml-100k")
    train = make_split(data.ratings, "u1", layout=data.layout, seed=0).train
    tensors = RatingTensors.from_frame(train, IdEncoder.fit(train))
    loop = PlainLoop(tensors.user_idx, tensors.item_idx, tensors.rating)
    for epoch in range(1, args.epochs + 1):
        print(f"epoch {epoch}: {len(tensors) / loop.epoch():,.0f} ratings/s")


if __name__ == "__main__":
    main()
