"""From a dataset name to a saved, evaluated run: the steps behind ``movierec train``.

Data flows one way: ratings file -> canonical frame -> split -> validation carve-out (from the
training part only) -> IdEncoder fitted on the ratings the model learns from -> tensors -> model
-> metrics on the untouched test set -> run directory.

Under torchrun every rank loads and prepares the same data and trains its shard; only rank 0
evaluates on the test set and writes the run directory (see :mod:`movierec.distributed`).
"""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from movierec import distributed
from movierec.checkpoint import CHECKPOINT, TrainingState, load_checkpoint
from movierec.config import RunOptions, TrainConfig, load_config_file
from movierec.data.encoder import IdEncoder
from movierec.data.readers import RatingsData, load_data
from movierec.data.splits import Split, carve_validation, make_split
from movierec.data.tensors import RatingTensors, SeenItems
from movierec.errors import ArtifactError, ConfigError
from movierec.evaluation import default_relevance, evaluate
from movierec.models import build_model, make_config, model_class
from movierec.models.biases import fit_biases
from movierec.recommend import Recommender
from movierec.training import EpochRecord, FitResult, configure_threads, fit, resolve_device

DEFAULT_MODEL = "embedding-net"


def default_split(data: RatingsData) -> str:
    """``u1`` for ml-100k (its canonical fold), a seeded 80/20 random split otherwise."""
    return "u1" if data.layout == "ml-100k" and len(data.ratings) == 100_000 else "random:0.2"


@dataclass(frozen=True)
class Prepared:
    """A dataset split into the parts training and evaluation need."""

    data: RatingsData
    split: Split
    n_valid: int  # the carve-out's rows; its frame is not kept (tensors are all training needs)
    encoder: IdEncoder
    fit_tensors: RatingTensors
    valid_tensors: RatingTensors
    seen: SeenItems


def prepare(
    data: RatingsData, split: str | None, *, seed: int, validation_fraction: float
) -> Prepared:
    """Split, carve the validation set from the training part, encode, and tensorise."""
    chosen = make_split(data.ratings, split or default_split(data), layout=data.layout, seed=seed)
    return prepare_split(data, chosen, seed=seed, validation_fraction=validation_fraction)


def prepare_split(
    data: RatingsData, chosen: Split, *, seed: int, validation_fraction: float
) -> Prepared:
    """:func:`prepare` for a split made elsewhere (the folds of :mod:`movierec.protocols`).

    The validation set is carved from ``chosen.train`` only; the encoder sees only the ratings
    the model learns from.
    """
    fit_frame, valid_frame = carve_validation(chosen.train, validation_fraction, seed)
    encoder = IdEncoder.fit(fit_frame)
    fit_tensors = RatingTensors.from_frame(fit_frame, encoder)
    del fit_frame  # 0.5 GiB at 25M ratings: the tensors hold what training needs
    seen = SeenItems.from_tensors(
        RatingTensors.from_frame(chosen.train, encoder), encoder.n_users, encoder.n_items
    )
    return Prepared(
        data,
        chosen,
        len(valid_frame),
        encoder,
        fit_tensors,
        RatingTensors.from_frame(valid_frame, encoder),
        seen,
    )


@dataclass(frozen=True)
class ModelSpec:
    """Which model to train, with which options: resolved from flags, a config file, defaults."""

    name: str
    config: Any
    train: TrainConfig

    @classmethod
    def resolve(
        cls,
        model: str | None = None,
        config_path: Path | None = None,
        model_options: Mapping[str, Any] | None = None,
        train_options: Mapping[str, Any] | None = None,
    ) -> ModelSpec:
        """Flags override the config file, which overrides the model's preferred defaults.

        The model's defaults depend on the training objective (flag, else file, else rating).
        """
        file = load_config_file(config_path) if config_path else None
        name = model or (file.model if file else None) or DEFAULT_MODEL
        same_model = file is not None and (file.model is None or file.model == name)
        options = {**(file.model_options if same_model else {}), **(model_options or {})}
        objective = (train_options or {}).get("objective") or (
            file.train_options.get("objective") if file else None
        )
        objective = objective or "rating"
        train_values = {
            **model_class(name).default_train_overrides(str(objective)),
            **(file.train_options if file else {}),
            **(train_options or {}),
        }
        return cls(name, make_config(name, options), TrainConfig.from_mapping(train_values))


@dataclass
class TrainedRun:
    """The outcome of training one model on one split."""

    spec: ModelSpec
    recommender: Recommender
    fit: FitResult
    metrics: dict[str, Any]
    info: dict[str, Any]


def train_model(
    prepared: Prepared,
    spec: ModelSpec,
    options: RunOptions,
    *,
    k: int = 10,
    relevance: float | str | None = "default",
    checkpoint: Path | None = None,
    resume: TrainingState | None = None,
    context: dict[str, Any] | None = None,
) -> TrainedRun:
    """Train ``spec`` on ``prepared`` and evaluate it once on the test split.

    ``relevance``: the rating a test item needs to count as relevant, None for any rating, or
    ``"default"`` to let the split decide (:func:`movierec.evaluation.default_relevance`).
    ``checkpoint``/``resume``/``context`` go to :func:`movierec.training.fit`.
    """
    configure_threads(options.threads)
    torch.manual_seed(options.seed)  # the run's seed: initialisation and dropout
    encoder = prepared.encoder
    model = build_model(
        spec.name, encoder.n_users, encoder.n_items, prepared.data.rating_scale, spec.config
    )
    objective = spec.train.objective
    if not model.trainable and objective != "rating":
        if model.predicts_ratings:
            raise ConfigError(
                f"model {spec.name!r} is fitted in closed form and predicts ratings; "
                f"--objective {objective} needs a trained model (embedding-net or mf)"
            )
        objective = "rating"  # a ranking-only closed-form model: the objective does not apply
    valid = prepared.valid_tensors if len(prepared.valid_tensors) else None
    result = fit(
        model,
        prepared.fit_tensors,
        valid,
        spec.train,
        options,
        checkpoint=checkpoint,
        resume=resume,
        context=context,
    )
    fallback = fit_biases(
        prepared.fit_tensors.user_idx,
        prepared.fit_tensors.item_idx,
        prepared.fit_tensors.rating,
        encoder.n_users,
        encoder.n_items,
    )
    recommender = Recommender(
        model,
        encoder,
        fallback,
        prepared.seen,
        prepared.data.items,
        objective=objective,
        info={
            "model": spec.name,
            "dataset": prepared.data.name,
            "split": prepared.split.name,
            "objective": objective,
        },
    )
    info = {
        "dataset": prepared.data.name,
        "data_source": str(prepared.data.source),
        "split": prepared.split.name,
        "seed": options.seed,
        "best_epoch": result.best_epoch,
        "objective": objective,
    }
    distributed.barrier()  # training ended on every rank
    if not distributed.is_main():
        # Rank 0 evaluates and saves; the other ranks' part ends with training.
        return TrainedRun(spec, recommender, result, {"rank": distributed.world().rank}, info)
    threshold = default_relevance(prepared.split.name) if relevance == "default" else relevance
    started = time.perf_counter()
    metrics = evaluate(
        recommender, prepared.split.train, prepared.split.test, k=k, threshold=threshold
    )
    evaluation_seconds = time.perf_counter() - started
    summary = {
        "model": spec.name,
        "dataset": prepared.data.name,
        "split": prepared.split.name,
        "objective": objective,
        **metrics,
        "train_seconds": result.train_seconds,
        "evaluation_seconds": evaluation_seconds,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "ratings_per_second": result.ratings_per_second,
        "n_fit": len(prepared.fit_tensors),
        "n_valid": prepared.n_valid,
        "n_test": len(prepared.split.test),
        "parameters": sum(p.numel() for p in model.parameters()),
        "seed": options.seed,
        "data_report": dict(prepared.data.report),
    }
    if result.world_size > 1:
        # Data-parallel: the global batch is the configured one (rounded down to a multiple of
        # the world size) and the learning rate is the configured one, unscaled.
        summary["world_size"] = result.world_size
        summary["effective_batch_size"] = result.effective_batch_size
        summary["lr"] = spec.train.lr
    return TrainedRun(spec, recommender, result, summary, info)


def save_trained(run: TrainedRun, out: Path) -> Path:
    """Write ``run`` as a run directory (weights, config, ID maps, metrics, history, plot)."""
    from movierec.artifacts import save_run
    from movierec.plotting import plot_learning_curve

    columns = [f.name for f in dataclasses.fields(EpochRecord)]
    history = pd.DataFrame(run.fit.history_rows(), columns=columns)

    def add_plot(folder: Path) -> None:
        if run.fit.history:
            plot_learning_curve(
                run.fit.history,
                folder / "learning_curve.png",
                f"{run.spec.name} on {run.info['dataset']} ({run.info['split']})",
            )

    return save_run(
        out,
        run.recommender,
        model_config=run.spec.config,
        train_config=run.spec.train,
        info=run.info,
        metrics=run.metrics,
        history=history,
        extra_files=add_plot,
    )


def train(
    data: str | RatingsData,
    *,
    split: str | None = None,
    model: str | None = None,
    config_path: Path | None = None,
    out: Path | None = None,
    epochs: int | None = None,
    columns: Sequence[str] | None = None,
    load_options: Mapping[str, Any] | None = None,
    options: RunOptions | None = None,
    k: int = 10,
    train_options: Mapping[str, Any] | None = None,
    relevance: float | str | None = "default",
) -> TrainedRun:
    """Load ``data``, train one model, evaluate it on the test split and optionally save it.

    ``train_options`` override training hyperparameters (``objective``, ``negatives``, ...);
    ``relevance`` as in :func:`train_model`.
    """
    options = options or RunOptions()
    overrides = {key: v for key, v in (train_options or {}).items() if v is not None}
    if epochs is not None:
        overrides["epochs"] = epochs
    spec = ModelSpec.resolve(model, config_path, train_options=overrides or None)
    dataset = (
        data
        if isinstance(data, RatingsData)
        else load_data(data, columns=columns, progress=options.progress, **(load_options or {}))
    )
    prepared = prepare(
        dataset, split, seed=options.seed, validation_fraction=spec.train.validation_fraction
    )
    context = {
        "data": data if isinstance(data, str) else None,
        "split": split,
        "columns": list(columns) if columns else None,
        "load_options": dict(load_options or {}),
        "model": spec.name,
        "model_config": dataclasses.asdict(spec.config),
        "train_config": dataclasses.asdict(spec.train),
        "seed": options.seed,
        "device": options.device,
        "threads": options.threads,
        # How the step runs: a resumed run continues with the same fast path.
        "speed": {
            "precision": options.precision,
            "compile": options.compile,
            "fused_adam": options.fused_adam,
            "fast_dropout": options.fast_dropout,
        },
        "k": k,
        "relevance": relevance,
    }
    checkpoint = Path(out) / CHECKPOINT if out is not None else None
    with distributed.session(distributed.local_device(resolve_device(options.device))):
        run = train_model(
            prepared,
            spec,
            options,
            k=k,
            relevance=relevance,
            checkpoint=checkpoint,
            context=context,
        )
    if out is not None and distributed.is_main():
        save_trained(run, Path(out))
        run.metrics["run_dir"] = str(out)
    return run


def resume_training(run_dir: Path, *, progress: bool = True) -> TrainedRun:
    """Continue the interrupted ``movierec train --out run_dir`` from its last checkpoint.

    The checkpoint records the data, split, model, configs and seed, so the same job is rebuilt
    and continued at the exact step it stopped; the finished run replaces the checkpoint.
    """
    from movierec.artifacts import MANIFEST

    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    if not path.exists() and (run_dir / MANIFEST).exists():
        raise ArtifactError(f"{run_dir} is a finished run; there is nothing to resume")
    state = load_checkpoint(path)
    ctx = state.context
    if not ctx.get("data"):
        raise ArtifactError(
            f"{path} does not say which data it was trained on (it was started from Python "
            f"with a data frame); resume it from Python"
        )
    spec = ModelSpec(
        ctx["model"],
        make_config(ctx["model"], ctx["model_config"]),
        TrainConfig.from_mapping(ctx["train_config"]),
    )
    options = RunOptions(
        seed=ctx["seed"],
        device=ctx["device"],
        threads=ctx["threads"],
        progress=progress,
        **ctx.get("speed", {}),  # absent in checkpoints written before the fast path
    )
    dataset = load_data(
        ctx["data"], columns=ctx["columns"], progress=progress, **ctx.get("load_options", {})
    )
    prepared = prepare(
        dataset, ctx["split"], seed=options.seed, validation_fraction=spec.train.validation_fraction
    )
    with distributed.session(distributed.local_device(resolve_device(options.device))):
        run = train_model(
            prepared,
            spec,
            options,
            k=ctx["k"],
            relevance=ctx["relevance"],
            checkpoint=path,
            resume=state,
            context=ctx,
        )
    if not distributed.is_main():
        return run
    save_trained(run, run_dir)
    run.metrics["run_dir"] = str(run_dir)
    run.metrics["resumed_from_epoch"] = state.epoch
    return run


def compare_models(
    data: str | RatingsData,
    models: Sequence[str],
    *,
    split: str | None = None,
    out: Path | None = None,
    columns: Sequence[str] | None = None,
    load_options: Mapping[str, Any] | None = None,
    options: RunOptions | None = None,
    k: int = 10,
    train_options: Mapping[str, Any] | None = None,
    relevance: float | str | None = "default",
) -> list[TrainedRun]:
    """Train each model on the same split (same seed) and evaluate each on the same test set.

    With ``out``, each run is saved to ``out/<model>``. ``train_options`` (an ``objective``, for
    instance) apply to every model; ``relevance`` as in :func:`train_model`.
    """
    options = options or RunOptions()
    overrides = {key: v for key, v in (train_options or {}).items() if v is not None} or None
    specs = [ModelSpec.resolve(name, train_options=overrides) for name in models]
    if not specs:
        raise ConfigError("give at least one model to compare, e.g. --models embedding-net,bias")
    dataset = (
        data
        if isinstance(data, RatingsData)
        else load_data(data, columns=columns, progress=options.progress, **(load_options or {}))
    )
    prepared_by_fraction: dict[float, Prepared] = {}
    runs = []
    for spec in specs:
        fraction = spec.train.validation_fraction
        if fraction not in prepared_by_fraction:
            prepared_by_fraction[fraction] = prepare(
                dataset, split, seed=options.seed, validation_fraction=fraction
            )
        run = train_model(prepared_by_fraction[fraction], spec, options, k=k, relevance=relevance)
        if out is not None:
            save_trained(run, Path(out) / spec.name)
            run.metrics["run_dir"] = str(Path(out) / spec.name)
        runs.append(run)
    return runs


def evaluate_run(
    run_dir: Path,
    data: str | RatingsData,
    *,
    split: str | None = None,
    columns: Sequence[str] | None = None,
    load_options: Mapping[str, Any] | None = None,
    seed: int | None = None,
    k: int = 10,
    relevance: float | str | None = "default",
) -> dict[str, Any]:
    """Evaluate a saved run on ``data``'s test split (the run's seed unless one is given)."""
    from movierec.artifacts import load_run

    recommender, run = load_run(run_dir)
    dataset = (
        data
        if isinstance(data, RatingsData)
        else load_data(data, columns=columns, **(load_options or {}))
    )
    seed = int(run.get("seed", 0)) if seed is None else seed
    chosen = make_split(
        dataset.ratings, split or default_split(dataset), layout=dataset.layout, seed=seed
    )
    threshold = default_relevance(chosen.name) if relevance == "default" else relevance
    metrics = evaluate(recommender, chosen.train, chosen.test, k=k, threshold=threshold)
    return {
        "model": run["model"],
        "dataset": dataset.name,
        "split": chosen.name,
        "objective": recommender.objective,
        **metrics,
    }
