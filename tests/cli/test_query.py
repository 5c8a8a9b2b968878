"""Questions to a saved run: recommend, similar, predict; their errors are one line."""

import json

import pandas as pd
import pytest

from movierec.cli import app
from movierec.data.synthetic import synthetic_ratings
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


# -- allow- and deny-lists, IDs as the dataset spells them ---------------------------------------


def _json(args):
    result = runner.invoke(app, [*args, "--json"])
    assert result.exit_code == 0, result.output
    return json.loads(result.stdout)


def test_only_and_exclude_give_the_python_lists(run_dir, tmp_path):
    from movierec.artifacts import load_run

    recommender = load_run(run_dir)[0]
    plain = [r.item for r in recommender.top_n(1, 10)]
    allowed = tmp_path / "allowed.txt"
    allowed.write_text("\n".join(str(i) for i in range(1, 16)) + "\n")
    args = ["recommend", str(run_dir), "--user", "1", "-k", "10"]
    only = _json([*args, "--only", str(allowed), "--exclude", f"{plain[0]},{plain[1]}"])
    expected = recommender.top_n(1, 10, items=list(range(1, 16)), filter_items=[plain[0], plain[1]])
    assert [row["item"] for row in only] == [r.item for r in expected]
    assert {row["item"] for row in only} <= set(range(1, 16)) - {plain[0], plain[1]}
    excluded = _json([*args, "--exclude", str(plain[0])])
    assert [row["item"] for row in excluded] == plain[1:] + [
        r.item for r in recommender.top_n(1, 11)[10:]
    ]


def test_only_limits_every_users_list_and_similar_items(run_dir, tmp_path):
    out = tmp_path / "recs.csv"
    args = ["recommend", str(run_dir), "--all", "-q", "--only", "1,2,3,4,5,6", "--out", str(out)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    frame = pd.read_csv(out)
    assert set(frame["item"]) <= {1, 2, 3, 4, 5, 6}
    rated = synthetic_ratings(50, 30, 900, seed=4)  # the run_dir fixture's ratings
    rated = rated[rated["item_id"] <= 6].groupby("user_id").size()
    listed = frame.groupby("user").size()  # each user: the six less the ones they rated
    assert listed.to_dict() == {
        u: 6 - int(rated.get(u, 0)) for u in range(1, 51) if rated.get(u, 0) < 6
    }
    assert (frame.groupby("user")["rank"].max() == frame.groupby("user").size()).all()
    similar = _json(["similar", str(run_dir), "--item", "2", "--exclude", "3,4"])
    plain = _json(["similar", str(run_dir), "--item", "2", "-k", "12"])
    expected = [row["item"] for row in plain if row["item"] not in (3, 4)][:10]
    assert [row["item"] for row in similar] == expected


def test_a_visitors_list_takes_the_filters_too(run_dir, tmp_path):
    visitor = tmp_path / "visitor.csv"
    visitor.write_text("item,rating\n1,5\n2,4\n")
    args = ["recommend", str(run_dir), "--ratings", str(visitor), "-k", "5"]
    plain = [row["item"] for row in _json(args)]
    filtered = [row["item"] for row in _json([*args, "--exclude", str(plain[0])])]
    assert filtered[:4] == plain[1:] and plain[0] not in filtered


@pytest.mark.parametrize(
    ("flags", "named"),
    [
        (["--user", "1", "--only", "1,99999"], "--only 1,99999"),
        (["--user", "1", "--exclude", "88888"], "--exclude 88888"),
        (["--all", "--exclude", "2,77777"], "--exclude 2,77777"),
    ],
)
def test_a_filter_naming_unknown_items_is_one_line_and_writes_nothing(
    run_dir, tmp_path, flags, named
):
    out = tmp_path / "recs.csv"
    args = ["recommend", str(run_dir), *flags]
    args += ["--out", str(out)] if "--all" in flags else []
    message = fails_cleanly(args, "a filter naming unknown items")
    assert named in message and "remove them" in message
    assert not out.exists()
    message = fails_cleanly(["similar", str(run_dir), "--item", "2", "--only", "99999"], "99999")
    assert "a filter naming unknown items" in message


def test_a_filter_file_that_is_not_there_is_one_line(run_dir, tmp_path):
    missing = tmp_path / "items.txt"
    fails_cleanly(
        ["recommend", str(run_dir), "--user", "1", "--only", str(missing)], "no such file"
    )
    fails_cleanly(["recommend", str(run_dir), "--user", "1", "--exclude", " , "], "names no item")


def test_unknown_users_in_the_users_file_are_named_with_the_flag(run_dir, tmp_path):
    users = tmp_path / "users.txt"
    users.write_text("1\n424242\n515151\n")
    out = tmp_path / "recs.csv"
    args = ["recommend", str(run_dir), "--all", "--users", str(users), "--out", str(out)]
    message = fails_cleanly(args, "424242, 515151")
    assert f"--users {users}" in message and not out.exists()


def test_json_ids_keep_the_datasets_type_in_every_command(run_dir):
    predicted = _json(["predict", str(run_dir), "--user", "01", "--item", "2"])
    assert (predicted["user"], predicted["item"]) == (1, 2)  # ints, as the dataset has them
    recommended = _json(["recommend", str(run_dir), "--user", "1", "-k", "3"])
    similar = _json(["similar", str(run_dir), "--item", "2", "-k", "3"])
    assert all(type(row["item"]) is int for row in recommended + similar)


def test_an_unknown_item_says_use_an_item_id(run_dir):
    message = fails_cleanly(["predict", str(run_dir), "--user", "1", "--item", "99999"], "99999")
    assert "use an item ID" in message
    assert "use a user ID" in fails_cleanly(["recommend", str(run_dir), "--user", "424242"], "424")
