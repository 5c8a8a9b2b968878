"""Training and evaluation: ``train`` one model, ``compare`` several, ``evaluate`` a saved run,
``blend`` several saved runs."""

from __future__ import annotations

import dataclasses
import sys
from pathlib import Path
from typing import Any

import typer

from movierec.cli import options
from movierec.cli.options import (
    COLUMNS,
    COMPILE,
    DATA,
    DEVICE,
    DUPLICATES,
    FAST,
    ITEM_COLUMNS,
    ITEMS,
    JSON,
    MODEL,
    NEGATIVE_SAMPLING,
    NEGATIVES,
    OBJECTIVE,
    OUT_OF_SCALE,
    OVERWRITE,
    PRECISION,
    QUIET,
    RANK_BY,
    RATING_SCALE,
    REFIT,
    RELEVANCE,
    RUN_DIR,
    SEED,
    SPLIT,
    THREADS,
    TRAIN_CONFIG,
    K,
)
from movierec.cli.output import blend_table, metrics_table, out, print_json, user_errors
from movierec.errors import ConfigError


@user_errors
def train(
    data: str | None = typer.Option(
        None, "--data", help="A catalogue name (ml-100k), a directory or a file."
    ),
    split: str | None = SPLIT,
    model: str | None = MODEL,
    out_dir: Path | None = typer.Option(None, "--out", help="Run directory to write."),
    overwrite: bool = OVERWRITE,
    epochs: int | None = typer.Option(
        None, "--epochs", help="Maximum epochs (early stopping may end sooner)."
    ),
    config: Path | None = TRAIN_CONFIG,
    columns: str | None = COLUMNS,
    items: Path | None = ITEMS,
    item_columns: str | None = ITEM_COLUMNS,
    duplicates: str = DUPLICATES,
    rating_scale: str | None = RATING_SCALE,
    out_of_scale: str = OUT_OF_SCALE,
    strict: bool = typer.Option(
        False,
        "--strict",
        help="Refuse ratings of items (users) the item (user) metadata lacks; default: warn.",
    ),
    k: int = K,
    objective: str | None = OBJECTIVE,
    negatives: int | None = NEGATIVES,
    negative_sampling: str | None = NEGATIVE_SAMPLING,
    refit: bool | None = REFIT,
    relevance: str | None = RELEVANCE,
    rank_by: str = RANK_BY,
    seed: int = SEED,
    device: str = DEVICE,
    threads: int | None = THREADS,
    as_json: bool = JSON,
    quiet: bool = QUIET,
    track: str | None = typer.Option(
        None,
        "--track",
        help="Log params, per-epoch metrics, test metrics and the run directory to a tracker: "
        "mlflow (the mlflow extra; its store from MLFLOW_TRACKING_URI).",
    ),
    precision: str | None = PRECISION,
    fast: bool = FAST,
    compile_step: bool = COMPILE,
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
    from movierec.tracking import make_tracker
    from movierec.train import distributed

    if nproc is not None:
        if nproc < 1:
            raise ConfigError(f"--nproc must be at least 1, got {nproc}")
        if distributed.world().distributed:
            raise ConfigError("--nproc is for a plain run; under torchrun, leave it out")
        argv = distributed.without_option(sys.argv[1:], "--nproc")
        raise typer.Exit(distributed.launch(nproc, argv))
    tracker = make_tracker(track)  # before any work: a missing extra is one line
    if resume is not None:
        if refit is not None:
            raise ConfigError(
                "--refit cannot change a resumed run: its checkpoint says whether it refits; "
                "leave --refit out with --resume"
            )
        run = resume_training(resume, progress=not (quiet or as_json), tracker=tracker)
        _print_train(run.metrics, k, as_json, resume)
        return
    if data is None:
        raise ConfigError("--data is required (a catalogue name, a directory or a file)")
    if out_dir is not None:  # before any training: a run there is replaced only if asked
        from movierec.artifacts import check_out

        check_out(out_dir, overwrite)
    run_options = options.run_options(
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
        columns=options.columns(columns),
        policy=dataclasses.replace(
            options.data_policy(duplicates, rating_scale, out_of_scale),
            references="error" if strict else "warn",
        ),
        options=dataclasses.replace(run_options, checkpoint_minutes=checkpoint_minutes),
        k=k,
        train_options={
            **options.train_options(objective, negatives, negative_sampling),
            "refit": refit,
        },
        relevance=options.relevance(relevance),
        rank_by=rank_by,
        items=items,
        item_columns=options.columns(item_columns),
        tracker=tracker,
    )
    _print_train(run.metrics, k, as_json, out_dir)


def _print_train(metrics: dict[str, Any], k: int, as_json: bool, out_dir: Path | None) -> None:
    from movierec.train.distributed import is_main

    if not is_main():
        return  # under torchrun, rank 0 speaks for the job
    if as_json:
        print_json(metrics)
        return
    if metrics.get("n_test") == 0:  # --split none: trained on every rating, no test metrics
        out.print(
            f"trained {metrics['model']} on all {metrics['n_fit']:,} ratings of "
            f"{metrics['dataset']} (no test set): {metrics['epochs']} epochs, from "
            f"{metrics['epochs_from']}",
            highlight=False,
        )
    else:
        title = f"{metrics['dataset']} / split {metrics['split']} (test set)"
        out.print(metrics_table([metrics], k, title))
        if metrics.get("refit"):
            out.print(
                f"refit on all {metrics['n_fit']:,} training ratings for {metrics['epochs']} "
                f"epochs (chosen on the validation carve-out)",
                highlight=False,
            )
    if out_dir is not None:
        out.print(f"run saved to {out_dir}", highlight=False)


@user_errors
def compare(
    data: str = DATA,
    split: str | None = SPLIT,
    models: str = typer.Option(
        "default,embedding-net,mf,bias,popularity",
        "--models",
        help="Comma-separated model names (default: the default configuration).",
    ),
    out_dir: Path | None = typer.Option(None, "--out", help="Folder for one run per model."),
    overwrite: bool = OVERWRITE,
    columns: str | None = COLUMNS,
    duplicates: str = DUPLICATES,
    rating_scale: str | None = RATING_SCALE,
    out_of_scale: str = OUT_OF_SCALE,
    k: int = K,
    objective: str | None = OBJECTIVE,
    negatives: int | None = NEGATIVES,
    negative_sampling: str | None = NEGATIVE_SAMPLING,
    relevance: str | None = RELEVANCE,
    rank_by: str = RANK_BY,
    seed: int = SEED,
    device: str = DEVICE,
    threads: int | None = THREADS,
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Train several models on the same split and print their metrics side by side."""
    from movierec.artifacts import check_out
    from movierec.experiment import compare_models

    if out_dir is not None:
        for name in options.names(models):
            check_out(out_dir / name, overwrite)
    runs = compare_models(
        data,
        options.names(models),
        split=split,
        out=out_dir,
        columns=options.columns(columns),
        policy=options.data_policy(duplicates, rating_scale, out_of_scale),
        options=options.run_options(seed, device, threads, quiet or as_json),
        k=k,
        train_options=options.train_options(objective, negatives, negative_sampling),
        relevance=options.relevance(relevance),
        rank_by=rank_by,
    )
    rows = [run.metrics for run in runs]
    if as_json:
        print_json(rows)
        return
    first = rows[0]
    out.print(metrics_table(rows, k, f"{first['dataset']} / split {first['split']} (test set)"))


@user_errors
def evaluate(
    run_dir: Path = RUN_DIR,
    data: str = DATA,
    split: str | None = SPLIT,
    columns: str | None = COLUMNS,
    duplicates: str = DUPLICATES,
    rating_scale: str | None = RATING_SCALE,
    out_of_scale: str = OUT_OF_SCALE,
    k: int = K,
    seed: int | None = typer.Option(None, "--seed", help="Split seed (default: the run's)."),
    relevance: str | None = RELEVANCE,
    rank_by: str = RANK_BY,
    precision: str | None = PRECISION,
    as_json: bool = JSON,
) -> None:
    """Evaluate a saved run on a dataset's test split."""
    from movierec.experiment import evaluate_run

    metrics = evaluate_run(
        run_dir,
        data,
        split=split,
        columns=options.columns(columns),
        policy=options.data_policy(duplicates, rating_scale, out_of_scale),
        seed=seed,
        k=k,
        relevance=options.relevance(relevance),
        rank_by=rank_by,
        precision=precision or "fp32",
    )
    if as_json:
        print_json(metrics)
        return
    out.print(metrics_table([metrics], k, f"{metrics['dataset']} / split {metrics['split']}"))


@user_errors
def blend(
    runs: list[Path] | None = typer.Argument(
        None, help="Run directories of one dataset, split and seed (at least two)."
    ),
    out_dir: Path | None = typer.Option(
        None, "--out", help="Folder to write: blend.json and the test predictions."
    ),
    alpha: float | None = typer.Option(
        None,
        "--alpha",
        help="Ridge penalty on the weights (default: chosen by 5-fold cross-validation on "
        "the validation carve-out).",
    ),
    features: str = typer.Option(
        "auto",
        "--features",
        help="Meta-features the weights move with: auto (the carve-out's cross-validation "
        "decides between none and all), none, or some of user_count, item_count, user_std, "
        "item_std (comma-separated).",
    ),
    overwrite: bool = OVERWRITE,
    as_json: bool = JSON,
) -> None:
    """Blend several runs' rating predictions: ridge weights fitted on their shared validation
    carve-out only (the models that never saw it), then scored once on their test set.

    Each run must predict ratings and hold its validation predictions (runs trained with a
    validation carve-out keep them; a refit run keeps those of its model before the refit).
    """
    from movierec.blend import blend_runs

    if out_dir is None:
        raise ConfigError("--out is required: the folder the blend is written to")
    report = blend_runs(runs or [], out_dir, alpha=alpha, features=features, overwrite=overwrite)
    if as_json:
        print_json(report)
        return
    out.print(blend_table(report), highlight=False)
    out.print(f"blend saved to {out_dir}", highlight=False)
