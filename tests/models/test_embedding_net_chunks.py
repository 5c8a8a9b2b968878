"""EmbeddingNet scores a block of users in cache-sized chunks of pairs: the chunks cover every
(user, item) pair once, and the chunked scores are the per-pair forward's, whatever the size."""

import pytest
import torch

from movierec.models import build_model, embedding_net, make_config

N_USERS, N_ITEMS, WIDEST = 7, 11, 8


def net(**options):
    torch.manual_seed(0)
    config = make_config("embedding-net", {"n_factors": 6, "hidden": [WIDEST, 5], **options})
    return build_model("embedding-net", N_USERS, N_ITEMS, (1.0, 5.0), config).eval()


# Pairs per chunk: 30 (two users a chunk, the last chunk one user), 3 (item ranges of one user,
# the last range short), and one chunk for everything.
SIZES = [30, 3, 10_000]


@pytest.fixture(params=SIZES, ids=[f"{n}-pairs" for n in SIZES])
def chunked(request, monkeypatch):
    monkeypatch.setattr(embedding_net, "CHUNK_BYTES", 4 * WIDEST * request.param)
    return request.param


def test_the_chunks_cover_every_pair_once(chunked):
    model = net()
    covered = torch.zeros(N_USERS, N_ITEMS, dtype=torch.int64)
    for rows, cols in model.pair_chunks(N_USERS):
        covered[rows, cols] += 1
    assert torch.equal(covered, torch.ones_like(covered))
    if chunked < N_ITEMS:  # a chunk never spans more pairs than asked for
        assert all(c.stop - c.start <= chunked for _, c in model.pair_chunks(N_USERS))


@pytest.mark.parametrize("options", [{}, {"interaction": "concat+product", "biases": True}])
def test_chunked_scores_equal_forward_on_every_pair(chunked, options):
    model = net(**options)
    users = torch.arange(N_USERS).repeat_interleave(N_ITEMS)
    items = torch.arange(N_ITEMS).repeat(N_USERS)
    with torch.no_grad():
        pairs = model(users, items).view(N_USERS, N_ITEMS)
        block = model.score_items(torch.arange(N_USERS))
    torch.testing.assert_close(block, pairs)


def test_chunked_ranking_head_equals_its_logit_on_every_pair(chunked):
    model = net(ranking_head=True)
    users = torch.arange(N_USERS).repeat_interleave(N_ITEMS)
    items = torch.arange(N_ITEMS).repeat(N_USERS)
    with torch.no_grad():
        pairs = model.logits(users, items).view(N_USERS, N_ITEMS)
        block = model.rank_items(torch.arange(N_USERS))
    torch.testing.assert_close(block, pairs)
