"""Evaluation protocols behind ``movierec benchmark``: which folds, which seeds, which numbers.

A protocol is a list of train/test splits made once, before any model sees them:

- ``u1``: ml-100k's canonical split (train ``u1.base``, test ``u1.test``).
- ``5-fold``: ml-100k's ``u1``..``u5`` (their test sets partition ``u.data``); for any other
  dataset, a seeded partition of the ratings into five test sets.
- any other split name :func:`movierec.data.splits.make_split` knows (``random:0.2``, ...): that
  one split, drawn with the protocol seed.

Every model of a benchmark, movierec's and scikit-surprise's, is trained on the same training
rows of each fold and scored once on the same test rows. movierec's models carve their
validation set (early stopping) from the training part only (:func:`movierec.pipeline.
prepare_split`); Surprise's models, with their default settings, fit on the whole training part.
Seeds vary initialisation, shuffling and the validation carve-out, never the folds. A row's
number is the mean +- sd over the folds (each fold's value the mean over its seeds) when there
are several folds, over the seeds otherwise.
"""

from __future__ import annotations

import json
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from movierec.config import Job, ModelSpec, RunOptions
from movierec.data import RatingsData
from movierec.data.splits import ML100K_RATINGS, Split, make_split
from movierec.errors import ConfigError, DataError
from movierec.evaluate import metrics
from movierec.experiment import train_model
from movierec.pipeline import Prepared, prepare_split

N_FOLDS = 5
NDCG_K = 10  # the Job's default k: the NDCG@10 (relevance of the split's default) of each run
# Surprise's models as the issue measured them: default settings, a fixed random_state where the
# algorithm draws random numbers, KNNBaseline item-based with pearson_baseline similarities.
SURPRISE_DEFAULT = ("BaselineOnly", "SVD", "SVDpp", "KNNBaseline")
_SURPRISE: dict[str, tuple[str, dict[str, Any], bool]] = {
    # name: (class in surprise, keyword arguments, takes random_state)
    "BaselineOnly": ("BaselineOnly", {"verbose": False}, False),
    "SVD": ("SVD", {}, True),
    "SVDpp": ("SVDpp", {}, True),
    "NMF": ("NMF", {}, True),
    "SlopeOne": ("SlopeOne", {}, False),
    "CoClustering": ("CoClustering", {}, True),
    "KNNBasic": ("KNNBasic", {"verbose": False}, False),
    "KNNWithMeans": ("KNNWithMeans", {"verbose": False}, False),
    "KNNBaseline": (
        "KNNBaseline",
        {"sim_options": {"name": "pearson_baseline", "user_based": False}, "verbose": False},
        False,
    ),
    "NormalPredictor": ("NormalPredictor", {}, False),
}
SURPRISE_ARRAYS = ("bu", "bi", "pu", "qi", "yj", "sim")  # what Surprise's "parameters" count


def is_canonical_ml100k(data: RatingsData) -> bool:
    """Whether ``data`` is ml-100k's ``u.data`` as shipped (the u1..u5 folds apply)."""
    return data.layout == "ml-100k" and len(data.ratings) == ML100K_RATINGS


def kfold_splits(data: RatingsData, k: int = N_FOLDS, seed: int = 0) -> list[Split]:
    """A seeded partition of the ratings into ``k`` test sets; fold ``i`` trains on the rest."""
    n = len(data.ratings)
    if n < 2 * k:
        raise DataError(f"{k}-fold needs at least {2 * k} ratings; {data.name} has {n}")
    order = np.random.default_rng([seed, 0xF01D]).permutation(n)
    folds = []
    for number, rows in enumerate(np.array_split(order, k), 1):
        in_test = np.zeros(n, dtype=bool)
        in_test[rows] = True
        folds.append(Split(f"fold{number}", data.ratings[~in_test], data.ratings[in_test]))
    return folds


def protocol_splits(data: RatingsData, protocol: str, *, seed: int = 0) -> list[Split]:
    """The folds of ``protocol`` (``u1``, ``5-fold`` or a split name) on ``data``."""
    name = protocol.strip()
    if name == "5-fold":
        if is_canonical_ml100k(data):
            return [
                make_split(data.ratings, f"u{i}", layout=data.layout, seed=seed)
                for i in (1, 2, 3, 4, 5)
            ]
        return kfold_splits(data, N_FOLDS, seed)
    try:
        return [make_split(data.ratings, name, layout=data.layout, seed=seed)]
    except ConfigError as exc:
        raise ConfigError(
            f"protocol {protocol!r}: {exc}. Protocols: u1 (ml-100k), 5-fold, or a split name"
        ) from None


@dataclass(frozen=True)
class Entry:
    """One row to benchmark: a movierec model spec and the config file it came from."""

    spec: ModelSpec
    config: str | None  # the file, as given; None for a model's defaults


@dataclass(frozen=True)
class RunRecord:
    """One training run scored once on one fold's test set."""

    fold: str
    seed: int
    rmse: float | None
    mae: float | None
    train_seconds: float
    parameters: int | None
    epochs: int | None = None
    best_epoch: int | None = None
    ndcg: float | None = None
    long_tail_share: float | None = None
    evaluation_seconds: float | None = None  # scoring the test set once, beside train_seconds


@dataclass
class Row:
    """A model's runs over a protocol's folds and seeds."""

    model: str
    config: str | None
    source: str  # "movierec" or "surprise"
    runs: list[RunRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Mean and sd of RMSE, MAE, NDCG, long-tail share, train and evaluation seconds (over
        folds when there are several, else over seeds; the sd is None for a single value)."""
        out: dict[str, Any] = {
            "model": self.model,
            "config": self.config,
            "source": self.source,
            "runs": len(self.runs),
        }
        folds = list(dict.fromkeys(run.fold for run in self.runs))
        out["sd_over"] = "folds" if len(folds) > 1 else "seeds"
        for key in (
            "rmse",
            "mae",
            "ndcg",
            "long_tail_share",
            "train_seconds",
            "evaluation_seconds",
        ):
            values = _spread(self.runs, folds, key)
            out[f"{key}_mean"] = statistics.fmean(values) if values else None
            # One value has no spread to show: None, not a reassuring 0.
            out[f"{key}_sd"] = statistics.stdev(values) if len(values) > 1 else None
        counts = [run.parameters for run in self.runs if run.parameters is not None]
        out["parameters"] = round(statistics.fmean(counts)) if counts else None
        return out


def _spread(runs: Sequence[RunRecord], folds: list[str], key: str) -> list[float]:
    """The values a row's sd is taken over: per fold the mean over seeds, or per seed."""
    if len(folds) == 1:
        return [getattr(r, key) for r in runs if getattr(r, key) is not None]
    values = []
    for fold in folds:
        within = [getattr(r, key) for r in runs if r.fold == fold and getattr(r, key) is not None]
        if within:
            values.append(statistics.fmean(within))
    return values


@dataclass
class BenchmarkResult:
    """Every row of one protocol, with what it ran on."""

    dataset: str
    protocol: str
    folds: list[str]
    seeds: list[int]
    rows: list[Row]

    def to_dict(self) -> dict[str, Any]:
        return {
            "dataset": self.dataset,
            "protocol": self.protocol,
            "folds": self.folds,
            "seeds": self.seeds,
            "rows": [
                {**row.summary(), "per_run": [asdict(r) for r in row.runs]} for row in self.rows
            ],
        }

    def save_json(self, path: Path) -> None:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(json.dumps(self.to_dict(), indent=2) + "\n", encoding="utf-8")


def require_surprise() -> Any:
    """The ``surprise`` module, or a clear error on how to install it."""
    try:
        import surprise
    except ImportError:
        raise ConfigError(
            "scikit-surprise is not installed; install the bench extra "
            "(pip install -e '.[bench]') or leave out --surprise"
        ) from None
    return surprise


def check_surprise_names(names: Sequence[str]) -> list[str]:
    """Validate Surprise model names (and that the package is there) before anything trains."""
    unknown = [name for name in names if name not in _SURPRISE]
    if unknown:
        raise ConfigError(
            f"unknown Surprise model(s) {', '.join(unknown)}; choose from {', '.join(_SURPRISE)}"
        )
    if names:
        require_surprise()
    return list(names)


def surprise_run(
    name: str, split: Split, rating_scale: tuple[float, float], seed: int
) -> RunRecord:
    """Fit Surprise's ``name`` on ``split.train`` and score it once on ``split.test``."""
    surprise = require_surprise()
    class_name, kwargs, seeded = _SURPRISE[name]
    algo = getattr(surprise, class_name)(**kwargs, **({"random_state": seed} if seeded else {}))
    reader = surprise.Reader(rating_scale=rating_scale)
    columns = ["user_id", "item_id", "rating"]
    trainset = surprise.Dataset.load_from_df(split.train[columns], reader).build_full_trainset()
    started = time.perf_counter()
    algo.fit(trainset)
    seconds = time.perf_counter() - started
    test = split.test
    rows = zip(
        test["user_id"].tolist(), test["item_id"].tolist(), test["rating"].tolist(), strict=True
    )
    started = time.perf_counter()
    predicted = np.array([p.est for p in algo.test(list(rows))])
    evaluation_seconds = time.perf_counter() - started
    actual = test["rating"].to_numpy(dtype=np.float64)
    sizes = [np.size(getattr(algo, attr)) for attr in SURPRISE_ARRAYS if hasattr(algo, attr)]
    return RunRecord(
        split.name,
        seed,
        metrics.rmse(predicted, actual),
        metrics.mae(predicted, actual),
        seconds,
        int(sum(sizes)) if sizes else None,
        evaluation_seconds=evaluation_seconds,
    )


Progress = Callable[[str, RunRecord], None]


def run_benchmark(
    data: RatingsData,
    protocol: str,
    entries: Sequence[Entry],
    *,
    seeds: Sequence[int] = (0,),
    surprise: Sequence[str] = (),
    options: RunOptions | None = None,
    on_run: Progress | None = None,
) -> BenchmarkResult:
    """Train and score every entry (and Surprise model) on every fold and seed of ``protocol``.

    Each run touches its fold's test set once, after training. Surprise models that draw no
    random numbers run once per fold whatever the seeds.
    """
    options = options or RunOptions(progress=False)
    if not entries and not surprise:
        raise ConfigError("nothing to benchmark: give --config files, --models or --surprise")
    if not seeds:
        raise ConfigError("give at least one seed")
    check_surprise_names(surprise)
    splits = protocol_splits(data, protocol)
    rows = [Row(e.spec.name, e.config, "movierec") for e in entries]
    rows += [Row(name, None, "surprise") for name in surprise]
    for split in splits:
        for seed in seeds:
            prepared: dict[float, Prepared] = {}
            run_options = _with_seed(options, seed)
            for row, entry in zip(rows[: len(entries)], entries, strict=True):
                fraction = entry.spec.train.validation_fraction
                if fraction not in prepared:
                    prepared[fraction] = prepare_split(
                        data, split, seed=seed, validation_fraction=fraction
                    )
                run = train_model(prepared[fraction], Job(entry.spec, run_options))
                m = run.metrics
                record = RunRecord(
                    split.name,
                    seed,
                    m["rmse"],
                    m["mae"],
                    m["train_seconds"],
                    m["parameters"],
                    m["epochs"],
                    m["best_epoch"],
                    m.get(f"ndcg@{NDCG_K}"),
                    m.get("long_tail_share"),
                    m.get("evaluation_seconds"),
                )
                row.runs.append(record)
                if on_run is not None:
                    on_run(_label(row), record)
            for row in rows[len(entries) :]:
                if seed != seeds[0] and not _SURPRISE[row.model][2]:
                    continue  # deterministic: one run per fold says everything
                record = surprise_run(row.model, split, data.rating_scale, seed)
                row.runs.append(record)
                if on_run is not None:
                    on_run(_label(row), record)
    return BenchmarkResult(data.name, protocol, [s.name for s in splits], list(seeds), rows)


def _label(row: Row) -> str:
    if row.source == "surprise":
        return f"surprise {row.model}"
    return f"{row.model} ({row.config})" if row.config else row.model


def _with_seed(options: RunOptions, seed: int) -> RunOptions:
    return replace(options, seed=seed)
