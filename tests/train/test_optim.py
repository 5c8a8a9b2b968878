"""The row-wise embedding optimiser: lazy rows, Adam's arithmetic, weight decay, the switch."""

import copy

import pytest
import torch
from torch import nn

from movierec.config import TrainConfig
from movierec.errors import ConfigError
from movierec.train.optim import RowWiseAdam, build_optimizer, sparse_embeddings


class Tiny(nn.Module):
    def __init__(self, rows: int = 50, dim: int = 4):
        super().__init__()
        torch.manual_seed(0)
        self.table = nn.Embedding(rows, dim)
        self.linear = nn.Linear(dim, 1)

    def forward(self, idx):
        return self.linear(self.table(idx)).squeeze(1)


def loss_of(model, idx):
    target = torch.linspace(-1, 1, idx.numel())
    return ((model(idx) - target) ** 2).mean()


def one_step(model, optimizer, idx):
    optimizer.zero_grad(set_to_none=True)
    loss_of(model, idx).backward()
    optimizer.step()


def test_untouched_rows_and_their_state_stay_exactly_as_they_were():
    model = Tiny()
    optimizer = build_optimizer(model, "row-wise", lr=0.05, weight_decay=0.01)
    with sparse_embeddings(model):
        one_step(model, optimizer, torch.tensor([1, 2, 3, 2]))
        state = optimizer.state[model.table.weight]
        before = model.table.weight.detach().clone()
        moments = {k: v.clone() for k, v in state.items()}
        one_step(model, optimizer, torch.tensor([7, 8, 8]))
    after = model.table.weight.detach()
    untouched = torch.tensor([i for i in range(50) if i not in (7, 8)])
    assert torch.equal(after[untouched], before[untouched])
    for name, value in state.items():
        assert torch.equal(value[untouched], moments[name][untouched]), name
    touched = torch.tensor([7, 8])
    assert not torch.equal(after[touched], before[touched])
    assert state["row_step"][1].item() == 1 and state["row_step"][7].item() == 1
    assert state["row_step"][2].item() == 1 and state["row_step"][0].item() == 0


@pytest.mark.parametrize("weight_decay", [0.0, 0.1])
def test_touched_rows_follow_dense_adam_restricted_to_them(weight_decay):
    # The same rows every step: the row-wise trajectory must be dense Adam's on those rows.
    rows = torch.tensor([4, 9, 9, 20])
    lazy, dense = Tiny(), Tiny()
    row_opt = build_optimizer(lazy, "row-wise", lr=0.03, weight_decay=weight_decay)
    adam = torch.optim.Adam(dense.parameters(), lr=0.03, weight_decay=weight_decay)
    with sparse_embeddings(lazy):
        for _ in range(5):
            one_step(lazy, row_opt, rows)
            one_step(dense, adam, rows)
    used = rows.unique()
    torch.testing.assert_close(lazy.table.weight[used], dense.table.weight[used])
    torch.testing.assert_close(lazy.linear.weight, dense.linear.weight)
    torch.testing.assert_close(lazy.linear.bias, dense.linear.bias)
    if weight_decay:
        # Dense Adam also decays the rows no batch touched; lazy Adam leaves them alone.
        never = torch.tensor([0, 5, 30])
        assert torch.equal(lazy.table.weight[never], Tiny().table.weight[never])
        assert not torch.equal(dense.table.weight[never], Tiny().table.weight[never])


def test_a_row_first_touched_late_gets_a_fresh_bias_corrected_step():
    # Adam's first step moves each coordinate by about lr, whenever the row is first seen.
    model = Tiny()
    optimizer = build_optimizer(model, "row-wise", lr=0.01, weight_decay=0.0)
    with sparse_embeddings(model):
        for _ in range(20):
            one_step(model, optimizer, torch.tensor([0, 1]))
        before = model.table.weight[10].detach().clone()
        one_step(model, optimizer, torch.tensor([10]))
    moved = (model.table.weight[10] - before).abs()
    torch.testing.assert_close(moved, torch.full_like(moved, 0.01), rtol=1e-3, atol=1e-6)


def test_weight_decay_shrinks_touched_rows():
    # A zero data gradient isolates the decay term: touched rows shrink towards zero.
    table = nn.Embedding(10, 3, sparse=True)
    nn.init.uniform_(table.weight, 0.5, 1.0)
    optimizer = RowWiseAdam([{"params": [table.weight], "row_wise": True}], lr=0.01,
                            weight_decay=0.5)  # fmt: skip
    before = table.weight.detach().clone()
    for _ in range(10):
        optimizer.zero_grad()
        (table(torch.tensor([2, 3])) * 0.0).sum().backward()
        optimizer.step()
    after = table.weight.detach()
    assert (after[[2, 3]].abs() < before[[2, 3]].abs()).all()
    assert torch.equal(after[[0, 1, 4]], before[[0, 1, 4]])


def test_sparse_embeddings_flips_the_flag_for_the_block_only():
    model = Tiny()
    assert model.table.sparse is False
    with sparse_embeddings(model):
        assert model.table.sparse is True
        loss_of(model, torch.tensor([1, 2])).backward()
        assert model.table.weight.grad.is_sparse
    assert model.table.sparse is False
    with sparse_embeddings(model, enabled=False):
        assert model.table.sparse is False


def test_a_dense_gradient_on_a_table_counts_as_every_row():
    model = Tiny(rows=6)
    optimizer = build_optimizer(model, "row-wise", lr=0.01, weight_decay=0.0)
    one_step(model, optimizer, torch.tensor([1, 2]))  # tables not sparse: a dense gradient
    assert optimizer.state[model.table.weight]["row_step"].tolist() == [1.0] * 6


def test_state_dict_round_trip_continues_identically():
    first, second = Tiny(), Tiny()
    opt1 = build_optimizer(first, "row-wise", lr=0.02, weight_decay=0.01)
    with sparse_embeddings(first):
        one_step(first, opt1, torch.tensor([1, 5]))
    second.load_state_dict(first.state_dict())
    opt2 = build_optimizer(second, "row-wise", lr=0.02, weight_decay=0.01)
    opt2.load_state_dict(copy.deepcopy(opt1.state_dict()))  # as from a checkpoint file
    with sparse_embeddings(first), sparse_embeddings(second):
        one_step(first, opt1, torch.tensor([5, 6]))
        one_step(second, opt2, torch.tensor([5, 6]))
    for a, b in zip(first.parameters(), second.parameters(), strict=True):
        assert torch.equal(a, b)


def test_unknown_embedding_optimizer_is_a_config_error():
    with pytest.raises(ConfigError, match="embedding_optimizer must be one of"):
        TrainConfig(embedding_optimizer="sparse")
    with pytest.raises(ConfigError, match="embedding_optimizer"):
        build_optimizer(Tiny(), "lazy", lr=0.1, weight_decay=0.0)
    assert TrainConfig.from_mapping({"embedding_optimizer": "row-wise"}).embedding_optimizer == (
        "row-wise"
    )
