"""movierec blend: two real runs blended on their carve-out and scored on their test set, and
every run that cannot be blended refused in one line with exit code 2."""

import json

import numpy as np
import pandas as pd
import pytest

from movierec.blend import fit_blend, load_blend
from movierec.cli import app
from movierec.data.synthetic import synthetic_ratings
from tests.cli.invoke import fails_cleanly, runner


def train(ratings_file, out, *extra):
    args = ["train", "--data", str(ratings_file), "--out", str(out), "--threads", "1", "--json"]
    result = runner.invoke(app, [*args, *extra])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


@pytest.fixture(scope="module")
def runs(ratings_file, tmp_path_factory):
    """Runs on one ratings file: bias and mf of seed 0 (the members), and one of each way a
    run cannot join them."""
    folder = tmp_path_factory.mktemp("blend")
    train(ratings_file, folder / "bias", "--model", "bias")
    train(ratings_file, folder / "mf", "--model", "mf", "--epochs", "6")
    train(ratings_file, folder / "seed1", "--model", "mf", "--epochs", "2", "--seed", "1")
    split = ("--split", "random:0.3")
    train(ratings_file, folder / "split", "--model", "mf", "--epochs", "2", *split)
    train(ratings_file, folder / "bpr", "--model", "mf", "--epochs", "2", "--objective", "bpr")
    no_carve_out = folder / "no-carve-out.toml"
    no_carve_out.write_text('[model]\nname = "mf"\n[train]\nepochs = 2\nvalidation_fraction = 0\n')
    train(ratings_file, folder / "fixed", "--config", str(no_carve_out))
    fraction = folder / "fraction.toml"
    fraction.write_text('[model]\nname = "mf"\n[train]\nepochs = 2\nvalidation_fraction = 0.2\n')
    train(ratings_file, folder / "fraction", "--config", str(fraction))
    other = folder / "other.csv"
    synthetic_ratings(60, 40, 1500, seed=7).to_csv(other, index=False)
    train(other, folder / "other-data", "--model", "mf", "--epochs", "2")
    return folder


def test_a_blend_of_two_runs_fits_the_carve_out_and_scores_the_test_set(runs, ratings_file):
    out = runs / "blend"
    args = ["blend", str(runs / "bias"), str(runs / "mf"), "--out", str(out), "--alpha", "0"]
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    valid = report["validation_rmse"]
    # Least squares on the carve-out does at least as well there as either member alone.
    assert valid["blend"] <= min(valid["bias"], valid["mf"]) + 1e-12
    assert [m["name"] for m in report["members"]] == ["bias", "mf"]
    assert all(m["split"] == "random:0.2" and m["seed"] == 0 for m in report["members"])
    # Each member's test numbers are those `movierec evaluate` gives its run.
    for name in ("bias", "mf"):
        evaluated = runner.invoke(
            app, ["evaluate", str(runs / name), "--data", str(ratings_file), "--json"]
        )
        metrics = json.loads(evaluated.stdout)
        assert report["test"][name]["rmse"] == pytest.approx(metrics["rmse"], abs=1e-6)
        assert report["test"]["n_test"] == metrics["test_ratings"]
    saved = json.loads((out / "blend.json").read_text())
    assert saved["test"] == report["test"] and saved["alpha"] == 0.0
    frame = pd.read_parquet(out / "test_predictions.parquet")
    assert len(frame) == report["test"]["n_test"]
    blended = np.sqrt(np.mean((frame["blend"] - frame["rating"]) ** 2))
    assert blended == pytest.approx(report["test"]["blend"]["rmse"])
    # The saved blend rebuilds and predicts as it did.
    again = load_blend(out).predict(frame["user_id"].to_numpy(), frame["item_id"].to_numpy())
    np.testing.assert_allclose(again, frame["blend"].to_numpy())


def test_the_penalty_is_chosen_on_the_carve_out_without_alpha(runs):
    out = runs / "chosen"
    result = runner.invoke(app, ["blend", str(runs / "bias"), str(runs / "mf"), "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "blend saved to" in result.stdout
    assert json.loads((out / "blend.json").read_text())["alpha_from"] == "cross-validation"


@pytest.mark.parametrize(
    ("other", "message"),
    [
        ("seed1", "differ in seed (0 vs 1)"),
        ("split", "differ in split ('random:0.2' vs 'random:0.3')"),
        ("fraction", "differ in validation_fraction (0.1 vs 0.2)"),
        ("other-data", "differ in dataset"),
        ("fixed", "holds no validation predictions"),
        ("bpr", "predicts ranking scores, not ratings"),
    ],
)
def test_runs_that_cannot_be_blended_are_refused(runs, other, message):
    args = ["blend", str(runs / "mf"), str(runs / other), "--out", str(runs / "never")]
    line = fails_cleanly(args, message)
    assert "retrain" in line or "leave it out" in line
    assert not (runs / "never").exists()


def test_fewer_than_two_runs_are_refused(runs):
    one = ["blend", str(runs / "mf"), "--out", str(runs / "never")]
    fails_cleanly(one, "at least 2 runs, got 1")
    fails_cleanly(["blend", "--out", str(runs / "never")], "at least 2 runs, got 0")


def test_an_existing_out_needs_overwrite(runs):
    out = runs / "again"
    members = [str(runs / "bias"), str(runs / "mf")]
    assert runner.invoke(app, ["blend", *members, "--out", str(out)]).exit_code == 0
    fails_cleanly(["blend", *members, "--out", str(out)], "add --overwrite")
    assert runner.invoke(app, ["blend", *members, "--out", str(out), "--overwrite"]).exit_code == 0


def test_a_negative_alpha_and_a_missing_out_are_refused(runs):
    members = [str(runs / "bias"), str(runs / "mf")]
    fails_cleanly(["blend", *members, "--out", str(runs / "n"), "--alpha", "-1"], "--alpha")
    fails_cleanly(["blend", *members], "--out is required")


def test_features_none_is_one_weight_per_member_and_named_features_are_saved(runs):
    members = [str(runs / "bias"), str(runs / "mf")]
    plain = runner.invoke(
        app, ["blend", *members, "--out", str(runs / "p"), "--features", "none", "--json"]
    )
    assert plain.exit_code == 0, plain.output
    report = json.loads(plain.stdout)
    assert report["features"] == [] and set(report["cv_rmse"]) == {"plain"}
    assert "feature_weights" not in report["members"][0]
    assert not (runs / "p" / "user_features.parquet").exists()

    out = runs / "weighted"
    args = ["blend", *members, "--out", str(out), "--features", "user_count,item_std", "--json"]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    report = json.loads(result.stdout)
    assert report["features"] == ["user_count", "item_std"]
    assert report["features_from"] == "--features"
    assert set(report["members"][0]["feature_weights"]) == {"user_count", "item_std"}
    # Its in-sample fit on the carve-out is at least the plain one's (it has more columns).
    plain_valid = json.loads(plain.stdout)["validation_rmse"]["blend"]
    assert report["validation_rmse"]["blend"] <= plain_valid + 1e-9
    frame = pd.read_parquet(out / "test_predictions.parquet")
    again = load_blend(out).predict(frame["user_id"].to_numpy(), frame["item_id"].to_numpy())
    np.testing.assert_allclose(again, frame["blend"].to_numpy())
    # The default lets the carve-out's cross-validation choose, and says what it compared.
    auto = json.loads(
        runner.invoke(app, ["blend", *members, "--out", str(runs / "a"), "--json"]).stdout
    )
    assert auto["features_from"] == "cross-validation" and set(auto["cv_rmse"]) == {
        "plain",
        "features",
    }
    kept = "features" if auto["features"] else "plain"
    assert auto["cv_rmse"][kept] == min(auto["cv_rmse"].values())


def test_unknown_features_are_refused(runs):
    members = [str(runs / "bias"), str(runs / "mf")]
    args = ["blend", *members, "--out", str(runs / "never"), "--features", "user_age"]
    fails_cleanly(args, "--features must be auto, none or names of")
    assert not (runs / "never").exists()


def test_runs_of_split_none_blend_plain_from_python_and_the_cli_says_there_is_no_test(
    ratings_file, tmp_path
):
    for name in ("mf", "svdpp"):
        train(ratings_file, tmp_path / name, "--model", name, "--split", "none")
    runs = [tmp_path / "mf", tmp_path / "svdpp"]
    blend = fit_blend(runs)  # auto: no split to count features in, so one weight per member
    assert blend.features is None and "--split none" in blend.features_from
    args = ["blend", *map(str, runs), "--out", str(tmp_path / "never")]
    fails_cleanly(args, "trained with --split none")
