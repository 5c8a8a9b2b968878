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
from rich.markup import escape
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
            err.print(f"interrupted: {escape(str(exc))}", highlight=False)
            raise typer.Exit(130) from None
        except MovieRecError as exc:
            # escape: messages name TOML tables ([search]) that Rich would take for markup
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
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


def _options(
    seed: int,
    device: str,
    threads: int | None,
    quiet: bool,
    *,
    precision: str | None = None,
    fast: bool = False,
    compile_step: bool = False,
):
    """Run options; ``fast`` is the measured fast path (bf16 where native, fused Adam, cheap
    dropout: docs/performance.md), ``precision`` overrides its precision."""
    from movierec.config import RunOptions

    return RunOptions(
        seed=seed,
        device=device,
        threads=threads,
        progress=not quiet,
        precision=precision or ("auto" if fast else "fp32"),
        compile=compile_step,
        fused_adam=fast,
        fast_dropout=fast,
    )


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
PrecisionOpt = typer.Option(
    None,
    "--precision",
    help="fp32 (default), bf16, or auto (bf16 where the CPU/GPU has native bf16 matrix units).",
)
FastOpt = typer.Option(
    False,
    "--fast",
    help="The fast training path: --precision auto, fused Adam, cheap dropout masks "
    "(same accuracy within 0.003 on u1; docs/performance.md).",
)
CompileOpt = typer.Option(
    False, "--compile", help="torch.compile the training step (pays on GPUs, not on small CPUs)."
)
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
    precision: str | None = PrecisionOpt,
    fast: bool = FastOpt,
    compile_step: bool = CompileOpt,
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
    from movierec.experiment import resume_training
    from movierec.experiment import train as train_run
    from movierec.train import distributed

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
    options = _options(
        seed,
        device,
        threads,
        quiet or as_json,
        precision=precision,
        fast=fast,
        compile_step=compile_step,
    )
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
    from movierec.train.distributed import is_main

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


@app.command()
@user_errors
def tune(
    data: str = DataOpt,
    split: str | None = SplitOpt,
    config: Path = typer.Option(
        ..., "--config", help="TOML file: base [model]/[train] plus a [search] table."
    ),
    trials: int = typer.Option(20, "--trials", help="Trials to add to the study in this call."),
    study_dir: Path | None = typer.Option(
        None, "--study-dir", help="Where the study lives (default runs/tune/<config name>)."
    ),
    out_path: Path | None = typer.Option(
        None, "--out", help="Best config to write (default <study-dir>/best.toml)."
    ),
    seed: int = SeedOpt,
    device: str = DeviceOpt,
    threads: int | None = ThreadsOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Search hyperparameters with Optuna (TPE, median pruning) on the validation carve-out.

    The test set is never read. The study is stored in SQLite in --study-dir, so running the
    command again adds --trials more to it; the best config is written as a TOML file that
    `movierec train --config` accepts.
    """
    from movierec.data.readers import load_data
    from movierec.tuning import tune as run_tune

    def show(trial: Any, best: float | None) -> None:
        if quiet or as_json:
            return
        state = trial.state.name.lower()
        value = f"valid RMSE {trial.value:.4f}" if state == "complete" else state
        if state == "pruned":  # Optuna keeps the last reported value: say where it stopped
            value = f"pruned at epoch {trial.last_step}"
        best_text = f"(best {best:.4f})" if best is not None else ""
        params = ", ".join(f"{k}={_fmt(v)}" for k, v in trial.params.items())
        line = f"trial {trial.number:3d} {value:18s} {best_text}  {params}"
        err.print(escape(line), highlight=False)

    dataset = load_data(data, progress=not (quiet or as_json))
    result = run_tune(
        dataset,
        config,
        trials=trials,
        split=split,
        study_dir=study_dir,
        out=out_path,
        options=_options(seed, device, threads, True),
        on_trial=show,
    )
    if as_json:
        print_json(result.to_dict())
        return
    out.print(
        f"study {result.study_name}: {result.trials} trials ({result.complete} complete, "
        f"{result.pruned} pruned, {result.failed} failed); best #{result.best_trial} "
        f"validation RMSE {result.best_value:.4f}\nbest config written to {result.out}",
        highlight=False,
    )


@app.command()
@user_errors
def benchmark(
    data: str = DataOpt,
    protocol: str = typer.Option(
        "u1", "--protocol", help="u1 (ml-100k), 5-fold (u1..u5 on ml-100k), or a split name."
    ),
    configs: list[Path] = typer.Option(
        [], "--config", help="A model's TOML config; repeat for several rows."
    ),
    models: str | None = typer.Option(
        None, "--models", help="Comma-separated models to add with their default options."
    ),
    seeds: int = typer.Option(1, "--seeds", help="Seeds per fold (0..N-1)."),
    surprise: str | None = typer.Option(
        None,
        "--surprise",
        help="Comma-separated scikit-surprise models run on the same folds "
        "(BaselineOnly,SVD,SVDpp,KNNBaseline; needs the bench extra).",
    ),
    epochs: int | None = typer.Option(
        None, "--epochs", help="Cap every movierec model's epochs (smoke runs)."
    ),
    out_path: Path | None = typer.Option(None, "--out", help="Also write the JSON to this file."),
    device: str = DeviceOpt,
    threads: int | None = ThreadsOpt,
    as_json: bool = JsonOpt,
    quiet: bool = QuietOpt,
) -> None:
    """Models (and Surprise's) on the same folds: RMSE mean +- sd, MAE, train seconds, params.

    Each model trains on a fold's training part; each seed's run scores the test set once.
    """
    from movierec.data.readers import load_data
    from movierec.protocols import Entry, check_surprise_names, run_benchmark

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    entries = _benchmark_entries(configs, _names(models), epochs)
    surprise_names = check_surprise_names(_names(surprise))

    def show(label: str, record: Any) -> None:
        if not (quiet or as_json):
            rmse = f"RMSE {record.rmse:.4f}" if record.rmse is not None else "no RMSE"
            line = (
                f"{label}  {record.fold} seed {record.seed}: {rmse}  {record.train_seconds:.1f} s"
            )
            err.print(escape(line), highlight=False)

    dataset = load_data(data, progress=not (quiet or as_json))
    result = run_benchmark(
        dataset,
        protocol,
        [Entry(spec, path) for spec, path in entries],
        seeds=list(range(seeds)),
        surprise=surprise_names,
        options=_options(0, device, threads, True),
        on_run=show,
    )
    if out_path is not None:
        result.save_json(out_path)
    if as_json:
        print_json(result.to_dict())
        return
    title = (
        f"{result.dataset} / protocol {result.protocol} (folds {', '.join(result.folds)}; "
        f"seeds {', '.join(map(str, result.seeds))}; test set)"
    )
    out.print(benchmark_table([row.summary() for row in result.rows], title))


def _names(text: str | None) -> list[str]:
    return [name.strip() for name in (text or "").split(",") if name.strip()]


def _benchmark_entries(
    configs: list[Path], models: list[str], epochs: int | None
) -> list[tuple[Any, str | None]]:
    """Resolve every row's spec before anything trains, so a bad file fails at once."""
    from movierec.experiment import ModelSpec

    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    overrides = {"epochs": epochs} if epochs is not None else None
    rows: list[tuple[Any, str | None]] = [
        (ModelSpec.resolve(config_path=path, train_options=overrides), str(path))
        for path in configs
    ]
    rows += [(ModelSpec.resolve(name, train_options=overrides), None) for name in models]
    return rows


def benchmark_table(rows: list[dict[str, Any]], title: str) -> Table:
    """One line per model: RMSE and MAE mean +- sd, train seconds, parameters, config file."""
    table = Table(title=title)
    for header in ("model", "config", "runs", "RMSE", "MAE", "train s", "params"):
        table.add_column(header, justify="left" if header in ("model", "config") else "right")
    for row in rows:
        name = f"surprise {row['model']}" if row["source"] == "surprise" else row["model"]
        table.add_row(
            name,
            row["config"] or ("defaults" if row["source"] == "movierec" else "-"),
            str(row["runs"]),
            _pm(row["rmse_mean"], row["rmse_sd"]),
            _pm(row["mae_mean"], row["mae_sd"]),
            _pm(row["train_seconds_mean"], row["train_seconds_sd"], 1),
            f"{row['parameters']:,}" if row["parameters"] is not None else "-",
        )
    return table


def _pm(mean: float | None, sd: float | None, digits: int = 4) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def main() -> None:
    """Entry point of the ``movierec`` script and ``python -m movierec``."""
    app()
