"""The training loop: schedules, early stopping with best weights, reproducibility."""

import logging
import math

import pytest
import torch

from movierec.config import RunOptions, TrainConfig
from movierec.data.tensors import RatingTensors
from movierec.errors import ConfigError, TrainingError
from movierec.models import build_model
from movierec.train import cheap_dropout, fit, learning_rate, predict_tensors
from tests.factories import fit_and_held_out

QUIET = RunOptions(seed=0, progress=False, device="cpu")


@pytest.fixture(scope="module")
def data():
    return fit_and_held_out(200, 120, 12_000, seed=1)


def make(name, encoder, **options):
    torch.manual_seed(0)
    return build_model(name, encoder.n_users, encoder.n_items, (1.0, 5.0), options or None)


def test_constant_schedule_is_flat():
    config = TrainConfig(lr=0.01)
    assert {learning_rate(s, 100, 10, config) for s in range(100)} == {0.01}


def test_one_cycle_warms_up_peaks_and_anneals():
    config = TrainConfig(lr=0.01, schedule="one-cycle")
    rates = [learning_rate(s, 100, 10, config) for s in range(100)]
    assert rates[0] == pytest.approx(0.01 / 25)
    assert max(rates) == pytest.approx(0.01, rel=1e-3)
    assert rates.index(max(rates)) in (29, 30)
    assert rates[-1] < 0.01 / 100


def test_cosine_restarts_restart_with_doubling_cycles():
    config = TrainConfig(lr=0.01, schedule="cosine-restarts", restart_epochs=1)
    rates = [learning_rate(s, 100, 10, config) for s in range(30)]
    assert rates[0] == pytest.approx(0.01)
    assert rates[9] < 0.002  # end of the first 10-step cycle
    assert rates[10] == pytest.approx(0.01)  # restart
    assert rates[29] < 0.002 and rates[20] > 0.004  # second cycle is 20 steps long


def test_bad_training_options_are_config_errors():
    with pytest.raises(ConfigError, match="schedule must be one of"):
        TrainConfig(schedule="linear")
    with pytest.raises(ConfigError, match="unknown training option"):
        TrainConfig.from_mapping({"learning_rate": 0.1})


def test_training_beats_the_biases_and_reports_history(data):
    encoder, train, valid = data
    bias = make("bias", encoder)
    fit(bias, train, valid, TrainConfig(), QUIET)
    bias_rmse = math.sqrt(float(((predict_tensors(bias, valid) - valid.rating) ** 2).mean()))
    mf = make("mf", encoder, n_factors=16)
    result = fit(
        mf, train, valid, TrainConfig(lr=0.01, epochs=15, weight_decay=0, patience=3), QUIET
    )
    mf_rmse = math.sqrt(float(((predict_tensors(mf, valid) - valid.rating) ** 2).mean()))
    assert mf_rmse < bias_rmse - 0.02
    assert [r.epoch for r in result.history] == list(range(1, len(result.history) + 1))
    assert result.ratings_seen == len(train) * len(result.history)
    assert result.ratings_per_second > 0


def test_early_stopping_restores_the_best_epoch(data):
    encoder, train, valid = data
    net = make("embedding-net", encoder, n_factors=16, hidden=[32], dropouts=[0.2])
    result = fit(net, train, valid, TrainConfig(lr=0.02, epochs=12, patience=2), QUIET)
    best = min(r.valid_rmse for r in result.history)
    assert result.best_epoch == min(result.history, key=lambda r: r.valid_rmse).epoch
    final = math.sqrt(float(((predict_tensors(net, valid) - valid.rating) ** 2).mean()))
    assert final == pytest.approx(best, abs=1e-5)
    stale = len(result.history) - result.best_epoch
    assert stale <= 2


def test_same_seed_same_weights(data):
    encoder, train, valid = data
    config = TrainConfig(epochs=2)
    first = make("embedding-net", encoder, n_factors=8, hidden=[16], dropouts=[0.2])
    fit(first, train, valid, config, QUIET)
    second = make("embedding-net", encoder, n_factors=8, hidden=[16], dropouts=[0.2])
    fit(second, train, valid, config, QUIET)
    for a, b in zip(first.state_dict().values(), second.state_dict().values(), strict=True):
        torch.testing.assert_close(a, b)


def test_models_without_parameters_skip_the_loop(data):
    encoder, train, valid = data
    mean = make("mean", encoder)
    result = fit(mean, train, valid, TrainConfig(), QUIET)
    assert result.history == []
    assert float(mean.global_mean) == pytest.approx(float(train.rating.mean()))


def test_asking_for_a_missing_gpu_is_a_config_error(data):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    encoder, train, valid = data
    with pytest.raises(ConfigError, match="no CUDA GPU"):
        fit(make("bias", encoder), train, valid, TrainConfig(), RunOptions(device="cuda"))


def test_compile_with_row_wise_is_refused_before_training(data):
    encoder, train, valid = data
    model = make("mf", encoder)
    before = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(epochs=1, embedding_optimizer="row-wise")
    with pytest.raises(ConfigError, match="drop --compile"):
        fit(model, train, valid, config, RunOptions(progress=False, compile=True))
    assert all(torch.equal(before[k], v) for k, v in model.state_dict().items() if k in before)
    assert not model.user_factors.sparse  # the flags were never flipped


def test_row_wise_fit_trains_and_restores_the_embedding_flags(data):
    encoder, train, valid = data
    keep = train.user_idx >= 10  # users 0..9 have no training rating here
    train = RatingTensors(train.user_idx[keep], train.item_idx[keep], train.rating[keep])
    net = make("embedding-net", encoder, n_factors=8, hidden=[16], dropouts=[0.2])
    start = net.user_embedding.weight.detach().clone()
    config = TrainConfig(epochs=3, patience=0, embedding_optimizer="row-wise")
    result = fit(net, train, valid, config, QUIET)
    assert result.history[-1].valid_rmse < result.history[0].valid_rmse
    assert net.user_embedding.sparse is False and net.item_embedding.sparse is False
    # Every user with a training rating moved; none without one did (lazy rows).
    rated = torch.zeros(encoder.n_users, dtype=torch.bool)
    rated[train.user_idx] = True
    assert not rated[:10].any()
    moved = (net.user_embedding.weight != start).any(1)
    assert torch.equal(moved, rated)


def test_row_wise_matches_dense_adam_quality(data):
    encoder, train, valid = data
    rmse = {}
    for mode in ("dense", "row-wise"):
        net = make("mf", encoder, n_factors=16)
        config = TrainConfig(lr=0.01, epochs=15, patience=3, embedding_optimizer=mode)
        fit(net, train, valid, config, QUIET)
        rmse[mode] = math.sqrt(float(((predict_tensors(net, valid) - valid.rating) ** 2).mean()))
    assert rmse["row-wise"] == pytest.approx(rmse["dense"], abs=0.02)


def test_cheap_dropout_keeps_the_rate_and_scale_and_is_restored():
    layer = torch.nn.Sequential(torch.nn.Dropout(0.25))
    x = torch.ones(400, 500)
    with cheap_dropout(layer):
        torch.manual_seed(0)
        out = layer(x)
        kept = out != 0
        assert kept.float().mean().item() == pytest.approx(0.75, abs=0.005)
        assert torch.allclose(out[kept], torch.full_like(out[kept], 1 / 0.75))
        layer.eval()
        assert torch.equal(layer(x), x)
        layer.train()
    assert "forward" not in vars(layer[0])  # the class's own forward again
    torch.manual_seed(0)
    assert not torch.equal(layer(x), out)  # PyTorch's own draw: another stream


@pytest.mark.parametrize("rate", [0.02, 0.25, 0.5])
def test_cheap_dropout_under_bf16_autocast_is_unbiased_and_close_to_the_rate(rate):
    layer = torch.nn.Sequential(torch.nn.Dropout(rate))
    x = torch.ones(1000, 1000, requires_grad=True)
    with cheap_dropout(layer), torch.autocast("cpu", dtype=torch.bfloat16):
        torch.manual_seed(0)
        out = layer(x)
    assert out.dtype == torch.bfloat16  # cast first: the next matrix product casts anyway
    kept = out != 0
    assert 1 - kept.float().mean().item() == pytest.approx(rate, abs=0.003)
    # One value where kept (the scale, rounded to bf16); the mean is 1, so training and
    # evaluation (no dropout) see activations of the same expected size.
    assert out[kept].float().unique().numel() == 1
    assert out.float().mean().item() == pytest.approx(1.0, abs=0.002)
    out.float().sum().backward()  # the gradient is the mask itself
    assert torch.equal(x.grad, out.detach().float())


def test_the_fast_path_is_the_default_and_fp32_is_the_exact_path():
    options, config = RunOptions(), TrainConfig()
    assert (options.precision, options.compile) == ("auto", False)
    assert options.use_fused_adam and options.use_fast_dropout
    exact = RunOptions(precision="fp32")
    assert not exact.use_fused_adam and not exact.use_fast_dropout
    # An explicit choice wins over the precision's.
    chosen = RunOptions(precision="fp32", fused_adam=True, fast_dropout=False)
    assert chosen.use_fused_adam and not chosen.use_fast_dropout
    assert config.embedding_optimizer == "dense"


def test_epoch_lines_go_to_the_movierec_logger_even_without_progress(data, caplog):
    encoder, fit_part, valid = data
    caplog.set_level(logging.INFO, logger="movierec")
    result = fit(make("mf", encoder), fit_part, valid, TrainConfig(epochs=2, patience=0), QUIET)
    lines = [r.getMessage() for r in caplog.records if r.name.startswith("movierec")]
    epochs = [line for line in lines if line.startswith("epoch")]
    assert len(epochs) == len(result.history) == 2
    assert "train MSE" in epochs[0] and "valid RMSE" in epochs[0]
    assert lines[0].startswith("training mf on") and lines[-1].startswith("trained 2 epochs")


def test_a_diverging_run_stops_with_the_epoch_and_a_smaller_lr_to_try(data):
    encoder, train, valid = data
    with pytest.raises(TrainingError, match=r"diverged in epoch \d+: .*smaller lr .*1e\+30"):
        fit(make("mf", encoder), train, valid, TrainConfig(epochs=5, lr=1e30), QUIET)
