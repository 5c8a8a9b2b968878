"""Stacking: a ridge blend of several runs' rating predictions (``movierec blend``).

Each run directory trained with a validation carve-out keeps the predictions for it of the
model that never learnt from it (``validation.parquet``: the early-stopped model, before a
refit). Runs of one dataset, split, seed and validation fraction share that carve-out, so their
predictions for it are rows none of them learnt from: a linear blend fitted there

    blend(u, i) = intercept + sum_m weight_m * prediction_m(u, i), clipped to the rating scale

is honest, and the test set is read once, to score it. The weights minimise the mean squared
error plus ``alpha * |weights|^2`` (the intercept is not penalised; numpy's closed form), with
``alpha`` chosen by k-fold cross-validation within the carve-out (:func:`cross_validate`) unless
given.

With meta-features (``--features``, :mod:`movierec.blend_features`) each weight also moves
linearly with a few facts about the user and the item (their number of ratings and spread):
feature-weighted linear stacking, still a ridge regression on the carve-out. By default
(``auto``) the carve-out decides: the plain and the feature-weighted blend are each
cross-validated there, and the lower error is kept.

From Python::

    blend = fit_blend(["runs/autorec", "runs/svdpp"])   # weights from the carve-out only
    blend.predict([196, 186], [242, 302])               # float64 ratings, raw IDs
    report = blend_runs(["runs/autorec", "runs/svdpp"], "runs/blend")  # + test set, files

A blend is scored and saved, and ``load_blend`` rebuilds it for Python; serving one over HTTP
is not supported (``movierec serve`` serves one run).
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from movierec.blend_features import (
    META_FEATURES,
    MetaFeatures,
    design,
    learnt_part,
    parse_features,
)
from movierec.data.splits import NO_TEST
from movierec.errors import ArtifactError, ConfigError

BLEND_FILE = "blend.json"
PREDICTIONS = "test_predictions.parquet"
ALPHAS = (0.0, 1e-5, 1e-4, 1e-3, 3e-3, 1e-2, 3e-2, 0.1, 0.3, 1.0)  # penalties cross-validated
FOLDS = 5
# What members must share: their carve-out and test set are the same rows only then.
SHARED = ("dataset", "data_source", "split", "seed", "validation_fraction", "rating_scale")


@dataclass(frozen=True)
class Member:
    """One run of a blend: its directory, ``run.json``, the loaded recommender and its
    validation predictions (``user_id``, ``item_id``, ``rating``, ``prediction``)."""

    path: Path
    run: dict[str, Any]
    recommender: Any  # movierec.recommend.Recommender (imported lazily: torch)
    validation: pd.DataFrame

    @property
    def identity(self) -> dict[str, Any]:
        """What a member is: the facts :data:`SHARED` plus its model and a digest of its
        manifest (which pins every file of the run)."""
        run = self.run
        return {
            "path": str(self.path),
            "model": run.get("model"),
            "refit": bool(run.get("refit", False)),
            **{key: shared_fact(run, key) for key in SHARED},
            "manifest_sha256": hashlib.sha256(
                (self.path / "manifest.json").read_bytes()
            ).hexdigest(),
        }


def shared_fact(run: dict[str, Any], key: str) -> Any:
    """One of :data:`SHARED` from a ``run.json``."""
    if key == "validation_fraction":
        return run.get("train_config", {}).get("validation_fraction")
    return run.get(key)


def load_member(path: str | Path) -> Member:
    """A run directory as a blend member.

    Raises:
        ArtifactError: It is not a sound run (:func:`movierec.artifacts.load_run`).
        ConfigError: It predicts ranking scores, not ratings, or holds no validation
            predictions (how to get them: retrain).
    """
    from movierec.artifacts import load_run, read_validation

    path = Path(path)
    recommender, run = load_run(path)
    if not recommender.predicts_ratings:
        raise ConfigError(
            f"run {path} ({run['model']}, objective {recommender.objective}) predicts ranking "
            "scores, not ratings: a blend combines rating predictions; leave it out, or train "
            "it with --objective rating or joint"
        )
    validation = read_validation(path, run)
    if validation is None:
        raise ConfigError(
            f"run {path} holds no validation predictions (validation.parquet): it was trained "
            "without a validation carve-out, resumed from a refit's checkpoint, or saved by an "
            "older movierec; retrain it with `movierec train ... --out` and [train] "
            "validation_fraction > 0"
        )
    return Member(path, run, recommender, validation)


def check_members(members: Sequence[Member]) -> None:
    """Refuse members that do not share one carve-out and one test set.

    Raises:
        ConfigError: Fewer than two members, or two that differ in dataset, data source,
            split, seed, validation fraction or rating scale, or whose carve-outs differ.
    """
    _enough(len(members))
    first = members[0]
    for member in members[1:]:
        for key in SHARED:
            ours, theirs = shared_fact(first.run, key), shared_fact(member.run, key)
            if ours != theirs:
                raise ConfigError(
                    f"runs {first.path} and {member.path} differ in {key} ({ours!r} vs "
                    f"{theirs!r}): a blend's runs must share the dataset, split, seed and "
                    "validation fraction (one carve-out, one test set); retrain them alike"
                )
        if not _same_rows(first.validation, member.validation):
            raise ConfigError(
                f"runs {first.path} and {member.path} were validated on different carve-outs "
                "(their validation rows differ) although their run.json agree: the data "
                "changed between them; retrain them on the same data"
            )


def _enough(n_runs: int) -> None:
    if n_runs < 2:
        raise ConfigError(
            f"a blend needs at least 2 runs, got {n_runs}; give several run directories: "
            "movierec blend RUN RUN ... --out DIR"
        )


def _same_rows(a: pd.DataFrame, b: pd.DataFrame) -> bool:
    if len(a) != len(b):
        return False
    return all(
        np.array_equal(a[name].to_numpy(), b[name].to_numpy())
        for name in ("user_id", "item_id", "rating")
    )


def ridge(predictions: np.ndarray, target: np.ndarray, alpha: float) -> tuple[np.ndarray, float]:
    """Weights and intercept minimising ``mean((target - b - X w)^2) + alpha * |w|^2``.

    Args:
        predictions: ``X``, float64 ``[N, M]`` (one column per member).
        target: float64 ``[N]``.
        alpha: The penalty on the weights (>= 0; 0 is least squares); the intercept is not
            penalised (the columns are centred first).

    Returns:
        ``(weights [M], intercept)``.
    """
    x_mean, y_mean = predictions.mean(axis=0), float(target.mean())
    centred = predictions - x_mean
    n, m = predictions.shape
    gram = centred.T @ centred / n + alpha * np.eye(m)
    # lstsq: exact duplicates among the members make the Gram matrix singular at alpha 0.
    weights = np.linalg.lstsq(gram, centred.T @ (target - y_mean) / n, rcond=None)[0]
    return weights, y_mean - float(x_mean @ weights)


def cross_validate(
    predictions: np.ndarray,
    target: np.ndarray,
    alphas: Sequence[float] = ALPHAS,
    folds: int = FOLDS,
    seed: int = 0,
) -> tuple[float, float]:
    """The penalty of ``alphas`` with the lowest ``folds``-fold cross-validated squared error
    (rows shuffled with ``seed``; the smaller penalty on a tie), and that error as an RMSE.
    Cheap: one M x M solve per fold and penalty."""
    order = np.random.default_rng(seed).permutation(len(target))
    parts = np.array_split(order, folds)
    errors = []
    for alpha in alphas:
        squared = 0.0
        for part in parts:
            kept = np.ones(len(target), dtype=bool)
            kept[part] = False
            weights, intercept = ridge(predictions[kept], target[kept], alpha)
            squared += float(((predictions[part] @ weights + intercept - target[part]) ** 2).sum())
        errors.append(squared)
    best = int(np.argmin(errors))
    return float(alphas[best]), float(np.sqrt(errors[best] / len(target)))


@dataclass
class Blend:
    """A fitted blend: its members, their weights and the intercept.

    Attributes:
        members: The runs, in the order of ``weights``.
        weights: float64 ``[M]``.
        intercept: Added to the weighted sum.
        alpha: The penalty the weights were fitted with.
        alpha_from: ``"cross-validation"`` or ``"--alpha"``.
        validation_rmse: On the carve-out: the blend's (in-sample: its weights were fitted
            there) and each member's, by name.
        features: The meta-features the weights move with (None: a plain blend); ``weights``
            then holds, after the M members' own weights, each member's weight per feature
            (member-major) and each feature's own (:func:`movierec.blend_features.design`).
        features_from: ``"cross-validation"`` (``auto``) or ``"--features"``.
        cv_rmse: The carve-out's cross-validated RMSE of the blends compared (``plain``,
            ``features``), at their best penalty.
        split: The members' train/test split if counting the features rebuilt it (so scoring
            does not read the data again), else None.
    """

    members: list[Member]
    weights: np.ndarray
    intercept: float
    alpha: float
    alpha_from: str
    validation_rmse: dict[str, float] = field(default_factory=dict)
    features: MetaFeatures | None = None
    features_from: str = "--features"
    cv_rmse: dict[str, float] = field(default_factory=dict)
    split: Any = field(default=None, repr=False)  # the members' split, when fitting built it

    @property
    def names(self) -> list[str]:
        """A name per member: its folder's name, the whole path where two share one."""
        names = [m.path.name for m in self.members]
        if len(set(names)) < len(names):
            return [str(m.path) for m in self.members]
        return names

    @property
    def rating_scale(self) -> tuple[float, float]:
        return self.members[0].recommender.rating_scale

    def member_predictions(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """Every member's predictions for the pairs (float64 ``[N, M]``; the bias fallback for
        IDs a member never saw)."""
        return np.column_stack([m.recommender.predict(user_ids, item_ids) for m in self.members])

    def combine(self, predictions: np.ndarray, user_ids: Any, item_ids: Any) -> np.ndarray:
        """The blend of members' predictions ``[N, M]`` for the pairs: float64 ``[N]``,
        clipped."""
        features = None if self.features is None else self.features.matrix(user_ids, item_ids)
        blended = design(predictions, features) @ self.weights + self.intercept
        return np.clip(blended, *self.rating_scale)

    def predict(self, user_ids: Any, item_ids: Any) -> np.ndarray:
        """Blended ratings for pairs of raw IDs (float64 ``[N]``)."""
        users, items = np.asarray(user_ids), np.asarray(item_ids)
        return self.combine(self.member_predictions(users, items), users, items)

    def to_dict(self) -> dict[str, Any]:
        """``blend.json``'s description of the blend (without test metrics): each member's own
        weight, and with features its weight per feature and each feature's own."""
        n_members = len(self.members)
        names = self.features.names if self.features is not None else ()
        per_feature = self.weights[n_members : n_members * (1 + len(names))].reshape(
            n_members, len(names)
        )
        members = []
        for j, (name, member) in enumerate(zip(self.names, self.members, strict=True)):
            entry = {"name": name, "weight": float(self.weights[j]), **member.identity}
            if names:
                entry["feature_weights"] = dict(zip(names, map(float, per_feature[j]), strict=True))
            members.append(entry)
        report: dict[str, Any] = {
            "members": members,
            "intercept": self.intercept,
            "alpha": self.alpha,
            "alpha_from": self.alpha_from,
            "features": list(names),
            "features_from": self.features_from,
            "cv_rmse": self.cv_rmse,
            "n_validation": len(self.members[0].validation),
            "validation_rmse": self.validation_rmse,
        }
        if self.features is not None:
            report["feature_scaling"] = self.features.describe()
            report["feature_weights"] = dict(
                zip(names, map(float, self.weights[n_members * (1 + len(names)) :]), strict=True)
            )
        return report


def fit_blend(
    runs: Sequence[str | Path],
    *,
    alpha: float | None = None,
    features: str | Sequence[str] = "auto",
    data: Any = None,
) -> Blend:
    """Load ``runs`` and fit their blend on their shared validation carve-out only.

    Args:
        runs: Run directories of one dataset, split, seed and validation fraction, each
            predicting ratings and holding its validation predictions.
        alpha: The ridge penalty (None: chosen by :func:`cross_validate`).
        features: ``"auto"`` (the plain blend or the one weighted by every meta-feature,
            whichever cross-validates better on the carve-out), ``"none"``, or names of
            :data:`~movierec.blend_features.META_FEATURES`.
        data: The runs' data (a :class:`~movierec.data.RatingsData`), needed for features;
            None: read as their run.json job says.

    Raises:
        ConfigError: See :func:`load_member` and :func:`check_members`; a negative alpha,
            unknown features.
        ArtifactError: A run directory is not sound.
    """
    from movierec.evaluate.metrics import rmse

    if alpha is not None and not (np.isfinite(alpha) and alpha >= 0):
        raise ConfigError(f"--alpha must be a number >= 0, got {alpha}")
    wanted = parse_features(features)
    _enough(len(runs))  # before any run is loaded
    members = [load_member(path) for path in runs]
    check_members(members)
    carve_out = members[0].validation
    target = carve_out["rating"].to_numpy(dtype=np.float64)
    predictions = np.column_stack(
        [m.validation["prediction"].to_numpy(dtype=np.float64) for m in members]
    )
    meta, why, split = None, None, None
    run = members[0].run
    if wanted is None and run.get("split") == NO_TEST:
        # auto, and no split to rebuild: the runs learnt from every rating (--split none).
        wanted, why = (), "plain: the runs were trained with --split none"
    if wanted is None and data is None and not isinstance(run.get("job"), dict):
        # auto, and nothing to count the facts in (runs saved from Python record no data).
        wanted, why = (), "plain: the runs record no data to count features in (pass data=)"
    if wanted != ():
        split = member_split(members[0], data)
        learnt = learnt_part(split.train, carve_out)
        meta = MetaFeatures.fit(learnt, carve_out, wanted or META_FEATURES)
    users, items = carve_out["user_id"].to_numpy(), carve_out["item_id"].to_numpy()
    columns = {"plain": predictions}
    if meta is not None:
        columns["features"] = design(predictions, meta.matrix(users, items))
    alphas = ALPHAS if alpha is None else (float(alpha),)
    candidates = {name: cross_validate(x, target, alphas) for name, x in columns.items()}
    if wanted is None:  # auto: the carve-out decides
        kept = min(candidates, key=lambda name: candidates[name][1])
    else:
        kept = "plain" if wanted == () else "features"
    chosen = candidates[kept][0]
    weights, intercept = ridge(columns[kept], target, chosen)
    blend = Blend(
        members,
        weights,
        intercept,
        chosen,
        "--alpha" if alpha is not None else "cross-validation",
        features=meta if kept == "features" else None,
        features_from=why or ("cross-validation" if wanted is None else "--features"),
        cv_rmse={name: error for name, (_, error) in candidates.items()},
        split=split,
    )
    blend.validation_rmse = {
        "blend": rmse(blend.combine(predictions, users, items), target),
        **{n: rmse(predictions[:, j], target) for j, n in enumerate(blend.names)},
    }
    return blend


def member_split(member: Member, data: Any = None) -> Any:
    """The split the runs were trained on (a :class:`~movierec.data.splits.Split`), rebuilt as
    ``movierec evaluate`` does: the data their run.json job names (or ``data``, a
    :class:`~movierec.data.RatingsData`), split by their split and seed.

    Raises:
        ConfigError: The runs were trained with ``--split none`` (no test set).
        ArtifactError: The runs do not record their data and none is given.
    """
    from movierec.config import Job
    from movierec.data.splits import check_split, make_split
    from movierec.experiment import load_job_data
    from movierec.pipeline import default_split

    run = member.run
    if run.get("split") == NO_TEST:
        raise ConfigError(
            f"run {member.path} was trained with --split none: there is no test set to score a "
            "blend on; blend runs of a split with a test part (u1, random:0.2, ...)"
        )
    if data is None:
        if not isinstance(run.get("job"), dict):
            raise ArtifactError(
                f"run {member.path} does not record the data it was trained on (saved from "
                "Python or by an older movierec); pass data= to blend_runs, or retrain it with "
                "movierec train"
            )
        job = Job.from_context(run["job"], progress=False)
        data = load_job_data(job)
    if run.get("seed") is None:
        raise ArtifactError(
            f"run {member.path} does not record the seed its split was drawn with (trained on "
            "a prepared split from Python); retrain it with fit_recommender on the data itself "
            "or with movierec train"
        )
    split = make_split(
        data.ratings, run["split"] or default_split(data), layout=data.layout, seed=run["seed"]
    )
    check_split(split)
    return split


def rebuild_test(blend: Blend, data: Any = None) -> pd.DataFrame:
    """The members' test set (``user_id``, ``item_id``, ``rating``): see
    :func:`member_split`."""
    split = blend.split if blend.split is not None else member_split(blend.members[0], data)
    return split.test[["user_id", "item_id", "rating"]].reset_index(drop=True)


def score_blend(blend: Blend, test: pd.DataFrame) -> tuple[dict[str, Any], pd.DataFrame]:
    """RMSE and MAE on ``test`` of the blend and of every member (each predicts it once), and
    the predictions (``user_id``, ``item_id``, ``rating``, ``blend``, one column per member)."""
    from movierec.evaluate.metrics import mae, rmse

    users, items = test["user_id"].to_numpy(), test["item_id"].to_numpy()
    actual = test["rating"].to_numpy(dtype=np.float64)
    predictions = blend.member_predictions(users, items)
    blended = blend.combine(predictions, users, items)
    columns = {"blend": blended, **{n: predictions[:, j] for j, n in enumerate(blend.names)}}
    metrics = {
        name: {"rmse": rmse(values, actual), "mae": mae(values, actual)}
        for name, values in columns.items()
    }
    frame = test.copy()
    for name, values in columns.items():
        frame[name] = values
    return {"n_test": len(test), **metrics}, frame


def blend_runs(
    runs: Sequence[str | Path],
    out: str | Path,
    *,
    alpha: float | None = None,
    features: str | Sequence[str] = "auto",
    overwrite: bool = False,
    data: Any = None,
) -> dict[str, Any]:
    """``movierec blend``: fit the blend of ``runs`` on their carve-out, score it once on their
    test set, and write ``out`` (``blend.json``, ``test_predictions.parquet``, with features
    the per-user and per-item tables, a manifest) atomically.

    Returns:
        ``blend.json``'s content: members (paths, run identities, weights), intercept, alpha,
        validation RMSEs and the test metrics of the blend and every member.

    Raises:
        ConfigError, ArtifactError: See :func:`fit_blend` and :func:`rebuild_test`; ``out``
            exists and ``overwrite`` is not given (or it is not a movierec folder).
    """
    from movierec.artifacts import check_out, write_folder, write_json

    out = check_out(Path(out), overwrite, holds="a blend or run")
    blend = fit_blend(runs, alpha=alpha, features=features, data=data)
    metrics, frame = score_blend(blend, rebuild_test(blend, data))
    report = {**blend.to_dict(), "test": metrics}

    def fill(folder: Path) -> None:
        write_json(folder / BLEND_FILE, report)
        frame.to_parquet(folder / PREDICTIONS, index=False)
        if blend.features is not None:
            blend.features.save(folder)

    write_folder(out, fill, "the blend")
    return {**report, "out": str(out)}


def load_blend(folder: str | Path) -> Blend:
    """The blend saved in ``folder`` by :func:`blend_runs`, its members loaded from their run
    directories (each must still be the run it was: same manifest).

    Raises:
        ArtifactError: ``folder`` is not a sound blend, or a member changed or is gone.
    """
    from movierec.artifacts import read_json, verify_manifest

    folder = Path(folder)
    if not (folder / BLEND_FILE).is_file():
        raise ArtifactError(f"{folder} holds no {BLEND_FILE}; write one with movierec blend")
    verify_manifest(folder, required=(BLEND_FILE,))
    saved = read_json(folder / BLEND_FILE)
    members = [load_member(entry["path"]) for entry in saved["members"]]
    for entry, member in zip(saved["members"], members, strict=True):
        if member.identity["manifest_sha256"] != entry["manifest_sha256"]:
            raise ArtifactError(
                f"run {member.path} changed since the blend in {folder} was fitted (its "
                "manifest differs); fit the blend again with movierec blend"
            )
    names = list(saved.get("features", []))
    weights = [entry["weight"] for entry in saved["members"]]
    weights += [entry["feature_weights"][n] for entry in saved["members"] for n in names]
    weights += [saved["feature_weights"][n] for n in names]
    return Blend(
        members,
        np.array(weights, dtype=np.float64),
        float(saved["intercept"]),
        float(saved["alpha"]),
        saved["alpha_from"],
        dict(saved["validation_rmse"]),
        features=MetaFeatures.load(folder, saved["feature_scaling"]) if names else None,
        features_from=saved.get("features_from", "--features"),
        cv_rmse=dict(saved.get("cv_rmse", {})),
    )
