"""Questions to a saved run: recommend, similar, predict; their errors are one line."""

import json

import pandas as pd
import pytest

from movierec.cli import app
from tests.cli.invoke import fails_cleanly, runner


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


def test_unknown_user_is_one_line_and_exit_2(run_dir):
    fails_cleanly(["recommend", str(run_dir), "--user", "424242"], "user 424242")


def test_unknown_item_is_one_line_and_exit_2(run_dir):
    fails_cleanly(["predict", str(run_dir), "--user", "1", "--item", "99999"], "item 99999")


def test_missing_run_directory(tmp_path):
    fails_cleanly(["recommend", str(tmp_path / "nope"), "--user", "1"], "not a movierec run")


def test_bad_k(run_dir):
    fails_cleanly(["recommend", str(run_dir), "--user", "1", "-k", "0"], "between 1 and 1000")


def test_bad_option_value_is_a_usage_error_with_exit_2(run_dir):
    result = runner.invoke(app, ["recommend", str(run_dir), "--user", "1", "-k", "ten"])
    assert result.exit_code == 2


def test_recommend_all_writes_every_users_list_as_csv(run_dir, tmp_path):
    out = tmp_path / "recs.csv"
    result = runner.invoke(app, ["recommend", str(run_dir), "--all", "-k", "4", "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["user", "rank", "item", "title", "score"]
    assert frame.groupby("user").size().eq(4).all() and frame["user"].nunique() == 50


def test_recommend_users_file_limits_the_lists(run_dir, tmp_path):
    users = tmp_path / "users.csv"
    users.write_text("user\n3\n1\n")
    out = tmp_path / "recs.parquet"
    args = ["recommend", str(run_dir), "--all", "--users", str(users), "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert pd.read_parquet(out)["user"].drop_duplicates().tolist() == [3, 1]


def test_recommend_all_bad_input_is_one_line_and_writes_nothing(run_dir, tmp_path):
    out = tmp_path / "recs.parquet"
    fails_cleanly(["recommend", str(run_dir), "--all"], "add --out")
    users = tmp_path / "users.txt"
    users.write_text("1\n424242\n")
    args = ["recommend", str(run_dir), "--all", "--users", str(users), "--out", str(out)]
    fails_cleanly(args, "424242")
    fails_cleanly(["recommend", str(run_dir), "--all", "--out", str(tmp_path / "r.json")], "suffix")
    fails_cleanly(["recommend", str(run_dir)], "--user")
    assert list(tmp_path.iterdir()) == [users]


def test_predict_pairs_writes_user_item_prediction(run_dir, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item\n1,2\n3,4\n1,5\n")
    out = tmp_path / "preds.csv"
    result = runner.invoke(app, ["predict", str(run_dir), "--pairs", str(pairs), "--out", str(out)])
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert list(frame.columns) == ["user", "item", "prediction"]
    assert frame[["user", "item"]].values.tolist() == [[1, 2], [3, 4], [1, 5]]
    assert frame["prediction"].between(1.0, 5.0).all()


def test_predict_pairs_with_unknown_ids_is_one_line_and_writes_nothing(run_dir, tmp_path):
    pairs = tmp_path / "pairs.csv"
    pairs.write_text("user,item\n1,2\n777777,4\n1,999999\n")
    out = tmp_path / "preds.csv"
    message = fails_cleanly(
        ["predict", str(run_dir), "--pairs", str(pairs), "--out", str(out)], "777777"
    )
    assert "in " + str(pairs) in message and "999999" in message
    fails_cleanly(["predict", str(run_dir), "--pairs", str(pairs)], "add --out")
    assert not out.exists()


@pytest.mark.slow
def test_a_run_on_all_of_ml100k_recommends_only_unrated_movies_to_every_user(tmp_path):
    from fastapi.testclient import TestClient

    from movierec.data import load_data
    from movierec.serving import create_app

    run = tmp_path / "prod"
    args = ["--data", "ml-100k", "--split", "none", "--model", "mf", "--epochs", "2", "-q"]
    trained = runner.invoke(app, ["train", *args, "--threads", "1", "--out", str(run)])
    assert trained.exit_code == 0, trained.output
    out = tmp_path / "recs.parquet"
    result = runner.invoke(app, ["recommend", str(run), "--all", "-q", "--out", str(out)])
    assert result.exit_code == 0, result.output
    recs = pd.read_parquet(out)
    assert len(recs) == 943 * 10 and recs.groupby("user").size().eq(10).all()
    assert recs["title"].str.contains(r"\(\d{4}\)").mean() > 0.99  # real titles, with years
    rated = load_data("ml-100k", progress=False).ratings[["user_id", "item_id"]]
    clash = recs.merge(rated, left_on=["user", "item"], right_on=["user_id", "item_id"])
    assert clash.empty  # the seen mask covers every rating of ml-100k
    one = runner.invoke(app, ["recommend", str(run), "--user", "1", "-k", "10", "--json"])
    assert one.exit_code == 0, one.output
    assert [r["item"] for r in json.loads(one.stdout)] == recs.loc[recs.user == 1, "item"].tolist()
    with TestClient(create_app(run)) as client:
        health = client.get("/health").json()
        assert (health["split"], health["n_users"]) == ("none", 943)
        listed = client.get("/users/1/recommendations").json()
        assert listed and client.get("/").status_code == 200


def test_recommend_all_out_refuses_an_existing_file_unless_overwrite(run_dir, tmp_path):
    out = tmp_path / "recs.csv"
    out.write_text("keep me\n")
    args = ["recommend", str(run_dir), "--all", "-k", "2", "-q", "--out", str(out)]
    fails_cleanly(args, "already exists; add --overwrite")
    assert out.read_text() == "keep me\n"
    result = runner.invoke(app, [*args, "--overwrite"])
    assert result.exit_code == 0, result.output
    assert out.read_text().startswith("user,rank,item")


def test_predict_pairs_out_refuses_an_existing_file_unless_overwrite(run_dir, tmp_path):
    pairs, out = tmp_path / "pairs.csv", tmp_path / "preds.csv"
    pairs.write_text("user,item\n1,1\n")
    out.write_text("keep me\n")
    fails_cleanly(["predict", str(run_dir), "--pairs", str(pairs), "--out", str(out)], "exists")
    assert out.read_text() == "keep me\n"
