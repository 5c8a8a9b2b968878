"""README.md cannot drift from the code: its Python blocks run, its TOML blocks load as configs,
and every ``movierec`` command line in a shell block parses against the real CLI."""

from __future__ import annotations

import re
import shlex
from pathlib import Path

import pytest
import typer

from movierec.cli import app
from movierec.config import ModelSpec

README = Path(__file__).resolve().parents[1] / "README.md"
FENCE = re.compile(r"^```(\w*)\n(.*?)^```", re.S | re.M)
OPTIONAL = re.compile(r"\[[^\[\]]*\]")  # usage notation: `[--epochs N]`
SHELL = {"", "bash", "sh", "console"}
# typer vendors click: its UsageError (base of every parse error) is reached through a public class.
UsageError = next(c for c in typer.BadParameter.__mro__ if c.__name__ == "UsageError")


def blocks(language: str) -> list[str]:
    """The README's fenced blocks of ``language`` (shell: any of :data:`SHELL`)."""
    found = [(lang, body) for lang, body in FENCE.findall(README.read_text(encoding="utf-8"))]
    wanted = SHELL if language == "shell" else {language}
    return [body for lang, body in found if lang in wanted]


def command_lines(block: str) -> list[list[str]]:
    """Each ``movierec ...`` invocation in a shell block, as argv after ``movierec``.

    Continuation lines (indented options, a trailing backslash) join their command; comments,
    usage brackets, environment assignments and a trailing ``&`` are dropped; ``torchrun ... -m
    movierec`` counts as a movierec command.
    """
    joined: list[str] = []
    for raw in block.splitlines():
        line = raw.split(" #", 1)[0].rstrip()
        if line.startswith("#") or not line.strip():
            continue
        if joined and (joined[-1].endswith("\\") or raw.startswith(" ")):
            joined[-1] = joined[-1].rstrip("\\") + " " + line.strip()
        else:
            joined.append(line)
    commands = []
    for line in joined:
        while OPTIONAL.search(line):
            line = OPTIONAL.sub("", line)
        words = shlex.split(line.rstrip("&").strip())
        words = [w for w in words if not re.fullmatch(r"[A-Z_]+=\S*", w)]
        if "-m" in words and words[words.index("-m") + 1 : words.index("-m") + 2] == ["movierec"]:
            commands.append(words[words.index("-m") + 2 :])
        elif words and words[0] == "movierec":
            commands.append(words[1:])
    return commands


def parse(argv: list[str]) -> None:
    """Parse ``argv`` with the CLI's own parser (types, choices, required values), running
    nothing: a wrong option or value raises :class:`UsageError`."""
    group = typer.main.get_command(app)
    context = typer.Context(group, info_name="movierec")
    name, *rest = argv or [""]
    command = group.get_command(context, name)
    if command is None:
        raise UsageError(f"no such command {name!r}", context)
    command.make_context(name, rest, parent=context)


def test_the_readme_has_blocks_of_each_kind():
    assert blocks("python") and blocks("toml") and len(blocks("shell")) >= 5
    assert sum(len(command_lines(b)) for b in blocks("shell")) >= 20


@pytest.mark.parametrize(
    "argv", [c for b in blocks("shell") for c in command_lines(b)], ids=" ".join
)
def test_every_command_line_parses(argv):
    parse(argv)


@pytest.mark.parametrize(
    "argv",
    [["train", "--dat", "ml-100k"], ["train", "--epochs", "many"], ["recommend"], ["nonsense"]],
    ids=" ".join,
)
def test_the_parse_check_catches_a_wrong_line(argv):
    with pytest.raises(UsageError):
        parse(argv)


def test_every_script_a_shell_block_runs_exists():
    root = README.parent
    for block in blocks("shell"):
        for word in re.findall(r"(?:python|bash) ((?:benchmarks|\.ci)/\S+)", block):
            assert (root / word).is_file(), word


@pytest.mark.parametrize("text", blocks("toml"))
def test_every_toml_block_is_a_config_train_accepts(text, tmp_path):
    path = tmp_path / "config.toml"
    path.write_text(text, encoding="utf-8")
    spec = ModelSpec.resolve(config_path=path)
    assert spec.name  # resolved through the model's own config dataclass


@pytest.mark.parametrize("code", blocks("python"))
def test_every_python_block_runs(code, tmp_path, monkeypatch):
    monkeypatch.chdir(tmp_path)  # runs/... are written here, not into the checkout
    exec(compile(code, str(README), "exec"), {"__name__": "readme"})
