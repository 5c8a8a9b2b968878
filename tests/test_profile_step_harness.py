"""benchmarks/profile_step.py: operators put in buckets, and a real profiled epoch."""

import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import profile_step  # the harness lives in benchmarks/, not in the package


@pytest.mark.parametrize(
    ("name", "expected"),
    [
        ("aten::addmm", "matrix products"),
        ("aten::random_", "dropout masks"),
        ("aten::bernoulli_", "dropout masks"),
        ("aten::threshold_backward", "ReLU"),
        ("aten::_fused_adam_", "optimiser"),
        ("aten::embedding_dense_backward", "embeddings"),
        ("aten::_to_copy", "casts and copies"),
        ("aten::mul", "element-wise"),
        ("aten::empty_strided", "other"),
    ],
)
def test_each_operator_lands_in_its_bucket(name, expected):
    assert profile_step.bucket(name) == expected


def test_shares_sum_to_one_in_descending_order():
    out = profile_step.shares([("aten::mm", 3.0), ("aten::mul", 1.0), ("aten::addmm", 4.0)])
    assert out == {"matrix products": 7 / 8, "element-wise": 1 / 8}


@pytest.fixture()
def one_thread():
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


@pytest.mark.parametrize(("precision", "mask_op"), [("auto", "random_"), ("fp32", "bernoulli")])
def test_a_profiled_epoch_of_the_article_net_is_mostly_its_own_kinds_of_work(
    precision, mask_op, one_thread
):
    trainer = profile_step.trainer_for("article", precision, ratings=8000)
    result = profile_step.profile_steps(trainer, epochs=1)
    assert result["steps"] == 4
    assert sum(result["buckets"].values()) == pytest.approx(1.0)
    assert result["buckets"]["matrix products"] > 0.1
    names = [op["name"] for op in result["operators"]]
    assert any(mask_op in name for name in names)  # the fast path draws masks its own way
