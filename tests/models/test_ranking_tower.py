"""The ranking tower: a dot-product ranking head with factors of its own beside a rating model.

Its options are validated; its scores for the whole catalogue match its pairwise logits; joint
training keeps the rating half at its best validation-RMSE epoch and the tower at its best
NDCG epoch (checked against per-epoch snapshots of a real ml-100k sample); the split early
stopping survives a checkpoint and resume exactly.
"""

import copy
import dataclasses

import pytest
import torch

from movierec.config import ModelSpec, RunOptions, TrainConfig
from movierec.errors import ConfigError
from movierec.models import build_model, make_config
from movierec.models.ranking_tower import PREFIX, RankingTower
from movierec.train import fit
from movierec.train.checkpoint import load_checkpoint
from movierec.train.optim import build_optimizer
from tests.factories import ml100k_fit_and_held_out

TOWER_NET = {
    "n_factors": 16,
    "hidden": (32,),
    "dropouts": (0.1,),
    "ranking_head": True,
    "rank_factors": 8,
}


@pytest.mark.parametrize(
    ("values", "message"),
    [
        ({"rank_factors": 8}, "set ranking_head = true with it"),
        ({"ranking_head": True, "rank_factors": -1}, "rank_factors must be an integer >= 0"),
        ({"ranking_head": True, "rank_factors": 2.5}, "rank_factors must be an integer >= 0"),
        (
            {"ranking_head": True, "rank_factors": 4, "rank_reg": float("nan")},
            "rank_reg must be a finite number >= 0",
        ),
    ],
)
def test_tower_options_are_validated(values, message):
    with pytest.raises(ConfigError, match=message):
        make_config("embedding-net", values)


def test_catalogue_scores_match_pairwise_logits():
    torch.manual_seed(0)
    tower = RankingTower(5, 7, 3, reg=0.0, init_std=1.0)
    with torch.no_grad():
        tower.item_offset.weight.normal_()
    users = torch.tensor([0, 3, 4])
    scores = tower.rank_items(users)
    pairs_user = users.repeat_interleave(7)
    pairs_item = torch.arange(7).repeat(3)
    torch.testing.assert_close(scores.reshape(-1), tower.logits(pairs_user, pairs_item))


def test_the_net_ranks_by_its_tower_and_predicts_by_its_mlp():
    torch.manual_seed(0)
    config = make_config("embedding-net", TOWER_NET)
    model = build_model("embedding-net", 6, 9, (1.0, 5.0), config).eval()
    users = torch.tensor([1, 2])
    torch.testing.assert_close(model.rank_items(users), model.rank_tower.rank_items(users))
    assert model.ranking_only_prefix() == PREFIX
    with torch.no_grad():
        model.rank_tower.item_factors.weight.mul_(10.0)  # the tower moves, the ratings do not
    before = model.score_items(users)
    torch.testing.assert_close(model.score_items(users), before)


@pytest.fixture(scope="module")
def sample():
    """ml-100k's first 200 users, 85/15 into fit and validation parts."""
    return ml100k_fit_and_held_out(200)


TRAIN = TrainConfig(
    objective="joint", lr=1e-2, batch_size=512, negatives=2, epochs=8, patience=2,
    weight_decay=0.0,
)  # fmt: skip


def _run(sample, tmp_path=None, stop_after=None, resume=None):
    encoder, train, held = sample
    torch.manual_seed(0)
    config = make_config("embedding-net", TOWER_NET)
    model = build_model("embedding-net", encoder.n_users, encoder.n_items, (1.0, 5.0), config)
    snapshots: dict[int, dict[str, torch.Tensor]] = {}

    def on_epoch(record):
        snapshots[record.epoch] = copy.deepcopy(model.state_dict())
        if record.epoch == stop_after:
            raise KeyboardInterrupt  # stands in for a crash after the epoch's checkpoint

    checkpoint = None if tmp_path is None else tmp_path / "checkpoint.safetensors"
    options = RunOptions(progress=False, threads=1)
    try:
        result = fit(
            model, train, held, TRAIN, options, on_epoch, checkpoint=checkpoint, resume=resume,
            context={"train": dataclasses.asdict(TRAIN)},
        )  # fmt: skip
    except KeyboardInterrupt:
        return None, None, snapshots
    return model, result, snapshots


def test_each_half_ends_at_its_own_best_epoch(sample):
    model, result, snapshots = _run(sample)
    history = result.history
    best_rmse = min(history, key=lambda r: r.valid_rmse).epoch
    best_ndcg = max(history, key=lambda r: r.valid_ndcg).epoch
    assert (result.rating_best_epoch, result.best_epoch) == (best_rmse, best_ndcg)
    assert best_rmse != best_ndcg, "the sample should make the halves peak apart"
    for name, tensor in model.state_dict().items():
        source = best_ndcg if name.startswith(PREFIX) else best_rmse
        torch.testing.assert_close(tensor, snapshots[source][name], msg=name)


def test_split_early_stopping_resumes_exactly(sample, tmp_path):
    straight_model, straight, _ = _run(sample)
    _run(sample, tmp_path, stop_after=3)
    state = load_checkpoint(tmp_path / "checkpoint.safetensors")
    assert state.rating_best_model is not None and state.rating_best_epoch is not None
    model, resumed, _ = _run(sample, tmp_path, resume=state)
    assert [r.epoch for r in resumed.history] == [r.epoch for r in straight.history]
    assert (resumed.best_epoch, resumed.rating_best_epoch) == (
        straight.best_epoch,
        straight.rating_best_epoch,
    )
    for name, tensor in straight_model.state_dict().items():
        torch.testing.assert_close(model.state_dict()[name], tensor, msg=name)


def test_tower_options_round_trip_through_toml(tmp_path):
    (tmp_path / "tower.toml").write_text(
        '[model]\nname = "embedding-net"\nranking_head = true\nrank_factors = 32\n'
        'rank_reg = 0.02\n[train]\nobjective = "joint"\nranking_lr = 0.005\n'
    )
    spec = ModelSpec.resolve(config_path=tmp_path / "tower.toml")
    assert (spec.config.rank_factors, spec.config.rank_reg) == (32, 0.02)
    assert spec.train.ranking_lr == 0.005
    assert ModelSpec.from_dict(spec.to_dict()) == spec  # what checkpoints and run.json keep


def test_the_tower_gets_its_own_learning_rate_and_no_weight_decay():
    config = make_config("embedding-net", TOWER_NET)
    model = build_model("embedding-net", 6, 9, (1.0, 5.0), config)
    optimiser = build_optimizer(model, "dense", 1e-3, 1e-4, ranking_lr=5e-3)
    groups = {(g["lr"], g["weight_decay"]): len(g["params"]) for g in optimiser.param_groups}
    assert groups == {(1e-3, 1e-4): len(list(model.parameters())) - 3, (5e-3, 0.0): 3}
