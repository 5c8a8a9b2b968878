"""train, compare and evaluate: JSON outputs, and every user error as one line with exit code 2."""

import json

import pandas as pd
import pytest

from movierec.cli import app
from movierec.data.synthetic import synthetic_ratings
from tests.cli.invoke import fails_cleanly, runner


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
        "evaluation_seconds",
        "epochs",
        "ratings_per_second",
    ):
        assert key in metrics
    assert metrics["split"] == "random:0.2"
    # What the run cost, beside each other, in run.json too (evaluate reads it back).
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["train_seconds"] == metrics["train_seconds"] > 0
    assert run["evaluation_seconds"] == metrics["evaluation_seconds"] > 0
    assert (tmp_path / "r" / "learning_curve.png").stat().st_size > 1000
    assert (tmp_path / "r" / "history.csv").read_text().startswith("epoch,")
    evaluated = runner.invoke(
        app, ["evaluate", str(tmp_path / "r"), "--data", str(ratings_file), "--json"]
    )
    assert evaluated.exit_code == 0, evaluated.output
    again = json.loads(evaluated.stdout)
    assert again["rmse"] == pytest.approx(metrics["rmse"], abs=1e-6)
    assert again["train_seconds"] == metrics["train_seconds"]
    assert again["evaluation_seconds"] > 0 and again["precision"] == "fp32"


def test_unknown_dataset_name():
    fails_cleanly(["train", "--data", "ml-7m"], "ml-7m")


def test_unknown_model(ratings_file):
    fails_cleanly(["train", "--data", str(ratings_file), "--model", "svd"], "unknown model 'svd'")


def test_bad_split(ratings_file):
    fails_cleanly(["train", "--data", str(ratings_file), "--split", "u1"], "canonical fold")


def test_bad_config_file(ratings_file, tmp_path):
    config = tmp_path / "bad.toml"
    config.write_text("[train]\nlearning_rate = 3\n")
    fails_cleanly(
        ["train", "--data", str(ratings_file), "--config", str(config)], "unknown training option"
    )


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


def test_train_fast_trains_and_a_bad_precision_is_one_line_and_exit_2(ratings_file):
    args = ["train", "--data", str(ratings_file), "--model", "mf", "--epochs", "2", "--json"]
    fast, plain = runner.invoke(app, [*args, "--fast"]), runner.invoke(app, args)
    assert fast.exit_code == 0 and plain.exit_code == 0, fast.output + plain.output
    # Same seed and split: bf16 products and cheap dropout masks barely move the test RMSE.
    rmse_fast, rmse_plain = (json.loads(r.stdout)["rmse"] for r in (fast, plain))
    assert rmse_fast == pytest.approx(rmse_plain, abs=0.02)
    fails_cleanly([*args, "--precision", "fp64"], "precision must be one of fp32, bf16, auto")


def test_train_split_none_reports_where_the_epochs_came_from(ratings_file, tmp_path):
    args = ["train", "--data", str(ratings_file), "--model", "mf", "--split", "none", "-q"]
    given = runner.invoke(app, [*args, "--epochs", "2", "--out", str(tmp_path / "given")])
    assert given.exit_code == 0, given.output
    assert "no test set" in given.stdout and "from --epochs" in given.stdout
    run = json.loads((tmp_path / "given" / "run.json").read_text())
    assert (run["split"], run["epochs_from"], run["epochs"]) == ("none", "--epochs", 2)
    chosen = runner.invoke(app, [*args, "--json", "--out", str(tmp_path / "chosen")])
    assert chosen.exit_code == 0, chosen.output
    metrics = json.loads(chosen.stdout)
    assert metrics["epochs_from"] == "validation" and "rmse" not in metrics
    assert metrics["epochs"] == metrics["validation"]["best_epoch"]


def test_evaluate_refuses_split_none(run_dir, ratings_file):
    args = ["evaluate", str(run_dir), "--data", str(ratings_file), "--split", "none"]
    fails_cleanly(args, "has none")


def test_train_items_names_any_item_file_and_its_titles_reach_the_run(ratings_file, tmp_path):
    ids = sorted(pd.read_csv(ratings_file)["item_id"].unique())
    items = tmp_path / "catalogue.tsv"
    frame = pd.DataFrame({"sku": ids, "label": [f"Film {i}" for i in ids], "kind": "Drama"})
    frame.to_csv(items, sep="\t", index=False)
    args = ["train", "--data", str(ratings_file), "--model", "bias", "-q", "--items", str(items)]
    result = runner.invoke(
        app, [*args, "--item-columns", "sku,label,kind", "--out", str(tmp_path / "run")]
    )
    assert result.exit_code == 0, result.output
    saved = json.loads((tmp_path / "run" / "items.json").read_text(encoding="utf-8"))
    assert saved[0]["title"] == f"Film {ids[0]}" and saved[0]["genres"] == "Drama"
    fails_cleanly([*args, "--item-columns", "sku,nope"], "has no column 'nope'")


def test_a_diverged_run_is_one_line_and_never_saved(ratings_file, tmp_path):
    config = tmp_path / "huge-lr.toml"
    config.write_text('[model]\nname = "mf"\n\n[train]\nlr = 1e30\nepochs = 20\n')
    args = ["train", "--data", str(ratings_file), "--config", str(config)]
    message = fails_cleanly([*args, "--out", str(tmp_path / "r"), "-q"], "diverged in epoch")
    assert "smaller lr" in message and "nan" not in message.split("epoch")[0]
    assert not (tmp_path / "r" / "manifest.json").exists()  # nothing loadable was written


def test_a_two_row_file_is_refused_in_one_line_without_numpy_warnings(tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("user,movie,stars\n1,10,4\n2,11,3\n")
    message = fails_cleanly(["train", "--data", str(path), "-q"], "no ratings in the test part")
    assert "Mean of empty slice" not in message and "nan" not in message


def test_one_rating_value_everywhere_warns_in_one_line(tmp_path):
    path = tmp_path / "fours.csv"
    rows = [f"{u},{i},4" for u in range(1, 31) for i in range(u % 9 + 1, u % 9 + 9)]
    path.write_text("user,item,rating\n" + "\n".join(rows) + "\n")
    args = ["train", "--data", str(path), "--model", "mf", "--epochs", "1", "--rating-scale"]
    result = runner.invoke(app, [*args, "1,5", "-q", "--json"])
    assert result.exit_code == 0, result.output
    assert result.stderr.strip().startswith("warning: every one of the")
    assert len(result.stderr.strip().splitlines()) == 1


def test_out_refuses_an_existing_run_and_overwrite_replaces_it_atomically(ratings_file, tmp_path):
    from movierec.artifacts import load_run, sha256_of

    run = tmp_path / "r"
    base = ["train", "--data", str(ratings_file), "--epochs", "1", "-q", "--out", str(run)]
    assert runner.invoke(app, [*base, "--model", "mf"]).exit_code == 0
    weights = sha256_of(run / "weights.safetensors")
    fails_cleanly([*base, "--model", "bias"], "already holds a run; add --overwrite")
    assert sha256_of(run / "weights.safetensors") == weights
    # An overwrite that fails (training diverges) leaves the old run whole and loadable.
    config = tmp_path / "huge-lr.toml"
    config.write_text('[model]\nname = "mf"\n\n[train]\nlr = 1e30\nepochs = 5\n')
    huge = ["train", "--data", str(ratings_file), "--config", str(config), "--out", str(run)]
    fails_cleanly([*huge, "--overwrite", "-q"], "diverged")
    assert load_run(run)[1]["model"] == "mf"
    assert sha256_of(run / "weights.safetensors") == weights
    result = runner.invoke(app, [*base, "--model", "bias", "--overwrite"])
    assert result.exit_code == 0, result.output
    assert load_run(run)[1]["model"] == "bias"
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


def test_out_over_a_checkpoint_says_resume_and_a_foreign_folder_is_never_replaced(
    ratings_file, tmp_path
):
    interrupted = tmp_path / "interrupted"
    interrupted.mkdir()
    (interrupted / "checkpoint.safetensors").write_bytes(b"x")
    base = ["train", "--data", str(ratings_file), "--model", "bias", "-q", "--out"]
    fails_cleanly([*base, str(interrupted)], "--resume")
    notes = tmp_path / "notes"
    notes.mkdir()
    (notes / "thesis.txt").write_text("keep me")
    fails_cleanly([*base, str(notes), "--overwrite"], "not a movierec run directory")
    assert (notes / "thesis.txt").read_text() == "keep me"


def test_compare_out_refuses_existing_runs_unless_overwrite(ratings_file, tmp_path):
    base = ["compare", "--data", str(ratings_file), "--models", "bias,mean", "-q"]
    assert runner.invoke(app, [*base, "--out", str(tmp_path)]).exit_code == 0
    fails_cleanly([*base, "--out", str(tmp_path)], "already holds a run")
    result = runner.invoke(app, [*base, "--out", str(tmp_path), "--overwrite"])
    assert result.exit_code == 0, result.output


def test_evaluate_on_a_split_with_an_empty_test_part_is_one_line(run_dir, tmp_path):
    path = tmp_path / "two.csv"
    path.write_text("user,item,rating\n1,1,4\n2,2,3\n")
    fails_cleanly(["evaluate", str(run_dir), "--data", str(path)], "no ratings in the test part")


def test_train_refit_says_so_in_the_table_the_json_and_run_json(ratings_file, tmp_path):
    args = ["train", "--data", str(ratings_file), "--model", "mf", "--epochs", "4", "--refit"]
    args += ["--threads", "1", "-q"]
    shown = runner.invoke(app, [*args, "--out", str(tmp_path / "shown")])
    assert shown.exit_code == 0, shown.output
    assert "refit on all" in shown.stdout and "chosen on the validation carve-out" in shown.stdout
    result = runner.invoke(app, [*args, "--json", "--out", str(tmp_path / "r")])
    assert result.exit_code == 0, result.output
    metrics = json.loads(result.stdout)
    assert metrics["refit"] is True and metrics["epochs_from"] == "validation"
    assert metrics["epochs"] == metrics["validation"]["best_epoch"] and "rmse" in metrics
    every = len(pd.read_csv(ratings_file))  # the refit learnt all training ratings
    assert metrics["n_valid"] == 0 and metrics["n_fit"] + metrics["n_test"] == every
    run = json.loads((tmp_path / "r" / "run.json").read_text())
    assert run["refit"] is True and run["epochs"] == metrics["epochs"]


def test_refit_errors_are_one_line_and_exit_2(ratings_file, tmp_path):
    base = ["train", "--data", str(ratings_file), "--refit"]
    fails_cleanly([*base, "--model", "ease"], "model 'ease' is fitted in closed form")
    fails_cleanly([*base, "--model", "popularity"], "has no epochs")
    config = tmp_path / "no-carve-out.toml"
    config.write_text('[model]\nname = "mf"\n[train]\nvalidation_fraction = 0.0\n')
    fails_cleanly([*base, "--config", str(config)], "refit needs [train] validation_fraction > 0")
    fails_cleanly(
        ["train", "--resume", str(tmp_path), "--refit"], "--refit cannot change a resumed run"
    )
    bench = ["benchmark", "--data", str(ratings_file), "--models", "mf,bias", "--refit"]
    fails_cleanly(bench, "model 'bias' is fitted in closed form")


def test_strict_refuses_ratings_of_items_the_metadata_lacks(tmp_path):
    import shutil

    from tests.data.canonical import FIXTURES

    folder = shutil.copytree(FIXTURES / "ml-latest-small", tmp_path / "ml-latest-small")
    with (folder / "ratings.csv").open("a") as handle:
        handle.write("999,999999,5.0,964982703\n")
    args = ["train", "--data", str(folder), "--model", "bias", "--json", "--split", "none"]
    fails_cleanly([*args, "--strict"], "missing from the item metadata (first: item 999999)")
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert json.loads(result.stdout)["data_report"]["ratings_unknown_item"] == 1
    assert "warning:" in result.stderr and "--strict refuses" in result.stderr
