"""Every registered model honours the shared interface; EmbeddingNet matches the article."""

import pytest
import torch

from movierec.errors import ConfigError
from movierec.models import MODELS, EmbeddingNet, EmbeddingNetConfig, build_model, make_config

N_USERS, N_ITEMS = 7, 11
SCALE = (1.0, 5.0)


@pytest.fixture(params=sorted(MODELS))
def model(request):
    torch.manual_seed(0)
    built = build_model(request.param, N_USERS, N_ITEMS, SCALE)
    users = torch.randint(0, N_USERS, (60,))
    items = torch.randint(0, N_ITEMS, (60,))
    built.init_from_data(users, items, torch.randint(1, 6, (60,)).float())
    return built.eval()


def test_forward_gives_one_float_per_pair(model):
    out = model(torch.tensor([0, 1, 6]), torch.tensor([0, 10, 5]))
    assert out.shape == (3,)
    assert out.dtype == torch.float32


def test_score_items_matches_forward_on_every_pair(model):
    users = torch.tensor([0, 3, 6])
    scores = model.score_items(users)
    assert scores.shape == (3, N_ITEMS)
    pairs_u = users.repeat_interleave(N_ITEMS)
    pairs_i = torch.arange(N_ITEMS).repeat(3)
    expected = model(pairs_u, pairs_i).view(3, N_ITEMS)
    torch.testing.assert_close(scores, expected, rtol=1e-5, atol=1e-5)


def test_embedding_net_defaults_are_the_articles_example():
    config = EmbeddingNetConfig()
    assert (config.n_factors, config.hidden, config.dropouts) == (150, (100, 200, 300), (0.25, 0.5))
    net = EmbeddingNet(N_USERS, N_ITEMS, SCALE)
    linears = [m for m in net.hidden if isinstance(m, torch.nn.Linear)]
    assert [(m.in_features, m.out_features) for m in linears] == [
        (300, 100),
        (100, 200),
        (200, 300),
    ]
    dropouts = [m.p for m in net.hidden if isinstance(m, torch.nn.Dropout)]
    assert dropouts == [0.25, 0.5]
    assert net.output.in_features == 300 and net.output.out_features == 1


def test_embedding_net_output_stays_in_the_stretched_rating_range():
    net = EmbeddingNet(N_USERS, N_ITEMS, SCALE).eval()
    with torch.no_grad():
        for layer in [*net.hidden, net.output]:
            if isinstance(layer, torch.nn.Linear):
                layer.weight.mul_(50)  # push the sigmoid into saturation both ways
        out = net.score_items(torch.arange(N_USERS))
    assert out.min() >= SCALE[0] - 0.5
    assert out.max() <= SCALE[1] + 0.5


def test_embedding_net_scales_to_half_star_range():
    net = EmbeddingNet(3, 3, (0.5, 5.0)).eval()
    assert float(net.offset) == 0.0
    assert float(net.span) == pytest.approx(5.5)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"hidden": []}, "at least one hidden layer"),
        ({"dropouts": [0.1, 0.1, 0.1, 0.1]}, "dropout rates"),
        ({"embedding_dropout": 1.5}, r"\[0, 1\)"),
        ({"depth": 3}, "unknown option"),
    ],
)
def test_bad_embedding_net_options_are_config_errors(options, message):
    with pytest.raises(ConfigError, match=message):
        make_config("embedding-net", options)


def test_unknown_model_lists_the_known_ones():
    with pytest.raises(ConfigError, match="embedding-net, mf, bias, mean"):
        build_model("svd", 2, 2, SCALE)


def test_models_without_embeddings_say_so():
    assert build_model("bias", 2, 2, SCALE).item_vectors() is None
    assert build_model("mf", 2, 3, SCALE).item_vectors().shape == (3, 64)
