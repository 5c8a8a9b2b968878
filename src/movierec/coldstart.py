"""Cold start: scores for a visitor the model has never seen, from a handful of their ratings.

The trained model stays frozen; only a fresh user representation is fitted to the visitor's
ratings (``fold-in``), then every item is scored with it:

- ``mf``: the user vector and bias in closed form, a ridge regression against the frozen item
  factors (the L2 weights are the ones training used per rating).
- ``embedding-net``: a fresh user embedding, started at the mean trained user embedding and moved
  by a few full-batch Adam steps against the frozen network, stopped early when time runs out.
- ``bias`` / ``mean`` (and any other model): the item biases plus the visitor's own bias.

Every function returns predicted ratings for the whole catalogue, clipped to the rating scale;
the caller leaves the items the visitor rated out of the ranking.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

import numpy as np
import torch

from movierec.errors import ConfigError
from movierec.models.bias import BiasModel
from movierec.models.embedding_net import EmbeddingNet
from movierec.models.mf import MatrixFactorization
from movierec.recommend import Recommender

MAX_RATINGS = 1000  # a visitor's ratings in one request; keeps fold-in cheap and bounded


def fold_in_method(recommender: Recommender) -> str:
    """A short name of the fold-in :func:`fold_in_user` uses for this recommender's model."""
    model = recommender.model
    if isinstance(model, MatrixFactorization):
        return "ridge"
    if isinstance(model, EmbeddingNet):
        return "adam"
    return "biases"


def fold_in_user(
    recommender: Recommender,
    item_ids: Sequence[Any],
    ratings: Sequence[float],
    *,
    steps: int = 60,
    lr: float = 0.05,
    l2: float = 1e-3,
    max_seconds: float = 0.25,
) -> torch.Tensor:
    """Predicted ratings of every item for a new visitor who rated ``item_ids``.

    Args:
        recommender: The trained recommender (its model is not modified).
        item_ids: Raw IDs of the items the visitor rated (distinct, known to the model).
        ratings: The visitor's ratings, within the model's rating scale.
        steps: Adam steps for the EmbeddingNet (ignored by the closed forms).
        lr: Adam's learning rate for the EmbeddingNet's user embedding.
        l2: Pull of the EmbeddingNet's user embedding toward the mean user, per unit distance.
        max_seconds: Wall-clock cap on the EmbeddingNet's steps; it stops early, keeping the best
            embedding so far.

    Returns:
        float32 ``[n_items]`` predicted ratings in item-index order, clipped to the rating scale.

    Raises:
        UnknownIdError: An item the model never saw (the message names it).
        ConfigError: No ratings, too many, lengths that differ, a duplicate item or a rating
            outside the scale.
    """
    items, values = _encode(recommender, item_ids, ratings)
    model = recommender.model
    if isinstance(model, MatrixFactorization):
        scores = _ridge_mf(model, items, values)
    elif isinstance(model, EmbeddingNet):
        scores = _adam_embedding_net(
            recommender, model, items, values, steps=steps, lr=lr, l2=l2, max_seconds=max_seconds
        )
    else:
        scores = _biases(recommender, items, values)
    return scores.float().clamp(*recommender.rating_scale)


def _encode(
    recommender: Recommender, item_ids: Sequence[Any], ratings: Sequence[float]
) -> tuple[torch.Tensor, torch.Tensor]:
    if len(item_ids) != len(ratings):
        raise ConfigError(f"got {len(item_ids)} items but {len(ratings)} ratings to pair")
    if not 1 <= len(item_ids) <= MAX_RATINGS:
        raise ConfigError(f"give between 1 and {MAX_RATINGS} ratings, got {len(item_ids)}")
    index = recommender.encoder.encode_items(np.asarray(list(item_ids), dtype=object))
    for raw, idx in zip(item_ids, index, strict=True):
        if idx < 0:
            recommender.encoder.item_index(raw)  # raises UnknownIdError naming the item
    unique, counts = np.unique(index, return_counts=True)
    if (counts > 1).any():
        twice = recommender.encoder.decode_items([unique[counts > 1][0]])[0]
        raise ConfigError(f"item {twice} is rated more than once; give each item one rating")
    values = np.asarray(ratings, dtype=np.float64)
    low, high = recommender.rating_scale
    bad = ~np.isfinite(values) | (values < low) | (values > high)
    if bad.any():
        raise ConfigError(
            f"rating {values[bad][0]} is outside the model's rating scale {low:g}..{high:g}"
        )
    return torch.from_numpy(index), torch.from_numpy(values)


@torch.inference_mode()
def _ridge_mf(
    model: MatrixFactorization, items: torch.Tensor, values: torch.Tensor
) -> torch.Tensor:
    """Closed form: ``min |y - Q p - b|^2 + n (reg_f |p|^2 + reg_b b^2)`` over ``(p, b)``."""
    q = model.item_factors.weight.double()  # [n_items, d]
    item_bias = model.item_bias.weight.double().squeeze(1)  # [n_items]
    mu = float(model.global_mean)
    features = torch.cat([q[items], torch.ones(len(items), 1, dtype=torch.float64)], dim=1)
    target = values - mu - item_bias[items]
    n, dim = len(items), q.shape[1]
    # Training charges the L2 per rating, so a user with n ratings carries n times the weight;
    # the floor keeps the system well posed for a single rating.
    reg = torch.full((dim + 1,), max(model.config.reg_factors * n, 1e-3), dtype=torch.float64)
    reg[-1] = max(model.config.reg_bias * n, 1e-3)
    gram = features.T @ features + torch.diag(reg)
    solution = torch.linalg.solve(gram, features.T @ target)
    user_vector, user_bias = solution[:dim], solution[dim]
    return mu + user_bias + item_bias + q @ user_vector


def _adam_embedding_net(
    recommender: Recommender,
    model: EmbeddingNet,
    items: torch.Tensor,
    values: torch.Tensor,
    *,
    steps: int,
    lr: float,
    l2: float,
    max_seconds: float,
) -> torch.Tensor:
    """Full-batch Adam on one fresh user embedding; the network's weights are only read."""
    deadline = time.perf_counter() + max_seconds
    n = model.config.n_factors
    first = model.hidden[0]
    with torch.no_grad():
        start = model.user_embedding.weight.mean(dim=0)
        user_weight = first.weight[:, :n].detach().clone()  # [h1, n]
        rated_side = (
            model.item_embedding.weight[items] @ first.weight[:, n:].T + first.bias
        ).detach()  # [m, h1]
    target = values.float()
    # With bias terms (EmbeddingNetConfig.biases) the visitor also gets a user bias, learned
    # beside the embedding from 0 under the same pull; the item biases are read like the rest.
    with_biases = bool(getattr(model.config, "biases", False))
    item_bias = model.item_bias.weight[:, 0].detach() if with_biases else None
    user = start.clone().requires_grad_(True)
    user_bias = torch.zeros(1, requires_grad=True)
    learned = [user, user_bias] if with_biases else [user]
    optimiser = torch.optim.Adam(learned, lr=lr)
    best, best_bias, best_loss = start.clone(), torch.zeros(1), float("inf")
    for _ in range(steps):
        with torch.enable_grad():
            pre = rated_side + user @ user_weight.T
            predicted = model.head(pre)
            if item_bias is not None:
                predicted = predicted + item_bias[items] + user_bias
            fit = torch.mean((predicted - target) ** 2)
            loss = fit + l2 * (torch.sum((user - start) ** 2) + torch.sum(user_bias**2))
            # Gradients for the visitor only: nothing accumulates on the shared, frozen weights.
            grads = torch.autograd.grad(loss, learned)
        value = float(loss.detach())
        if value < best_loss:
            best_loss, best, best_bias = value, user.detach().clone(), user_bias.detach().clone()
        for parameter, grad in zip(learned, grads, strict=True):
            parameter.grad = grad
        optimiser.step()
        if time.perf_counter() > deadline:
            break
    with torch.inference_mode():
        pre = recommender.item_side() + best @ user_weight.T
        scores = model.head(pre)
        if item_bias is not None:
            scores = scores + item_bias + best_bias
        return scores


@torch.inference_mode()
def _biases(recommender: Recommender, items: torch.Tensor, values: torch.Tensor) -> torch.Tensor:
    """``mu + b_u + b_i`` with the visitor's bias as a shrunken mean of their residuals."""
    model = recommender.model
    if isinstance(model, BiasModel):
        mu, item_bias = float(model.global_mean), model.item_bias.double()
        reg_user = model.config.reg_user
    else:
        mu = recommender.fallback.global_mean
        item_bias, reg_user = recommender.fallback.item_bias.double(), 15.0
    user_bias = float(torch.sum(values - mu - item_bias[items])) / (len(items) + reg_user)
    return mu + user_bias + item_bias
