"""The command line: JSON outputs, and every user error as one line with exit code 2."""

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd
import pytest
from typer.testing import CliRunner

from movierec.artifacts import save_run
from movierec.cli import app
from movierec.config import TrainConfig
from movierec.data.synthetic import synthetic_ratings
from tests.factories import build_recommender

runner = CliRunner()


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    ratings = synthetic_ratings(50, 30, 900, seed=4)
    recommender = build_recommender("mf", ratings)
    path = tmp_path_factory.mktemp("cli") / "run"
    save_run(
        path,
        recommender,
        model_config=recommender.model.config,
        train_config=TrainConfig(),
        info={"dataset": "synthetic", "split": "none", "seed": 0},
    )
    return path


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "ratings.csv"
    synthetic_ratings(60, 40, 1500, seed=6).to_csv(path, index=False)
    return path


def fails_cleanly(args, match):
    result = runner.invoke(app, args)
    assert result.exit_code == 2, result.output
    message = result.stderr.strip()
    assert len(message.splitlines()) == 1, message
    assert "Traceback" not in result.output
    assert match in message
    return message


def test_recommend_json_lists_items_with_titles(run_dir):
    result = runner.invoke(app, ["recommend", str(run_dir), "--user", "1", "-k", "5", "--json"])
    assert result.exit_code == 0, result.output
    items = json.loads(result.stdout)
    assert len(items) == 5
    assert set(items[0]) >= {"item", "title", "score"}


def test_similar_and_predict_json(run_dir):
    similar = runner.invoke(app, ["similar", str(run_dir), "--item", "2", "--json"])
    assert similar.exit_code == 0, similar.output
    assert 2 not in [row["item"] for row in json.loads(similar.stdout)]
    predicted = runner.invoke(
        app, ["predict", str(run_dir), "--user", "1", "--item", "2", "--json"]
    )
    assert predicted.exit_code == 0, predicted.output
    assert 1.0 <= json.loads(predicted.stdout)["rating"] <= 5.0


def test_train_json_on_a_ratings_file_has_the_documented_keys(ratings_file, tmp_path):
    args = ["train", "--data", str(ratings_file), "--model", "mf", "--epochs", "2"]
    result = runner.invoke(app, [*args, "--out", str(tmp_path / "r"), "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    for key in (
        "model",
        "rmse",
        "mae",
        "precision@10",
        "recall@10",
        "ndcg@10",
        "train_seconds",
        "epochs",
        "ratings_per_second",
    ):
        assert key in metrics
    assert metrics["split"] == "random:0.2"
    assert (tmp_path / "r" / "learning_curve.png").stat().st_size > 1000
    assert (tmp_path / "r" / "history.csv").read_text().startswith("epoch,")
    evaluated = runner.invoke(
        app, ["evaluate", str(tmp_path / "r"), "--data", str(ratings_file), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["rmse"] == pytest.approx(metrics["rmse"], abs=1e-6)


def test_unknown_user_is_one_line_and_exit_2(run_dir):
    fails_cleanly(["recommend", str(run_dir), "--user", "424242"], "user 424242")


def test_unknown_item_is_one_line_and_exit_2(run_dir):
    fails_cleanly(["predict", str(run_dir), "--user", "1", "--item", "99999"], "item 99999")


def test_missing_run_directory(tmp_path):
    fails_cleanly(["recommend", str(tmp_path / "nope"), "--user", "1"], "not a movierec run")


def test_unknown_dataset_name():
    fails_cleanly(["train", "--data", "ml-7m"], "ml-7m")


def test_unknown_model(ratings_file):
    fails_cleanly(["train", "--data", str(ratings_file), "--model", "svd"], "unknown model 'svd'")


def test_bad_split(ratings_file):
    fails_cleanly(["train", "--data", str(ratings_file), "--split", "u1"], "canonical fold")


def test_bad_k(run_dir):
    fails_cleanly(["recommend", str(run_dir), "--user", "1", "-k", "0"], "between 1 and 1000")


def test_bad_config_file(ratings_file, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[train]\nlearning_rate = 3\n")
    fails_cleanly(
        ["train", "--data", str(ratings_file), "--config", str(config)], "unknown training option"
    )


def test_bad_option_value_is_a_usage_error_with_exit_2(run_dir):
    result = runner.invoke(app, ["recommend", str(run_dir), "--user", "1", "-k", "ten"])
    assert result.exit_code == 2


def test_python_dash_m_runs_the_cli(run_dir):
    done = subprocess.run(
        [sys.executable, "-m", "movierec", "recommend", str(run_dir), "--user", "424242"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "user 424242" in done.stderr


def test_train_stratified_bpr_json_has_the_ranking_keys(ratings_file, tmp_path):
    args = ["train", "--data", str(ratings_file), "--model", "mf", "--epochs", "2"]
    args += ["--split", "stratified", "--objective", "bpr", "--out", str(tmp_path / "b")]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    for key in ("precision@10", "recall@10", "ndcg@10", "map@10", "coverage", "novelty"):
        assert isinstance(metrics[key], float)
    assert metrics["relevance"] == "any rated test item"
    assert metrics["objective"] == "bpr" and metrics["rmse"] is None
    assert metrics["split"] == "stratified:0.25"
    run = json.loads((tmp_path / "b" / "run.json").read_text())
    assert run["objective"] == "bpr"
    assert "valid_ndcg" in (tmp_path / "b" / "history.csv").read_text().splitlines()[0]
    recommended = runner.invoke(app, ["recommend", str(tmp_path / "b"), "--user", "1", "--json"])
    assert recommended.exit_code == 0, recommended.output
    fails_cleanly(["predict", str(tmp_path / "b"), "--user", "1", "--item", "2"], "not ratings")
    evaluated = runner.invoke(
        app,
        ["evaluate", str(tmp_path / "b"), "--data", str(ratings_file), "--relevance", ">=4"],
    )
    assert evaluated.exit_code == 0, evaluated.output


def test_relevance_option_is_reported(ratings_file):
    args = ["train", "--data", str(ratings_file), "--model", "popularity", "--json"]
    result = runner.invoke(app, [*args, "--relevance", "any"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["relevance"] == "any rated test item"
    result = runner.invoke(app, ["train", "--data", str(ratings_file), "--model", "bias", "--json"])
    assert json.loads(result.stdout)["relevance"] == "rated >= 4"
    fails_cleanly([*args, "--relevance", "some"], "unknown relevance")
    fails_cleanly(
        ["train", "--data", str(ratings_file), "--model", "bias", "--objective", "bpr"],
        "closed form",
    )


def test_data_policies_reach_the_reader_and_are_reported(tmp_path):
    path = tmp_path / "dupes.csv"
    frame = synthetic_ratings(40, 30, 800, seed=9)
    repeated = frame.iloc[:5].assign(rating=5.0)
    frame = pd.concat([frame, repeated], ignore_index=True)
    frame.loc[0, "rating"] = 7.0  # outside the declared 1..5 scale: clipped below
    frame.to_csv(path, index=False)
    args = ["train", "--data", str(path), "--model", "bias", "--json"]
    result = runner.invoke(app, [*args, "--rating-scale", "1,5", "--out-of-scale", "clip"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)["data_report"]
    assert report["duplicates_resolved"] == 5
    assert report["out_of_scale_clipped"] == 1
    fails_cleanly([*args, "--rating-scale", "1,5"], "outside")
    fails_cleanly([*args, "--duplicates", "error", "--out-of-scale", "clip", "--rating-scale",
                   "1,5"], "duplicate")  # fmt: skip
    fails_cleanly([*args, "--rating-scale", "five"], "--rating-scale takes MIN,MAX")


def test_synth_writes_a_file_that_trains(tmp_path):
    path = tmp_path / "ratings.parquet"
    args = ["synth", "--users", "200", "--items", "100", "--ratings", "5000", "--out", str(path)]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["rows"] == 5000
    trained = runner.invoke(
        app, ["train", "--data", str(path), "--model", "bias", "--json", "--quiet"]
    )
    assert trained.exit_code == 0, trained.output
    assert json.loads(trained.stdout)["rmse"] < 1.5
    fails_cleanly([*args[:-2], "--out", str(tmp_path / "x.bin"), "--format", "xml"], "synth")


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


def test_fast_flag_turns_on_the_measured_fast_path_and_precision_overrides_it():
    from movierec.cli import _options

    fast = _options(0, "cpu", None, True, fast=True)
    assert (fast.precision, fast.fused_adam, fast.fast_dropout) == ("auto", True, True)
    pinned = _options(0, "cpu", None, True, precision="fp32", fast=True)
    assert (pinned.precision, pinned.fused_adam) == ("fp32", True)
    plain = _options(0, "cpu", None, True)
    assert (plain.precision, plain.fused_adam, plain.fast_dropout, plain.compile) == (
        "fp32",
        False,
        False,
        False,
    )


def test_train_fast_trains_and_a_bad_precision_is_one_line_and_exit_2(ratings_file):
    args = ["train", "--data", str(ratings_file), "--model", "mf", "--epochs", "2", "--json"]
    fast, plain = runner.invoke(app, [*args, "--fast"]), runner.invoke(app, args)
    assert fast.exit_code == 0 and plain.exit_code == 0, fast.output + plain.output
    # Same seed and split: bf16 products and cheap dropout masks barely move the test RMSE.
    rmse_fast, rmse_plain = (json.loads(r.stdout)["rmse"] for r in (fast, plain))
    assert rmse_fast == pytest.approx(rmse_plain, abs=0.02)
    fails_cleanly([*args, "--precision", "fp64"], "precision must be one of fp32, bf16, auto")
