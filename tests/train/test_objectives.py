"""Ranking objectives: the losses by hand, and training that lowers them on synthetic data."""

import math

import pytest
import torch

from movierec.config import RunOptions, TrainConfig
from movierec.data.encoder import IdEncoder
from movierec.data.synthetic import synthetic_ratings
from movierec.data.tensors import RatingTensors
from movierec.errors import ConfigError
from movierec.models import build_model
from movierec.train import fit, validation_ndcg
from movierec.train.objectives import bce_loss, bpr_loss, softmax_loss


def test_bpr_loss_by_hand():
    positive = torch.tensor([2.0, 0.0])
    negative = torch.tensor([[1.0], [0.0]])
    expected = (-math.log(1 / (1 + math.exp(-1.0))) - math.log(0.5)) / 2
    assert float(bpr_loss(positive, negative)) == pytest.approx(expected)


def test_bce_loss_by_hand():
    positive = torch.tensor([0.0])
    negative = torch.tensor([[0.0, 0.0]])
    assert float(bce_loss(positive, negative)) == pytest.approx(math.log(2))


def test_softmax_loss_by_hand():
    positive = torch.tensor([1.0, 0.0])
    negative = torch.tensor([[0.0, 0.0], [2.0, 0.0]])
    first = -math.log(math.e / (math.e + 2))
    second = -math.log(1 / (1 + math.exp(2.0) + 1))
    assert float(softmax_loss(positive, negative)) == pytest.approx((first + second) / 2)


@pytest.fixture(scope="module")
def tensors():
    ratings = synthetic_ratings(60, 50, 1500, seed=5)
    encoder = IdEncoder.fit(ratings)
    return RatingTensors.from_frame(ratings, encoder), encoder


@pytest.mark.parametrize("model", ["mf", "embedding-net"])
@pytest.mark.parametrize("objective", ["bpr", "bce", "softmax"])
def test_ranking_objectives_lower_their_loss(tensors, model, objective):
    data, encoder = tensors
    torch.manual_seed(0)
    options = (
        {"n_factors": 8} if model == "mf" else {"n_factors": 8, "hidden": [16], "dropouts": []}
    )
    net = build_model(model, encoder.n_users, encoder.n_items, (1.0, 5.0), options)
    config = TrainConfig(
        epochs=8, lr=0.01, batch_size=256, objective=objective, negatives=2, patience=0
    )
    result = fit(net, data, None, config, RunOptions(progress=False, device="cpu"))
    losses = [r.train_loss for r in result.history]
    assert losses[-1] < losses[0]


def test_ranking_run_stops_early_on_validation_ndcg(tensors):
    data, encoder = tensors
    n = len(data)
    train = RatingTensors(data.user_idx[: n - 200], data.item_idx[: n - 200], data.rating[:-200])
    valid = RatingTensors(data.user_idx[-200:], data.item_idx[-200:], data.rating[-200:])
    torch.manual_seed(0)
    net = build_model("mf", encoder.n_users, encoder.n_items, (1.0, 5.0), {"n_factors": 8})
    config = TrainConfig(epochs=4, lr=0.01, batch_size=256, objective="bpr", patience=2)
    result = fit(net, train, valid, config, RunOptions(progress=False, device="cpu"))
    assert all(r.valid_rmse is None and 0 <= r.valid_ndcg <= 1 for r in result.history)
    best = max(result.history, key=lambda r: r.valid_ndcg)
    assert result.best_epoch == best.epoch
    assert validation_ndcg(net, train, valid) == pytest.approx(best.valid_ndcg)


def test_unknown_objective_is_a_config_error():
    with pytest.raises(ConfigError, match="objective"):
        TrainConfig(objective="hinge")
    with pytest.raises(ConfigError, match="negatives"):
        TrainConfig(negatives=0)
