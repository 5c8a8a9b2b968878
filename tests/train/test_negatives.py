"""The negative sampler: never an item the user rated in training, seeded, vectorised."""

import pytest
import torch

from movierec.errors import ConfigError, DataError
from movierec.train.negatives import NegativeSampler


def training_pairs(n_users=30, n_items=25, seed=0):
    generator = torch.Generator().manual_seed(seed)
    # Dense users (rating ~80% of the catalogue) make collisions frequent.
    rated = torch.rand(n_users, n_items, generator=generator) < 0.8
    rated[:, 0] = False  # every user has at least one unrated item
    users, items = torch.nonzero(rated, as_tuple=True)
    return users, items, rated


@pytest.mark.parametrize("sampling", ["uniform", "popularity"])
def test_never_returns_an_item_the_user_rated(sampling):
    users, items, rated = training_pairs()
    sampler = NegativeSampler(
        users, items, 25, sampling=sampling, generator=torch.Generator().manual_seed(1)
    )
    for _ in range(50):
        batch = torch.randint(30, (400,))
        negatives = sampler.sample(batch, 3)
        assert negatives.shape == (400, 3)
        assert not rated[batch[:, None].expand_as(negatives), negatives].any()


def test_draws_are_reproducible_under_a_seed():
    users, items, _ = training_pairs()
    batch = torch.arange(30)
    draws = [
        NegativeSampler(users, items, 25, generator=torch.Generator().manual_seed(5)).sample(
            batch, 4
        )
        for _ in range(2)
    ]
    assert torch.equal(draws[0], draws[1])


def test_popularity_sampling_prefers_popular_items():
    items = torch.zeros(200, dtype=torch.int64)  # item 0: rated by 190 users
    items[:10] = 1  # item 1: by 10 users; items 2..49 by nobody (weight 1 each)
    sampler = NegativeSampler(
        torch.arange(200), items, 50, sampling="popularity", generator=torch.Generator()
    )
    drawn = sampler.sample(torch.full((5000,), 199), 1).flatten()  # user 199 rated item 0
    assert not (drawn == 0).any()
    assert (drawn == 1).float().mean() > 0.1  # 10 / (10 + 48); uniform would give 1 / 49


def test_a_user_who_rated_everything_is_a_data_error():
    users = torch.zeros(4, dtype=torch.int64)
    items = torch.arange(4)
    sampler = NegativeSampler(users, items, 4)
    with pytest.raises(DataError, match="rated every item"):
        sampler.sample(torch.tensor([0]), 1)


def test_unknown_sampling_is_a_config_error():
    with pytest.raises(ConfigError, match="negative_sampling"):
        NegativeSampler(torch.tensor([0]), torch.tensor([0]), 3, sampling="hard")
