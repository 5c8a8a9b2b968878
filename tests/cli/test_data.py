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


def test_synth_out_refuses_an_existing_file_unless_overwrite(tmp_path):
    path = tmp_path / "ratings.csv"
    args = ["synth", "--users", "20", "--items", "10", "--ratings", "100", "--format", "csv"]
    assert runner.invoke(app, [*args, "--out", str(path), "-q"]).exit_code == 0
    before = path.read_bytes()
    fails_cleanly([*args, "--out", str(path), "--seed", "1"], "already exists; add --overwrite")
    assert path.read_bytes() == before
    result = runner.invoke(app, [*args, "--out", str(path), "--seed", "1", "--overwrite", "-q"])
    assert result.exit_code == 0, result.output
    assert path.read_bytes() != before


def test_synth_overwrites_a_netflix_folder_by_swapping_it(tmp_path):
    folder = tmp_path / "netflix"
    args = ["synth", "--users", "20", "--items", "10", "--ratings", "100", "--format", "netflix"]
    assert runner.invoke(app, [*args, "--out", str(folder), "-q"]).exit_code == 0
    fails_cleanly([*args, "--out", str(folder)], "--overwrite")
    result = runner.invoke(app, [*args, "--out", str(folder), "--seed", "2", "--overwrite", "-q"])
    assert result.exit_code == 0, result.output
    assert (folder / "combined_data_1.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["netflix"]  # nothing left beside it
