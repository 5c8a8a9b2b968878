"""The shared options and their parsers."""

import pytest
import typer

from movierec.cli import app
from movierec.cli.options import NUMBER_RANGES, data_policy, run_options
from movierec.data import DataPolicy
from movierec.errors import ConfigError, DataError
from movierec.models import MODELS
from tests.cli.invoke import fails_cleanly


def test_the_fast_path_is_the_default_and_precision_fp32_is_the_exact_one():
    default = run_options(0, "cpu", None, True)
    assert (default.precision, default.compile) == ("auto", False)
    assert default.use_fused_adam and default.use_fast_dropout
    exact = run_options(0, "cpu", None, True, precision="fp32")
    assert not exact.use_fused_adam and not exact.use_fast_dropout
    # --fast (kept for old command lines) keeps fused Adam and the cheap masks even in fp32.
    pinned = run_options(0, "cpu", None, True, precision="fp32", fast=True)
    assert (pinned.precision, pinned.use_fused_adam, pinned.use_fast_dropout) == (
        "fp32",
        True,
        True,
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
# train --items / recommend --users / recommend --ratings: a file; synth's: how many.
OWN_MEANING |= {"--items", "--users", "--ratings"}


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
    named = help_text.rstrip(".").split("its own defaults: ")[-1]
    assert named.replace(" or ", ", ").split(", ") == list(MODELS)


def _numeric_options():
    """(command, flag, the arguments it needs) for every int or float option of every command."""
    group = typer.main.get_command(app)
    found = []
    for name, command in group.commands.items():
        needed = []
        for param in command.params:
            if param.required:
                needed += ["nowhere"] if not param.opts[0].startswith("-") else [param.opts[0], "x"]
        for param in command.params:
            if param.opts[0].startswith("--") and param.type_descriptor.annotation in (int, float):
                found.append((name, param.opts[0], needed))
    return found


def _bad_values(flag):
    low, high, low_allowed = NUMBER_RANGES[flag]
    bad = [str(low - 1), "nan"] if low_allowed else [str(low), str(low - 1), "inf"]
    if high is not None:
        bad.append(str(high + 1))
    return bad


@pytest.mark.parametrize(("command", "flag", "needed"), _numeric_options())
def test_every_numeric_option_is_checked_at_the_boundary(command, flag, needed):
    assert flag in NUMBER_RANGES, f"{command} {flag} has no range in NUMBER_RANGES"
    for value in _bad_values(flag):
        if value == "nan" and flag != "--checkpoint-minutes":
            continue  # an integer flag: click refuses "nan" itself
        message = fails_cleanly([command, *needed, f"{flag}={value}"], flag)
        assert "must be" in message


def test_the_numeric_options_cover_every_command():
    covered = {(command, flag) for command, flag, _ in _numeric_options()}
    assert ("train", "--seed") in covered and ("serve", "--port") in covered
    assert ("synth", "--chunk-size") in covered and ("recommend", "--threads") in covered
    assert {command for command, _ in covered} >= {"train", "compare", "evaluate", "tune"}


def test_a_negative_seed_is_one_line_not_a_traceback():
    message = fails_cleanly(
        ["train", "--data", "ml-100k", "--seed", "-3", "--epochs", "1"], "--seed"
    )
    assert message.endswith("--seed must be between 0 and 9223372036854775807, got -3")


@pytest.mark.parametrize("split", ["random:0", "random:1", "temporal:1.5", "stratified:0"])
def test_a_split_fraction_outside_0_to_1_is_one_line(ratings_file, split):
    args = ["train", "--data", str(ratings_file), "--model", "bias", "--split", split]
    fails_cleanly(args, "between 0 and 1")
