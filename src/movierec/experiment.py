"""A :class:`~movierec.config.Job` from start to finish: the steps behind ``movierec train``.

Job -> load the data -> :func:`movierec.pipeline.fit_recommender` (split, carve-out, encode,
train) -> metrics on the untouched test set -> run directory. The facts a run reports
(``run.json``, the metrics summary, the checkpoint context) are all derived from the Job and what
training returned, in :class:`TrainedRun`. A job with ``split="none"``
(:data:`movierec.data.splits.NO_TEST`) trains on every rating and has no test metrics; its
``run.json`` says where the epoch count came from (``epochs_from``, ``epochs``). A job with
``[train] refit = true`` does the same on the whole training part of its split (validation
carve-out included) and is scored once on the test set; ``run.json`` says ``"refit": true``
beside the same facts. With a tracker (:mod:`movierec.tracking`, ``--track mlflow``) the job's
params, each epoch's metrics, the test metrics and the run directory are logged too.
:func:`save_recommender` writes a recommender trained in Python with the same writer.

Under torchrun every rank loads and prepares the same data and trains its shard; only rank 0
evaluates on the test set and writes the run directory (see :mod:`movierec.train.distributed`).
"""

from __future__ import annotations

import dataclasses
import math
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pandas as pd

from movierec.config import Job, ModelSpec, RunOptions
from movierec.data import DataPolicy, RatingsData, load_data
from movierec.data.metadata import with_metadata
from movierec.data.splits import NO_TEST, check_split, make_split
from movierec.errors import ArtifactError, ConfigError, TrainingError
from movierec.evaluate.evaluation import default_relevance, evaluate
from movierec.pipeline import Prepared, default_split, fit_recommender, prepare
from movierec.recommend import Recommender
from movierec.tracking import Tracker, tracked
from movierec.train import EpochRecord, FitResult, distributed, resolve_device
from movierec.train.checkpoint import CHECKPOINT, TrainingState, load_checkpoint

TIMINGS = ("train_seconds", "evaluation_seconds")  # kept in run.json beside the metrics


@dataclass
class TrainedRun:
    """One job trained on one split and scored once on its test set.

    Attributes:
        job: What was run.
        prepared: The split and tensors it was trained on.
        recommender: The trained recommender; ``recommender.training`` is the fit's history.
        metrics: The summary ``movierec train --json`` prints and ``metrics.json`` holds.
    """

    job: Job
    prepared: Prepared
    recommender: Recommender
    metrics: dict[str, Any]

    @property
    def spec(self) -> ModelSpec:
        return self.job.spec

    @property
    def fit(self) -> FitResult:
        return self.recommender.training

    @property
    def info(self) -> dict[str, Any]:
        """Provenance for ``run.json``."""
        data = self.prepared.data
        return {
            "dataset": data.name,
            "data_source": str(data.source),
            "split": self.prepared.split.name,
            "seed": self.job.options.seed,
            "best_epoch": self.fit.best_epoch,
            **_rating_best(self.fit),
            "objective": self.recommender.objective,
            **self.epoch_facts,
            # What the run cost, beside each other (issue 16): the final fit and its test.
            **{k: self.metrics[k] for k in TIMINGS if k in self.metrics},
            # How to rebuild its data and split (a blend scores its members' test set anew).
            "job": self.job.context(),
        }

    @property
    def epoch_facts(self) -> dict[str, Any]:
        """For a run on the whole training part (every rating, or a refit): ``epochs_from``,
        ``epochs``, ``refit`` (and the validation run's numbers and history when it chose
        them); empty for a run that stopped early on its own carve-out."""
        keys = ("epochs_from", "epochs", "refit", "validation")
        return {k: self.recommender.info[k] for k in keys if k in self.recommender.info}


def load_job_data(job: Job) -> RatingsData:
    """The ratings ``job`` names (a catalogue name, a folder or a file)."""
    if job.data is None:
        raise ConfigError("the job names no data; pass the ratings to run_job(data=...)")
    columns = list(job.columns) if job.columns else None
    return load_data(
        job.data,
        columns=columns,
        progress=job.options.progress,
        policy=job.policy,
        items=job.items,
        item_columns=list(job.item_columns) if job.item_columns else None,
    )


def run_job(
    job: Job,
    *,
    data: RatingsData | None = None,
    out: Path | None = None,
    resume: TrainingState | None = None,
    tracker: Tracker | None = None,
) -> TrainedRun:
    """Load, train, evaluate and (with ``out``) save ``job``.

    Args:
        job: What to run.
        data: The ratings, when they are already in memory (else :func:`load_job_data`).
        out: A run directory to write; training checkpoints go inside it.
        resume: A checkpoint's state of this same job to continue from.
        tracker: Where to log params, per-epoch and test metrics and the run directory
            (:mod:`movierec.tracking`); rank 0 only under torchrun.
    """
    dataset = data if data is not None else load_job_data(job)
    prepared = prepare(
        dataset,
        job.split,
        seed=job.options.seed,
        validation_fraction=job.spec.train.validation_fraction,
    )
    checkpoint = Path(out) / CHECKPOINT if out is not None else None
    tracker = tracker if distributed.is_main() else None
    with tracked(tracker, job) as on_epoch:
        with distributed.session(distributed.local_device(resolve_device(job.options.device))):
            run = train_model(
                prepared, job, checkpoint=checkpoint, resume=resume, on_epoch=on_epoch
            )
        if out is not None and distributed.is_main():
            save_trained(run, Path(out))
            run.metrics["run_dir"] = str(out)
        if tracker is not None:
            tracker.finish(run, Path(out) if out is not None else None)
    return run


def train_model(
    prepared: Prepared,
    job: Job,
    *,
    checkpoint: Path | None = None,
    resume: TrainingState | None = None,
    on_epoch: Callable[[EpochRecord, Any], None] | None = None,
) -> TrainedRun:
    """Train ``job``'s model on ``prepared`` and evaluate it once on the test split (a refit:
    only the model refit on the whole training part, once)."""
    recommender = fit_recommender(
        prepared,
        job.spec,
        job.options,
        on_epoch=on_epoch,
        checkpoint=checkpoint,
        resume=resume,
        context=job.context(),
    )
    distributed.barrier()  # training ended on every rank
    if not distributed.is_main():
        # Rank 0 evaluates and saves; the other ranks' part ends with training.
        return TrainedRun(job, prepared, recommender, {"rank": distributed.world().rank})
    split = prepared.split
    recommender.rank_by = job.rank_by
    # Lists are scored exactly (fp32) whatever the step trained in, as `evaluate` and `recommend`
    # score them by default: the same run gives the same lists and metrics in every command.
    recommender.precision = "fp32"
    if not split.has_test:  # trained on every rating: nothing left to evaluate on
        run = TrainedRun(job, prepared, recommender, {})
        run.metrics = summary(run, {}, 0.0)
        return run
    threshold = default_relevance(split.name) if job.relevance == "default" else job.relevance
    started = time.perf_counter()
    metrics = evaluate(recommender, split.train, split.test, k=job.k, threshold=threshold)
    evaluation_seconds = time.perf_counter() - started
    _refuse_nan(metrics, job.spec.name)
    run = TrainedRun(job, prepared, recommender, {})
    run.metrics = summary(run, metrics, evaluation_seconds)
    return run


def _refuse_nan(metrics: Mapping[str, Any], model: str) -> None:
    """A TrainingError when a test metric is NaN or infinite: never reported, never saved."""
    not_numbers = [n for n, v in metrics.items() if isinstance(v, float) and not math.isfinite(v)]
    if not_numbers:
        raise TrainingError(
            f"the test {', '.join(not_numbers)} of {model} came out as no number (NaN or "
            "infinite): the model answers NaN for some test ratings, so nothing is reported or "
            "saved; retrain with a smaller lr in [train], or report it as a bug if that persists"
        )


def _rating_best(result: FitResult) -> dict[str, int]:
    """``rating_best_epoch`` where a ranking tower kept the rating half at its own best epoch
    (``best_epoch`` is then the ranking half's); nothing otherwise."""
    if result.rating_best_epoch is None:
        return {}
    return {"rating_best_epoch": result.rating_best_epoch}


def summary(run: TrainedRun, metrics: Mapping[str, Any], evaluation_seconds: float) -> dict:
    """What a run reports: its facts, the test metrics and the training numbers."""
    result, prepared, spec = run.fit, run.prepared, run.spec
    out = {
        "model": spec.name,
        "dataset": prepared.data.name,
        "split": prepared.split.name,
        "objective": run.recommender.objective,
        **metrics,
        "train_seconds": result.train_seconds,
        "evaluation_seconds": evaluation_seconds,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        **_rating_best(result),
        "ratings_per_second": result.ratings_per_second,
        "n_fit": len(prepared.fit_tensors),
        "n_valid": prepared.n_valid,
        "n_test": len(prepared.split.test),
        "parameters": sum(p.numel() for p in run.recommender.model.parameters()),
        "seed": run.job.options.seed,
        "data_report": dict(prepared.data.report),
    }
    facts = run.epoch_facts
    if facts:
        # The final fit learnt from the whole training part (every rating with --split none);
        # the validation run that chose its epochs (if any) is in "validation", less its
        # per-epoch history (run.json keeps that).
        if "validation" in facts:
            validation = {k: v for k, v in facts["validation"].items() if k != "history"}
            facts = {**facts, "validation": validation}
        out.update(n_fit=len(prepared.split.train), n_valid=0, **facts)
    if not prepared.split.has_test:
        del out["evaluation_seconds"]
    if result.world_size > 1:
        # Data-parallel: the global batch is the configured one (rounded down to a multiple of
        # the world size) and the learning rate is the configured one, unscaled.
        out["world_size"] = result.world_size
        out["effective_batch_size"] = result.effective_batch_size
        out["lr"] = spec.train.lr
    return out


def save_trained(run: TrainedRun, out: Path) -> Path:
    """Write ``run`` as a run directory (weights, config, ID maps, metrics, history, plot)."""
    return _save(run.recommender, run.spec, Path(out), run.info, run.metrics)


def save_recommender(recommender: Recommender, out: str | Path) -> Path:
    """Write a recommender trained in Python (:func:`movierec.fit_recommender`) as a run
    directory that ``movierec serve``, ``recommend`` and :func:`movierec.load_run` read.

    The same writer as ``movierec train --out``: weights, model and training options, ID maps,
    item metadata, the epoch history and learning curve; no test metrics (it was not
    evaluated here). Atomic: an existing run at ``out`` is replaced whole, any other non-empty
    folder is refused.

    Args:
        recommender: A freshly trained recommender (it carries its :class:`ModelSpec`).
        out: The run directory to write.

    Returns:
        ``out`` as a Path.

    Raises:
        ArtifactError: ``recommender`` has no spec (it was loaded from a run directory, which
            is already saved), or ``out`` is a folder that is not a run.
    """
    if recommender.spec is None:
        raise ArtifactError(
            "this recommender was loaded from a run directory and is saved there already; "
            "save_recommender writes recommenders trained with fit_recommender"
        )
    info = dict(recommender.info)
    if recommender.training is not None:
        info.setdefault("best_epoch", recommender.training.best_epoch)
        info.update(_rating_best(recommender.training))
    return _save(recommender, recommender.spec, Path(out), info, None)


def _save(
    recommender: Recommender,
    spec: ModelSpec,
    out: Path,
    info: Mapping[str, Any],
    metrics: Mapping[str, Any] | None,
) -> Path:
    from movierec.artifacts import save_run
    from movierec.plotting import plot_learning_curve

    fit = recommender.training
    columns = [f.name for f in dataclasses.fields(EpochRecord)]
    history = pd.DataFrame(fit.history_rows() if fit else [], columns=columns)

    def add_plot(folder: Path) -> None:
        if fit is not None and fit.history:
            plot_learning_curve(
                fit.history,
                folder / "learning_curve.png",
                f"{spec.name} on {info.get('dataset')} ({info.get('split')})",
            )

    return save_run(
        out,
        recommender,
        model_config=spec.config,
        train_config=spec.train,
        info=info,
        metrics=metrics,
        history=history,
        extra_files=add_plot,
    )


def _overrides(
    train_options: Mapping[str, Any] | None, epochs: int | None = None
) -> dict[str, Any] | None:
    """The training options given on the command line (None values are "not given")."""
    overrides = {key: v for key, v in (train_options or {}).items() if v is not None}
    if epochs is not None:
        overrides["epochs"] = epochs
    return overrides or None


def _job(
    spec: ModelSpec,
    data: str | RatingsData,
    split: str | None,
    columns: Sequence[str] | None,
    policy: DataPolicy | None,
    options: RunOptions | None,
    k: int,
    relevance: float | str | None,
    rank_by: str,
) -> Job:
    """The Job the keyword verbs (:func:`train`, :func:`compare_models`) describe."""
    return Job(
        spec=spec,
        options=options or RunOptions(),
        data=data if isinstance(data, str) else None,
        split=split,
        columns=tuple(columns) if columns else None,
        policy=policy or DataPolicy(),
        k=k,
        relevance=relevance,
        rank_by=rank_by,
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
    policy: DataPolicy | None = None,
    options: RunOptions | None = None,
    k: int = 10,
    train_options: Mapping[str, Any] | None = None,
    relevance: float | str | None = "default",
    rank_by: str = "shrunk",
    items: str | Path | None = None,
    item_columns: Sequence[str] | None = None,
    tracker: Tracker | None = None,
) -> TrainedRun:
    """Load ``data``, train one model, evaluate it on the test split and optionally save it.

    ``items``: an item metadata file (titles, genres; ``--items``) in place of the data's own,
    its ID, title[, genres] columns found by common names or named by ``item_columns``.

    ``split="none"`` trains on every rating, for ``epochs`` when given, else for the best epoch
    of a validation run on the same data (see :func:`movierec.pipeline.fit_recommender`).

    ``train_options`` override training hyperparameters (``objective``, ``negatives``, ...);
    ``relevance``: the rating a test item needs to count as relevant, None for any rating, or
    ``"default"`` to let the split decide
    (:func:`movierec.evaluate.evaluation.default_relevance`); ``refit`` among them retrains on
    the whole training part for the epochs early stopping chose. ``tracker``: see
    :func:`run_job`.
    """
    overrides = _overrides(train_options, epochs)
    spec = ModelSpec.resolve(model, config_path, train_options=overrides)
    if epochs is not None and split is not None and split.strip().lower() == NO_TEST:
        # On every rating with the epochs given: they are trained, no validation run chooses
        # them (a refit would be that run; the default config's refit yields to --epochs).
        train_config = dataclasses.replace(spec.train, validation_fraction=0.0, refit=False)
        spec = dataclasses.replace(spec, train=train_config)
    job = _job(spec, data, split, columns, policy, options, k, relevance, rank_by)
    if items is not None:
        named = tuple(item_columns) if item_columns else None
        job = dataclasses.replace(job, items=str(items), item_columns=named)
        if isinstance(data, RatingsData):
            data = with_metadata(data, items, item_columns=item_columns)
    in_memory = data if isinstance(data, RatingsData) else None
    return run_job(job, data=in_memory, out=out, tracker=tracker)


def resume_training(
    run_dir: Path, *, progress: bool = True, tracker: Tracker | None = None
) -> TrainedRun:
    """Continue the interrupted ``movierec train --out run_dir`` from its last checkpoint.

    The checkpoint records the Job, so the same job is rebuilt and continued at the exact step
    it stopped; the finished run replaces the checkpoint. A refit's checkpoint also records
    the epoch counts its validation run chose, so the refit continues without repeating it.
    ``tracker`` logs the resumed job as a new tracked run (the whole history).
    """
    from movierec.artifacts import MANIFEST

    run_dir = Path(run_dir)
    path = run_dir / CHECKPOINT
    if not path.exists() and (run_dir / MANIFEST).exists():
        raise ArtifactError(f"{run_dir} is a finished run; there is nothing to resume")
    state = load_checkpoint(path)
    if not state.context.get("data"):
        raise ArtifactError(
            f"{path} does not say which data it was trained on (it was started from Python "
            f"with a data frame); resume it from Python"
        )
    job = Job.from_context(state.context, progress=progress)
    run = run_job(job, out=run_dir, resume=state, tracker=tracker)
    if distributed.is_main():
        run.metrics["resumed_from_epoch"] = state.epoch
    return run


def compare_models(
    data: str | RatingsData,
    models: Sequence[str],
    *,
    split: str | None = None,
    out: Path | None = None,
    columns: Sequence[str] | None = None,
    policy: DataPolicy | None = None,
    options: RunOptions | None = None,
    k: int = 10,
    train_options: Mapping[str, Any] | None = None,
    relevance: float | str | None = "default",
    rank_by: str = "shrunk",
) -> list[TrainedRun]:
    """Train each model on the same split (same seed) and evaluate each on the same test set.

    With ``out``, each run is saved to ``out/<model>``. ``train_options`` (an ``objective``, for
    instance) apply to every model; ``relevance`` as in :func:`train`.
    """
    _needs_test(split, "compare")
    overrides = _overrides(train_options)
    spec = ModelSpec.resolve(models[0] if models else None, train_options=overrides)
    base = _job(spec, data, split, columns, policy, options, k, relevance, rank_by)
    jobs = [
        dataclasses.replace(base, spec=ModelSpec.resolve(name, train_options=overrides))
        for name in models
    ]
    folders = list(models)  # "default" and "embedding-net" are both EmbeddingNets
    if not jobs:
        raise ConfigError("give at least one model to compare, e.g. --models embedding-net,bias")
    dataset = data if isinstance(data, RatingsData) else load_job_data(jobs[0])
    prepared_by_fraction: dict[float, Prepared] = {}
    runs = []
    for job, folder in zip(jobs, folders, strict=True):
        fraction = job.spec.train.validation_fraction
        if fraction not in prepared_by_fraction:
            prepared_by_fraction[fraction] = prepare(
                dataset, split, seed=job.options.seed, validation_fraction=fraction
            )
        run = train_model(prepared_by_fraction[fraction], job)
        run.metrics["label"] = folder
        if out is not None:
            save_trained(run, Path(out) / folder)
            run.metrics["run_dir"] = str(Path(out) / folder)
        runs.append(run)
    return runs


def _needs_test(split: str | None, verb: str) -> None:
    """``compare`` and ``evaluate`` score a test set: ``--split none`` has none."""
    if split is not None and split.strip().lower() == NO_TEST:
        raise ConfigError(
            f"{verb} scores models on a test set and --split none has none; pick a split "
            f"with a test part (u1, random:0.2, ...), or use movierec train --split none"
        )


def evaluate_run(
    run_dir: Path,
    data: str | RatingsData,
    *,
    split: str | None = None,
    columns: Sequence[str] | None = None,
    policy: DataPolicy | None = None,
    seed: int | None = None,
    k: int = 10,
    relevance: float | str | None = "default",
    rank_by: str = "shrunk",
    precision: str = "fp32",
) -> dict[str, Any]:
    """Evaluate a saved run on ``data``'s test split (the run's seed unless one is given);
    ``precision`` is how its lists are scored (:attr:`Recommender.precision`)."""
    from movierec.artifacts import load_run

    _needs_test(split, "evaluate")
    recommender, run = load_run(run_dir)
    recommender.rank_by = rank_by
    recommender.precision = precision
    dataset = (
        data
        if isinstance(data, RatingsData)
        else load_data(data, columns=columns, policy=policy or DataPolicy())
    )
    seed = int(run.get("seed", 0)) if seed is None else seed
    chosen = make_split(
        dataset.ratings, split or default_split(dataset), layout=dataset.layout, seed=seed
    )
    check_split(chosen)  # an empty test part would score nothing (NaN)
    threshold = default_relevance(chosen.name) if relevance == "default" else relevance
    started = time.perf_counter()
    metrics = evaluate(recommender, chosen.train, chosen.test, k=k, threshold=threshold)
    evaluation_seconds = time.perf_counter() - started
    _refuse_nan(metrics, run["model"])
    return {
        "model": run["model"],
        "dataset": dataset.name,
        "split": chosen.name,
        "objective": recommender.objective,
        **metrics,
        # The run's own training time (None for runs saved before it was recorded) beside this
        # evaluation's.
        "train_seconds": run.get("train_seconds"),
        "evaluation_seconds": evaluation_seconds,
        "precision": precision,
    }
