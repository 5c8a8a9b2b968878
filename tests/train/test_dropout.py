"""The fit-time dropout: a ReLU folded into the dropout mask after it (train/dropout.py)."""

import pytest
import torch
from torch import nn

from movierec.config import RunOptions
from movierec.train import cheap_dropout
from movierec.train.dropout import compiles_safely


def relu_dropout_net(*, foldable: bool = True, linears: list[nn.Linear] | None = None):
    """Linear, ReLU, Dropout, Linear, ReLU, Linear; with ``foldable`` False the first ReLU sits
    in a Sequential of its own, so it keeps its kernel and the dropout only draws the mask."""
    torch.manual_seed(0)
    first, second, third = linears or [nn.Linear(24, 64), nn.Linear(64, 32), nn.Linear(32, 1)]
    relu = nn.ReLU() if foldable else nn.Sequential(nn.ReLU())
    return nn.Sequential(first, relu, nn.Dropout(0.25), second, nn.ReLU(), third)


def step(net: nn.Module, x: torch.Tensor, dtype: torch.dtype | None):
    """The output and parameter gradients of one training step under the fit-time dropout."""
    net.zero_grad()
    with cheap_dropout(net), torch.autocast("cpu", torch.bfloat16, enabled=dtype is not None):
        torch.manual_seed(7)
        out = net(x)
        out.float().sum().backward()
    return out.detach(), [p.grad.clone() for p in net.parameters()]


@pytest.mark.parametrize("dtype", [None, torch.bfloat16], ids=["fp32", "bf16"])
def test_folding_the_relu_into_the_mask_changes_no_value_and_no_gradient(dtype):
    folded = relu_dropout_net()
    apart = relu_dropout_net(foldable=False, linears=[folded[0], folded[3], folded[5]])
    x = torch.randn(300, 24)
    assert (folded[0](x) < 0).float().mean() > 0.3  # the ReLU has work to do
    out, grads = step(folded, x, dtype)
    ref_out, ref_grads = step(apart, x, dtype)
    assert torch.equal(out, ref_out)
    assert all(torch.equal(a, b) for a, b in zip(grads, ref_grads, strict=True))


def test_the_folded_relu_still_rectifies_in_evaluation_and_is_restored_after():
    net = relu_dropout_net()
    x = torch.randn(50, 24)
    expected = net.eval()(x)
    with cheap_dropout(net):
        assert "forward" in vars(net[1])  # folded for the fit
        assert torch.equal(net(x), expected)  # eval: the dropout applies the ReLU itself
        net.train()
        kept = net[:3](x)
        assert (kept >= 0).all() and (kept == 0).float().mean() > 0.25  # ReLU zeros + dropped
    assert "forward" not in vars(net[1]) and "forward" not in vars(net[2])
    assert torch.equal(net.eval()(x), expected)


def test_a_relu_used_in_two_places_is_not_folded():
    shared = nn.ReLU()
    net = nn.Sequential(nn.Linear(8, 8), shared, nn.Dropout(0.5), nn.Linear(8, 8), shared)
    with cheap_dropout(net):
        assert "forward" not in vars(shared)
        assert net[2].forward.keywords["rectify"] is False
        net.train()
        assert (net(torch.randn(20, 8)) >= 0).all()


def test_the_exact_path_folds_nothing():
    net = relu_dropout_net()
    with cheap_dropout(net, enabled=False):
        assert "forward" not in vars(net[1]) and "forward" not in vars(net[2])


@pytest.mark.parametrize(
    ("capability", "compile_step", "device", "expected"),
    [
        ("AVX2", True, "cpu", False),  # measured: NaN in the first epoch on u1 (see docstring)
        ("DEFAULT", True, "cpu", False),
        ("AVX512", True, "cpu", True),
        ("AVX2", False, "cpu", True),  # eager AVX2 kernels train with the cheap masks
        ("AVX2", True, "cuda", True),
    ],
)
def test_a_compiled_step_on_avx2_kernels_keeps_pytorchs_dropout(
    monkeypatch, capability, compile_step, device, expected
):
    monkeypatch.setattr(torch.backends.cpu, "get_cpu_capability", lambda: capability)
    options = RunOptions(compile=compile_step)
    assert compiles_safely(options, torch.device(device)) is expected
