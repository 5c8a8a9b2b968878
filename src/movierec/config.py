"""What a run is: training options, run options, the model spec, the Job, configuration files.

- :class:`TrainConfig`: the hyperparameters of the one training loop.
- :class:`RunOptions`: what is not a hyperparameter (seed, device, threads, progress, speed).
- :class:`ModelSpec`: which model, with which options, trained how (flags > file > defaults).
- :class:`Job`: one description of a whole run (data source and policies, split, model spec,
  run options, evaluation settings). ``run.json``, the checkpoint context and the metrics
  summary are derived from it, and ``--resume`` rebuilds it from the checkpoint in one place.

A TOML file can set the model, its options and the training options::

    [model]
    name = "embedding-net"
    n_factors = 150
    hidden = [100, 200, 300]

    [train]
    epochs = 20
    lr = 1e-3

Command-line flags override the file; the file overrides each model's preferred defaults.
"""

from __future__ import annotations

import dataclasses
import math
import tomllib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from movierec.data.policies import DataPolicy
from movierec.errors import ConfigError

SCHEDULES = ("constant", "one-cycle", "cosine-restarts")
RANK_BY = ("shrunk", "raw")  # how a rating run orders its lists (movierec.recommend.Recommender)


def check_rank_by(rank_by: str) -> str:
    """``rank_by`` if it is one of :data:`RANK_BY`, else a one-line ConfigError."""
    if rank_by not in RANK_BY:
        raise ConfigError(f"rank_by must be one of {', '.join(RANK_BY)} (got {rank_by!r})")
    return rank_by


OBJECTIVES = (
    "rating",
    "bpr",
    "bce",
    "softmax",
    "joint",
)  # kept in step with movierec.train.objectives
NEGATIVE_SAMPLING = ("uniform", "popularity")
JOINT_RANKING_LOSSES = ("bpr", "bce", "softmax")  # kept in step with movierec.train.objectives
EMBEDDING_OPTIMIZERS = ("dense", "row-wise")  # kept in step with movierec.train.optim
OPTIMIZERS = ("adam", "lbfgs")  # kept in step with movierec.train.optim
PRECISIONS = ("fp32", "bf16", "auto")  # kept in step with movierec.train.precision
_LBFGS_NEEDS = {
    "objective": "objective = 'rating'",
    "embedding_optimizer": "embedding_optimizer = 'dense'",
    "weight_decay": "weight_decay = 0 and the model's own reg",
    "ranking_lr": "no ranking_lr",
}


@dataclass(frozen=True)
class TrainConfig:
    """Hyperparameters of the training loop (Adam; MSE or a ranking loss).

    Attributes:
        epochs: Maximum number of passes over the training ratings.
        batch_size: Ratings per optimiser step.
        lr: Adam's learning rate (the peak rate for the one-cycle schedule).
        weight_decay: Adam's L2 weight decay.
        schedule: ``constant``, ``one-cycle`` or ``cosine-restarts``.
        restart_epochs: Length of the first cycle of ``cosine-restarts``, in epochs.
        patience: Epochs without a better validation score before stopping (0: never stop
            early). The score is RMSE for the ``rating`` objective, NDCG@10 otherwise
            (``joint`` included: its validation RMSE is recorded beside it).
        validation_fraction: Share of the training part carved out for early stopping.
        objective: ``rating`` (MSE on ratings), ``bpr`` (pairwise), ``bce`` (pointwise with
            sampled negatives) or ``joint`` (MSE plus a weighted ranking loss; the model still
            predicts ratings); see :mod:`movierec.train.objectives`.
        negatives: Sampled unrated items per rated pair (ranking and joint objectives only).
        negative_sampling: ``uniform`` or ``popularity`` (ranking and joint objectives only).
        ranking_weight: Weight of the ranking part of ``joint`` (>= 0; 0 is the MSE alone).
        joint_ranking_loss: The ranking part of ``joint``: ``bce`` or ``bpr``.
        ranking_lr: Learning rate of a ranking tower's parameters (``rank_factors``; None:
            ``lr``). The tower is a dot product that wants MF's larger steps while the network
            beside it wants its own; the tower takes no weight decay (it has ``rank_reg``).
        embedding_optimizer: ``dense`` (Adam over every parameter) or ``row-wise`` (embedding
            tables get sparse gradients and a lazy Adam that updates only the rows in each
            batch, so a step costs the same whatever the number of users and items; dense
            Adam for the rest); see :mod:`movierec.train.optim`.
        refit: After early stopping on the validation carve-out has chosen the epoch count,
            train again from scratch on the whole training part (carve-out included) for that
            many epochs, and keep that model (see :func:`movierec.pipeline.fit_recommender`):
            the carve-out's ratings are then learnt from too. Trainable models only, with
            ``validation_fraction`` > 0 (:func:`movierec.pipeline.check_refit`).
        optimizer: ``adam`` (the default; ``embedding_optimizer`` says which Adam) or
            ``lbfgs``: full-batch L-BFGS with a strong-Wolfe line search, ``lbfgs_iterations``
            iterations per epoch from a fresh memory, as the Sparse FC and GLocal-K papers
            train (:func:`movierec.train.optim.build_lbfgs`). ``lr`` is then the line search's
            first step length (1 is usual). Only for the ``rating`` objective with one batch
            per epoch (``batch_size`` >= the training ratings), dense gradients, no
            ``weight_decay`` (the L2 is the model's penalty) and one process: a line search
            needs the same function at every evaluation of a step.
        lbfgs_iterations: L-BFGS iterations per epoch (the papers' 5).
        ema_decay: Keep an exponential moving average of the weights with this decay per
            optimiser step (0: none): validation, early stopping and the saved model then use
            the averaged weights, while training steps the raw ones
            (:mod:`movierec.train.averaging`). 0.995 averages over about 200 steps.
    """

    epochs: int = 20
    batch_size: int = 2000
    lr: float = 1e-3
    weight_decay: float = 1e-5
    schedule: str = "constant"
    restart_epochs: int = 2
    patience: int = 3
    validation_fraction: float = 0.1
    objective: str = "rating"
    negatives: int = 1
    negative_sampling: str = "uniform"
    embedding_optimizer: str = "dense"
    ranking_weight: float = 1.0
    joint_ranking_loss: str = "bce"
    ranking_lr: float | None = None
    refit: bool = False
    optimizer: str = "adam"
    lbfgs_iterations: int = 5
    ema_decay: float = 0.0

    def __post_init__(self) -> None:
        problems = []
        if self.epochs < 0:
            problems.append(f"epochs must be >= 0 (got {self.epochs})")
        if self.batch_size < 1:
            problems.append(f"batch_size must be >= 1 (got {self.batch_size})")
        if not (self.lr > 0 and math.isfinite(self.lr)):
            problems.append(f"lr must be a positive number (got {self.lr})")
        if self.weight_decay < 0:
            problems.append(f"weight_decay must be >= 0 (got {self.weight_decay})")
        if self.schedule not in SCHEDULES:
            problems.append(
                f"schedule must be one of {', '.join(SCHEDULES)} (got {self.schedule!r})"
            )
        if self.restart_epochs < 1:
            problems.append(f"restart_epochs must be >= 1 (got {self.restart_epochs})")
        if self.patience < 0:
            problems.append(f"patience must be >= 0 (got {self.patience})")
        if not 0.0 <= self.validation_fraction < 1.0:
            problems.append(
                f"validation_fraction must be in [0, 1) (got {self.validation_fraction})"
            )
        if self.objective not in OBJECTIVES:
            problems.append(
                f"objective must be one of {', '.join(OBJECTIVES)} (got {self.objective!r})"
            )
        if self.negatives < 1:
            problems.append(f"negatives must be >= 1 (got {self.negatives})")
        if self.negative_sampling not in NEGATIVE_SAMPLING:
            problems.append(
                f"negative_sampling must be one of {', '.join(NEGATIVE_SAMPLING)} "
                f"(got {self.negative_sampling!r})"
            )
        if self.embedding_optimizer not in EMBEDDING_OPTIMIZERS:
            problems.append(
                f"embedding_optimizer must be one of {', '.join(EMBEDDING_OPTIMIZERS)} "
                f"(got {self.embedding_optimizer!r})"
            )
        if not (self.ranking_weight >= 0 and math.isfinite(self.ranking_weight)):
            problems.append(f"ranking_weight must be a number >= 0 (got {self.ranking_weight})")
        if self.ranking_lr is not None and not (
            self.ranking_lr > 0 and math.isfinite(self.ranking_lr)
        ):
            problems.append(f"ranking_lr must be a number > 0 (got {self.ranking_lr})")
        if self.joint_ranking_loss not in JOINT_RANKING_LOSSES:
            problems.append(
                f"joint_ranking_loss must be one of {', '.join(JOINT_RANKING_LOSSES)} "
                f"(got {self.joint_ranking_loss!r})"
            )
        if not (isinstance(self.ema_decay, (int, float)) and 0.0 <= self.ema_decay < 1.0):
            problems.append(
                f"ema_decay must be in [0, 1) (0: no averaging; got {self.ema_decay!r})"
            )
        if not isinstance(self.refit, bool):  # what it needs is movierec.pipeline.check_refit's
            problems.append(f"refit must be true or false (got {self.refit!r})")
        problems += self._lbfgs_problems()
        if problems:
            raise ConfigError("invalid training options: " + "; ".join(problems))

    def _lbfgs_problems(self) -> list[str]:
        """What ``optimizer = "lbfgs"`` cannot train with (the batch size is the Trainer's to
        check: it needs the number of training ratings)."""
        if self.optimizer not in OPTIMIZERS:
            return [f"optimizer must be one of {', '.join(OPTIMIZERS)} (got {self.optimizer!r})"]
        if self.lbfgs_iterations < 1:
            return [f"lbfgs_iterations must be >= 1 (got {self.lbfgs_iterations})"]
        if self.optimizer != "lbfgs":
            return []
        refused = {
            "objective": self.objective != "rating",
            "embedding_optimizer": self.embedding_optimizer != "dense",
            "weight_decay": self.weight_decay != 0,
            "ranking_lr": self.ranking_lr is not None,
        }
        return [
            f"optimizer = 'lbfgs' trains the rating objective full-batch with dense gradients "
            f"and no Adam options; it cannot take {name} = {getattr(self, name)!r} (use "
            f"{_LBFGS_NEEDS[name]}, or optimizer = 'adam')"
            for name, bad in refused.items()
            if bad
        ]

    @classmethod
    def from_mapping(cls, values: Mapping[str, Any]) -> TrainConfig:
        known = {f.name for f in dataclasses.fields(cls)}
        unknown = sorted(set(values) - known)
        if unknown:
            raise ConfigError(
                f"unknown training option(s) {', '.join(unknown)}; "
                f"known: {', '.join(sorted(known))}"
            )
        try:
            return cls(**values)
        except TypeError as exc:
            raise ConfigError(f"invalid training options: {exc}") from exc


@dataclass(frozen=True)
class RunOptions:
    """How to run, as opposed to what to learn.

    Attributes:
        seed: Seeds the split, the validation carve-out, initialisation, shuffling and dropout.
        device: ``auto`` (CUDA when present), ``cpu``, ``cuda`` or ``cuda:N``.
        threads: CPU threads for PyTorch; None uses every core.
        progress: Show a progress bar per epoch on stderr.
        checkpoint_minutes: With a checkpoint path, also checkpoint within an epoch once this
            many minutes passed since the last one (every epoch end is checkpointed anyway).
        precision: ``auto`` (the default: bf16 autocast of the training forward and loss where
            the device multiplies bf16 natively, fp32 elsewhere); ``bf16`` (falls back to fp32
            with a warning where bf16 would be emulated); ``fp32``: the exact path, which also
            turns the two options below off unless they are set, so that ``--precision fp32``
            trains as PyTorch's plain modules do and reproduces every fp32 number. Evaluation
            is always fp32. See :mod:`movierec.train.precision`.
        compile: ``torch.compile`` the training forward and loss (costs compile time once).
        fused_adam: PyTorch's fused Adam kernel for the dense parameters (one pass over the
            parameters instead of about ten; the same arithmetic up to rounding). None (the
            default): on unless ``precision`` is ``fp32``; see :attr:`use_fused_adam`.
        fast_dropout: During training, dropout masks cut from 64-bit random words (four per
            word) instead of PyTorch's CPU ``bernoulli_`` (one draw per element): several times
            cheaper, the same expectation, another random stream. None (the default): on unless
            ``precision`` is ``fp32``. See :func:`movierec.train.dropout.cheap_dropout`.
    """

    seed: int = 0
    device: str = "auto"
    threads: int | None = None
    progress: bool = True
    checkpoint_minutes: float = 10.0
    precision: str = "auto"
    compile: bool = False
    fused_adam: bool | None = None
    fast_dropout: bool | None = None

    def __post_init__(self) -> None:
        if self.precision not in PRECISIONS:
            raise ConfigError(
                f"precision must be one of {', '.join(PRECISIONS)} (got {self.precision!r})"
            )

    @property
    def exact(self) -> bool:
        """Whether the step is PyTorch's plain fp32 one (``precision = "fp32"``)."""
        return self.precision == "fp32"

    @property
    def use_fused_adam(self) -> bool:
        """``fused_adam``, or on unless the precision is ``fp32`` when it was not set."""
        return not self.exact if self.fused_adam is None else self.fused_adam

    @property
    def use_fast_dropout(self) -> bool:
        """``fast_dropout``, or on unless the precision is ``fp32`` when it was not set."""
        return not self.exact if self.fast_dropout is None else self.fast_dropout


@dataclass(frozen=True)
class FileConfig:
    """What a TOML configuration file says: model name and options, training options."""

    model: str | None
    model_options: dict[str, Any]
    train_options: dict[str, Any]


def read_toml(path: Path) -> dict[str, Any]:
    """A config file's tables, or one ConfigError naming the file (missing, not TOML)."""
    try:
        return tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except FileNotFoundError:
        raise ConfigError(f"config file {path} does not exist") from None
    except (tomllib.TOMLDecodeError, UnicodeDecodeError) as exc:
        raise ConfigError(f"config file {path} is not valid TOML: {exc}") from None


def load_config_file(path: Path) -> FileConfig:
    """Read a TOML configuration file with optional ``[model]`` and ``[train]`` tables.

    A ``[search]`` table (the search space of ``movierec tune``, see :mod:`movierec.tuning`) is
    allowed and ignored here, so a tuning config also trains as its base configuration.
    """
    payload = read_toml(path)
    unknown = sorted(set(payload) - {"model", "train", "search"})
    if unknown:
        raise ConfigError(
            f"config file {path}: unknown table(s) {', '.join(unknown)}; use [model] and [train] "
            f"(and [search] for movierec tune)"
        )
    model = dict(payload.get("model", {}))
    name = model.pop("name", None)
    if name is not None and not isinstance(name, str):
        raise ConfigError(f"config file {path}: [model] name must be a string")
    return FileConfig(name, model, dict(payload.get("train", {})))


DEFAULT_MODEL = "embedding-net"
DEFAULT_CONFIG = Path(__file__).with_name("default.toml")
"""The default configuration: trained when neither a model nor a config file is named (and
under the model name ``default``): the EmbeddingNet predicting ratings with a ranking tower
that ranks, ``joint`` training. Naming a model gives that model's own defaults (for the
EmbeddingNet, the founding article's)."""
DEFAULT_NAME = "default"


@dataclass(frozen=True)
class ModelSpec:
    """Which model to train, with which options: resolved from flags, a config file, defaults.

    Attributes:
        name: The model's registry name (``movierec.models.MODELS``).
        config: The model's own frozen config dataclass.
        train: The training hyperparameters.
    """

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
        With no model and no file (or ``model="default"``), the file is :data:`DEFAULT_CONFIG`,
        unless the flags ask for an objective other than its ``joint``: then the default
        model's own defaults for that objective.
        """
        from movierec.models import make_config, model_class

        if model == DEFAULT_NAME:
            if config_path is not None:
                raise ConfigError(
                    f"--model {DEFAULT_NAME} is the default configuration file; give it or "
                    f"--config {config_path}, not both"
                )
            model, config_path = None, DEFAULT_CONFIG
        elif model is None and config_path is None:
            asked = (train_options or {}).get("objective")
            # Another objective than the default's: the default model's own defaults for it.
            if asked is None or asked == "joint":
                config_path = DEFAULT_CONFIG
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
        spec = cls(name, make_config(name, options), TrainConfig.from_mapping(train_values))
        if getattr(spec.config, "ranking_head", False) and spec.train.objective != "joint":
            raise ConfigError(
                f"[model] ranking_head = true is the ranking score of --objective joint, but "
                f"the objective is {spec.train.objective!r}; train with --objective joint, or "
                f"set ranking_head = false"
            )
        return spec

    @classmethod
    def from_keywords(
        cls, model: str | None = None, values: Mapping[str, Any] | None = None
    ) -> tuple[ModelSpec, dict[str, Any]]:
        """A spec from one flat set of keywords, as Python callers give them
        (``n_factors=64, epochs=5, seed=1``): each name goes to the model's options, the
        training options or the run options by the dataclass that declares it, then through
        :meth:`resolve`, which checks them exactly as a TOML file's ``[model]``/``[train]``.

        Returns:
            The spec, and the keywords that are :class:`RunOptions` fields (seed, device...).

        Raises:
            ConfigError: A keyword that none of them declares (the message lists the valid
                ones), or a value refused as in a TOML file.
        """
        from movierec.models import model_class

        name = model or DEFAULT_MODEL
        model_fields = {f.name for f in dataclasses.fields(model_class(name).config_class)}
        train_fields = {f.name for f in dataclasses.fields(TrainConfig)}
        run_fields = {f.name for f in dataclasses.fields(RunOptions)}
        values = dict(values or {})
        if unknown := sorted(set(values) - model_fields - train_fields - run_fields):
            raise ConfigError(
                f"unknown option(s) {', '.join(unknown)} for model {name!r}; its options are "
                f"{', '.join(sorted(model_fields)) or 'none'}; training options are "
                f"{', '.join(sorted(train_fields))}; run options are "
                f"{', '.join(sorted(run_fields))}"
            )
        spec = cls.resolve(
            name,
            model_options={k: v for k, v in values.items() if k in model_fields},
            train_options={k: v for k, v in values.items() if k in train_fields},
        )
        return spec, {k: v for k, v in values.items() if k in run_fields}

    @classmethod
    def from_dict(cls, values: Mapping[str, Any]) -> ModelSpec:
        """The spec :meth:`to_dict` wrote (checkpoint contexts), validated like a config file."""
        from movierec.models import make_config

        name = values["model"]
        return cls(
            name,
            make_config(name, values["model_config"]),
            TrainConfig.from_mapping(values["train_config"]),
        )

    def to_dict(self) -> dict[str, Any]:
        return {
            "model": self.name,
            "model_config": dataclasses.asdict(self.config),
            "train_config": dataclasses.asdict(self.train),
        }


@dataclass(frozen=True)
class Job:
    """One description of a run: what to load, how to split, what to train, how to score it.

    Attributes:
        spec: The model, its options and the training hyperparameters.
        options: Seed, device, threads, progress and the speed options.
        data: A catalogue name, a MovieLens folder or a ratings file; None when the ratings
            were handed over in memory (such a run cannot be resumed from the command line).
        split: The split's name (None: the dataset's default, see
            :func:`movierec.pipeline.default_split`); ``"none"`` trains on every rating with no
            test set, for the best epoch of a validation run on the same data, or for
            ``spec.train.epochs`` when ``spec.train.validation_fraction`` is 0 (what
            ``--epochs`` sets with ``--split none``).
        columns: For a ratings file: its user, item, rating[, timestamp] column names.
        items: An item metadata file (titles, genres) in place of the data's own, or None.
        item_columns: The item file's ID, title[, genres] column names (None: found).
        policy: What reading does with duplicates and off-scale ratings
            (:class:`movierec.data.DataPolicy`).
        k: Length of the evaluated top-k lists.
        relevance: The rating a test item needs to be relevant, None for any rating, or
            ``"default"`` to let the split decide.
        rank_by: How a rating run's evaluated lists are ordered (``shrunk`` or ``raw``, see
            :class:`movierec.recommend.Recommender`).
    """

    spec: ModelSpec
    options: RunOptions = field(default_factory=RunOptions)
    data: str | None = None
    split: str | None = None
    columns: tuple[str, ...] | None = None
    items: str | None = None
    item_columns: tuple[str, ...] | None = None
    policy: DataPolicy = field(default_factory=DataPolicy)
    k: int = 10
    relevance: float | str | None = "default"
    rank_by: str = "shrunk"

    def context(self) -> dict[str, Any]:
        """The checkpoint's record of this job (JSON), read back by :meth:`from_context`."""
        return {
            "data": self.data,
            "split": self.split,
            "columns": list(self.columns) if self.columns else None,
            "items": self.items,
            "item_columns": list(self.item_columns) if self.item_columns else None,
            "load_options": self.policy.to_dict(),
            **self.spec.to_dict(),
            "seed": self.options.seed,
            "device": self.options.device,
            "threads": self.options.threads,
            # How the step runs: a resumed run continues with the same fast path.
            "speed": {
                "precision": self.options.precision,
                "compile": self.options.compile,
                "fused_adam": self.options.fused_adam,
                "fast_dropout": self.options.fast_dropout,
            },
            "k": self.k,
            "relevance": self.relevance,
            "rank_by": self.rank_by,
        }

    @classmethod
    def from_context(cls, context: Mapping[str, Any], *, progress: bool = True) -> Job:
        """Rebuild the job a checkpoint was written for (``movierec train --resume``)."""
        options = RunOptions(
            seed=context["seed"],
            device=context["device"],
            threads=context["threads"],
            progress=progress,
            # Checkpoints written before the fast path carry no "speed": they trained exactly.
            **context.get("speed", {"precision": "fp32"}),
        )
        columns, item_columns = context.get("columns"), context.get("item_columns")
        return cls(
            spec=ModelSpec.from_dict(context),
            options=options,
            data=context.get("data"),
            split=context.get("split"),
            columns=tuple(columns) if columns else None,
            items=context.get("items"),
            item_columns=tuple(item_columns) if item_columns else None,
            policy=DataPolicy.from_dict(context.get("load_options", {})),
            k=context.get("k", 10),
            relevance=context.get("relevance", "default"),
            rank_by=context.get("rank_by", "shrunk"),
        )

    def __post_init__(self) -> None:
        check_rank_by(self.rank_by)
