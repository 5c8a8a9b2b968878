"""What early stopping looks at: predictions in eval mode, validation MSE/RMSE and NDCG@10.

Both run in large eval-mode batches under ``inference_mode`` and put the model back in the mode
it was in, so the training loop can call them between epochs.
"""

from __future__ import annotations

import math

import torch

from movierec.data.tensors import RatingTensors, SeenItems
from movierec.evaluate import metrics
from movierec.models.base import RatingModel

PREDICT_BATCH = 1 << 16
VALID_SCORE_ROWS = 1 << 18  # users x items scored per batch for validation NDCG
VALID_K = 10


@torch.inference_mode()
def predict_tensors(model: RatingModel, data: RatingTensors) -> torch.Tensor:
    """Model predictions for every row, in large eval-mode batches, clipped to the rating scale."""
    was_training = model.training
    model.eval()
    low, high = model.rating_scale
    outputs = [
        model(
            data.user_idx[start : start + PREDICT_BATCH],
            data.item_idx[start : start + PREDICT_BATCH],
        )
        for start in range(0, len(data), PREDICT_BATCH)
    ]
    model.train(was_training)
    if not outputs:
        return torch.empty(0, device=data.rating.device)
    return torch.cat(outputs).float().clamp(low, high)


@torch.inference_mode()
def validation_ndcg(
    model: RatingModel, train: RatingTensors, valid: RatingTensors, k: int = VALID_K
) -> float:
    """NDCG@k of ``model`` on ``valid``: every validation item is relevant, training items masked.

    Candidates are all items but the user's ``train`` items; users with no validation item are
    left out. Scores come from :meth:`RatingModel.score_items` in eval mode, batched over users.
    """
    was_training = model.training
    model.eval()
    device = valid.user_idx.device
    n_users, n_items = model.n_users, model.n_items
    seen = SeenItems.from_tensors(train.to("cpu"), n_users, n_items)
    users = torch.unique(valid.user_idx).cpu()
    relevant_keys = torch.unique(valid.user_idx * n_items + valid.item_idx)
    n_relevant = torch.bincount(valid.user_idx, minlength=n_users)[users.to(device)]
    item_side = model.item_side()
    per_batch = max(1, VALID_SCORE_ROWS // max(1, n_items))
    k = min(k, n_items)
    hits = []
    for start in range(0, users.numel(), per_batch):
        batch = users[start : start + per_batch]
        on_device = batch.to(device)
        scores = model.rank_items(on_device, item_side).float()
        scores = scores.masked_fill(seen.mask(batch).to(device), float("-inf"))
        top = torch.topk(scores, k, dim=1)
        keys = on_device[:, None] * n_items + top.indices
        found = torch.isin(keys, relevant_keys) & torch.isfinite(top.values)
        hits.append(found.cpu())
    model.train(was_training)
    if not hits:
        return 0.0
    return metrics.ndcg_at_k(torch.cat(hits).numpy(), n_relevant.cpu().numpy())


def validate(
    model: RatingModel,
    train: RatingTensors,
    valid: RatingTensors | None,
    ranking: bool,
    *,
    rmse: bool | None = None,
) -> tuple[float | None, float | None, float | None]:
    """``(valid_loss, valid_rmse, valid_ndcg)`` of one epoch: NDCG@10 if ``ranking``, MSE/RMSE
    if ``rmse`` (default: when not ranking; the ``joint`` objective asks for both).

    All three are None without a validation split; the ones the objective does not use are None.
    """
    if valid is None:
        return None, None, None
    rmse = not ranking if rmse is None else rmse
    ndcg = validation_ndcg(model, train, valid) if ranking else None
    if not rmse:
        return None, None, ndcg
    valid_loss = float(torch.mean((predict_tensors(model, valid) - valid.rating) ** 2))
    return valid_loss, math.sqrt(valid_loss), ndcg
