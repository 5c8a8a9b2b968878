"""The app itself: python -m movierec runs it."""

import subprocess
import sys

from movierec.cli import app
from tests.cli.invoke import runner


def test_python_dash_m_runs_the_cli(run_dir):
    done = subprocess.run(
        [sys.executable, "-m", "movierec", "recommend", str(run_dir), "--user", "424242"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "user 424242" in done.stderr


def test_an_unknown_option_suggests_the_closest_one(run_dir):
    result = runner.invoke(app, ["recommend", str(run_dir), "--usr", "1"])
    assert result.exit_code == 2
    assert "No such option: --usr. Did you mean --user?" in result.output
    result = runner.invoke(app, ["train", "--dat", "ml-100k"])
    assert result.exit_code == 2
    assert "Did you mean --data?" in result.output and "Possible options" not in result.output
    result = runner.invoke(app, ["train", "--zzzzz", "1"])
    assert result.exit_code == 2 and "Did you mean" not in result.output


def test_help_shows_toml_table_names_rich_would_take_for_markup():
    shown = runner.invoke(app, ["train", "--help"], env={"COLUMNS": "200"})
    assert shown.exit_code == 0 and "TOML file with [model] and [train]." in shown.output
    shown = runner.invoke(app, ["tune", "--help"], env={"COLUMNS": "200"})
    assert "base [model]/[train] plus a [search] table." in shown.output
