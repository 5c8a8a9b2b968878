"""Refit on the whole training part (``[train] refit = true``, ``--refit``).

A validation run chooses the epoch count on the carve-out; the refit trains from scratch on
every training rating (the carve-out's included) for that count; only the refit model meets
the test set, once; ``run.json`` says so; a refit resumes from its checkpoint without a second
validation run; with a ranking tower each half keeps its weights after its own chosen count;
a model without epochs is refused in one line.
"""

import copy
import json
from pathlib import Path

import numpy as np
import pytest
import torch

from movierec.config import Job, ModelSpec, RunOptions, TrainConfig
from movierec.data import RatingsData
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ConfigError
from movierec.experiment import run_job, train_model
from movierec.models import build_model, make_config
from movierec.models.ranking_tower import PREFIX
from movierec.pipeline import CHOSEN_KEY, fit_recommender, prepare
from movierec.train import ChosenEpochs, fit
from movierec.train.checkpoint import CHECKPOINT, load_checkpoint

ONE_THREAD = RunOptions(threads=1, progress=False)
SPLIT = "random:0.2"
# On this data MF stops early at epoch 6 with its best at epoch 4 (seed 0): a count of several
# epochs, fewer than the maximum, so "the chosen count" and "the maximum" differ.
FRACTION = 0.1
MF = {"epochs": 10, "patience": 2, "lr": 1e-2, "batch_size": 64, "validation_fraction": FRACTION}


@pytest.fixture(scope="module")
def data():
    ratings = synthetic_ratings(60, 40, 1500, seed=6)
    return RatingsData("synthetic", ratings, None, None, "ratings-file", (1.0, 5.0), Path("."))


def _spec(refit=True, **values):
    return ModelSpec.resolve("mf", train_options={**MF, "refit": refit, **values})


class _FitSpy:
    """Wraps the loop's fit: what each call trained on, for how long, against what."""

    def __init__(self, monkeypatch):
        self.calls = []
        monkeypatch.setattr("movierec.pipeline.fit", self)

    def __call__(self, model, train, valid, config, *args, **kwargs):
        self.calls.append(
            {"train": train, "valid": valid, "epochs": config.epochs, **kwargs, "model": model}
        )
        return fit(model, train, valid, config, *args, **kwargs)


def _pairs(frame):
    return set(zip(frame["user_id"], frame["item_id"], strict=True))


def test_refit_learns_every_training_rating_for_the_chosen_epochs(data, monkeypatch):
    plain = fit_recommender(data, _spec(refit=False), ONE_THREAD, split=SPLIT)
    chosen = plain.training.best_epoch
    assert 1 < chosen < len(plain.training.history)  # early stopping chose a count of its own

    spy = _FitSpy(monkeypatch)
    refit = fit_recommender(data, _spec(), ONE_THREAD, split=SPLIT)
    validation, final = spy.calls
    prepared = prepare(data, SPLIT, seed=0, validation_fraction=FRACTION)
    assert validation["valid"] is not None and len(validation["train"]) == len(prepared.fit_tensors)
    assert final["valid"] is None and final["epochs"] == chosen
    assert final["chosen"] == ChosenEpochs(chosen)
    # The refit's training data is the whole training part: the carve-out's ratings included.
    encoder = refit.encoder
    learnt = set(
        zip(
            encoder.user_ids[final["train"].user_idx.numpy()],
            encoder.item_ids[final["train"].item_idx.numpy()],
            strict=True,
        )
    )
    assert learnt == _pairs(prepared.split.train)
    assert len(learnt) == len(prepared.fit_tensors) + prepared.n_valid
    assert len(refit.training.history) == chosen and refit.training.best_epoch == chosen
    assert all(row.valid_rmse is None for row in refit.training.history)
    assert refit.info["refit"] is True and refit.info["epochs_from"] == "validation"
    assert refit.info["validation"]["best_epoch"] == chosen


def test_the_test_set_scores_the_refit_model_once_and_run_json_records_it(
    data, monkeypatch, tmp_path
):
    import movierec.experiment as experiment

    scored = []
    real = experiment.evaluate

    def spy(recommender, *args, **kwargs):
        scored.append(recommender)
        return real(recommender, *args, **kwargs)

    monkeypatch.setattr(experiment, "evaluate", spy)
    run = run_job(Job(_spec(), ONE_THREAD, split=SPLIT), data=data, out=tmp_path / "run")
    assert scored == [run.recommender]  # once, and the refit model
    metrics = run.metrics
    assert metrics["refit"] is True and metrics["n_fit"] == len(run.prepared.split.train)
    assert metrics["epochs"] == metrics["validation"]["best_epoch"] == metrics["best_epoch"]
    assert "history" not in metrics["validation"]  # the summary stays short; run.json keeps it
    saved = json.loads((tmp_path / "run" / "run.json").read_text())
    assert saved["refit"] is True and saved["epochs_from"] == "validation"
    assert saved["epochs"] == metrics["epochs"]
    # The saved options are the job's (they train the same run again): refit, the maximum.
    assert saved["train_config"]["refit"] is True
    assert saved["train_config"]["epochs"] == MF["epochs"]
    assert saved["validation"]["train_seconds"] > 0  # what choosing the count cost
    history = saved["validation"]["history"]
    assert len(history) == saved["validation"]["epochs_run"] > saved["epochs"]
    best = min(history, key=lambda row: row["valid_rmse"])
    assert best["epoch"] == saved["epochs"]  # the count is the validation run's best epoch


class _Crash(Exception):
    """Stands in for a crash after an epoch's checkpoint."""


def test_a_refit_resumes_without_a_second_validation_run(data, monkeypatch, tmp_path):
    job = Job(_spec(), ONE_THREAD, split=SPLIT)
    straight = run_job(job, data=data)
    chosen = straight.metrics["epochs"]
    assert chosen >= 3

    def crash(record, _model):
        if record.epoch == 3:  # the refit's third epoch: epochs 1-2 are checkpointed
            raise _Crash

    out = tmp_path / "run"
    prepared = prepare(data, SPLIT, seed=0, validation_fraction=FRACTION)
    with pytest.raises(_Crash):
        train_model(prepared, job, checkpoint=out / CHECKPOINT, on_epoch=crash)
    state = load_checkpoint(out / CHECKPOINT)
    assert state.epoch == 3 and state.context[CHOSEN_KEY]["epochs"] == chosen

    spy = _FitSpy(monkeypatch)
    resumed = run_job(job, data=data, out=out, resume=state)
    assert len(spy.calls) == 1 and spy.calls[0]["valid"] is None  # no validation run again
    assert [r.epoch for r in resumed.fit.history] == list(range(1, chosen + 1))
    assert resumed.metrics["rmse"] == pytest.approx(straight.metrics["rmse"], abs=1e-6)
    # run.json's validation facts come from the checkpoint: the first run's, not a new one's.
    facts, first = resumed.recommender.info["validation"], straight.recommender.info["validation"]
    assert facts["best_epoch"] == first["best_epoch"] and facts["n_valid"] == first["n_valid"]
    assert [row["valid_rmse"] for row in facts["history"]] == pytest.approx(
        [row["valid_rmse"] for row in first["history"]], abs=1e-6
    )


@pytest.mark.parametrize("model", ["bias", "ease", "popularity"])
def test_refit_of_a_model_without_epochs_is_refused(data, model):
    spec = ModelSpec.resolve(model, train_options={"refit": True})
    with pytest.raises(ConfigError, match=f"model {model!r} is fitted in closed form"):
        fit_recommender(data, spec, ONE_THREAD, split=SPLIT)


def test_refit_needs_a_validation_carve_out(data):
    spec = _spec(validation_fraction=0.0)
    with pytest.raises(ConfigError, match=r"refit needs \[train\] validation_fraction > 0"):
        fit_recommender(data, spec, ONE_THREAD, split=SPLIT)
    with pytest.raises(ConfigError, match="refit must be true or false"):
        TrainConfig(refit="yes")


def test_tune_trials_are_scored_without_the_refit(data, monkeypatch):
    from movierec.tuning import validation_score

    spy = _FitSpy(monkeypatch)
    prepared = prepare(data, SPLIT, seed=0, validation_fraction=FRACTION)
    validation_score(prepared, _spec(), ONE_THREAD)
    assert len(spy.calls) == 1 and spy.calls[0]["valid"] is not None


TOWER = {"n_factors": 8, "hidden": (16,), "dropouts": (0.1,), "ranking_head": True}


def test_with_a_ranking_tower_each_half_keeps_its_own_chosen_epoch(data):
    """The refit of a joint run trains max(both counts) epochs and keeps the tower's weights
    after its count and the rating half's after its own, as the validation run did."""
    prepared = prepare(data, SPLIT, seed=0, validation_fraction=0.0)
    encoder = prepared.encoder
    torch.manual_seed(0)
    config = make_config("embedding-net", {**TOWER, "rank_factors": 4})
    model = build_model("embedding-net", encoder.n_users, encoder.n_items, (1.0, 5.0), config)
    snapshots = {}

    def snapshot(record):
        snapshots[record.epoch] = copy.deepcopy(model.state_dict())

    chosen = ChosenEpochs(best=2, rating=4)
    train = TrainConfig(objective="joint", epochs=chosen.total, batch_size=128, negatives=2)
    result = fit(model, prepared.fit_tensors, None, train, ONE_THREAD, snapshot, chosen=chosen)
    assert len(result.history) == 4
    assert (result.best_epoch, result.rating_best_epoch) == (2, 4)
    for name, tensor in model.state_dict().items():
        source = 2 if name.startswith(PREFIX) else 4
        torch.testing.assert_close(tensor, snapshots[source][name], msg=name)
    tower = f"{PREFIX}user_factors.weight"
    assert not torch.equal(snapshots[2][tower], snapshots[4][tower])  # the halves really differ


def test_epochs_given_on_every_rating_are_trained_even_when_the_config_refits(
    data, monkeypatch, tmp_path
):
    """``--split none --epochs N``: N epochs on every rating, no validation run, although the
    config asks for a refit (the default's does): the user said how long."""
    from movierec.experiment import train as train_run

    config = tmp_path / "refit.toml"
    config.write_text('[model]\nname = "mf"\n\n[train]\nrefit = true\nbatch_size = 64\n')
    spy = _FitSpy(monkeypatch)
    run = train_run(data, split="none", config_path=config, epochs=3, options=ONE_THREAD)
    assert [call["epochs"] for call in spy.calls] == [3]
    assert len(spy.calls[0]["train"]) == len(data.ratings)
    assert run.metrics["epochs_from"] == "--epochs"


def test_a_refit_keeps_the_validation_predictions_of_its_model_before_the_refit(data):
    """The refit model has learnt the carve-out; the blend's rows must come from the model
    that had not: the early-stopped one, which a plain run of the same seed is."""
    plain = fit_recommender(data, _spec(refit=False), ONE_THREAD, split=SPLIT)
    refit = fit_recommender(data, _spec(), ONE_THREAD, split=SPLIT)
    before, kept = plain.validation, refit.validation
    prepared = prepare(data, SPLIT, seed=0, validation_fraction=FRACTION)
    assert len(kept) == prepared.n_valid and list(kept.columns) == [
        "user_id",
        "item_id",
        "rating",
        "prediction",
    ]
    users, items = kept["user_id"].to_numpy(), kept["item_id"].to_numpy()
    assert kept["prediction"].tolist() == before["prediction"].tolist()
    np.testing.assert_allclose(before["prediction"], plain.predict(users, items))
    # The refit model answers otherwise on those rows: it trained on them.
    now = refit.predict(users, items)
    assert np.abs(now - kept["prediction"].to_numpy()).mean() > 1e-3
    assert np.mean((now - kept["rating"]) ** 2) < np.mean(
        (kept["prediction"] - kept["rating"]) ** 2
    )


def test_a_ranking_run_keeps_no_validation_predictions(data):
    ranking = fit_recommender(data, _spec(refit=False, objective="bpr"), ONE_THREAD, split=SPLIT)
    assert ranking.validation is None
