"""Experiment tracking behind ``movierec train --track mlflow``: an optional MLflow tracker.

What the module holds:

- :class:`Tracker`: what :func:`movierec.experiment.run_job` asks of a tracker (start a run with
  the job's params, log each epoch, log the finished run, end it).
- :func:`tracked`: the context a job runs in: it starts the tracked run, hands the training
  loop's ``on_epoch`` callback to the job, and ends the run as finished, killed or failed.
- :class:`MlflowTracker`: the MLflow one (the ``mlflow`` extra, ``mlflow-skinny``): params from
  the :class:`~movierec.config.Job`, each epoch's losses and validation metrics at their epoch
  as the step, the test metrics and the run directory (as artifacts under ``run/``). MLflow's
  own settings choose the store (``MLFLOW_TRACKING_URI``; the default is MLflow's).
- :func:`make_tracker`: ``--track NAME`` -> a tracker, or one line naming the extra to install.

Why a tracking failure does not stop training: an epoch that MLflow cannot log is warned about
once and logged at the end with the rest of the history, so a tracking server's hiccup never
costs a finished run; a store that cannot even start a run is refused before any training.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import re
import warnings
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol

from movierec.errors import ConfigError, MovieRecWarning, TrainingInterrupted

if TYPE_CHECKING:
    from movierec.config import Job
    from movierec.experiment import TrainedRun
    from movierec.train import EpochRecord

TRACKERS = ("mlflow",)
MLFLOW_EXTRA = "pip install 'movierec[mlflow]' (or pip install mlflow-skinny)"
EXPERIMENT = "movierec"
VALIDATION_PREFIX = "validation_run."  # a refit's validation run, beside the refit's own epochs

OnEpoch = Callable[["EpochRecord", Any], None]


class Tracker(Protocol):
    """What a job asks of a tracker, in this order: start, log_epoch per epoch, finish, end."""

    def start(self, job: Job) -> None:
        """Open a tracked run and log ``job``'s params."""

    def log_epoch(self, record: EpochRecord, model: Any = None) -> None:
        """Log one epoch (the training loop's ``on_epoch`` callback)."""

    def finish(self, run: TrainedRun, out: Path | None) -> None:
        """Log the finished run: epochs not logged yet, test metrics, the run directory."""

    def end(self, status: str) -> None:
        """Close the tracked run with ``FINISHED``, ``KILLED`` or ``FAILED``."""


def make_tracker(name: str | None) -> Tracker | None:
    """The tracker ``--track NAME`` asks for (None: no tracking).

    Raises:
        ConfigError: An unknown name, or MLflow is not installed (the message names the extra).
    """
    if name is None:
        return None
    if name.strip().lower() not in TRACKERS:
        raise ConfigError(f"--track must be one of {', '.join(TRACKERS)} (got {name!r})")
    return MlflowTracker()


@contextlib.contextmanager
def tracked(tracker: Tracker | None, job: Job) -> Iterator[OnEpoch | None]:
    """Run a job inside a tracked run: yields the ``on_epoch`` callback to train with (None
    without a tracker), and ends the run as ``FINISHED``, ``KILLED`` (Ctrl-C, SIGTERM) or
    ``FAILED`` (any error), re-raising the error."""
    if tracker is None:
        yield None
        return
    tracker.start(job)
    try:
        yield tracker.log_epoch
    except (TrainingInterrupted, KeyboardInterrupt):
        tracker.end("KILLED")
        raise
    except BaseException:
        tracker.end("FAILED")
        raise
    tracker.end("FINISHED")


def job_params(job: Job) -> dict[str, str]:
    """``job`` as flat MLflow params: the model and its options (``model.*``), the training
    options (``train.*``), data, split and the run options that change results."""
    spec = job.spec
    params: dict[str, Any] = {
        "model": spec.name,
        "data": job.data,
        "split": job.split or "default",
        "seed": job.options.seed,
        "device": job.options.device,
        "precision": job.options.precision,
        "k": job.k,
        "relevance": job.relevance,
        "rank_by": job.rank_by,
    }
    params.update({f"model.{k}": v for k, v in dataclasses.asdict(spec.config).items()})
    params.update({f"train.{k}": v for k, v in dataclasses.asdict(spec.train).items()})
    return {key: _text(value) for key, value in params.items()}


def epoch_metrics(row: Mapping[str, Any], prefix: str = "") -> dict[str, float]:
    """One history row (an :class:`~movierec.train.EpochRecord` as a dict) as MLflow metrics,
    leaving out what the epoch did not measure (no validation: no ``valid_*``)."""
    names = {"seconds": "epoch_seconds"}
    return {
        f"{prefix}{names.get(key, key)}": float(value)
        for key, value in row.items()
        if key != "epoch" and _is_number(value)
    }


def run_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """The numbers of a run's summary as MLflow metrics (``precision@10`` ->
    ``precision_at_10``: MLflow names take letters, digits and ``_-. /:`` only)."""
    return {
        re.sub(r"[^\w\-. /:]", "_", key.replace("@", "_at_")): float(value)
        for key, value in metrics.items()
        if _is_number(value)
    }


class MlflowTracker:
    """Logs a job to MLflow: params at the start, each epoch as it ends, then the test metrics
    and the run directory. One tracked run per job (a resumed job is a new tracked run that
    logs the whole history).

    Args:
        uri: A tracking URI (None: MLflow's own setting, ``MLFLOW_TRACKING_URI``).
        experiment: The MLflow experiment the runs go to.

    Raises:
        ConfigError: MLflow is not installed (the message names the extra to install).
    """

    def __init__(self, uri: str | None = None, experiment: str = EXPERIMENT) -> None:
        try:
            import mlflow
        except ImportError:
            raise ConfigError(
                f"--track mlflow needs MLflow, which is not installed; install the mlflow "
                f"extra: {MLFLOW_EXTRA}"
            ) from None
        self.mlflow = mlflow
        self.uri, self.experiment = uri, experiment
        self.run_id: str | None = None
        self.logged: set[int] = set()
        self._warned = False

    def start(self, job: Job) -> None:
        mlflow = self.mlflow
        try:
            if self.uri is not None:
                mlflow.set_tracking_uri(self.uri)
            mlflow.set_experiment(self.experiment)
            name = f"{job.spec.name} {job.data or 'in-memory data'} {job.split or 'default'}"
            self.run_id = mlflow.start_run(run_name=name).info.run_id
            mlflow.log_params(job_params(job))
        except Exception as exc:  # MLflow raises its own types and the store's
            if self.run_id is not None:
                self.end("FAILED")
            raise ConfigError(
                f"MLflow could not start a run at tracking URI {_uri(mlflow)}: "
                f"{_first_line(exc)}; set MLFLOW_TRACKING_URI to a store it can write "
                "(e.g. sqlite:///mlflow.db), or drop --track"
            ) from None
        self.logged.clear()

    def log_epoch(self, record: EpochRecord, model: Any = None) -> None:
        row = dataclasses.asdict(record)
        try:
            self.mlflow.log_metrics(epoch_metrics(row), step=record.epoch)
        except Exception as exc:
            self._warn(f"MLflow could not log epoch {record.epoch} ({_first_line(exc)})")
            return
        self.logged.add(record.epoch)

    def finish(self, run: TrainedRun, out: Path | None) -> None:
        mlflow = self.mlflow
        fit = run.fit
        try:
            for row in fit.history_rows() if fit is not None else []:
                if row["epoch"] not in self.logged:  # a resumed run's earlier epochs, or a miss
                    mlflow.log_metrics(epoch_metrics(row), step=row["epoch"])
            validation = run.recommender.info.get("validation") or {}
            for row in validation.get("history", []):  # a refit's validation run
                mlflow.log_metrics(epoch_metrics(row, VALIDATION_PREFIX), step=row["epoch"])
            mlflow.log_metrics(run_metrics(run.metrics))
            mlflow.set_tags({k: _text(v) for k, v in _tags(run).items()})
            if out is not None:
                mlflow.log_artifacts(str(out), artifact_path="run")
        except Exception as exc:
            saved = f"the run was saved to {out}, but " if out is not None else ""
            raise ConfigError(
                f"{saved}MLflow could not log it at tracking URI {_uri(mlflow)}: {_first_line(exc)}"
            ) from None

    def end(self, status: str) -> None:
        with contextlib.suppress(Exception):  # ending is best effort: the job's outcome stands
            self.mlflow.end_run(status=status)

    def _warn(self, message: str) -> None:
        if not self._warned:
            self._warned = True
            warnings.warn(
                f"{message}; training goes on and the missing epochs are logged at the end",
                MovieRecWarning,
                stacklevel=3,
            )


def _tags(run: TrainedRun) -> dict[str, Any]:
    """What the run is, as tags: where its epochs came from, whether it was refit, its folder."""
    info, metrics = run.recommender.info, run.metrics
    tags = {
        "dataset": metrics.get("dataset"),
        "split": metrics.get("split"),
        "objective": metrics.get("objective"),
        "refit": bool(info.get("refit", False)),
    }
    if "epochs_from" in info:
        tags["epochs_from"] = info["epochs_from"]
    if "run_dir" in metrics:
        tags["run_dir"] = metrics["run_dir"]
    return tags


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _text(value: Any) -> str:
    """A param or tag value: strings as they are, everything else as JSON."""
    return value if isinstance(value, str) else json.dumps(value, default=str)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip() or type(exc).__name__
    return text.splitlines()[0]


def _uri(mlflow: Any) -> str:
    with contextlib.suppress(Exception):
        return str(mlflow.get_tracking_uri())
    return "(unknown)"
