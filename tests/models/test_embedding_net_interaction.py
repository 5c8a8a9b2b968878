"""EmbeddingNet's ``interaction``: the article's concatenation, or NeuMF's added product branch.

Both score a user block against the catalogue exactly as ``forward`` scores each pair, and a
visitor's fold-in reads the same network.
"""

import pytest
import torch

from movierec.errors import ConfigError
from movierec.models import build_model, make_config
from movierec.models.base import FoldInOptions
from movierec.models.bias import fit_biases

SCALE = (1.0, 5.0)
N_USERS, N_ITEMS = 7, 11


def net(interaction, **options):
    torch.manual_seed(0)
    config = make_config(
        "embedding-net",
        {"n_factors": 6, "hidden": [8, 5], "interaction": interaction, **options},
    )
    return build_model("embedding-net", N_USERS, N_ITEMS, SCALE, config).eval()


def test_unknown_interaction_is_a_one_line_config_error():
    with pytest.raises(ConfigError, match=r"interaction must be one of concat, concat\+product"):
        make_config("embedding-net", {"interaction": "dot"})


def test_the_product_branch_widens_only_the_final_unit():
    plain, product = net("concat"), net("concat+product")
    assert plain.output.in_features == 5 and product.output.in_features == 5 + 6
    plain_count = sum(p.numel() for p in plain.parameters())
    assert sum(p.numel() for p in product.parameters()) == plain_count + 6
    users, items = torch.tensor([0, 3, 6]), torch.tensor([1, 2, 10])
    assert product(users, items).shape == (3,) and product.logits(users, items).shape == (3,)


@pytest.mark.parametrize("interaction", ["concat", "concat+product"])
@pytest.mark.parametrize("biases", [False, True])
def test_score_items_equals_forward_on_every_pair(interaction, biases):
    model = net(interaction, biases=biases)
    if biases:
        with torch.no_grad():
            model.user_bias.weight.normal_()
            model.item_bias.weight.normal_()
    users = torch.arange(N_USERS).repeat_interleave(N_ITEMS)
    items = torch.arange(N_ITEMS).repeat(N_USERS)
    with torch.no_grad():
        pairs = model(users, items).view(N_USERS, N_ITEMS)
        block = model.score_items(torch.arange(N_USERS), model.item_side())
    torch.testing.assert_close(block, pairs)


def test_product_branch_changes_the_scores():
    model = net("concat+product")
    with torch.no_grad():
        before = model.score_items(torch.arange(N_USERS))
        model.output.weight[0, -6:] += 1.0
        after = model.score_items(torch.arange(N_USERS))
    assert not torch.allclose(before, after)


@pytest.mark.parametrize("interaction", ["concat", "concat+product"])
def test_fold_in_scores_a_visitor_with_the_same_network(interaction):
    model = net(interaction)
    items, values = torch.tensor([0, 4, 5]), torch.tensor([5.0, 1.0, 4.0])
    fallback = fit_biases(torch.zeros(3, dtype=torch.long), items, values, N_USERS, N_ITEMS)
    # No steps: the visitor is the mean user embedding, which a stored row can hold too.
    still = model.fold_in(items, values, fallback, FoldInOptions(steps=0))
    with torch.no_grad():
        model.user_embedding.weight[0] = model.user_embedding.weight.mean(dim=0)
        expected = model.score_items(torch.tensor([0]))[0]
    torch.testing.assert_close(still, expected)
    moved = model.fold_in(items, values, fallback, FoldInOptions(steps=40, lr=0.1))
    assert moved.shape == (N_ITEMS,) and torch.isfinite(moved).all()
    assert torch.mean((moved[items] - values) ** 2) < torch.mean((still[items] - values) ** 2)
