"""The ``movierec`` command line: parse, delegate, print. No logic of its own.

Errors users can cause print one line (``error: ...``) on stderr and exit with code 2.
"""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
from collections.abc import Callable
from pathlib import Path
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.table import Table

from movierec.errors import ConfigError, MovieRecError, TrainingInterrupted

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="movierec: train the EmbeddingNet and its baselines on MovieLens, and recommend.",
)
# Tables stay readable when piped or captured (no terminal to measure): assume a wide one.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)

F = TypeVar("F", bound=Callable[..., Any])

RATING_KEYS = ("rmse", "mae")


def user_errors(command: F) -> F:
    """Turn the project's own errors into one clear line and exit code 2."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except TrainingInterrupted as exc:
            err.print(f"interrupted: {exc}", highlight=False)
            raise typer.Exit(130) from None
        except MovieRecError as exc:
            err.print(f"[bold red]error:[/] {exc}", highlight=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted; nothing was written", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def print_json(payload: Any) -> None:
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")


def _fmt(value: Any) -> str:
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def metrics_table(rows: list[dict[str, Any]], k: int, title: str) -> Table:
    """Models side by side: rating error, ranking quality, cost."""
    columns = [
        ("model", "model"),
        ("rmse", "RMSE"),
        ("mae", "MAE"),
        (f"precision@{k}", f"P@{k}"),
        (f"recall@{k}", f"R@{k}"),
        (f"ndcg@{k}", f"NDCG@{k}"),
        (f"map@{k}", f"MAP@{k}"),
        ("coverage", "coverage"),
        ("epochs", "epochs"),
        ("train_seconds", "train s"),
        ("ratings_per_second", "ratings/s"),
    ]
    table = Table(title=title)
    for _, header in columns:
        table.add_column(header, justify="left" if header == "model" else "right")
    for row in rows:
        shown = dict(row)
        # Closed-form models take no optimiser steps: no throughput to show.
        shown["ratings_per_second"] = row.get("ratings_per_second") or None
        if isinstance(row.get("train_seconds"), float):
            shown["train_seconds"] = f"{row['train_seconds']:.2f}"
        table.add_row(*(_fmt(shown.get(key)) for key, _ in columns))
    return table


def _options(seed: int, device: str, threads: int | None, quiet: bool):
    from movierec.config import RunOptions

    return RunOptions(seed=seed, device=device, threads=threads, progress=not quiet)


def _load_options(duplicates: str, rating_scale: str | None, out_of_scale: str) -> dict[str, Any]:
    """The data policies, as keyword arguments of :func:`movierec.data.load_data`."""
    options: dict[str, Any] = {"duplicates": duplicates, "out_of_scale": out_of_scale}
    if rating_scale is not None:
        try:
            low, high = (float(part) for part in rating_scale.split(","))
        except ValueError:
            raise ConfigError(
                f"--rating-scale takes MIN,MAX (two numbers, e.g. 1,5), got {rating_scale!r}"
            ) from None
        options["rating_scale"] = (low, high)
    return options


DuplicatesOpt = typer.Option(
    "keep-last",
    "--duplicates",
    help="Repeated (user, item) ratings: keep-last, mean or error. The count is reported.",
)
RatingScaleOpt = typer.Option(
    None, "--rating-scale", help="Declared rating scale MIN,MAX (default: the dataset's own)."
)
OutOfScaleOpt = typer.Option(
    "error", "--out-of-scale", help="Ratings outside the scale: error, clip or drop."
)


def _columns(columns: str | None) -> list[str] | None:
    return [c.strip() for c in columns.split(",")] if columns else None


SeedOpt = typer.Option(0, "--seed", help="Seed for the split, initialisation, shuffling, dropout.")
DeviceOpt = typer.Option("auto", "--device", help="auto (CUDA when present), cpu, cuda, cuda:N.")
ThreadsOpt = typer.Option(None, "--threads", help="CPU threads for PyTorch (default: all cores).")
JsonOpt = typer.Option(False, "--json", help="Print one JSON document instead of tables.")
QuietOpt = typer.Option(False, "--quiet", "-q", help="No progress bars.")
DataOpt = typer.Option(..., "--data", help="A catalogue name (ml-100k), a directory or a file.")
SplitOpt = typer.Option(
    None,
    "--split",
    help="u1..u5 (ml-100k), random[:F], temporal[:F], leave-last[:K], stratified[:F] "
    "(per user; F default 0.25).",
)
RelevanceOpt = typer.Option(
    None,
    "--relevance",
    help="Which test items are relevant for ranking metrics: any, or >=R (e.g. >=4). "
    "Default: any for the stratified split, >=4 otherwise.",
)
ObjectiveOpt = typer.Option(
    None, "--objective", help="Training objective: rating (MSE, default), bpr or bce."
)
NegativesOpt = typer.Option(
    None, "--negatives", help="Sampled negatives per rated pair (bpr/bce; model default)."
)
SamplingOpt = typer.Option(
    None, "--negative-sampling", help="uniform or popularity (bpr/bce; default uniform)."
)


def _train_options(
    objective: str | None, negatives: int | None, sampling: str | None
) -> dict[str, Any]:
    return {"objective": objective, "negatives": negatives, "negative_sampling": sampling}


def _relevance(text: str | None) -> float | str | None:
    from movierec.evaluation import parse_relevance

    return parse_relevance(text)


ColumnsOpt = typer.Option(
    None, "--columns", help="Column names of a ratings file: user,item,rating[,timestamp]."
)
KOpt = typer.Option(10, "--k", "-k", help="How many items.")


@app.command()
@user_errors
def datasets(as_json: bool = JsonOpt) -> None:
    """List the MovieLens catalogue and what is in the local cache."""
    from movierec.data.catalogue import CATALOGUE, cache_dir, cached_path

    rows = [
        {
            "name": spec.name,
            "description": spec.description,
            "size_bytes": spec.size_bytes,
            "md5": spec.md5,
            "cached": str(cached_path(name)) if cached_path(name) else None,
        }
        for name, spec in CATALOGUE.items()
    ]
    if as_json:
        print_json({"cache": str(cache_dir()), "datasets": rows})
        return
    table = Table(title=f"MovieLens datasets (cache: {cache_dir()})")
    for header in ("name", "description", "size", "cached"):
        table.add_column(header)
    for row in rows:
        size = f"{row['size_bytes'] / 1e6:,.1f} MB" if row["size_bytes"] else "?"
        table.add_row(row["name"], row["description"], size, row["cached"] or "-")
    out.print(table)


@app.command()
@user_errors
def fetch(
    name: str = typer.Argument(..., help="Dataset name, e.g. ml-100k."),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Download (or rebuild from the offline mirror) a dataset into the cache."""
    from movierec.data.catalogue import fetch as fetch_dataset

    result = fetch_dataset(name, progress=not quiet)
    if as_json:
        print_json({"name": name, "path": str(result.path), "source": result.source})
    else:
        out.print(f"{name}: {result.path} (source: {result.source})", highlight=False)


@app.command()
@user_errors
def train(
    data: str | None = typer.Option(
        None, "--data", help="A catalogue name (ml-100k), a directory or a file."
    ),
    split: str | None = SplitOpt,
    model: str | None = typer.Option(
        None, "--model", help="embedding-net, mf, bias, mean, ease or popularity."
    ),
    out_dir: Path | None = typer.Option(None, "--out", help="Run directory to write."),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Maximum epochs (early stopping may end sooner)."
    ),
    config: Path | None = typer.Option(
        None, "--config", help="TOML file with [model] and [train]."
    ),
    columns: str | None = ColumnsOpt,
    duplicates: str = DuplicatesOpt,
    rating_scale: str | None = RatingScaleOpt,
    out_of_scale: str = OutOfScaleOpt,
    k: int = KOpt,
    objective: str | None = ObjectiveOpt,
    negatives: int | None = NegativesOpt,
    negative_sampling: str | None = SamplingOpt,
    relevance: str | None = RelevanceOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    threads: int | None = ThreadsOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
    resume: Path | None = typer.Option(
        None,
        "--resume",
        help="Continue the interrupted run in this directory from its last checkpoint "
        "(its data, split, model and seed come from the checkpoint).",
    ),
    checkpoint_minutes: float = typer.Option(
        10.0, "--checkpoint-minutes", help="Checkpoint within an epoch this often (with --out)."
    ),
    nproc: int | None = typer.Option(
        None,
        "--nproc",
        help="Train data-parallel on N local processes (re-runs this command under torchrun).",
    ),
) -> None:
    """Train one model, evaluate it on the test split, and save the run.

    With --out, a checkpoint is written after every epoch (and every --checkpoint-minutes);
    Ctrl-C or SIGTERM stops after writing one, and --resume continues from it.
    Under torchrun (or with --nproc N) it trains data-parallel; rank 0 evaluates and saves.
    """
    from movierec import distributed
    from movierec.experiment import resume_training
    from movierec.experiment import train as train_run

    if nproc is not None:
        if nproc < 1:
            raise ConfigError(f"--nproc must be at least 1, got {nproc}")
        if distributed.world().distributed:
            raise ConfigError("--nproc is for a plain run; under torchrun, leave it out")
        argv = distributed.without_option(sys.argv[1:], "--nproc")
        raise typer.Exit(distributed.launch(nproc, argv))
    if resume is not None:
        run = resume_training(resume, progress=not (quiet or as_json))
        _print_train(run.metrics, k, as_json, resume)
        return
    if data is None:
        raise ConfigError("--data is required (a catalogue name, a directory or a file)")
    if checkpoint_minutes <= 0:
        raise ConfigError(f"--checkpoint-minutes must be positive, got {checkpoint_minutes}")
    options = _options(seed, device, threads, quiet or as_json)
    run = train_run(
        data,
        split=split,
        model=model,
        config_path=config,
        out=out_dir,
        epochs=epochs,
        columns=_columns(columns),
        load_options=_load_options(duplicates, rating_scale, out_of_scale),
        options=dataclasses.replace(options, checkpoint_minutes=checkpoint_minutes),
        k=k,
        train_options=_train_options(objective, negatives, negative_sampling),
        relevance=_relevance(relevance),
    )
    _print_train(run.metrics, k, as_json, out_dir)


def _print_train(metrics: dict[str, Any], k: int, as_json: bool, out_dir: Path | None) -> None:
    from movierec.distributed import is_main

    if not is_main():
        return  # under torchrun, rank 0 speaks for the job
    if as_json:
        print_json(metrics)
        return
    title = f"{metrics['dataset']} / split {metrics['split']} (test set)"
    out.print(metrics_table([metrics], k, title))
    if out_dir is not None:
        out.print(f"run saved to {out_dir}", highlight=False)


@app.command()
@user_errors
def compare(
    data: str = DataOpt,
    split: str | None = SplitOpt,
    models: str = typer.Option("embedding-net,mf,bias,mean", "--models", help="Comma-separated."),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for one run per model."),
    columns: str | None = ColumnsOpt,
    duplicates: str = DuplicatesOpt,
    rating_scale: str | None = RatingScaleOpt,
    out_of_scale: str = OutOfScaleOpt,
    k: int = KOpt,
    objective: str | None = ObjectiveOpt,
    negatives: int | None = NegativesOpt,
    negative_sampling: str | None = SamplingOpt,
    relevance: str | None = RelevanceOpt,
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    threads: int | None = ThreadsOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Train several models on the same split and print their metrics side by side."""
    from movierec.experiment import compare_models

    runs = compare_models(
        data,
        [m.strip() for m in models.split(",") if m.strip()],
        split=split,
        out=out_dir,
        columns=_columns(columns),
        load_options=_load_options(duplicates, rating_scale, out_of_scale),
        options=_options(seed, device, threads, quiet or as_json),
        k=k,
        train_options=_train_options(objective, negatives, negative_sampling),
        relevance=_relevance(relevance),
    )
    rows = [run.metrics for run in runs]
    if as_json:
        print_json(rows)
        return
    first = rows[0]
    out.print(metrics_table(rows, k, f"{first['dataset']} / split {first['split']} (test set)"))


@app.command()
@user_errors
def evaluate(
    run_dir: Path = typer.Argument(..., help="A run directory written by `movierec train`."),
    data: str = DataOpt,
    split: str | None = SplitOpt,
    columns: str | None = ColumnsOpt,
    duplicates: str = DuplicatesOpt,
    rating_scale: str | None = RatingScaleOpt,
    out_of_scale: str = OutOfScaleOpt,
    k: int = KOpt,
    seed: int | None = typer.Option(None, "--seed", help="Split seed (default: the run's)."),
    relevance: str | None = RelevanceOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Evaluate a saved run on a dataset's test split."""
    from movierec.experiment import evaluate_run

    metrics = evaluate_run(
        run_dir,
        data,
        split=split,
        columns=_columns(columns),
        load_options=_load_options(duplicates, rating_scale, out_of_scale),
        seed=seed,
        k=k,
        relevance=_relevance(relevance),
    )
    if as_json:
        print_json(metrics)
        return
    out.print(metrics_table([metrics], k, f"{metrics['dataset']} / split {metrics['split']}"))


def _print_items(rows: list[dict[str, Any]], as_json: bool, title: str, score: str) -> None:
    if as_json:
        print_json(rows)
        return
    table = Table(title=title)
    for header in ("#", "item", "title", "genres", score):
        table.add_column(header, justify="right" if header in ("#", score) else "left")
    for rank, row in enumerate(rows, 1):
        table.add_row(
            str(rank),
            str(row["item"]),
            row["title"],
            row["genres"].replace("|", ", "),
            f"{row['score']:.3f}",
        )
    out.print(table)


RunArg = typer.Argument(..., help="A run directory written by `movierec train`.")


@app.command()
@user_errors
def recommend(
    run_dir: Path = RunArg,
    user: str = typer.Option(..., "--user", help="Raw user ID from the dataset."),
    k: int = KOpt,
    include_seen: bool = typer.Option(
        False, "--include-seen", help="Also rank items rated in training."
    ),
    as_json: bool = JsonOpt,
) -> None:
    """Top-k movies for a user, with titles and predicted ratings (ranking scores for runs
    trained with --objective bpr/bce, or ease/popularity)."""
    from movierec.artifacts import load_run

    recommender, _ = load_run(run_dir)
    items = recommender.top_n(user, k, exclude_seen=not include_seen)
    label = "predicted" if recommender.predicts_ratings else "score"
    _print_items([i.to_dict() for i in items], as_json, f"Top {k} for user {user}", label)


@app.command()
@user_errors
def similar(
    run_dir: Path = RunArg,
    item: str = typer.Option(..., "--item", help="Raw item ID from the dataset."),
    k: int = KOpt,
    as_json: bool = JsonOpt,
) -> None:
    """Movies most similar to one movie (cosine similarity of item embeddings)."""
    from movierec.artifacts import load_run

    recommender, _ = load_run(run_dir)
    items = recommender.similar_items(item, k)
    index = recommender.encoder.item_index(item)
    title = f"Movies similar to {recommender.title(index)}"
    _print_items([i.to_dict() for i in items], as_json, title, "cosine")


@app.command()
@user_errors
def predict(
    run_dir: Path = RunArg,
    user: str = typer.Option(..., "--user", help="Raw user ID."),
    item: str = typer.Option(..., "--item", help="Raw item ID."),
    as_json: bool = JsonOpt,
) -> None:
    """The predicted rating of one user for one movie (runs trained for ranking refuse)."""
    from movierec.artifacts import load_run

    recommender, _ = load_run(run_dir)
    rating = float(recommender.predict([user], [item], unknown="error")[0])
    title = recommender.title(recommender.encoder.item_index(item))
    if as_json:
        print_json({"user": user, "item": item, "title": title, "rating": rating})
    else:
        out.print(f"user {user} -> {title}: {rating:.3f}", highlight=False)


@app.command()
@user_errors
def serve(
    run_dir: Path = RunArg,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", help="Server processes."),
    threads: int | None = typer.Option(None, "--threads", help="PyTorch threads per worker."),
    cors: str | None = typer.Option(
        None, "--cors", help="Comma-separated origins allowed by CORS (off by default)."
    ),
) -> None:
    """Serve a run over HTTP: a JSON API (docs at /docs) and a web page at /."""
    from movierec.serving import serve as run_server

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    origins = [o.strip() for o in cors.split(",") if o.strip()] if cors else None
    run_server(run_dir, host, port, workers, cors_origins=origins, threads=threads)


@app.command()
@user_errors
def synth(
    users: int = typer.Option(162_541, "--users", help="Users (IDs 1..N)."),
    items: int = typer.Option(59_047, "--items", help="Items (IDs 1..N)."),
    ratings: int = typer.Option(25_000_000, "--ratings", help="Ratings to write."),
    out_path: Path = typer.Option(..., "--out", help="File to write (a folder for netflix)."),
    seed: int = typer.Option(0, "--seed", help="Seed of every random draw."),
    fmt: str = typer.Option("parquet", "--format", help="parquet, csv or netflix."),
    chunk_size: int = typer.Option(2_000_000, "--chunk-size", help="Ratings per chunk."),
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Write synthetic MovieLens-shaped ratings (Parquet, CSV or the Netflix layout)."""
    from movierec.data.synthetic import write_synthetic

    try:
        stats = write_synthetic(
            out_path,
            n_users=users,
            n_items=items,
            n_ratings=ratings,
            seed=seed,
            fmt=fmt,
            chunk_size=chunk_size,
            progress=not (quiet or as_json),
        )
    except ValueError as exc:
        raise ConfigError(f"synth: {exc}") from None
    if as_json:
        print_json(stats)
        return
    out.print(
        f"{stats['rows']:,} ratings -> {stats['path']} ({stats['bytes'] / 2**20:,.1f} MiB, "
        f"{stats['seconds']:.1f} s)",
        highlight=False,
    )


def main() -> None:
    """Entry point of the ``movierec`` script and ``python -m movierec``."""
    app()
