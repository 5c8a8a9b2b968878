"""The ``movierec`` command line: parse, delegate, print. No logic of its own.

One module per command group, in the shape of LensKit's ``cli/``: :mod:`~movierec.cli.data`
(datasets, fetch, synth), :mod:`~movierec.cli.train` (train, compare, evaluate, blend),
:mod:`~movierec.cli.query` (recommend, similar, predict), :mod:`~movierec.cli.serve` and
:mod:`~movierec.cli.tune` (tune, benchmark). Shared options are declared once in
:mod:`~movierec.cli.options`; errors, JSON and tables are printed by :mod:`~movierec.cli.output`.
Errors users can cause print one line (``error: ...``) on stderr and exit with code 2.
"""

from __future__ import annotations

import sys
from difflib import get_close_matches
from typing import Any

import typer
from typer.core import TyperCommand

from movierec.cli import data, query, serve, train, tune

# typer re-exports click's BadParameter; NoSuchOption lives beside it (in click, or in the copy of
# click that newer typer releases vendor), so this finds it whichever typer is installed.
_NoSuchOption = sys.modules[typer.BadParameter.__module__].NoSuchOption


class _Command(TyperCommand):
    """A command whose unknown-option error names the single closest option.

    Click lists every near match in alphabetical order ("--dat (Possible options: --data, --fast,
    --out)"); the closest one alone is what the user meant.
    """

    def parse_args(self, ctx: Any, args: list[str]) -> list[str]:
        try:
            return super().parse_args(ctx, args)
        except _NoSuchOption as exc:
            if exc.possibilities:
                closest = get_close_matches(exc.option_name, exc.possibilities, n=1, cutoff=0)
                exc.message = f"{exc.message}. Did you mean {closest[0]}?"
                exc.possibilities = None
            raise


app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="movierec: train the EmbeddingNet and its baselines on MovieLens, and recommend.",
)
for _command in (
    data.datasets,
    data.fetch,
    train.train,
    train.compare,
    train.evaluate,
    train.blend,
    query.recommend,
    query.similar,
    query.predict,
    serve.serve,
    data.synth,
    tune.tune,
    tune.benchmark,
):
    app.command(cls=_Command)(_command)


def main() -> None:
    """Entry point of the ``movierec`` script and ``python -m movierec``."""
    app()
