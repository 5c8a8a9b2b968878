"""The ``movierec`` command line: parse, delegate, print. No logic of its own.

One module per command group, in the shape of LensKit's ``cli/``: :mod:`~movierec.cli.data`
(datasets, fetch, synth), :mod:`~movierec.cli.train` (train, compare, evaluate),
:mod:`~movierec.cli.query` (recommend, similar, predict), :mod:`~movierec.cli.serve` and
:mod:`~movierec.cli.tune` (tune, benchmark). Shared options are declared once in
:mod:`~movierec.cli.options`; errors, JSON and tables are printed by :mod:`~movierec.cli.output`.
Errors users can cause print one line (``error: ...``) on stderr and exit with code 2.
"""

from __future__ import annotations

import typer

from movierec.cli import data, query, serve, train, tune

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
    query.recommend,
    query.similar,
    query.predict,
    serve.serve,
    data.synth,
    tune.tune,
    tune.benchmark,
):
    app.command()(_command)


def main() -> None:
    """Entry point of the ``movierec`` script and ``python -m movierec``."""
    app()
