"""Every option shared by several commands, declared once, and the parsers of their values.

A command takes ``seed: int = SEED``; what a flag is called, its default and its help live here
alone, so two commands cannot drift apart. The parsers turn the flags' text into the arguments
of :mod:`movierec.experiment` (columns, data policies, objective, relevance, run options).
"""

from __future__ import annotations

import inspect
import math
from collections.abc import Callable
from typing import Any

import typer
from rich.markup import escape

from movierec.config import RunOptions
from movierec.data.policies import DataPolicy
from movierec.errors import ConfigError
from movierec.models import MODELS


def _one_of(names: list[str]) -> str:
    return ", ".join(names[:-1]) + f" or {names[-1]}" if len(names) > 1 else names[0]


DATA = typer.Option(..., "--data", help="A catalogue name (ml-100k), a directory or a file.")
SPLIT = typer.Option(
    None,
    "--split",
    help="u1..u5 (ml-100k), random[:F], temporal[:F], leave-last[:K], stratified[:F] "
    "(per user; F default 0.25), or none (train: every rating, no test set).",
)
COLUMNS = typer.Option(
    None, "--columns", help="Column names of a ratings file: user,item,rating[,timestamp]."
)
ITEMS = typer.Option(
    None,
    "--items",
    help="Item metadata file (titles, genres, any columns) in place of the data's own; its "
    "id, title, genres columns found by name, or named with --item-columns. A ratings file "
    "beside movies.csv, movies.dat or u.item picks that up without it.",
)
ITEM_COLUMNS = typer.Option(
    None, "--item-columns", help="Column names of the --items file: id,title[,genres]."
)
DUPLICATES = typer.Option(
    "keep-last",
    "--duplicates",
    help="Repeated (user, item) ratings: keep-last, mean or error. The count is reported.",
)
RATING_SCALE = typer.Option(
    None, "--rating-scale", help="Declared rating scale MIN,MAX (default: the dataset's own)."
)
OUT_OF_SCALE = typer.Option(
    "error", "--out-of-scale", help="Ratings outside the scale: error, clip or drop."
)
MODEL = typer.Option(
    None,
    "--model",
    help=(
        "default (when neither --model nor --config is given: the EmbeddingNet with a ranking "
        f"tower, trained joint), or a model with its own defaults: {_one_of(list(MODELS))}."
    ),
)
# Rich would read [model] and [train] as markup and print nothing in their place.
TRAIN_CONFIG = typer.Option(None, "--config", help=escape("TOML file with [model] and [train]."))
K = typer.Option(10, "--k", "-k", help="How many items.")
OBJECTIVE = typer.Option(
    None,
    "--objective",
    help=(
        "Training objective: rating (MSE, default), bpr, bce, softmax (sampled softmax) or "
        "joint (MSE + ranking)."
    ),
)
NEGATIVES = typer.Option(
    None,
    "--negatives",
    help="Sampled negatives per rated pair (bpr/bce/joint; model default).",
)
NEGATIVE_SAMPLING = typer.Option(
    None,
    "--negative-sampling",
    help="uniform or popularity (bpr/bce/joint; default uniform).",
)
RELEVANCE = typer.Option(
    None,
    "--relevance",
    help="Which test items are relevant for ranking metrics: any, or >=R (e.g. >=4). "
    "Default: any for the stratified split, >=4 otherwise.",
)
RANK_BY = typer.Option(
    "shrunk",
    "--rank-by",
    help="How a rating run orders lists: shrunk (prediction less a margin for items with few "
    "training ratings) or raw (the predicted rating). Ranking and joint runs ignore it.",
)
ONLY = typer.Option(
    None,
    "--only",
    help="Only these items may be listed: a file of item IDs (one a line, or an item column) "
    "or IDs separated by commas (50,172,181).",
)
EXCLUDE = typer.Option(
    None,
    "--exclude",
    help="Never list these items: a file of item IDs or IDs separated by commas.",
)
SEED = typer.Option(0, "--seed", help="Seed for the split, initialisation, shuffling, dropout.")
DEVICE = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:N.")
THREADS = typer.Option(None, "--threads", help="CPU threads for PyTorch (default: all cores).")
JSON = typer.Option(False, "--json", help="Print one JSON document instead of tables.")
QUIET = typer.Option(False, "--quiet", "-q", help="No progress bars.")
PRECISION = typer.Option(
    None,
    "--precision",
    help="auto, bf16 or fp32. Training: auto is the default (bf16 where the CPU/GPU has native "
    "bf16 matrix units, fused Adam, cheap dropout masks); fp32 is the exact path of PyTorch's "
    "plain modules. Scoring lists (evaluate, recommend): fp32 is the default and exact; "
    "auto/bf16 run the EmbeddingNet's deep layers in bf16 where native.",
)
FAST = typer.Option(
    False,
    "--fast",
    help="Kept for old command lines: the fast path (--precision auto, fused Adam, cheap dropout "
    "masks) is now the default; with --precision fp32 it keeps fused Adam and the cheap masks.",
)
COMPILE = typer.Option(
    False, "--compile", help="torch.compile the training step (pays on GPUs, not on small CPUs)."
)
OVERWRITE = typer.Option(
    False,
    "--overwrite",
    help="Replace what --out names when it exists (the old one is kept whole until the new one "
    "is complete); without it an existing --out is refused.",
)
RUN_DIR = typer.Argument(..., help="A run directory written by `movierec train`.")
REFIT = typer.Option(
    None,
    "--refit/--no-refit",
    help=escape(
        "After early stopping chose the epoch count on the validation carve-out, train again "
        "from scratch on the whole training part for that many epochs and keep that model "
        "(default: the config's [train] refit). Trainable models only."
    ),
)


# The range of every numeric flag, by flag, checked before a command does any work: (lowest,
# highest, whether the lowest itself is allowed). A flag that means another thing in another command
# (train --items is a file, synth --items a count) is only checked where its value is a number.
NUMBER_RANGES: dict[str, tuple[float, float | None, bool]] = {
    "--seed": (0, 2**63 - 1, True),
    "--k": (1, 1000, True),  # as long as a Recommender makes (recommend._check_k)
    "--epochs": (0, None, True),
    "--negatives": (1, None, True),
    "--threads": (1, None, True),
    "--workers": (1, None, True),
    "--nproc": (1, None, True),
    "--port": (1, 65535, True),
    "--trials": (1, None, True),
    "--seeds": (1, None, True),
    "--users": (1, None, True),
    "--items": (1, None, True),
    "--ratings": (1, None, True),
    "--chunk-size": (1, None, True),
    "--checkpoint-minutes": (0, None, False),
    "--score-budget-mib": (0, None, True),
    "--alpha": (0, None, True),
}


def check_numbers(command: Callable[..., Any], values: dict[str, Any]) -> None:
    """One ConfigError naming the first numeric flag of ``command`` outside its range.

    The boundary check of every command (:func:`movierec.cli.output.user_errors` calls it before
    the command runs): a bad ``--seed`` or ``--port`` is one line and exit code 2 rather than a
    traceback from deep inside numpy or uvicorn.
    """
    for name, parameter in inspect.signature(command).parameters.items():
        value = values.get(name)
        declared = getattr(parameter.default, "param_decls", None) or ()
        flag = next((d for d in declared if d.startswith("--")), None)
        if flag not in NUMBER_RANGES or isinstance(value, bool):
            continue
        if not isinstance(value, (int, float)):
            continue
        low, high, low_allowed = NUMBER_RANGES[flag]
        inside = math.isfinite(value) and (value >= low if low_allowed else value > low)
        if high is not None:
            inside = inside and value <= high
        if not inside:
            raise ConfigError(f"{flag} must be {_range_text(low, high, low_allowed)}, got {value}")


def _range_text(low: float, high: float | None, low_allowed: bool) -> str:
    if high is not None:
        return f"between {low} and {high}"
    return f"at least {low}" if low_allowed else f"greater than {low}"


def run_options(
    seed: int,
    device: str,
    threads: int | None,
    quiet: bool,
    *,
    precision: str | None = None,
    fast: bool = False,
    compile_step: bool = False,
) -> RunOptions:
    """Run options: the fast path (bf16 where native, fused Adam, cheap dropout masks:
    docs/performance.md) unless ``precision`` is ``fp32``, the exact path; ``fast`` (the old
    ``--fast``, now the default) keeps fused Adam and the cheap masks whatever the precision."""
    return RunOptions(
        seed=seed,
        device=device,
        threads=threads,
        progress=not quiet,
        precision=precision or "auto",
        compile=compile_step,
        fused_adam=True if fast else None,
        fast_dropout=True if fast else None,
    )


def data_policy(duplicates: str, rating_scale: str | None, out_of_scale: str) -> DataPolicy:
    """The data policy flags as one :class:`movierec.data.DataPolicy`, checked before any read.

    The one place that knows their shape: every command that reads ratings passes this on.
    """
    scale = None
    if rating_scale is not None:
        try:
            low, high = (float(part) for part in rating_scale.split(","))
        except ValueError:
            raise ConfigError(
                f"--rating-scale takes MIN,MAX (two numbers, e.g. 1,5), got {rating_scale!r}"
            ) from None
        scale = (low, high)
    return DataPolicy(duplicates=duplicates, rating_scale=scale, out_of_scale=out_of_scale)


def train_options(
    objective: str | None, negatives: int | None, sampling: str | None
) -> dict[str, Any]:
    """The objective flags, as the ``train_options`` overrides of :mod:`movierec.experiment`."""
    return {"objective": objective, "negatives": negatives, "negative_sampling": sampling}


def columns(text: str | None) -> list[str] | None:
    """``user,item,rating`` -> the column names a ratings file's reader takes; None: detect."""
    return [c.strip() for c in text.split(",")] if text else None


def names(text: str | None) -> list[str]:
    """A comma-separated list of names, blanks left out."""
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def relevance(text: str | None) -> float | str | None:
    """``any`` or ``>=R`` -> what the ranking metrics count as relevant (None: the default)."""
    from movierec.evaluate.evaluation import parse_relevance

    return parse_relevance(text)
