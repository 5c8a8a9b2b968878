"""Hyperparameter search behind ``movierec tune``: Optuna TPE, pruning, a study that resumes.

The search space lives in the config file, next to the base configuration it varies::

    [model]
    name = "embedding-net"

    [train]
    epochs = 30

    [search]
    lr = { low = 1e-4, high = 1e-2, log = true }      # a float range (log scale)
    n_factors = { choices = [32, 64, 150] }          # a categorical choice
    hidden = { choices = [[100, 200, 300], [256, 128]] }  # choices may be lists
    batch_size = { low = 256, high = 4096, step = 256 }   # an int range (both bounds ints)
    train.weight_decay = { low = 1e-7, high = 1e-3, log = true }  # section spelled out

A bare key names an option of the model's config dataclass or of
:class:`movierec.config.TrainConfig`; ``model.KEY`` / ``train.KEY`` says which when the name is
in both. ``movierec train`` ignores the ``[search]`` table, so the file also trains as is.

Why it is honest: every trial trains on the training part minus the validation carve-out and is
scored on that carve-out only (its best-epoch RMSE, the weights early stopping keeps); the test
set is never read. Each epoch's validation RMSE goes to Optuna so that a median pruner stops
trials that are behind. The study lives in SQLite in the study directory, so running the command
again adds trials to the same study; its fingerprint (data, split, seed, base config, search
space) must match, or the command refuses rather than mixing two searches.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import json
import math
import re
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch

from movierec.config import ModelSpec, RunOptions, TrainConfig, load_config_file, read_toml
from movierec.data import RatingsData
from movierec.errors import ConfigError
from movierec.models import model_class
from movierec.pipeline import Prepared, check_refit, default_split, fit_recommender, prepare
from movierec.train import EpochRecord, FitResult, predict_tensors, resolve_device
from movierec.train.objectives import predicts_ratings

SECTIONS = ("model", "train")
# Searching these would change what a trial is scored on, not how well it learns.
NOT_SEARCHABLE = {"validation_fraction", "objective", "refit"}
SPEC_KEYS = {"low", "high", "log", "step", "choices"}
STUDY_FILE = "study.db"
PRUNER_STARTUP_TRIALS = 5  # trials that always finish before the median pruner prunes any
# Epochs 1 and 2 are never pruned (Optuna prunes from step n_warmup_steps on): early scores
# say more about the learning rate's speed than about where a trial ends.
PRUNER_WARMUP_EPOCHS = 3

TUNED_BY = "Tuned by `movierec tune`"  # the first line of every best config it writes


@dataclass(frozen=True)
class Dimension:
    """One searched option: a numeric range or a list of choices."""

    section: str  # "model" or "train"
    name: str
    low: float | None = None
    high: float | None = None
    log: bool = False
    step: float | None = None
    choices: tuple[Any, ...] | None = None

    @property
    def key(self) -> str:
        return f"{self.section}.{self.name}"

    @property
    def _encoded(self) -> bool:
        """Optuna stores only scalars as choices: list choices travel as JSON text."""
        return self.choices is not None and any(
            isinstance(c, list | tuple | dict) for c in self.choices
        )

    def suggest(self, trial: Any) -> Any:
        """Draw this option's value for ``trial``."""
        if self.choices is not None:
            if self._encoded:
                options = [json.dumps(c) for c in self.choices]
                return json.loads(trial.suggest_categorical(self.key, options))
            return trial.suggest_categorical(self.key, list(self.choices))
        if _is_int(self.low) and _is_int(self.high) and (self.step is None or _is_int(self.step)):
            return trial.suggest_int(
                self.key, int(self.low), int(self.high), step=int(self.step or 1), log=self.log
            )
        return trial.suggest_float(self.key, self.low, self.high, step=self.step, log=self.log)

    def decode(self, stored: Any) -> Any:
        """A value as Optuna stored it -> the option's value."""
        return json.loads(stored) if self._encoded else stored


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _is_spec(value: Any) -> bool:
    return isinstance(value, dict) and bool(value) and ("low" in value or "choices" in value)


@dataclass(frozen=True)
class SearchSpace:
    """The ``[search]`` table of a config file, checked against the model and TrainConfig."""

    dimensions: tuple[Dimension, ...]
    raw: dict[str, Any]

    @classmethod
    def from_file(cls, path: Path, model: str) -> SearchSpace:
        payload = read_toml(path)
        table = payload.get("search")
        if not isinstance(table, dict) or not table:
            raise ConfigError(
                f"config file {path} has no [search] table; add one, e.g. "
                f"[search] lr = {{ low = 1e-4, high = 1e-2, log = true }}"
            )
        return cls.from_table(table, model, where=f"config file {path}")

    @classmethod
    def from_table(cls, table: Mapping[str, Any], model: str, *, where: str) -> SearchSpace:
        known = {
            "model": {f.name for f in dataclasses.fields(model_class(model).config_class)},
            "train": {f.name for f in dataclasses.fields(TrainConfig)},
        }
        entries: list[tuple[str | None, str, Any]] = []
        for key, value in table.items():
            if key in SECTIONS and isinstance(value, dict) and not _is_spec(value):
                entries += [(key, name, spec) for name, spec in value.items()]
            else:
                entries.append((None, key, value))
        dimensions = []
        for section, name, spec in entries:
            label = f"{section}.{name}" if section else name
            if section is None:
                homes = [s for s in SECTIONS if name in known[s]]
                if len(homes) > 1:
                    raise ConfigError(
                        f"{where}: [search] key {name!r} is both a model and a training option; "
                        f"write model.{name} or train.{name}"
                    )
                section = homes[0] if homes else None
            if section is None or name not in known[section]:
                raise ConfigError(
                    f"{where}: [search] key {label!r} is not an option of model {model!r} "
                    f"({', '.join(sorted(known['model'])) or 'none'}) nor a training option "
                    f"({', '.join(sorted(known['train']))})"
                )
            if section == "train" and name in NOT_SEARCHABLE:
                raise ConfigError(
                    f"{where}: [search] key {label!r} cannot be searched: trials must be scored "
                    f"on the same validation set with the rating objective; set it in [train]"
                )
            dimensions.append(_dimension(section, name, spec, f"{where}: [search] {label}"))
        return cls(tuple(dimensions), json.loads(json.dumps(dict(table), default=str)))

    def sample(self, trial: Any) -> tuple[dict[str, Any], dict[str, Any]]:
        """Draw (model options, train options) for ``trial``."""
        chosen: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
        for dim in self.dimensions:
            chosen[dim.section][dim.name] = dim.suggest(trial)
        return chosen["model"], chosen["train"]

    def decode(self, params: Mapping[str, Any]) -> tuple[dict[str, Any], dict[str, Any]]:
        """A trial's stored params -> (model options, train options)."""
        chosen: dict[str, dict[str, Any]] = {"model": {}, "train": {}}
        for dim in self.dimensions:
            if dim.key in params:
                chosen[dim.section][dim.name] = dim.decode(params[dim.key])
        return chosen["model"], chosen["train"]


def _dimension(section: str, name: str, spec: Any, where: str) -> Dimension:
    if not isinstance(spec, dict):
        raise ConfigError(
            f"{where}: give a range {{ low = ..., high = ... }} or {{ choices = [...] }}, "
            f"got {spec!r}"
        )
    unknown = sorted(set(spec) - SPEC_KEYS)
    if unknown:
        raise ConfigError(
            f"{where}: unknown key(s) {', '.join(unknown)}; use low, high, log, step or choices"
        )
    if "choices" in spec:
        choices = spec["choices"]
        if set(spec) != {"choices"} or not isinstance(choices, list) or not choices:
            raise ConfigError(f"{where}: choices must be a non-empty list, on its own")
        return Dimension(section, name, choices=tuple(choices))
    low, high, log, step = (
        spec.get("low"),
        spec.get("high"),
        spec.get("log", False),
        spec.get("step"),
    )
    if not (_is_number(low) and _is_number(high)) or not low < high:
        raise ConfigError(f"{where}: low and high must be numbers with low < high")
    if not isinstance(log, bool):
        raise ConfigError(f"{where}: log must be true or false")
    if log and low <= 0:
        raise ConfigError(f"{where}: a log range needs low > 0")
    if step is not None and (not _is_number(step) or step <= 0 or log):
        raise ConfigError(f"{where}: step must be a positive number, and not with log = true")
    return Dimension(section, name, low, high, log, step)


def validation_score(
    prepared: Prepared,
    spec: ModelSpec,
    options: RunOptions,
    on_epoch: Callable[[EpochRecord, Any], None] | None = None,
) -> tuple[float, FitResult, int]:
    """Train ``spec`` and return (validation RMSE, fit result, parameter count).

    The score is the RMSE on the validation carve-out of the weights training ends on (the best
    epoch's, with early stopping); the test split is never touched. A spec that asks for a refit
    is scored without it: a model refit on the carve-out would be scored on its own training
    ratings.
    """
    if not len(prepared.valid_tensors):
        raise ConfigError(
            "tuning needs a validation carve-out; set [train] validation_fraction above 0"
        )
    if not model_class(spec.name).predicts_ratings:
        raise ConfigError(f"model {spec.name!r} ranks but predicts no ratings: nothing to tune")
    if spec.train.refit:
        spec = dataclasses.replace(spec, train=dataclasses.replace(spec.train, refit=False))
    recommender = fit_recommender(prepared, spec, options, on_epoch=on_epoch)
    model, result = recommender.model, recommender.training
    valid = prepared.valid_tensors.to(resolve_device(options.device))
    predicted = predict_tensors(model.to(valid.rating.device), valid)
    rmse = float(torch.sqrt(torch.mean((predicted - valid.rating) ** 2)))
    return rmse, result, sum(p.numel() for p in model.parameters())


@dataclass
class TuneResult:
    """What a ``tune`` invocation left behind."""

    study_name: str
    storage: str
    out: Path
    trials: int  # all trials of the study, earlier invocations included
    complete: int
    pruned: int
    failed: int
    added: int  # trials this invocation ran
    best_value: float
    best_trial: int
    best_model_options: dict[str, Any]
    best_train_options: dict[str, Any]
    refit: bool = False  # the best config refits when trained (best_epoch: its trial's)
    best_epoch: int | None = None

    def to_dict(self) -> dict[str, Any]:
        payload = dataclasses.asdict(self)
        payload["out"] = str(self.out)
        return payload


TrialCallback = Callable[[Any, float | None], None]  # (frozen trial, best value so far)


def tune(
    data: RatingsData,
    config_path: Path,
    *,
    trials: int,
    split: str | None = None,
    study_dir: Path | None = None,
    out: Path | None = None,
    options: RunOptions | None = None,
    on_trial: TrialCallback | None = None,
    refit: bool | None = None,
) -> TuneResult:
    """Run ``trials`` more trials of the study for ``config_path`` and write the best config.

    Trials are always scored without a refit (on the carve-out their early stopping judged).
    With ``refit`` (``--refit``, or ``[train] refit = true`` in the base config) the best config
    says ``refit = true``: training it repeats the chosen trial's validation run (same data,
    split and seed), then trains it from scratch on the whole training part for the epoch
    count that run chose (:func:`movierec.pipeline.fit_recommender`).

    Args:
        data: The dataset; ``split`` (default: u1 for ml-100k) is made with ``options.seed``.
        config_path: Base config plus its ``[search]`` table.
        trials: Trials to add in this call (the study keeps those of earlier calls).
        study_dir: Where the SQLite study lives (default ``runs/tune/<config stem>``).
        out: The best config's TOML (default ``<study_dir>/best.toml``).
        options: Seed, device and threads of every trial (progress bars are turned off).
        on_trial: Called after each trial with its frozen trial and the best value so far.
        refit: Whether the best config refits (None: the base config's ``[train] refit``).
    """
    import optuna

    if trials < 1:
        raise ConfigError(f"--trials must be at least 1, got {trials}")
    options = dataclasses.replace(options or RunOptions(), progress=False)
    config_path = Path(config_path)
    asked = {"refit": refit} if refit is not None else None
    base = ModelSpec.resolve(config_path=config_path, train_options=asked)
    check_refit(base)  # a closed-form model has no epochs to refit for: before any trial
    if not predicts_ratings(base.train.objective):
        raise ConfigError(
            f"config file {config_path}: tuning scores validation RMSE; "
            f'set [train] objective = "rating" or "joint" (got {base.train.objective!r})'
        )
    space = SearchSpace.from_file(config_path, base.name)
    file = load_config_file(config_path)
    split_name = split or default_split(data)
    prepared = prepare(
        data, split_name, seed=options.seed, validation_fraction=base.train.validation_fraction
    )
    study_dir = (
        Path(study_dir) if study_dir is not None else Path("runs") / "tune" / config_path.stem
    )
    study_dir.mkdir(parents=True, exist_ok=True)
    out = Path(out) if out is not None else study_dir / "best.toml"
    storage = f"sqlite:///{(study_dir / STUDY_FILE).resolve()}"
    study_name = f"{config_path.stem}-{data.name}-{prepared.split.name}"
    fingerprint = {
        "data": data.name,
        "split": prepared.split.name,
        "seed": options.seed,
        "model": base.name,
        "model_options": file.model_options,
        "train_options": file.train_options,
        "search": space.raw,
    }
    fingerprint = json.loads(json.dumps(fingerprint, default=str, sort_keys=True))

    optuna.logging.set_verbosity(optuna.logging.WARNING)
    study = optuna.create_study(
        storage=storage,
        study_name=study_name,
        direction="minimize",
        pruner=optuna.pruners.MedianPruner(
            n_startup_trials=PRUNER_STARTUP_TRIALS, n_warmup_steps=PRUNER_WARMUP_EPOCHS
        ),
        load_if_exists=True,
    )
    # Seeded, and shifted by the trials already run: a resumed study draws new points.
    existing = len(study.get_trials(deepcopy=False))
    study.sampler = optuna.samplers.TPESampler(seed=options.seed + existing)
    stored = study.user_attrs.get("fingerprint")
    if stored is None:
        study.set_user_attr("fingerprint", fingerprint)
    elif stored != fingerprint:
        differ = sorted(
            k for k in set(stored) | set(fingerprint) if stored.get(k) != fingerprint.get(k)
        )
        raise ConfigError(
            f"study {study_name!r} in {study_dir} was run with a different {', '.join(differ)}; "
            f"give another --study-dir, or delete {study_dir / STUDY_FILE} to start over"
        )

    def objective(trial: Any) -> float:
        model_options, train_options = space.sample(trial)
        try:
            spec = ModelSpec.resolve(
                config_path=config_path, model_options=model_options, train_options=train_options
            )
        except ConfigError as exc:
            raise ConfigError(f"trial {trial.number} drew an invalid combination: {exc}") from None

        def report(record: EpochRecord, _model: Any) -> None:
            if record.valid_rmse is None:
                return
            trial.report(record.valid_rmse, record.epoch)
            if trial.should_prune():
                raise optuna.TrialPruned(
                    f"validation RMSE {record.valid_rmse:.4f} at epoch {record.epoch}"
                )

        rmse, result, parameters = validation_score(prepared, spec, options, report)
        trial.set_user_attr("best_epoch", result.best_epoch)
        trial.set_user_attr("epochs", len(result.history))
        trial.set_user_attr("train_seconds", result.train_seconds)
        trial.set_user_attr("parameters", parameters)
        return rmse

    def after(study: Any, trial: Any) -> None:
        if on_trial is not None:
            on_trial(trial, _best_value(study))

    study.optimize(objective, n_trials=trials, callbacks=[after], catch=())
    states = [t.state for t in study.get_trials(deepcopy=False)]
    state = optuna.trial.TrialState
    counts = {
        s: sum(1 for x in states if x == s) for s in (state.COMPLETE, state.PRUNED, state.FAIL)
    }
    if not counts[state.COMPLETE]:
        raise ConfigError(
            f"study {study_name!r} has no completed trial yet ({counts[state.PRUNED]} pruned); "
            f"run more --trials"
        )
    best = study.best_trial
    model_options, train_options = space.decode(best.params)
    if refit is not None:
        train_options = {**train_options, "refit": refit}
    best_epoch = best.user_attrs.get("best_epoch")
    result = TuneResult(
        study_name,
        storage,
        out,
        len(states),
        counts[state.COMPLETE],
        counts[state.PRUNED],
        counts[state.FAIL],
        trials,
        float(best.value),
        best.number,
        model_options,
        train_options,
        base.train.refit,
        best_epoch,
    )
    header = [
        f"{TUNED_BY} (Optuna TPE, median pruning) on {data.name} split "
        f"{prepared.split.name}, seed {options.seed};",
        "every trial scored on the validation carve-out of the training part (never the test set).",
        f"study: {study_name} ({_shown(study_dir / STUDY_FILE)})",
        f"trials: {result.trials} ({result.complete} complete, {result.pruned} pruned, "
        f"{result.failed} failed); best trial #{best.number}",
        f"best validation RMSE: {best.value:.4f}",
        *_refit_note(base.train.refit, best_epoch),
        f"base config: {config_path}",
        f"date: {dt.datetime.now(dt.UTC).strftime('%Y-%m-%d %H:%M UTC')}",
        f"reproduce: movierec train --data {data.name} --split {prepared.split.name} "
        f"--seed {options.seed} --config {out}",
    ]
    text = render_config(
        base.name,
        {**file.model_options, **model_options},
        {**file.train_options, **train_options},
        header,
    )
    out.parent.mkdir(parents=True, exist_ok=True)
    from movierec.artifacts import atomic_write  # torch-heavy: only once there is a result

    with atomic_write(out, encoding="utf-8") as handle:  # an old best config stays until then
        handle.write(text)
    return result


def _refit_note(refit: bool, best_epoch: int | None) -> list[str]:
    """The header line of a best config that refits: what training it does."""
    if not refit:
        return []
    return [
        f"refit: training this config repeats the best trial's validation run (best epoch "
        f"{best_epoch}), then retrains it from scratch on the whole training part for that "
        "many epochs"
    ]


def _best_value(study: Any) -> float | None:
    try:
        return float(study.best_value)
    except ValueError:  # no completed trial yet
        return None


def written_by_tune(path: Path) -> bool:
    """Whether ``path`` is a best config that ``movierec tune`` wrote (its first line says so):
    a later call of the study may rewrite it; any other file is the user's."""
    try:
        with open(path, encoding="utf-8") as handle:
            return handle.readline().startswith(f"# {TUNED_BY}")
    except (OSError, UnicodeDecodeError):
        return False


def render_config(
    model: str,
    model_options: Mapping[str, Any],
    train_options: Mapping[str, Any],
    header: list[str],
) -> str:
    """A config file ``movierec train --config`` reads: comment header, [model], [train]."""
    lines = [f"# {line}" for line in header]
    lines += ["", "[model]", f"name = {toml_value(model)}"]
    lines += [f"{_toml_key(k)} = {toml_value(v)}" for k, v in model_options.items()]
    lines += ["", "[train]"]
    lines += [f"{_toml_key(k)} = {toml_value(v)}" for k, v in train_options.items()]
    return "\n".join(lines) + "\n"


def _toml_key(key: str) -> str:
    return key if re.fullmatch(r"[A-Za-z0-9_-]+", key) else json.dumps(key)


def toml_value(value: Any) -> str:
    """A TOML literal for the plain values a config holds (numbers, strings, lists, tables)."""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        if math.isnan(value):
            return "nan"
        if math.isinf(value):
            return "inf" if value > 0 else "-inf"
        return repr(value)
    if isinstance(value, str):
        return json.dumps(value)  # JSON's escapes are TOML basic-string escapes
    if isinstance(value, list | tuple):
        return "[" + ", ".join(toml_value(v) for v in value) + "]"
    if isinstance(value, Mapping):
        return (
            "{ " + ", ".join(f"{_toml_key(k)} = {toml_value(v)}" for k, v in value.items()) + " }"
        )
    raise ConfigError(f"cannot write {value!r} ({type(value).__name__}) to a TOML config")


def _shown(path: Path) -> str:
    """``path`` relative to the working directory when it lies below it (headers of committed
    configs should not carry one machine's absolute paths)."""
    try:
        return str(path.resolve().relative_to(Path.cwd()))
    except ValueError:
        return str(path)
