"""The Trainer on its own: its state is everything the next epoch depends on."""

import copy

import pytest
import torch

from movierec.config import RunOptions, TrainConfig
from movierec.data.encoder import IdEncoder
from movierec.data.synthetic import synthetic_ratings
from movierec.data.tensors import RatingTensors
from movierec.models import build_model
from movierec.train import Trainer

CPU = torch.device("cpu")
OPTIONS = RunOptions(seed=3, progress=False, device="cpu")


@pytest.fixture(scope="module")
def encoded():
    frame = synthetic_ratings(120, 80, 3_000, seed=5)
    encoder = IdEncoder.fit(frame)
    return encoder, RatingTensors.from_frame(frame, encoder)


def _trainer(encoded, config: TrainConfig, init_seed: int, **hooks) -> Trainer:
    encoder, data = encoded
    torch.manual_seed(init_seed)
    model = build_model(
        "embedding-net", encoder.n_users, encoder.n_items, (1.0, 5.0),
        {"n_factors": 8, "hidden": [16], "dropouts": [0.2]},
    )  # fmt: skip
    model.init_from_data(data.user_idx, data.item_idx, data.rating)
    return Trainer(model, data, config, OPTIONS, CPU, **hooks)


def _same_weights(first: Trainer, second: Trainer) -> bool:
    ours, theirs = first.model.state_dict(), second.model.state_dict()
    return ours.keys() == theirs.keys() and all(torch.equal(ours[k], theirs[k]) for k in ours)


@pytest.mark.parametrize("objective", ["rating", "bpr"])
def test_a_trainer_loaded_from_a_state_trains_the_next_epoch_bit_identically(encoded, objective):
    config = TrainConfig(
        epochs=3, batch_size=256, lr=0.01, objective=objective, schedule="one-cycle"
    )
    first = _trainer(encoded, config, init_seed=0)
    first.train_epoch()
    state = copy.deepcopy(first.state_dict())  # the tensors are live: copy before training on
    assert (state["epoch"], state["position"], state["loss_sum"]) == (2, 0, 0.0)
    loss = first.train_epoch()

    second = _trainer(encoded, config, init_seed=1)  # other initial weights: the state wins
    assert not _same_weights(first, second)
    second.load_state_dict(state)
    assert second.train_epoch() == loss
    assert _same_weights(first, second)
    assert (second.epoch, second.step, second.lr) == (first.epoch, first.step, first.lr)


def test_a_mid_epoch_state_finishes_the_epoch_bit_identically(encoded):
    config = TrainConfig(epochs=2, batch_size=256, lr=0.01)
    saved = []

    def keep_third_step(trainer: Trainer) -> None:
        if trainer.step == 3:
            saved.append(copy.deepcopy(trainer.state_dict()))

    first = _trainer(encoded, config, init_seed=0, after_step=[keep_third_step])
    loss = first.train_epoch()
    (state,) = saved
    assert state["epoch"] == 1 and 0 < state["position"] < first.epoch_rows

    second = _trainer(encoded, config, init_seed=1)
    second.load_state_dict(state)
    assert second.train_epoch() == loss
    assert _same_weights(first, second)


def test_before_step_hooks_see_every_step_index(encoded):
    config = TrainConfig(epochs=1, batch_size=1000, lr=0.01)
    steps = []
    trainer = _trainer(encoded, config, init_seed=0, before_step=[lambda t: steps.append(t.step)])
    trainer.train_epoch()
    assert len(steps) > 1
    assert steps == list(range(trainer.steps_per_epoch))


def test_the_shuffling_generator_draws_where_the_data_lives():
    from movierec.train.trainer import _generator_device

    # On CUDA a CPU randperm of 25M rows (2.5 s) outlasts the epoch: the permutation is drawn there.
    assert _generator_device(torch.device("cuda", 1)) == torch.device("cuda", 1)
    assert _generator_device(torch.device("cpu")) == torch.device("cpu")
