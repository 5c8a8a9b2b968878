"""Mixed precision of the training step: resolution, fall-back, and agreement with fp32."""

import math
import os
import subprocess
import sys

import pytest
import torch

from movierec.config import RunOptions, TrainConfig
from movierec.errors import ConfigError
from movierec.models import build_model
from movierec.train import fit, precision, predict_tensors
from tests.factories import fit_and_held_out

CPU = torch.device("cpu")


def test_fp32_means_no_autocast_and_unknown_names_are_config_errors():
    assert precision.resolve_precision("fp32", CPU) is None
    with pytest.raises(ConfigError, match="precision must be one of"):
        precision.resolve_precision("fp16", CPU)
    with pytest.raises(ConfigError, match="precision must be one of"):
        RunOptions(precision="half")


def test_without_native_bf16_it_falls_back_to_fp32_with_one_warning(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: False)
    with pytest.warns(RuntimeWarning, match="no native bf16") as caught:
        assert precision.resolve_precision("bf16", CPU) is None
    assert len(caught) == 1
    assert precision.resolve_precision("auto", CPU) is None  # auto falls back silently


def test_with_native_bf16_the_forward_runs_in_bf16(monkeypatch):
    monkeypatch.setattr(precision, "native_bf16", lambda device: True)
    dtype = precision.resolve_precision("auto", CPU)
    assert dtype is torch.bfloat16
    layer = torch.nn.Linear(4, 3)
    with precision.autocast(CPU, dtype):
        assert layer(torch.randn(2, 4)).dtype == torch.bfloat16
    with precision.autocast(CPU, None):
        assert layer(torch.randn(2, 4)).dtype == torch.float32


def test_a_process_confined_to_avx2_kernels_has_no_native_bf16():
    # ATEN_CPU_CAPABILITY=avx2 is how an AVX-512 machine stands in for an AVX2-only one: then
    # `auto` must train in fp32 as it would there, whatever units the CPU has.
    script = (
        "import torch; from movierec.train.precision import native_bf16; "
        "print(torch.backends.cpu.get_cpu_capability(), native_bf16(torch.device('cpu')))"
    )
    env = {**os.environ, "ATEN_CPU_CAPABILITY": "avx2"}
    done = subprocess.run(
        [sys.executable, "-c", script], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["AVX2", "False"]


@pytest.fixture(scope="module")
def data():
    return fit_and_held_out(300, 200, 20_000, seed=5)


def held_out_rmse(encoder, train, valid, **options):
    torch.manual_seed(0)
    model = build_model(
        "embedding-net", encoder.n_users, encoder.n_items, (1.0, 5.0),
        {"n_factors": 16, "hidden": [32, 32], "dropouts": [0.2]},
    )  # fmt: skip
    run = RunOptions(seed=0, device="cpu", progress=False, **options)
    fit(model, train, None, TrainConfig(epochs=4, batch_size=256, patience=0), run)
    for parameter in model.parameters():
        assert parameter.dtype == torch.float32  # weights stay fp32 whatever the precision
    return math.sqrt(float(((predict_tensors(model, valid) - valid.rating) ** 2).mean()))


@pytest.mark.skipif(not precision.native_bf16(CPU), reason="this CPU has no native bf16")
def test_bf16_training_agrees_with_fp32_on_held_out_ratings(data):
    encoder, train, valid = data
    fp32 = held_out_rmse(encoder, train, valid, precision="fp32")
    bf16 = held_out_rmse(
        encoder, train, valid, precision="bf16", fast_dropout=False, fused_adam=False
    )
    fast = held_out_rmse(encoder, train, valid)  # the default: bf16, cheap masks, fused Adam
    assert bf16 == pytest.approx(fp32, abs=0.01)
    assert fast == pytest.approx(fp32, abs=0.01)
    assert bf16 != fp32  # it did train in another precision
