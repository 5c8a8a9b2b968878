"""datasets, fetch and synth."""

import json

from movierec.cli import app
from tests.cli.invoke import fails_cleanly, runner


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
