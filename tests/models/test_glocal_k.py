"""Sparse FC and GLocal-K: the local kernel cuts connections beyond distance 1, the forward
pass reads only the training ratings, GLocal-K switches from pre-training to fine-tuning where
its config says, both learn real ratings, and a saved run predicts as the trained model did."""

import json
import math

import numpy as np
import pandas as pd
import pytest
import torch
import torch.nn.functional as F

from movierec.artifacts import load_run, save_run
from movierec.cli import app
from movierec.config import RunOptions, TrainConfig
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ConfigError
from movierec.models import GLocalK, SparseFC, build_model, make_config
from movierec.models.sparse_fc import LocalKernelLayer, local_kernel
from movierec.train import fit
from tests.cli.invoke import fails_cleanly, runner
from tests.factories import build_recommender, fit_and_held_out, ml100k_fit_and_held_out

QUIET = RunOptions(seed=0, progress=False, device="cpu")
SCALE = (1.0, 5.0)
SMALL = {"hidden": [16, 16], "position_dim": 3}
FULL_BATCH = {"lr": 1e-2, "weight_decay": 0.0, "batch_size": 1_000_000, "patience": 0}


def test_kernel_is_one_minus_the_squared_distance_within_1_and_zero_beyond():
    u = torch.tensor([[0.0, 0.0], [3.0, 0.0]])
    v = torch.tensor([[0.0, 0.0], [0.5, 0.0], [1.0, 0.0], [0.0, 1.5]])
    expected = torch.tensor([[1.0, 0.75, 0.0, 0.0], [0.0, 0.0, 0.0, 0.0]])
    torch.testing.assert_close(local_kernel(u, v), expected)
    # Random positions: every entry is max(0, 1 - d^2), zero wherever d >= 1.
    u, v = torch.randn(20, 5), torch.randn(30, 5)
    distance = torch.cdist(u, v)
    kernel = local_kernel(u, v)
    torch.testing.assert_close(kernel, (1 - distance**2).clamp(min=0), atol=1e-5, rtol=0)
    assert bool((kernel[distance >= 1] == 0).all()) and bool((kernel[distance < 0.9] > 0).all())


def test_units_farther_apart_than_1_are_not_connected():
    layer = LocalKernelLayer(3, 2, position_dim=2, position_std=0.0)
    with torch.no_grad():
        layer.u.copy_(torch.tensor([[0.0, 0.0], [5.0, 0.0], [0.0, 0.2]]))
        layer.v.zero_()
    x = torch.tensor([[1.0, 100.0, 0.0]])  # input unit 1 is far from both outputs
    expected = x[:, [0, 2]] @ (layer.weight[[0, 2]] * torch.tensor([[1.0], [0.96]])) + layer.bias
    with torch.no_grad():
        torch.testing.assert_close(layer(x), expected)


def _by_hand(model, dense):
    """The autoencoder's output for dense item rows, from its weights, written out."""
    code = dense
    for layer in model.layers[:-1]:
        code = torch.sigmoid(code @ (layer.weight * layer.kernel()) + layer.bias)
    last = model.layers[-1]
    return code @ (last.weight * last.kernel()) + last.bias


@pytest.mark.parametrize("name", ["sparse-fc", "glocal-k"])
def test_the_forward_pass_reads_the_training_ratings_only(name):
    encoder, train, held = fit_and_held_out(40, 30, 700, seed=3)
    torch.manual_seed(0)
    model = build_model(name, encoder.n_users, encoder.n_items, SCALE, SMALL)
    model.init_from_data(train.user_idx, train.item_idx, train.rating)
    dense = torch.zeros(encoder.n_items, encoder.n_users)
    dense[train.item_idx, train.user_idx] = train.rating
    torch.testing.assert_close(model.training_columns(), dense)
    if name == "glocal-k":
        model.fine_tuning.fill_(1.0)  # predict through the global kernel
        pooled = _by_hand(model, dense).mean(1)
        weighted = torch.einsum("i,ikl->kl", pooled, model.global_weights) / encoder.n_items
        kernel = weighted * model.config.kernel_lr_scale
        dense = F.conv2d(dense[None, None], kernel[None, None], padding=1)[0, 0]
    expected = _by_hand(model, dense)[held.item_idx, held.user_idx]
    with torch.no_grad():
        predicted = model.eval()(held.user_idx, held.item_idx)
    torch.testing.assert_close(predicted, expected, rtol=1e-4, atol=1e-4)


def test_glocal_k_pre_trains_then_fine_tunes_with_the_global_kernel():
    encoder, train, held = fit_and_held_out(40, 30, 700, seed=3)
    torch.manual_seed(0)
    model = GLocalK(
        encoder.n_users,
        encoder.n_items,
        SCALE,
        make_config("glocal-k", {**SMALL, "pretrain_epochs": 2}),
    )
    stages, kernels = [], []

    def record(_record):
        stages.append(model.fine_tuned)
        kernels.append(model.global_weights.detach().clone())

    fit(model, train, held, TrainConfig(**FULL_BATCH, epochs=4), QUIET, on_epoch=record)
    assert stages == [False, False, True, True]
    # The global kernel's weights only move once fine-tuning reads them.
    assert torch.equal(kernels[0], kernels[1])
    assert not torch.equal(kernels[2], kernels[1])


def test_the_global_kernel_starts_near_the_identity():
    encoder, train, _ = fit_and_held_out(40, 30, 700, seed=3)
    model = GLocalK(encoder.n_users, encoder.n_items, SCALE, make_config("glocal-k", SMALL))
    model.init_from_data(train.user_idx, train.item_idx, train.rating)
    pooled = torch.full((encoder.n_items,), float(train.rating.mean()))
    identity = torch.zeros(3, 3)
    identity[1, 1] = 1.0
    torch.testing.assert_close(model.global_kernel(pooled).detach(), identity)


@pytest.mark.parametrize(
    ("name", "options", "epochs"),
    [("sparse-fc", {}, 8), ("glocal-k", {"pretrain_epochs": 6}, 12)],
)
def test_a_few_epochs_on_real_ratings_lower_the_validation_rmse(name, options, epochs):
    encoder, train, held = ml100k_fit_and_held_out(150)
    torch.manual_seed(0)
    model = build_model(
        name, encoder.n_users, encoder.n_items, SCALE, {"hidden": [64, 64], **options}
    )
    result = fit(model, train, held, TrainConfig(**FULL_BATCH, epochs=epochs), QUIET)
    rmse = [row.valid_rmse for row in result.history]
    assert rmse[-1] < rmse[0] - 0.05, rmse
    if name == "glocal-k":  # the switch to fine-tuning goes on improving, at once
        assert rmse[6] < rmse[5] and rmse[-1] < min(rmse[:6]) - 0.02, rmse


@pytest.mark.parametrize(
    ("name", "options"),
    [("sparse-fc", {}), ("glocal-k", {"pretrain_epochs": 1, "kernel_size": 5})],
)
def test_a_saved_run_keeps_the_config_and_predicts_like_the_trained_model(name, options, tmp_path):
    ratings = synthetic_ratings(60, 40, 1500, seed=5)
    recommender = build_recommender(name, ratings, **SMALL, **options)
    save_run(
        tmp_path / "run",
        recommender,
        model_config=recommender.model.config,
        train_config=TrainConfig(),
        info={"dataset": "synthetic", "split": "none", "seed": 0},
        metrics={"rmse": 1.0},
        history=pd.DataFrame({"epoch": [1], "train_loss": [1.0]}),
    )
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["model_config"]["hidden"] == [16, 16]
    loaded, _ = load_run(tmp_path / "run")
    assert loaded.model.config == recommender.model.config
    if name == "glocal-k":
        assert loaded.model.fine_tuned and recommender.model.fine_tuned
    users, items = ratings["user_id"].to_numpy(), ratings["item_id"].to_numpy()
    np.testing.assert_allclose(
        loaded.predict(users, items), recommender.predict(users, items), atol=1e-5
    )
    user, item = int(users[0]), int(items[0])
    result = runner.invoke(
        app,
        ["predict", str(tmp_path / "run"), "--user", str(user), "--item", str(item), "--json"],
    )
    assert result.exit_code == 0, result.output
    expected = float(recommender.predict(np.array([user]), np.array([item]))[0])
    assert math.isclose(json.loads(result.stdout)["rating"], expected, abs_tol=1e-4)


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("sparse-fc", {"hidden": []}, "at least one hidden layer"),
        ("sparse-fc", {"hidden": [500, 0]}, "at least one hidden layer"),
        ("sparse-fc", {"position_dim": 0}, "position_dim >= 1"),
        ("sparse-fc", {"reg": -1.0}, "reg must be a finite number >= 0"),
        ("sparse-fc", {"reg_kernel": float("nan")}, "reg_kernel must be a finite number"),
        ("glocal-k", {"pretrain_epochs": -1}, "pretrain_epochs must be >= 0"),
        ("glocal-k", {"kernel_size": 4}, "kernel_size must be an odd number"),
        ("glocal-k", {"dot_scale": 0.0}, "dot_scale must be a finite number > 0"),
        ("glocal-k", {"reg": float("inf")}, "glocal-k reg must be"),
        ("glocal-k", {"kernel_lr_scale": -0.1}, "kernel_lr_scale must be a finite number > 0"),
        ("sparse-fc", {"pretrain_epochs": 3}, "unknown option"),
    ],
)
def test_bad_options_are_config_errors(name, options, message):
    with pytest.raises(ConfigError, match=message):
        make_config(name, options)


@pytest.mark.parametrize("name", ["sparse-fc", "glocal-k"])
def test_ranking_objectives_are_refused_in_one_line(name):
    with pytest.raises(ConfigError, match="--objective rating"):
        build_model(name, 3, 3, SCALE).default_train_overrides("bpr")


def test_a_bad_config_file_value_is_one_line_and_exit_2(tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text('[model]\nname = "glocal-k"\nkernel_size = 2\n')
    args = ["train", "--data", "ml-100k", "--split", "u1", "--config", str(config), "-q"]
    fails_cleanly(args, "kernel_size must be an odd number")


def test_sparse_fc_is_glocal_k_without_the_global_kernel():
    torch.manual_seed(0)
    local = SparseFC(5, 4, SCALE, make_config("sparse-fc", SMALL))
    both = GLocalK(5, 4, SCALE, make_config("glocal-k", SMALL))
    both.load_state_dict({**both.state_dict(), **local.state_dict()})
    users, items, ratings = torch.tensor([0, 1, 4]), torch.tensor([3, 0, 3]), torch.ones(3)
    local.init_from_data(users, items, ratings)
    both.init_from_data(users, items, ratings)
    with torch.no_grad():  # before fine-tuning GLocal-K is its local kernel alone
        torch.testing.assert_close(both.eval()(users, items), local.eval()(users, items))
