"""``[train] optimizer = "lbfgs"``: full-batch L-BFGS in the one loop. It lowers the training
loss of the autoencoders, refuses what a line search cannot train with in one line, keeps
GLocal-K's stage count at one forward per epoch, and resumes from a checkpoint exactly."""

import itertools
import shutil

import pytest
import torch

from movierec.config import RunOptions, TrainConfig
from movierec.errors import ConfigError
from movierec.models import build_model
from movierec.train import distributed, fit
from movierec.train.checkpoint import load_checkpoint
from movierec.train.trainer import Trainer
from tests.factories import fit_and_held_out

QUIET = RunOptions(seed=0, progress=False, device="cpu", precision="fp32")
SCALE = (1.0, 5.0)
LBFGS = {
    "optimizer": "lbfgs",
    "lr": 1.0,
    "lbfgs_iterations": 3,
    "weight_decay": 0.0,
    "batch_size": 1_000_000,
    "patience": 0,
}
MODELS = {
    "sparse-fc": {"hidden": [16, 16], "position_dim": 3, "reg": 1.0},
    "autorec": {"hidden": 16, "reg": 1.0},
    "glocal-k": {"hidden": [16, 16], "position_dim": 3, "reg": 1.0, "pretrain_epochs": 2},
}


def _model(name, encoder):
    torch.manual_seed(0)
    return build_model(name, encoder.n_users, encoder.n_items, SCALE, MODELS[name])


@pytest.mark.parametrize("name", sorted(MODELS))
def test_lbfgs_lowers_the_training_loss_epoch_after_epoch(name):
    encoder, train, held = fit_and_held_out(40, 30, 700, seed=3)
    model = _model(name, encoder)
    result = fit(model, train, held, TrainConfig(**LBFGS, epochs=4), QUIET)
    losses = [row.train_loss for row in result.history]
    assert len(losses) == 4 and all(b < a for a, b in itertools.pairwise(losses))
    assert losses[-1] < 0.7 * losses[0], losses


def test_glocal_k_counts_one_forward_per_lbfgs_epoch():
    # A line search evaluates the loss many times a step; the stage must still switch after
    # pretrain_epochs epochs, not after that many evaluations.
    encoder, train, held = fit_and_held_out(40, 30, 700, seed=3)
    model = _model("glocal-k", encoder)
    stages, seen = [], []

    def record(_record):
        stages.append(model.fine_tuned)
        seen.append(float(model.ratings_seen))

    fit(model, train, held, TrainConfig(**LBFGS, epochs=4), QUIET, on_epoch=record)
    assert stages == [False, False, True, True]
    assert seen == [epoch * len(train) for epoch in (1, 2, 3, 4)]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"objective": "bpr"}, "cannot take objective = 'bpr'"),
        ({"embedding_optimizer": "row-wise"}, "cannot take embedding_optimizer = 'row-wise'"),
        ({"weight_decay": 1e-5}, "cannot take weight_decay = 1e-05"),
        ({"lbfgs_iterations": 0}, "lbfgs_iterations must be >= 1"),
        ({"optimizer": "sgd"}, "optimizer must be one of adam, lbfgs"),
    ],
)
def test_what_lbfgs_cannot_train_with_is_one_config_error_line(options, message):
    with pytest.raises(ConfigError, match=message) as caught:
        TrainConfig(**{**LBFGS, **options})
    assert "\n" not in str(caught.value)


def test_mini_batches_are_refused_in_one_line():
    encoder, train, held = fit_and_held_out(40, 30, 700, seed=3)
    model = _model("sparse-fc", encoder)
    config = TrainConfig(**{**LBFGS, "batch_size": 100}, epochs=2)
    with pytest.raises(ConfigError, match=r"batch_size is 100 for [0-9,]+ ratings") as caught:
        fit(model, train, held, config, QUIET)
    assert "\n" not in str(caught.value)


def test_several_processes_are_refused_in_one_line():
    encoder, train, _ = fit_and_held_out(40, 30, 700, seed=3)
    model = _model("sparse-fc", encoder)
    model.init_from_data(train.user_idx, train.item_idx, train.rating)
    two = distributed.World(rank=0, size=2)
    with pytest.raises(ConfigError, match="runs in one process"):
        Trainer(model, train, TrainConfig(**LBFGS, epochs=2), QUIET, torch.device("cpu"), two)


@pytest.mark.parametrize("name", ["sparse-fc", "glocal-k"])
def test_a_resumed_lbfgs_run_ends_on_the_uninterrupted_weights(name, tmp_path):
    encoder, train, held = fit_and_held_out(40, 30, 700, seed=3)
    config = TrainConfig(**LBFGS, epochs=4)
    checkpoint, saved = tmp_path / "checkpoint.safetensors", tmp_path / "after-epoch-2"

    def keep_epoch_2(record):
        if record.epoch == 3:  # the file still holds the end of epoch 2
            shutil.copy(checkpoint, saved)

    whole = _model(name, encoder)
    fit(whole, train, held, config, QUIET, on_epoch=keep_epoch_2, checkpoint=checkpoint)
    resumed = _model(name, encoder)
    state = load_checkpoint(saved)
    assert state.epoch == 3
    result = fit(resumed, train, held, config, QUIET, resume=state)
    assert [row.epoch for row in result.history] == [1, 2, 3, 4]
    for key, value in whole.state_dict().items():
        torch.testing.assert_close(resumed.state_dict()[key], value, rtol=0, atol=0, msg=key)
