"""The weight average of ``[train] ema_decay``: its arithmetic, the swap in and out, and that a
fit trains the raw weights unchanged while it keeps the averaged ones it validated."""

import math

import pytest
import torch

from movierec.config import RunOptions, TrainConfig
from movierec.errors import ConfigError
from movierec.models import build_model
from movierec.train import fit, predict_tensors
from movierec.train.averaging import WeightAverage
from tests.factories import fit_and_held_out


def test_the_average_is_the_bias_corrected_exponential_mean_of_the_steps():
    layer = torch.nn.Linear(1, 1, bias=False)
    average = WeightAverage(layer, decay=0.8)
    assert average.averaged("weight").item() == layer.weight.item()  # no step yet: raw
    values = [2.0, -1.0, 5.0, 3.0]
    for value in values:
        with torch.no_grad():
            layer.weight.fill_(value)
        average.update()
    n = len(values)
    weights = [(1 - 0.8) * 0.8 ** (n - 1 - k) for k in range(n)]
    expected = sum(w * v for w, v in zip(weights, values, strict=True)) / (1 - 0.8**n)
    assert average.averaged("weight").item() == pytest.approx(expected, rel=1e-6)
    assert sum(weights) == pytest.approx(1 - 0.8**n)  # the correction makes it a mean


def test_swapped_in_restores_the_raw_weights_and_the_state_round_trips():
    torch.manual_seed(0)
    net = torch.nn.Sequential(torch.nn.Linear(4, 3), torch.nn.ReLU(), torch.nn.Linear(3, 1))
    average = WeightAverage(net, decay=0.5)
    for _ in range(3):
        with torch.no_grad():
            for p in net.parameters():
                p.add_(torch.randn_like(p))
        average.update()
    raw = {k: v.clone() for k, v in net.state_dict().items()}
    with average.swapped_in():
        for name, p in net.named_parameters():
            torch.testing.assert_close(p.detach(), average.averaged(name))
            assert not torch.equal(p.detach(), raw[name])
    for name, value in net.state_dict().items():
        assert torch.equal(value, raw[name])
    again = WeightAverage(net, decay=0.5)
    again.load_state_dict(average.state_dict())
    assert again.updates == 3
    for name, _ in net.named_parameters():
        assert torch.equal(again.averaged(name), average.averaged(name))


def test_ema_decay_outside_zero_to_one_is_a_config_error():
    for bad in (-0.1, 1.0, 2.0):
        with pytest.raises(ConfigError, match=r"ema_decay must be in \[0, 1\)"):
            TrainConfig(ema_decay=bad)


@pytest.fixture(scope="module")
def data():
    return fit_and_held_out(300, 200, 20_000, seed=5)


def train(data, ema_decay, valid=True):
    encoder, train_part, held_out = data
    torch.manual_seed(0)
    model = build_model(
        "embedding-net", encoder.n_users, encoder.n_items, (1.0, 5.0),
        {"n_factors": 16, "hidden": [32, 32], "dropouts": [0.2]},
    )  # fmt: skip
    config = TrainConfig(epochs=5, batch_size=256, patience=0, ema_decay=ema_decay)
    options = RunOptions(seed=0, device="cpu", progress=False, precision="fp32")
    result = fit(model, train_part, held_out if valid else None, config, options)
    return model, result


def rmse(model, tensors):
    return math.sqrt(float(((predict_tensors(model, tensors) - tensors.rating) ** 2).mean()))


def test_a_fit_steps_the_raw_weights_and_keeps_the_average_it_validated(data):
    _, plain = train(data, 0.0)
    model, result = train(data, 0.9)
    # The average does not steer training: the same losses, step for step.
    assert [r.train_loss for r in result.history] == [r.train_loss for r in plain.history]
    # What was validated is what was kept: the best epoch's recorded RMSE is the model's.
    best = result.history[result.best_epoch - 1]
    assert rmse(model, data[2]) == pytest.approx(best.valid_rmse, abs=1e-6)
    assert best.valid_rmse != pytest.approx(plain.history[result.best_epoch - 1].valid_rmse)
    # Without validation the model ends on the average of the last steps, not the raw weights.
    raw_model, _ = train(data, 0.0, valid=False)
    averaged_model, _ = train(data, 0.9, valid=False)
    assert rmse(averaged_model, data[2]) != pytest.approx(rmse(raw_model, data[2]), abs=1e-6)
