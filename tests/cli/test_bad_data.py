"""Every file of the bad-input corpus (``tests/data/bad``) and a degenerate-data corpus, through
the commands that read data: each ends in a result or one ``error:`` line (exit 2), never a
traceback, a Python warning (only movierec's own one-line warnings) or a ``nan`` result."""

import re
import warnings
from pathlib import Path

import pytest

import movierec.cli.output as output
from movierec.cli import app
from movierec.errors import MovieRecWarning
from tests.cli.invoke import runner

BAD = Path(__file__).parents[1] / "data" / "bad"


def _rows(pairs) -> str:
    return "user,item,rating\n" + "\n".join(f"{u},{i},{r}" for u, i, r in pairs) + "\n"


# Files that read well but give a model little or nothing to learn from.
DEGENERATE = {
    "two_rows.csv": "user,movie,stars\n1,10,4\n2,11,3\n",
    "one_item.csv": _rows((u, 1, 1 + u % 5) for u in range(1, 41)),
    "one_user.csv": _rows((1, i, 1 + i % 5) for i in range(1, 41)),
    "one_value.csv": _rows((u, i, 4) for u in range(1, 31) for i in range(u % 9 + 1, u % 9 + 9)),
    "two_values.csv": _rows(
        (u, i, 1 + 4 * ((u + i) % 2)) for u in range(1, 31) for i in range(u % 7, u % 7 + 6)
    ),
    "each_user_once.csv": _rows((u, u % 10, 1 + u % 5) for u in range(1, 61)),
}

COMMANDS = {
    "train": ["train", "--model", "mf", "--epochs", "1", "-q", "--json"],
    "compare": ["compare", "--models", "bias,popularity", "-q", "--json"],
}
NAN = re.compile(r"\bnan\b", re.IGNORECASE)


@pytest.fixture(scope="module")
def degenerate(tmp_path_factory):
    folder = tmp_path_factory.mktemp("degenerate")
    for name, text in DEGENERATE.items():
        (folder / name).write_text(text)
    return folder


@pytest.fixture()
def shown_warnings(monkeypatch):
    """The category of every warning a command shows its user."""
    categories: list[type] = []
    original = output._one_line_warnings

    def recording() -> None:
        original()
        show = warnings.showwarning

        def noting(message, category, *args, **kwargs):
            categories.append(category)
            show(message, category, *args, **kwargs)

        warnings.showwarning = noting

    monkeypatch.setattr(output, "_one_line_warnings", recording)
    return categories


def check_clean(args, categories):
    result = runner.invoke(app, args)
    assert result.exit_code in (0, 2), (result.exit_code, result.output, result.exception)
    assert "Traceback" not in result.output
    assert not NAN.search(result.stdout), result.stdout  # (an error may name a NaN it read)
    foreign = [c.__name__ for c in categories if not issubclass(c, MovieRecWarning)]
    assert not foreign, f"Python warnings shown to the user: {foreign}\n{result.stderr}"
    lines = result.stderr.strip().splitlines()
    if result.exit_code == 2:
        assert lines[-1].startswith("error: ") and len(lines[-1]) > 20, result.stderr
    assert all(line.startswith(("error: ", "warning: ")) for line in lines), result.stderr


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name", sorted(p.name for p in BAD.iterdir()))
def test_bad_input_is_a_result_or_one_line(name, command, shown_warnings):
    check_clean([*COMMANDS[command], "--data", str(BAD / name)], shown_warnings)


@pytest.mark.parametrize("command", list(COMMANDS))
@pytest.mark.parametrize("name", list(DEGENERATE))
def test_degenerate_data_is_a_result_or_one_line(name, command, degenerate, shown_warnings):
    check_clean([*COMMANDS[command], "--data", str(degenerate / name)], shown_warnings)
