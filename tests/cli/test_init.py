"""The app itself: python -m movierec runs it."""

import subprocess
import sys


def test_python_dash_m_runs_the_cli(run_dir):
    done = subprocess.run(
        [sys.executable, "-m", "movierec", "recommend", str(run_dir), "--user", "424242"],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert done.stderr.count("\n") == 1 and "user 424242" in done.stderr
