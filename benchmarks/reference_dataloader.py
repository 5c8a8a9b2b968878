"""The straightforward reference the benchmark compares movierec against.

This is how tutorials and blog posts train a rating network in PyTorch: a per-sample
``torch.utils.data.Dataset`` whose ``__getitem__`` returns one ``(user, item, rating)`` triple, a
``DataLoader(shuffle=True)`` that collates ``batch_size`` of them per step, the network written
out in the article's style, MSE loss and plain dense ``torch.optim.Adam`` over every parameter.

It is kept in ``benchmarks/`` on purpose: it is the baseline the package's whole-tensor training
loop is measured against, not something the package uses. The architecture, initialisation and
FLOPs per rating match :class:`movierec.models.EmbeddingNet`, so the two differ only in how data
reaches the model and how the step is run.

    python benchmarks/reference_dataloader.py --epochs 3     # prints ratings/s per epoch
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Sequence

import numpy as np
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset


class RatingsDataset(Dataset):
    """One rating per index, as the tutorials write it."""

    def __init__(self, users: np.ndarray, items: np.ndarray, ratings: np.ndarray):
        self.users = torch.as_tensor(users, dtype=torch.long)
        self.items = torch.as_tensor(items, dtype=torch.long)
        self.ratings = torch.as_tensor(ratings, dtype=torch.float32)

    def __len__(self) -> int:
        return len(self.ratings)

    def __getitem__(self, idx: int) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor]:
        return self.users[idx], self.items[idx], self.ratings[idx]


class ArticleEmbeddingNet(nn.Module):
    """User and item embeddings, concatenated, through an MLP to a scaled sigmoid."""

    def __init__(
        self,
        n_users: int,
        n_items: int,
        n_factors: int = 150,
        hidden: Sequence[int] = (100, 200, 300),
        dropouts: Sequence[float] = (0.25, 0.5),
        embedding_dropout: float = 0.02,
        min_rating: float = 1.0,
        max_rating: float = 5.0,
    ):
        super().__init__()
        self.u = nn.Embedding(n_users, n_factors)
        self.m = nn.Embedding(n_items, n_factors)
        self.drop = nn.Dropout(embedding_dropout)
        layers: list[nn.Module] = []
        n_in = 2 * n_factors
        for i, n_out in enumerate(hidden):
            layers += [nn.Linear(n_in, n_out), nn.ReLU()]
            if i < len(dropouts):
                layers.append(nn.Dropout(dropouts[i]))
            n_in = n_out
        self.hidden = nn.Sequential(*layers)
        self.fc = nn.Linear(n_in, 1)
        self.min_rating, self.max_rating = min_rating, max_rating
        self.u.weight.data.uniform_(-0.05, 0.05)
        self.m.weight.data.uniform_(-0.05, 0.05)
        for layer in [*self.hidden, self.fc]:
            if isinstance(layer, nn.Linear):
                nn.init.xavier_uniform_(layer.weight)
                layer.bias.data.fill_(0.01)

    def forward(self, users: torch.Tensor, items: torch.Tensor) -> torch.Tensor:
        features = torch.cat([self.u(users), self.m(items)], dim=1)
        x = self.hidden(self.drop(features))
        out = torch.sigmoid(self.fc(x))
        return out * (self.max_rating - self.min_rating + 1) + self.min_rating - 0.5


def make_loader(dataset: RatingsDataset, batch_size: int = 2000) -> DataLoader:
    """The tutorials' loader: shuffled, default collate, no worker processes."""
    return DataLoader(dataset, batch_size=batch_size, shuffle=True)


def train_epoch(
    model: nn.Module, loader: DataLoader, optimizer: torch.optim.Optimizer
) -> tuple[float, int]:
    """One pass over ``loader``; returns ``(seconds, ratings seen)``."""
    criterion = nn.MSELoss()
    model.train()
    seen = 0
    started = time.perf_counter()
    for users, items, ratings in loader:
        optimizer.zero_grad()
        outputs = model(users, items)
        loss = criterion(outputs, ratings.view(-1, 1))
        loss.backward()
        optimizer.step()
        seen += len(ratings)
    return time.perf_counter() - started, seen


def build(
    users: np.ndarray,
    items: np.ndarray,
    ratings: np.ndarray,
    *,
    n_factors: int = 150,
    hidden: Sequence[int] = (100, 200, 300),
    dropouts: Sequence[float] = (0.25, 0.5),
    batch_size: int = 2000,
    lr: float = 1e-3,
    weight_decay: float = 1e-5,
) -> tuple[nn.Module, DataLoader, torch.optim.Optimizer]:
    """Model, loader and dense Adam for encoded ratings (indices ``0..n-1``)."""
    model = ArticleEmbeddingNet(
        int(users.max()) + 1,
        int(items.max()) + 1,
        n_factors,
        hidden,
        dropouts,
        min_rating=float(ratings.min()),
        max_rating=float(ratings.max()),
    )
    loader = make_loader(RatingsDataset(users, items, ratings), batch_size)
    optimizer = torch.optim.Adam(model.parameters(), lr=lr, weight_decay=weight_decay)
    return model, loader, optimizer


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--epochs", type=int, default=3)
    args = parser.parse_args()
    from movierec.data import load_data
    from movierec.data.encoder import IdEncoder
    from movierec.data.splits import make_split

    data = load_data("ml-100k")
    train = make_split(data.ratings, "u1", layout=data.layout, seed=0).train
    encoder = IdEncoder.fit(train)
    model, loader, optimizer = build(
        encoder.encode_users(train["user_id"].to_numpy()),
        encoder.encode_items(train["item_id"].to_numpy()),
        train["rating"].to_numpy(dtype=np.float32),
    )
    for epoch in range(1, args.epochs + 1):
        seconds, seen = train_epoch(model, loader, optimizer)
        print(f"epoch {epoch}: {seen / seconds:,.0f} ratings/s")


if __name__ == "__main__":
    main()
