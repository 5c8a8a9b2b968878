"""SVD++, I-AutoRec and the EmbeddingNet's generalisation options: they learn held-out ratings,
read only the training ratings, and survive a save/load through the run directory."""

import math

import numpy as np
import pandas as pd
import pytest
import torch

from movierec.artifacts import load_run, save_run
from movierec.config import RunOptions, TrainConfig
from movierec.data.encoder import IdEncoder
from movierec.data.splits import carve_validation
from movierec.data.synthetic import synthetic_ratings
from movierec.data.tensors import RatingTensors
from movierec.errors import ConfigError
from movierec.models import (
    AutoRec,
    EmbeddingNet,
    EmbeddingNetEnsemble,
    SVDpp,
    build_model,
    make_config,
)
from movierec.models.interactions import csr, gather_rows
from movierec.train import fit, predict_tensors
from tests.factories import build_recommender

QUIET = RunOptions(seed=0, progress=False, device="cpu")
SCALE = (1.0, 5.0)

# Each model with options and training settings that learn the synthetic low-rank structure.
LEARNERS = {
    "svdpp": ({"n_factors": 16, "reg_factors": 0.02, "reg_implicit": 0.02}, {"lr": 0.01}),
    "autorec": ({"hidden": 64, "reg": 10.0, "exclude_target": True}, {"lr": 0.01}),
    "embedding-net": (
        {
            "n_factors": 16,
            "hidden": [32],
            "dropouts": [0.2],
            "biases": True,
            "reg_embeddings": 0.01,
        },
        {"lr": 0.003},
    ),
}


@pytest.fixture(scope="module")
def data():
    """Synthetic low-rank ratings, with 15% of them held out and never shown to the model."""
    ratings = synthetic_ratings(200, 120, 12_000, seed=1)
    fit_frame, held_frame = carve_validation(ratings, 0.15, seed=0)
    encoder = IdEncoder.fit(fit_frame)
    known = held_frame["user_id"].isin(encoder.user_ids) & held_frame["item_id"].isin(
        encoder.item_ids
    )
    return (
        encoder,
        RatingTensors.from_frame(fit_frame, encoder),
        RatingTensors.from_frame(held_frame[known], encoder),
    )


def trained(name, encoder, train, **train_options):
    options, defaults = LEARNERS[name]
    torch.manual_seed(0)
    model = build_model(name, encoder.n_users, encoder.n_items, SCALE, options)
    config = TrainConfig(
        **{**model.default_train_overrides(), "epochs": 12, "batch_size": 512, **defaults}
    )
    fit(model, train, None, config, QUIET)
    return model


def rmse(predicted, target):
    return math.sqrt(float(torch.mean((predicted - target) ** 2)))


@pytest.mark.parametrize("name", sorted(LEARNERS))
def test_model_beats_the_global_mean_on_held_out_ratings(name, data):
    encoder, train, held = data
    model = trained(name, encoder, train)
    mean_rmse = rmse(torch.full_like(held.rating, float(train.rating.mean())), held.rating)
    assert rmse(predict_tensors(model, held), held.rating) < 0.92 * mean_rmse


def test_svdpp_learns_the_interactions_the_biases_miss(data):
    encoder, train, held = data
    bias = build_model("bias", encoder.n_users, encoder.n_items, SCALE)
    fit(bias, train, None, TrainConfig(), QUIET)
    model = trained("svdpp", encoder, train)
    bias_rmse = rmse(predict_tensors(bias, held), held.rating)
    assert rmse(predict_tensors(model, held), held.rating) < bias_rmse - 0.02


def test_svdpp_history_holds_exactly_the_training_pairs(data):
    encoder, train, held = data
    model = build_model("svdpp", encoder.n_users, encoder.n_items, SCALE)
    model.init_from_data(train.user_idx, train.item_idx, train.rating)
    users = torch.repeat_interleave(torch.arange(encoder.n_users), model.user_ptr.diff())
    stored = set(zip(users.tolist(), model.user_items.tolist(), strict=True))
    assert stored == set(zip(train.user_idx.tolist(), train.item_idx.tolist(), strict=True))
    assert not stored & set(zip(held.user_idx.tolist(), held.item_idx.tolist(), strict=True))
    counts = torch.bincount(train.user_idx, minlength=encoder.n_users).float()
    torch.testing.assert_close(model.user_weights, counts.rsqrt()[users])


def test_svdpp_user_vector_adds_the_normalised_sum_of_rated_items_factors():
    model = SVDpp(2, 4, SCALE, make_config("svdpp", {"n_factors": 3}))
    model.init_from_data(torch.tensor([0, 0, 1]), torch.tensor([1, 3, 2]), torch.ones(3))
    y, p = model.implicit_factors.weight, model.user_factors.weight
    expected = torch.stack([p[0] + (y[1] + y[3]) / math.sqrt(2), p[1] + y[2]])
    torch.testing.assert_close(model.user_vectors(torch.tensor([0, 1])), expected)


def test_autorec_predicts_from_the_training_column_only(data):
    encoder, train, held = data
    model = trained("autorec", encoder, train).eval()
    # Rebuild each held-out item's code by hand from the training ratings alone.
    dense = torch.zeros(encoder.n_items, encoder.n_users)
    dense[train.item_idx, train.user_idx] = train.rating
    codes = torch.sigmoid(dense @ model.encoder.weight + model.encoder_bias)
    by_hand = (model.decoder.weight[held.user_idx] * codes[held.item_idx]).sum(1)
    by_hand = by_hand + model.decoder_bias.weight[held.user_idx, 0]
    with torch.no_grad():
        torch.testing.assert_close(model(held.user_idx, held.item_idx), by_hand)


def test_autorec_finds_the_stored_rating_of_training_pairs_only():
    model = AutoRec(3, 2, SCALE, make_config("autorec", {"hidden": 4}))
    model.init_from_data(
        torch.tensor([0, 2, 1]), torch.tensor([1, 1, 0]), torch.tensor([4.0, 2, 5])
    )
    stored = model._stored_rating(torch.tensor([0, 2, 1, 0, 1]), torch.tensor([1, 1, 0, 0, 1]))
    torch.testing.assert_close(stored, torch.tensor([4.0, 2.0, 5.0, 0.0, 0.0]))


def test_excluding_the_target_changes_training_outputs_only():
    model = AutoRec(3, 2, SCALE, make_config("autorec", {"hidden": 4, "exclude_target": True}))
    model.init_from_data(
        torch.tensor([0, 2, 1]), torch.tensor([1, 1, 0]), torch.tensor([4.0, 2, 5])
    )
    users, items = torch.tensor([0, 2]), torch.tensor([1, 1])
    with torch.no_grad():
        eval_out = model.eval()(users, items)
        train_out = model.train()(users, items)
    assert not torch.allclose(eval_out, train_out)
    plain = AutoRec(3, 2, SCALE, make_config("autorec", {"hidden": 4}))
    plain.load_state_dict(model.state_dict())
    with torch.no_grad():
        torch.testing.assert_close(plain.train()(users, items), eval_out)


def test_csr_groups_by_row_and_gathers_bags():
    ptr, cols, values = csr(
        torch.tensor([2, 0, 2, 1]), torch.tensor([5, 3, 1, 4]), torch.tensor([1.0, 2, 3, 4]), 4
    )
    assert ptr.tolist() == [0, 1, 2, 4, 4]
    assert cols.tolist() == [3, 4, 1, 5]
    assert values.tolist() == [2.0, 4.0, 3.0, 1.0]
    positions, offsets = gather_rows(ptr, torch.tensor([2, 3, 0, 2]))
    assert positions.tolist() == [2, 3, 0, 2, 3]
    assert offsets.tolist() == [0, 2, 2, 3]


def test_embedding_net_defaults_add_no_parameters_and_no_penalty():
    net = EmbeddingNet(5, 6, SCALE)
    assert not hasattr(net, "user_bias")
    assert net.penalty(torch.tensor([0]), torch.tensor([0])) is None
    names = {name for name, _ in net.named_parameters()}
    assert not any("bias.weight" in name and "_bias" in name for name in names)


def test_embedding_net_biases_start_at_the_closed_form_baseline():
    config = make_config(
        "embedding-net", {"biases": True, "n_factors": 4, "hidden": [8], "dropouts": []}
    )
    net = EmbeddingNet(3, 2, SCALE, config)
    users, items = torch.tensor([0, 0, 1, 2]), torch.tensor([0, 1, 0, 1])
    net.init_from_data(users, items, torch.tensor([5.0, 3.0, 4.0, 2.0]))
    with torch.no_grad():
        for layer in [*net.hidden, net.output]:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.zero_()  # the network's own part is now the constant centre
        out = net.eval()(users, items)
    expected = 3.5 + net.user_bias.weight[users, 0] + net.item_bias.weight[items, 0]
    torch.testing.assert_close(out, expected)


def test_embedding_net_penalty_grows_with_how_often_a_row_is_used():
    config = make_config(
        "embedding-net", {"reg_embeddings": 0.1, "n_factors": 4, "hidden": [8], "dropouts": []}
    )
    net = EmbeddingNet(3, 3, SCALE, config)
    batch_users, batch_items = torch.tensor([0, 0, 0, 1]), torch.tensor([2, 2, 2, 2])
    net.penalty(batch_users, batch_items).backward()
    grads = net.user_embedding.weight.grad.norm(dim=1)
    expected = (
        0.1 * 2 * net.user_embedding.weight.detach().norm(dim=1) * torch.tensor([3 / 4, 1 / 4, 0.0])
    )
    torch.testing.assert_close(grads, expected)


def test_ensemble_members_get_the_gradient_of_their_own_error():
    config = make_config(
        "embedding-net-ensemble",
        {"members": 3, "n_factors": 4, "hidden": [8], "dropouts": [], "embedding_dropout": 0.0},
    )
    torch.manual_seed(0)
    ensemble = EmbeddingNetEnsemble(5, 6, SCALE, config).train()
    users, items = torch.tensor([0, 1, 4, 2]), torch.tensor([5, 0, 3, 3])
    target = torch.tensor([5.0, 1.0, 4.0, 2.0])
    loss = torch.mean((ensemble(users, items) - target) ** 2) + ensemble.penalty(users, items)
    loss.backward()
    for net in ensemble.nets:
        own = net.output.weight.grad.clone()
        net.zero_grad()
        (torch.mean((net(users, items) - target) ** 2) / 3).backward()
        torch.testing.assert_close(own, net.output.weight.grad)


def test_ensemble_predicts_the_members_average_and_scores_alike():
    config = make_config(
        "embedding-net-ensemble", {"members": 2, "n_factors": 4, "hidden": [8], "dropouts": []}
    )
    ensemble = EmbeddingNetEnsemble(5, 6, SCALE, config).eval()
    users, items = torch.tensor([0, 4]), torch.tensor([5, 1])
    with torch.no_grad():
        average = (ensemble.nets[0](users, items) + ensemble.nets[1](users, items)) / 2
        torch.testing.assert_close(ensemble(users, items), average)
    assert not torch.equal(ensemble.nets[0].output.weight, ensemble.nets[1].output.weight)
    assert ensemble.penalty(users, items) is None  # no training forward: nothing to decouple


@pytest.mark.parametrize(
    ("name", "options", "message"),
    [
        ("svdpp", {"n_factors": 0}, "n_factors"),
        ("svdpp", {"reg_implicit": -1.0}, ">= 0"),
        ("autorec", {"activation": "softplus"}, "activation"),
        ("autorec", {"input_dropout": 1.0}, "input_dropout"),
        ("autorec", {"input_dropout": 0.1, "exclude_target": True}, "cannot be combined"),
        ("embedding-net", {"reg_embeddings": -0.1}, "reg_embeddings"),
        ("embedding-net-ensemble", {"members": 0}, "members"),
    ],
)
def test_bad_options_are_config_errors(name, options, message):
    with pytest.raises(ConfigError, match=message):
        make_config(name, options)


@pytest.mark.parametrize(
    ("name", "options"),
    [
        ("svdpp", {"n_factors": 8}),
        ("autorec", {"hidden": 16, "exclude_target": True}),
        ("autorec", {"hidden": 16, "residual": True}),
        ("embedding-net", {"biases": True, "reg_embeddings": 0.01, "hidden": [16], "dropouts": []}),
        ("embedding-net", {"interaction": "concat+product", "hidden": [16], "dropouts": []}),
        ("embedding-net-ensemble", {"members": 2, "biases": True, "hidden": [16], "dropouts": []}),
    ],
)
def test_a_saved_run_predicts_like_the_trained_model(name, options, tmp_path):
    ratings = synthetic_ratings(60, 40, 1500, seed=5)
    recommender = build_recommender(name, ratings, **options)
    save_run(
        tmp_path / "run",
        recommender,
        model_config=recommender.model.config,
        train_config=TrainConfig(),
        info={"dataset": "synthetic", "split": "none", "seed": 0},
        metrics={"rmse": 1.0},
        history=pd.DataFrame({"epoch": [1], "train_loss": [1.0]}),
    )
    loaded, _ = load_run(tmp_path / "run")
    assert loaded.model.config == recommender.model.config
    users, items = ratings["user_id"].to_numpy(), ratings["item_id"].to_numpy()
    np.testing.assert_allclose(
        loaded.predict(users, items), recommender.predict(users, items), atol=1e-6
    )
    user = int(users[0])
    assert [r.item for r in loaded.top_n(user)] == [r.item for r in recommender.top_n(user)]
