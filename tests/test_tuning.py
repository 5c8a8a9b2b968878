"""movierec tune: the search space, the written config, resuming, and no test-set reads."""

import json
import tomllib
from pathlib import Path

import optuna
import pytest
from typer.testing import CliRunner

from movierec import experiment
from movierec.cli import app
from movierec.config import ModelSpec, load_config_file
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ConfigError
from movierec.evaluate import evaluation
from movierec.tuning import STUDY_FILE, SearchSpace, render_config, toml_value

runner = CliRunner()

SPACE = """
[model]
name = "mf"
n_factors = 8

[train]
epochs = 2
batch_size = 256

[search]
reg_factors = { low = 1e-3, high = 0.1, log = true }
lr = { low = 1e-3, high = 3e-2, log = true }
model.init_std = { choices = [0.01, 0.1] }
"""


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("tune") / "ratings.csv"
    synthetic_ratings(60, 40, 1500, seed=8).to_csv(path, index=False)
    return path


def write(tmp_path, text, name="space.toml"):
    path = tmp_path / name
    path.write_text(text, encoding="utf-8")
    return path


def test_keys_find_their_section_and_list_choices_round_trip():
    table = {
        "lr": {"low": 1e-4, "high": 1e-2, "log": True},
        "hidden": {"choices": [[64, 32], [16]]},
        "train": {"batch_size": {"low": 256, "high": 1024, "step": 256}},
    }
    space = SearchSpace.from_table(table, "embedding-net", where="test")
    assert [d.key for d in space.dimensions] == ["train.lr", "model.hidden", "train.batch_size"]
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=0))
    trial = study.ask()
    model, train = space.sample(trial)
    assert model["hidden"] in ([64, 32], [16])
    assert 1e-4 <= train["lr"] <= 1e-2
    assert train["batch_size"] in (256, 512, 768, 1024) and isinstance(train["batch_size"], int)
    study.tell(trial, 1.0)
    assert space.decode(study.trials[0].params) == (model, train)


@pytest.mark.parametrize(
    ("table", "match"),
    [
        ({"n_layers": {"low": 1, "high": 3}}, "'n_layers' is not an option of model"),
        ({"model": {"lr": {"low": 1e-4, "high": 1e-2}}}, "'model.lr' is not an option"),
        ({"validation_fraction": {"low": 0.05, "high": 0.2}}, "cannot be searched"),
        ({"lr": {"low": 1e-2, "high": 1e-4}}, "low < high"),
        ({"lr": {"low": 0.0, "high": 1e-2, "log": True}}, "log range needs low > 0"),
        ({"lr": {"low": 1e-4, "high": 1e-2, "scale": "log"}}, "unknown key"),
        ({"n_factors": {"choices": []}}, "non-empty list"),
        ({"n_factors": 64}, "give a range"),
    ],
)
def test_bad_search_spaces_are_config_errors(table, match):
    with pytest.raises(ConfigError, match=match):
        SearchSpace.from_table(table, "embedding-net", where="test")


def test_rendered_config_is_toml_that_train_reads(tmp_path):
    text = render_config(
        "embedding-net",
        {"n_factors": 32, "hidden": [64, 32], "dropouts": (0.1,)},
        {"lr": 1.5e-05, "schedule": 'one-"cycle"', "weight_decay": 0.0},
        ["a header", "second line"],
    )
    assert text.startswith("# a header\n# second line\n")
    parsed = tomllib.loads(text)
    assert parsed["model"] == {
        "name": "embedding-net",
        "n_factors": 32,
        "hidden": [64, 32],
        "dropouts": [0.1],
    }
    assert parsed["train"] == {"lr": 1.5e-05, "schedule": 'one-"cycle"', "weight_decay": 0.0}
    assert toml_value(float("inf")) == "inf" and toml_value(True) == "true"
    file = load_config_file(write(tmp_path, text))
    assert file.model == "embedding-net" and file.model_options["hidden"] == [64, 32]


def test_train_ignores_the_search_table(tmp_path):
    file = load_config_file(write(tmp_path, SPACE))
    assert file.model == "mf" and file.model_options == {"n_factors": 8}
    assert "search" not in file.train_options


def test_tune_end_to_end_writes_a_trainable_config_and_resumes(ratings_file, tmp_path, monkeypatch):
    def no_test_set(*args, **kwargs):
        raise AssertionError("tuning must never evaluate on the test set")

    monkeypatch.setattr(experiment, "evaluate", no_test_set)
    monkeypatch.setattr(evaluation, "evaluate", no_test_set)
    config = write(tmp_path, SPACE)
    study = tmp_path / "study"
    best = tmp_path / "best.toml"
    args = ["tune", "--data", str(ratings_file), "--config", str(config), "--threads", "1"]
    args += ["--study-dir", str(study), "--out", str(best), "--json"]
    first = runner.invoke(app, [*args, "--trials", "2"])
    assert first.exit_code == 0, first.output
    report = json.loads(first.stdout)
    assert report["trials"] == 2 and report["added"] == 2
    assert (study / STUDY_FILE).exists()

    # Every finished epoch's validation RMSE went to Optuna (the pruner's input).
    stored = optuna.load_study(study_name=report["study_name"], storage=report["storage"])
    for trial in stored.trials:
        assert sorted(trial.intermediate_values) == list(range(1, trial.user_attrs["epochs"] + 1))
    assert report["best_value"] == pytest.approx(min(t.value for t in stored.trials))

    text = best.read_text(encoding="utf-8")
    assert "# best validation RMSE:" in text and "trials: 2" in text
    parsed = tomllib.loads(text)
    assert parsed["model"]["name"] == "mf" and parsed["model"]["n_factors"] == 8
    assert parsed["model"]["reg_factors"] == pytest.approx(
        report["best_model_options"]["reg_factors"]
    )
    assert parsed["train"]["lr"] == pytest.approx(report["best_train_options"]["lr"])

    second = runner.invoke(app, [*args, "--trials", "1"])
    assert second.exit_code == 0, second.output
    assert json.loads(second.stdout)["trials"] == 3

    monkeypatch.undo()  # training with the written config evaluates on the test set, as it should
    trained = runner.invoke(
        app, ["train", "--data", str(ratings_file), "--config", str(best), "--json", "-q"]
    )
    assert trained.exit_code == 0, trained.output
    metrics = json.loads(trained.stdout)
    assert metrics["model"] == "mf" and metrics["rmse"] is not None


def test_tune_refit_writes_a_config_that_refits_the_chosen_trial(
    ratings_file, tmp_path, monkeypatch
):
    def no_test_set(*args, **kwargs):
        raise AssertionError("tuning must never evaluate on the test set")

    monkeypatch.setattr(experiment, "evaluate", no_test_set)
    config = write(tmp_path, SPACE.replace("epochs = 2", "epochs = 4"))
    best = tmp_path / "best.toml"
    args = ["tune", "--data", str(ratings_file), "--config", str(config), "--threads", "1"]
    args += ["--study-dir", str(tmp_path / "study"), "--out", str(best), "--trials", "2"]
    result = runner.invoke(app, [*args, "--refit", "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["refit"] is True and report["best_epoch"] >= 1
    parsed = tomllib.loads(best.read_text(encoding="utf-8"))
    assert parsed["train"]["refit"] is True
    assert "# refit: training this config repeats the best trial" in best.read_text()

    monkeypatch.undo()
    train = ["train", "--data", str(ratings_file), "--config", str(best), "--threads", "1"]
    trained = runner.invoke(app, [*train, "--json", "-q"])
    assert trained.exit_code == 0, trained.output
    metrics = json.loads(trained.stdout)
    # The chosen trial's validation run, repeated, chose the trial's own epoch count.
    assert metrics["refit"] is True and metrics["epochs"] == report["best_epoch"]
    assert metrics["validation"]["best_epoch"] == report["best_epoch"]


def test_a_changed_search_space_does_not_mix_into_the_old_study(ratings_file, tmp_path):
    study = tmp_path / "study"
    base = ["tune", "--data", str(ratings_file), "--study-dir", str(study), "--trials", "1"]
    first = runner.invoke(app, [*base, "--config", str(write(tmp_path, SPACE)), "-q"])
    assert first.exit_code == 0, first.output
    changed = write(tmp_path, SPACE.replace("high = 0.1, log", "high = 0.2, log"))
    result = runner.invoke(app, [*base, "--config", str(changed), "-q"])
    assert result.exit_code == 2
    assert "different search" in result.stderr and len(result.stderr.strip().splitlines()) == 1


def test_tune_errors_are_one_line_and_exit_2(ratings_file, tmp_path):
    cases = [
        (SPACE.replace("reg_factors = {", "reg_factor = {"), "'reg_factor' is not an option"),
        (SPACE.replace('name = "mf"', 'name = "nope"'), "unknown model 'nope'"),
        (SPACE.split("[search]")[0], "no [search] table"),
        (SPACE.replace("batch_size = 256", 'objective = "bpr"'), "scores validation RMSE"),
        (SPACE.replace("batch_size = 256", "refit = true\nvalidation_fraction = 0.0"), "refit"),
        (SPACE + "refit = { choices = [true, false] }\n", "'refit' cannot be searched"),
    ]
    for number, (text, match) in enumerate(cases):
        config = write(tmp_path, text, f"bad{number}.toml")
        result = runner.invoke(
            app, ["tune", "--data", str(ratings_file), "--config", str(config), "--trials", "1"]
        )
        assert result.exit_code == 2, result.output
        message = result.stderr.strip()
        assert len(message.splitlines()) == 1 and match in message, message


@pytest.mark.parametrize(
    "path", sorted((Path(__file__).resolve().parents[1] / "configs" / "tune").glob("*.toml"))
)
def test_shipped_search_spaces_fit_their_models(path):
    base = ModelSpec.resolve(config_path=path)
    space = SearchSpace.from_file(path, base.name)
    assert space.dimensions
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=1))
    for _ in range(5):  # drawn combinations build valid configs
        model_options, train_options = space.sample(study.ask())
        ModelSpec.resolve(
            config_path=path, model_options=model_options, train_options=train_options
        )
