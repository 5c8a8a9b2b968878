"""The learning curve is drawn without pyplot, so saving a run leaves a notebook's matplotlib
alone: its backend stays the one it chose, and pyplot is not even imported."""

import subprocess
import sys
import textwrap
from pathlib import Path

SCRIPT = textwrap.dedent(
    """
    import sys
    import matplotlib

    matplotlib.use("svg")  # what a notebook chose before saving a run
    from movierec.plotting import plot_learning_curve
    from movierec.train import EpochRecord

    history = [EpochRecord(e, 1.0 / e, 1.2 / e, 1.1 / e, 1e-3, 0.1) for e in (1, 2, 3)]
    plot_learning_curve(history, sys.argv[1], "mf on test")
    print(matplotlib.get_backend(), "matplotlib.pyplot" in sys.modules)
    """
)


def test_saving_a_plot_keeps_the_backend_and_never_imports_pyplot(tmp_path):
    out = tmp_path / "curve.png"
    src = Path(__file__).resolve().parents[1] / "src"
    done = subprocess.run(
        [sys.executable, "-c", SCRIPT, str(out)],
        capture_output=True,
        text=True,
        env={"PYTHONPATH": str(src), "OMP_NUM_THREADS": "1", "PATH": ""},
        timeout=120,
        check=False,
    )
    assert done.returncode == 0, done.stderr
    assert done.stdout.split() == ["svg", "False"]
    assert out.read_bytes().startswith(b"\x89PNG") and out.stat().st_size > 1000
