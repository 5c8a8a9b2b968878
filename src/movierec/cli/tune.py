"""Model selection: ``tune`` searches hyperparameters, ``benchmark`` compares on shared folds."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import typer
from rich.markup import escape

from movierec.cli import options
from movierec.cli.options import (
    DATA,
    DEVICE,
    JSON,
    OVERWRITE,
    QUIET,
    REFIT,
    SEED,
    SPLIT,
    THREADS,
)
from movierec.cli.output import benchmark_table, err, fmt, out, print_json, user_errors
from movierec.errors import ConfigError


@user_errors
def tune(
    data: str = DATA,
    split: str | None = SPLIT,
    config: Path = typer.Option(
        ..., "--config", help=escape("TOML file: base [model]/[train] plus a [search] table.")
    ),
    trials: int = typer.Option(20, "--trials", help="Trials to add to the study in this call."),
    study_dir: Path | None = typer.Option(
        None, "--study-dir", help="Where the study lives (default runs/tune/<config name>)."
    ),
    out_path: Path | None = typer.Option(
        None,
        "--out",
        help="Best config to write (default <study-dir>/best.toml); a best config tune wrote is "
        "rewritten by later calls, any other existing file needs --overwrite.",
    ),
    overwrite: bool = OVERWRITE,
    refit: bool | None = REFIT,
    seed: int = SEED,
    device: str = DEVICE,
    threads: int | None = THREADS,
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Search hyperparameters with Optuna (TPE, median pruning) on the validation carve-out.

    The test set is never read. The study is stored in SQLite in --study-dir, so running the
    command again adds --trials more to it; the best config is written as a TOML file that
    `movierec train --config` accepts. Trials never refit; with --refit the best config does
    (refit = true: training it refits the chosen trial on the whole training part).
    """
    from movierec.artifacts import check_out_file
    from movierec.data import load_data
    from movierec.tuning import tune as run_tune
    from movierec.tuning import written_by_tune

    # A best config tune wrote is a study's to rewrite on the next call; any other file is not.
    if out_path is not None and not written_by_tune(out_path):
        check_out_file(out_path, overwrite)

    def show(trial: Any, best: float | None) -> None:
        if quiet or as_json:
            return
        state = trial.state.name.lower()
        value = f"valid RMSE {trial.value:.4f}" if state == "complete" else state
        if state == "pruned":  # Optuna keeps the last reported value: say where it stopped
            value = f"pruned at epoch {trial.last_step}"
        best_text = f"(best {best:.4f})" if best is not None else ""
        params = ", ".join(f"{k}={fmt(v)}" for k, v in trial.params.items())
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
        options=options.run_options(seed, device, threads, True),
        on_trial=show,
        refit=refit,
    )
    if as_json:
        print_json(result.to_dict())
        return
    out.print(
        f"study {result.study_name}: {result.trials} trials ({result.complete} complete, "
        f"{result.pruned} pruned, {result.failed} failed); best #{result.best_trial} "
        f"validation RMSE {result.best_value:.4f}\nbest config written to {result.out}"
        + (" (refit = true)" if result.refit else ""),
        highlight=False,
    )


@user_errors
def benchmark(
    data: str = DATA,
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
    refit: bool | None = REFIT,
    out_path: Path | None = typer.Option(None, "--out", help="Also write the JSON to this file."),
    device: str = DEVICE,
    threads: int | None = THREADS,
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Models (and Surprise's) on the same folds: RMSE mean +- sd, MAE, train seconds, params.

    Each model trains on a fold's training part; each seed's run scores the test set once.
    """
    from movierec.data import load_data
    from movierec.evaluate.protocols import Entry, check_surprise_names, run_benchmark

    if seeds < 1:
        raise ConfigError(f"--seeds must be at least 1, got {seeds}")
    entries = _benchmark_entries(configs, options.names(models), epochs, refit)
    surprise_names = check_surprise_names(options.names(surprise))

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
        options=options.run_options(0, device, threads, True),
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


def _benchmark_entries(
    configs: list[Path], models: list[str], epochs: int | None, refit: bool | None = None
) -> list[tuple[Any, str | None]]:
    """Resolve every row's spec before anything trains, so a bad file (or a refit of a
    closed-form model) fails at once."""
    from movierec.config import ModelSpec
    from movierec.pipeline import check_refit

    if epochs is not None and epochs < 1:
        raise ConfigError(f"--epochs must be at least 1, got {epochs}")
    given = {"epochs": epochs, "refit": refit}
    overrides = {key: value for key, value in given.items() if value is not None} or None
    rows: list[tuple[Any, str | None]] = [
        (ModelSpec.resolve(config_path=path, train_options=overrides), str(path))
        for path in configs
    ]
    rows += [(ModelSpec.resolve(name, train_options=overrides), None) for name in models]
    for spec, _ in rows:
        check_refit(spec)
    return rows
