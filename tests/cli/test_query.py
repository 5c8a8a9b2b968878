"""Questions to a saved run: recommend, similar, predict; their errors are one line."""

import json

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
