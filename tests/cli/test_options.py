"""The shared options and their parsers."""

import pytest
import typer

from movierec.cli import app
from movierec.cli.options import data_policy, run_options
from movierec.data import DataPolicy
from movierec.errors import ConfigError, DataError
from movierec.models import MODELS


def test_fast_flag_turns_on_the_measured_fast_path_and_precision_overrides_it():
    fast = run_options(0, "cpu", None, True, fast=True)
    assert (fast.precision, fast.fused_adam, fast.fast_dropout) == ("auto", True, True)
    pinned = run_options(0, "cpu", None, True, precision="fp32", fast=True)
    assert (pinned.precision, pinned.fused_adam) == ("fp32", True)
    plain = run_options(0, "cpu", None, True)
    assert (plain.precision, plain.fused_adam, plain.fast_dropout, plain.compile) == (
        "fp32",
        False,
        False,
        False,
    )


def test_the_data_policy_flags_make_one_checked_policy():
    assert data_policy("mean", "1,5", "clip") == DataPolicy("mean", (1.0, 5.0), "clip")
    assert data_policy("keep-last", None, "error") == DataPolicy()
    with pytest.raises(ConfigError, match="MIN,MAX"):
        data_policy("mean", "five", "clip")
    with pytest.raises(DataError, match="duplicates"):
        data_policy("sum", None, "error")


def _declarations():
    """Every command's options by flag: (command, what the flag declares)."""
    group = typer.main.get_command(app)
    found: dict[str, list[tuple[str, tuple]]] = {}
    for name, command in group.commands.items():
        for param in command.params:
            declared = (tuple(param.opts), param.default, param.help, param.required)
            found.setdefault(param.opts[0], []).append((name, declared))
    return found


# Flags that mean something else in some command: each keeps its own declaration.
OWN_MEANING = {"--data", "--seed", "--out", "--config", "--models", "--threads", "--epochs"}
OWN_MEANING |= {"--user", "--item", "--help"}
# train --items / recommend --users: a file; synth --items / --users: how many.
OWN_MEANING |= {"--items", "--users"}


def test_shared_options_are_declared_once():
    found = _declarations()
    for flag, uses in found.items():
        if flag not in OWN_MEANING:
            assert len({declared for _, declared in uses}) == 1, (flag, uses)
    data_commands = {"train", "compare", "evaluate"}
    for flag in ("--columns", "--duplicates", "--rating-scale", "--out-of-scale", "--relevance"):
        assert {command for command, _ in found[flag]} == data_commands, flag
    for flag in ("--device", "--json", "--quiet", "--k", "--split"):
        assert len(found[flag]) > 2, flag
    assert found["--duplicates"][0][1][1:3] == (
        "keep-last",
        "Repeated (user, item) ratings: keep-last, mean or error. The count is reported.",
    )


def test_model_help_names_every_registered_model():
    [(command, (_, _, help_text, _))] = _declarations()["--model"]
    assert command == "train"
    assert help_text.rstrip(".").replace(" or ", ", ").split(", ") == list(MODELS)
