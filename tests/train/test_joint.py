"""The joint objective: MSE on ratings plus a weighted ranking loss over sampled negatives.

By hand, through config validation, on a real ml-100k sample (both halves fall, ratings stay on
the scale, the lists beat random), and through TOML, checkpoint and resume.
"""

import dataclasses
import math

import pandas as pd
import pytest
import torch

from movierec.config import ModelSpec, RunOptions, TrainConfig
from movierec.data.tensors import RatingTensors, SeenItems
from movierec.errors import ConfigError
from movierec.models import build_model, make_config, model_class
from movierec.models.bias import fit_biases
from movierec.pipeline import effective_objective
from movierec.recommend import Recommender
from movierec.train import fit, validation_ndcg
from movierec.train.checkpoint import load_checkpoint
from movierec.train.negatives import NegativeSampler
from movierec.train.objectives import bce_loss, joint_loss, predicts_ratings, rating_loss
from tests.factories import ml100k_fit_and_held_out

SMALL_NET = {"n_factors": 16, "hidden": (32, 16), "dropouts": (0.1,)}


def test_joint_loss_is_mse_plus_weighted_ranking():
    predicted, rating = torch.tensor([3.0, 4.0]), torch.tensor([4.0, 4.0])
    positive, negative = torch.tensor([0.0, 1.0]), torch.tensor([[0.0], [-1.0]])
    total, mse, rank = joint_loss(predicted, rating, positive, negative, 0.5, "bce")
    assert float(mse) == pytest.approx(0.5)
    assert float(rank) == pytest.approx(float(bce_loss(positive, negative)))
    assert float(total) == pytest.approx(0.5 + 0.5 * float(rank))


def test_only_rating_and_joint_predict_ratings():
    assert [predicts_ratings(o) for o in ("rating", "joint", "bpr", "bce")] == [
        True, True, False, False,
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"ranking_weight": -1.0}, "ranking_weight must be a number >= 0"),
        ({"ranking_weight": math.nan}, "ranking_weight must be a number >= 0"),
        ({"joint_ranking_loss": "hinge"}, "joint_ranking_loss must be one of bpr, bce"),
        ({"objective": "pairs"}, "objective must be one of rating, bpr, bce, softmax, joint"),
        ({"ranking_lr": 0.0}, "ranking_lr must be a number > 0"),
        ({"ranking_lr": math.inf}, "ranking_lr must be a number > 0"),
    ],
)
def test_joint_options_are_validated(options, message):
    with pytest.raises(ConfigError, match=message):
        TrainConfig(**options)


def test_closed_form_rating_model_refuses_joint():
    spec = ModelSpec("bias", make_config("bias", {}), TrainConfig(objective="joint"))
    model = build_model("bias", 3, 3, (1.0, 5.0), spec.config)
    with pytest.raises(ConfigError, match="--objective joint needs a trained model"):
        effective_objective(spec, model)


@pytest.mark.parametrize("name", ["embedding-net", "mf"])
def test_joint_has_default_overrides(name):
    assert model_class(name).default_train_overrides("joint")["negatives"] >= 1


@pytest.fixture(scope="module")
def sample():
    """A real sample: ml-100k's 300 first users, 85/15 into fit and held-out parts."""
    return ml100k_fit_and_held_out(300)


def _halves(model, data: RatingTensors) -> tuple[float, float]:
    """``(MSE, BCE)`` of ``model`` on ``data`` in eval mode, against fixed negatives."""
    sampler = NegativeSampler(
        data.user_idx, data.item_idx, model.n_items,
        generator=torch.Generator().manual_seed(0),
    )  # fmt: skip
    negatives = sampler.sample(data.user_idx, 2)
    model.eval()
    with torch.no_grad():
        mse = rating_loss(model(data.user_idx, data.item_idx), data.rating)
        positive = model.logits(data.user_idx, data.item_idx)
        users = data.user_idx.repeat_interleave(2)
        negative = model.logits(users, negatives.reshape(-1)).view(-1, 2)
        return float(mse), float(bce_loss(positive, negative))


def _trained(sample, epochs: int, objective: str = "joint"):
    encoder, train, _ = sample
    config = make_config("embedding-net", SMALL_NET)
    torch.manual_seed(0)
    model = build_model("embedding-net", encoder.n_users, encoder.n_items, (1.0, 5.0), config)
    settings = {"lr": 3e-3, "batch_size": 512, "negatives": 2, "patience": 0, "weight_decay": 0}
    train_config = TrainConfig(epochs=epochs, objective=objective, **settings)
    fit(model, train, None, train_config, RunOptions(progress=False, threads=1))
    return model


def test_joint_training_lowers_both_halves_on_real_ratings(sample):
    _, train, _ = sample
    before = _halves(_trained(sample, 0), train)
    after = _halves(_trained(sample, 4), train)
    assert after[0] < 0.8 * before[0], (before, after)
    assert after[1] < 0.9 * before[1], (before, after)


def test_a_joint_run_predicts_ratings_and_ranks(sample):
    encoder, train, held = sample
    model = _trained(sample, 4)
    fallback = fit_biases(
        train.user_idx, train.item_idx, train.rating, model.n_users, model.n_items
    )
    seen = SeenItems.from_tensors(train, model.n_users, model.n_items)
    recommender = Recommender(model, encoder, fallback, seen, objective="joint")
    assert recommender.predicts_ratings
    users = encoder.decode_users(held.user_idx[:500].numpy())
    items = encoder.decode_items(held.item_idx[:500].numpy())
    predicted = torch.as_tensor(recommender.predict(users, items), dtype=torch.float32)
    assert ((predicted >= 1.0) & (predicted <= 5.0)).all()
    rmse = float(torch.sqrt(torch.mean((predicted - held.rating[:500]) ** 2)))
    assert rmse < 1.15
    random = _trained(sample, 0)
    assert validation_ndcg(model, train, held) > 2 * validation_ndcg(random, train, held)
    top = recommender.top_n(users[0], 5)
    assert all(1.0 <= row.score <= 5.0 for row in top)


def test_joint_round_trips_through_toml_checkpoint_and_resume(sample, tmp_path):
    (tmp_path / "joint.toml").write_text(
        '[model]\nname = "embedding-net"\nn_factors = 16\nhidden = [32, 16]\n'
        '[train]\nobjective = "joint"\nranking_weight = 0.25\njoint_ranking_loss = "bpr"\n'
        "epochs = 3\nbatch_size = 512\npatience = 0\n"
    )
    spec = ModelSpec.resolve(config_path=tmp_path / "joint.toml")
    assert (spec.train.objective, spec.train.ranking_weight) == ("joint", 0.25)
    assert spec.train.joint_ranking_loss == "bpr"
    encoder, train, held = sample
    options = RunOptions(progress=False, threads=1)
    context = {"train": dataclasses.asdict(spec.train)}

    def run(stop_after=None, resume=None, checkpoint=None):
        torch.manual_seed(0)  # the same initial weights for every run
        model = build_model(
            "embedding-net", encoder.n_users, encoder.n_items, (1.0, 5.0), spec.config
        )

        def on_epoch(record):
            if record.epoch == stop_after:
                raise KeyboardInterrupt  # stands in for a crash after the epoch's checkpoint

        try:
            result = fit(
                model, train, held, spec.train, options, on_epoch,
                checkpoint=checkpoint, resume=resume, context=context,
            )  # fmt: skip
        except KeyboardInterrupt:
            return None, None
        return model, result

    straight_model, straight = run()
    path = tmp_path / "checkpoint.pt"
    run(stop_after=2, checkpoint=path)
    state = load_checkpoint(path)
    assert TrainConfig.from_mapping(state.context["train"]) == spec.train
    model, resumed = run(resume=state, checkpoint=path)
    frame = pd.DataFrame([dataclasses.asdict(r) for r in resumed.history])
    expected = pd.DataFrame([dataclasses.asdict(r) for r in straight.history])
    assert frame["epoch"].tolist() == [1, 2, 3]
    pd.testing.assert_series_equal(frame["train_loss"], expected["train_loss"])
    assert frame["valid_rmse"].notna().all() and frame["valid_ndcg"].notna().all()
    for name, tensor in straight_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor)
