"""benchmark (tune's end-to-end test lives in tests/test_tuning.py)."""

import json
import sys
from pathlib import Path

import pytest

from movierec.cli import app
from tests.cli.invoke import fails_cleanly, runner


def test_benchmark_prints_one_row_per_model_and_writes_json(ratings_file, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # a short config path keeps the table's row on one line
    Path("mf.toml").write_text('[model]\nname = "mf"\nn_factors = 4\n', encoding="utf-8")
    args = ["benchmark", "--data", str(ratings_file), "--protocol", "5-fold", "--epochs", "1"]
    args += ["--config", "mf.toml", "--models", "bias", "--threads", "1", "-q"]
    shown = runner.invoke(app, args)
    assert shown.exit_code == 0, shown.output
    lines = shown.stdout.splitlines()
    assert any("mf" in line and "mf.toml" in line and "±" in line for line in lines)
    assert any("bias" in line and "defaults" in line for line in lines)
    out = tmp_path / "bench.json"
    result = runner.invoke(app, [*args, "--json", "--out", str(out), "--seeds", "2"])
    assert result.exit_code == 0, result.output
    payload = json.loads(result.stdout)
    assert payload == json.loads(out.read_text(encoding="utf-8"))
    assert payload["folds"] == [f"fold{i}" for i in range(1, 6)] and payload["seeds"] == [0, 1]
    assert [row["model"] for row in payload["rows"]] == ["mf", "bias"]
    for row in payload["rows"]:
        assert row["runs"] == 10 and row["sd_over"] == "folds"
        assert 0.3 < row["rmse_mean"] < 2.0 and row["rmse_sd"] > 0
    assert payload["rows"][0]["parameters"] == (60 + 40) * (4 + 1)  # factors and biases


def test_benchmark_runs_surprise_on_the_same_folds(ratings_file):
    pytest.importorskip("surprise")
    args = ["benchmark", "--data", str(ratings_file), "--protocol", "random:0.2"]
    result = runner.invoke(app, [*args, "--models", "bias", "--surprise", "BaselineOnly", "--json"])
    assert result.exit_code == 0, result.output
    rows = json.loads(result.stdout)["rows"]
    assert [(r["source"], r["model"]) for r in rows] == [
        ("movierec", "bias"),
        ("surprise", "BaselineOnly"),
    ]
    assert [run["fold"] for run in rows[1]["per_run"]] == ["random:0.2"]
    assert 0.3 < rows[1]["rmse_mean"] < 2.0


def test_benchmark_errors_are_one_line_and_exit_2(ratings_file, tmp_path, monkeypatch):
    base = ["benchmark", "--data", str(ratings_file)]
    fails_cleanly([*base, "--models", "nope"], "unknown model 'nope'")
    fails_cleanly([*base, "--models", "bias", "--protocol", "u9"], "protocol 'u9'")
    fails_cleanly([*base, "--protocol", "random:0.2"], "nothing to benchmark")
    fails_cleanly([*base, "--models", "bias", "--seeds", "0"], "--seeds must be at least 1")
    fails_cleanly([*base, "--config", str(tmp_path / "missing.toml")], "does not exist")
    fails_cleanly([*base, "--models", "bias", "--surprise", "SVDX"], "unknown Surprise model")
    monkeypatch.setitem(sys.modules, "surprise", None)
    fails_cleanly([*base, "--models", "bias", "--surprise", "SVD"], "bench extra")


def test_tune_out_refuses_an_existing_file_unless_overwrite(ratings_file, tmp_path):
    out = tmp_path / "best.toml"
    out.write_text("# keep me\n")
    args = ["tune", "--data", str(ratings_file), "--config", str(tmp_path / "s.toml")]
    fails_cleanly([*args, "--out", str(out)], "already exists; add --overwrite")
    assert out.read_text() == "# keep me\n"


def test_benchmark_refit_scores_the_model_refit_on_each_fold(ratings_file):
    args = ["benchmark", "--data", str(ratings_file), "--protocol", "random:0.2", "--json"]
    args += ["--models", "mf", "--epochs", "6", "--threads", "1", "-q"]
    plain = runner.invoke(app, args)
    refit = runner.invoke(app, [*args, "--refit"])
    assert plain.exit_code == 0 and refit.exit_code == 0, plain.output + refit.output
    (plain_run,) = json.loads(plain.stdout)["rows"][0]["per_run"]
    (refit_run,) = json.loads(refit.stdout)["rows"][0]["per_run"]
    # The refit trains exactly the validation run's best epoch count, and is another model.
    assert refit_run["epochs"] == refit_run["best_epoch"] == plain_run["best_epoch"]
    assert refit_run["rmse"] != plain_run["rmse"]
