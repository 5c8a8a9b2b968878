"""The MLflow tracker (``--track mlflow``): params, per-epoch metrics, test metrics, artifacts.

The real MLflow (``mlflow-skinny``, the ``mlflow`` extra) logs into a file store in tmp_path
when it is installed; a fake ``mlflow`` module injected in ``sys.modules`` checks what a
tracking failure does (warned once and caught up at the end, or refused before training);
without MLflow, ``--track mlflow`` is one line naming the extra.
"""

import json
import sys
import types
import warnings
from pathlib import Path
from types import SimpleNamespace

import pytest

from movierec.cli import app
from movierec.config import Job, ModelSpec, RunOptions
from movierec.data import RatingsData
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ConfigError, MovieRecWarning
from movierec.experiment import run_job
from movierec.tracking import VALIDATION_PREFIX, MlflowTracker, job_params, run_metrics
from tests.cli.invoke import fails_cleanly, runner

ONE_THREAD = RunOptions(threads=1, progress=False)


@pytest.fixture(scope="module")
def data():
    ratings = synthetic_ratings(60, 40, 1500, seed=6)
    return RatingsData("synthetic", ratings, None, None, "ratings-file", (1.0, 5.0), Path("."))


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tracking") / "ratings.csv"
    synthetic_ratings(60, 40, 1500, seed=6).to_csv(path, index=False)
    return path


class FakeMlflow(types.ModuleType):
    """Records what the tracker asks of MLflow; ``fail_at`` epochs' metrics fail once, and
    ``refuse_start`` makes starting a run fail."""

    def __init__(self, fail_at=(), refuse_start=False):
        super().__init__("mlflow")
        self.fail_at, self.refuse_start = set(fail_at), refuse_start
        self.metrics: dict[str, dict] = {}
        self.params = self.tags = self.artifacts = self.status = None

    def set_tracking_uri(self, uri):
        self.uri = uri

    def get_tracking_uri(self):
        return "fake://store"

    def set_experiment(self, name):
        if self.refuse_start:
            raise OSError("store is read-only\nsecond line of a long traceback")
        self.experiment = name

    def start_run(self, run_name):
        return SimpleNamespace(info=SimpleNamespace(run_id="run-1"))

    def log_params(self, params):
        self.params = dict(params)

    def log_metrics(self, metrics, step=None):
        if step in self.fail_at:
            self.fail_at.discard(step)
            raise ConnectionError("tracking server went away")
        for key, value in metrics.items():
            self.metrics.setdefault(key, {})[step] = value

    def set_tags(self, tags):
        self.tags = dict(tags)

    def log_artifacts(self, path, artifact_path=None):
        self.artifacts = (path, artifact_path)

    def end_run(self, status):
        self.status = status


def _spec(**values):
    train = {"epochs": 6, "patience": 2, "lr": 1e-2, "batch_size": 64, **values}
    return ModelSpec.resolve("mf", train_options=train)


def test_a_run_logs_params_every_epoch_its_test_metrics_and_its_folder(data, monkeypatch, tmp_path):
    fake = FakeMlflow(fail_at={2})
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    tracker = MlflowTracker()
    with pytest.warns(MovieRecWarning, match="could not log epoch 2"):
        run = run_job(Job(_spec(), ONE_THREAD), data=data, out=tmp_path / "r", tracker=tracker)
    assert fake.status == "FINISHED" and fake.experiment == "movierec"
    assert fake.params["model"] == "mf" and fake.params["train.lr"] == "0.01"
    assert fake.params["model.n_factors"] == str(run.spec.config.n_factors)
    epochs = [row.epoch for row in run.fit.history]
    # Epoch 2 failed live and was caught up at the end: every epoch is there, once.
    assert sorted(fake.metrics["train_loss"]) == epochs
    assert [fake.metrics["valid_rmse"][e] for e in epochs] == [
        row.valid_rmse for row in run.fit.history
    ]
    assert fake.metrics["rmse"][None] == run.metrics["rmse"]
    assert fake.metrics["ndcg_at_10"][None] == run.metrics["ndcg@10"]
    assert fake.tags["refit"] == "false" and fake.artifacts == (str(tmp_path / "r"), "run")


def test_a_refit_logs_its_own_epochs_and_its_validation_run(data, monkeypatch):
    fake = FakeMlflow()
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    run = run_job(Job(_spec(refit=True), ONE_THREAD), data=data, tracker=MlflowTracker())
    validation = run.recommender.info["validation"]
    assert sorted(fake.metrics["train_loss"]) == list(range(1, run.metrics["epochs"] + 1))
    assert "valid_rmse" not in fake.metrics  # the refit has no carve-out to score
    logged = fake.metrics[f"{VALIDATION_PREFIX}valid_rmse"]
    assert sorted(logged) == list(range(1, validation["epochs_run"] + 1))
    assert fake.tags["refit"] == "true" and fake.tags["epochs_from"] == "validation"
    assert fake.artifacts is None  # no run directory was written


def test_a_failed_job_ends_its_tracked_run_as_failed(data, monkeypatch):
    fake = FakeMlflow()
    monkeypatch.setitem(sys.modules, "mlflow", fake)
    spec = ModelSpec.resolve("ease", train_options={"refit": True})
    with pytest.raises(ConfigError, match="closed form"):
        run_job(Job(spec, ONE_THREAD), data=data, tracker=MlflowTracker())
    assert fake.status == "FAILED"


def test_a_store_that_cannot_start_a_run_is_one_line_before_training(ratings_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", FakeMlflow(refuse_start=True))
    args = ["train", "--data", str(ratings_file), "--model", "mf", "--track", "mlflow"]
    message = fails_cleanly(args, "MLflow could not start a run at tracking URI fake://store")
    assert "store is read-only" in message and "MLFLOW_TRACKING_URI" in message


def test_without_mlflow_track_names_the_extra_to_install(ratings_file, monkeypatch):
    monkeypatch.setitem(sys.modules, "mlflow", None)  # import mlflow raises ImportError
    args = ["train", "--data", str(ratings_file), "--model", "mf"]
    fails_cleanly([*args, "--track", "mlflow"], "pip install 'movierec[mlflow]'")
    fails_cleanly([*args, "--track", "wandb"], "--track must be one of mlflow")


def test_params_and_metric_names_are_what_mlflow_accepts():
    params = job_params(Job(ModelSpec.resolve("embedding-net"), ONE_THREAD, data="ml-100k"))
    assert params["model.hidden"] == "[100, 200, 300]" and params["split"] == "default"
    assert all(isinstance(value, str) for value in params.values())
    named = run_metrics({"precision@10": 0.5, "refit": True, "model": "mf", "epochs": 3})
    assert named == {"precision_at_10": 0.5, "epochs": 3.0}


def test_the_real_mlflow_logs_a_cli_run_into_a_file_store(ratings_file, tmp_path, monkeypatch):
    mlflow = pytest.importorskip("mlflow")
    from mlflow.tracking import MlflowClient

    store = f"file://{tmp_path / 'store'}"
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("MLFLOW_TRACKING_URI", store)
    monkeypatch.setenv("MLFLOW_ALLOW_FILE_STORE", "true")  # MLflow 3 asks before a file store
    args = ["train", "--data", str(ratings_file), "--model", "mf", "--epochs", "3"]
    args += ["--threads", "1", "--out", str(tmp_path / "r"), "--track", "mlflow", "--json"]
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # MLflow's own deprecation notes
        result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    client = MlflowClient(store)
    (run,) = client.search_runs([mlflow.get_experiment_by_name("movierec").experiment_id])
    assert run.info.status == "FINISHED"
    assert run.data.params["model"] == "mf" and run.data.params["train.epochs"] == "3"
    assert run.data.metrics["rmse"] == pytest.approx(metrics["rmse"])
    history = client.get_metric_history(run.info.run_id, "valid_rmse")
    assert sorted(m.step for m in history) == list(range(1, metrics["epochs"] + 1))
    saved = {a.path for a in client.list_artifacts(run.info.run_id, "run")}
    assert {"run/run.json", "run/history.csv"} <= saved
