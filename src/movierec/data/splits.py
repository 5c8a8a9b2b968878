"""Train/test splits and the validation carve-out, all deterministic under a seed.

- ``u1``..``u5``: ml-100k's canonical folds, as GroupLens' ``mku.sh`` builds them: fold ``i``'s
  test set is lines ``20000*(i-1)+1 .. 20000*i`` of ``u.data``; the rest is its training set.
- ``random[:F]``: a uniformly random fraction ``F`` (default 0.2) of the ratings is the test set.
- ``temporal[:F]``: the latest fraction ``F`` of the ratings by timestamp is the test set.
- ``leave-last[:K]``: each user's ``K`` latest ratings (default 1) are the test set; users with
  ``K`` or fewer ratings keep them all in training.
- ``stratified[:F]``: per user, a seeded random ``round(F * n_u)`` of the user's ``n_u`` ratings
  (default ``F = 0.25``) is the test set, the rest training (the Microsoft Recommenders
  benchmark's 75/25 split). Every user keeps ``n_u - round(F * n_u)`` training ratings.
- ``none``: no test set; every rating is training (a production run: :data:`NO_TEST`). There
  is nothing to evaluate; the validation carve-out still comes from the training part.

The validation set used for early stopping is always carved from the training part
(:func:`carve_validation`); the test set is never seen before the final evaluation.
"""

from __future__ import annotations

import re
from dataclasses import dataclass

import numpy as np
import pandas as pd

from movierec.errors import ConfigError, DataError

CANONICAL_FOLD_SIZE = 20_000
DRAW_BLOCK = 1 << 20  # uniform draws per block in random splits
ML100K_RATINGS = 100_000
NO_TEST = "none"  # the split name of a run trained on every rating


@dataclass(frozen=True)
class Split:
    """A named train/test split of the canonical ratings frame (raw IDs)."""

    name: str
    train: pd.DataFrame
    test: pd.DataFrame

    @property
    def has_test(self) -> bool:
        """False for :data:`NO_TEST` (train on everything): no test metrics to compute."""
        return self.name != NO_TEST


def no_test(ratings: pd.DataFrame) -> Split:
    """Every rating in training, an empty test set (``--split none``)."""
    if ratings.empty:
        raise DataError("there are no ratings to train on")
    return Split(NO_TEST, ratings, ratings.iloc[:0])


def canonical_fold(ratings: pd.DataFrame, fold: int, layout: str) -> Split:
    """ml-100k's ``u<fold>`` split; ``ratings`` must be ``u.data`` in its original line order."""
    if layout != "ml-100k" or len(ratings) != ML100K_RATINGS:
        raise ConfigError(
            f"split u{fold} is ml-100k's canonical fold and needs the 100,000 ratings of u.data "
            f"(got layout {layout!r} with {len(ratings):,} ratings); use --split random instead"
        )
    if not 1 <= fold <= 5:
        raise ConfigError(f"ml-100k has folds u1..u5, not u{fold}")
    start = CANONICAL_FOLD_SIZE * (fold - 1)
    in_test = np.zeros(len(ratings), dtype=bool)
    in_test[start : start + CANONICAL_FOLD_SIZE] = True
    return Split(f"u{fold}", _sorted(ratings[~in_test]), _sorted(ratings[in_test]))


def random_split(ratings: pd.DataFrame, test_fraction: float, seed: int) -> Split:
    """A uniformly random ``test_fraction`` of the rows is the test set."""
    _check_fraction(test_fraction)
    in_test = _uniform_below(np.random.default_rng(seed), len(ratings), test_fraction)
    return Split(f"random:{test_fraction:g}", *_partition(ratings, in_test))


def temporal_split(ratings: pd.DataFrame, test_fraction: float) -> Split:
    """The latest ``test_fraction`` of the ratings (ties broken by row order) is the test set."""
    _check_fraction(test_fraction)
    order = np.argsort(ratings["timestamp"].to_numpy(), kind="stable")
    n_test = round(len(ratings) * test_fraction)
    in_test = np.zeros(len(ratings), dtype=bool)
    in_test[order[len(ratings) - n_test :]] = True
    return Split(f"temporal:{test_fraction:g}", ratings[~in_test], ratings[in_test])


def leave_last_out(ratings: pd.DataFrame, k: int) -> Split:
    """Each user's ``k`` latest ratings form the test set (users with <= k ratings: none)."""
    if k < 1:
        raise ConfigError(f"leave-last needs k >= 1, got {k}")
    frame = ratings.assign(_row=np.arange(len(ratings)))
    frame = frame.sort_values(["user_id", "timestamp", "_row"], kind="stable")
    from_end = frame.groupby("user_id", sort=False).cumcount(ascending=False).to_numpy()
    per_user = frame.groupby("user_id", sort=False)["user_id"].transform("size").to_numpy()
    test_rows = frame["_row"].to_numpy()[(from_end < k) & (per_user > k)]
    in_test = np.zeros(len(ratings), dtype=bool)
    in_test[test_rows] = True
    return Split(f"leave-last:{k}", ratings[~in_test], ratings[in_test])


def stratified_split(ratings: pd.DataFrame, test_fraction: float, seed: int) -> Split:
    """Per user, a seeded random ``round(test_fraction * n_u)`` of their ratings is the test set.

    Vectorised: each row gets a random key, rows are ordered by (user, key), and a row goes to the
    test set when its position within its user is below that user's test count.
    """
    _check_fraction(test_fraction)
    rng = np.random.default_rng([seed, 0x57A7])
    users = ratings["user_id"].to_numpy()
    _, user_code = np.unique(users, return_inverse=True)
    order = np.lexsort((rng.random(len(ratings)), user_code))
    per_user = np.bincount(user_code)
    starts = np.cumsum(per_user) - per_user
    sorted_code = user_code[order]
    position = np.arange(len(ratings)) - starts[sorted_code]
    n_test = np.floor(per_user * test_fraction + 0.5).astype(np.int64)  # round half up
    in_test = np.zeros(len(ratings), dtype=bool)
    in_test[order[position < n_test[sorted_code]]] = True
    return Split(
        f"stratified:{test_fraction:g}", _sorted(ratings[~in_test]), _sorted(ratings[in_test])
    )


def carve_validation(
    train: pd.DataFrame, fraction: float, seed: int
) -> tuple[pd.DataFrame, pd.DataFrame]:
    """Split the training part into (fit, validation) rows at random, seeded.

    Only training rows are ever used here, so early stopping never sees the test set.
    """
    if fraction <= 0:
        return train, train.iloc[:0]
    _check_fraction(fraction)
    rng = np.random.default_rng([seed, 0x7A11])  # a stream apart from the test split's
    return _partition(train, _uniform_below(rng, len(train), fraction))


def _uniform_below(rng: np.random.Generator, n: int, fraction: float) -> np.ndarray:
    """``rng.random(n) < fraction``, drawn in blocks: the same stream and the same mask, without
    the n float64 draws at once (200 MB for 25M ratings)."""
    chosen = np.empty(n, dtype=bool)
    for start in range(0, n, DRAW_BLOCK):
        stop = min(n, start + DRAW_BLOCK)
        np.less(rng.random(stop - start), fraction, out=chosen[start:stop])
    return chosen


def _partition(frame: pd.DataFrame, chosen: np.ndarray) -> tuple[pd.DataFrame, pd.DataFrame]:
    """(rows not ``chosen``, rows ``chosen``), in order, each with a fresh RangeIndex.

    Column by column with numpy: ``frame[mask]`` also gathers the row labels into a new int64
    index (300 MB of labels for a 25M-rating split kept for the whole run) and is about twice
    as slow. Used by the random split and the validation carve-out, the two that run on the
    whole data; the other splits keep the file's row numbers as labels.
    """
    columns = {name: frame[name] for name in frame.columns}
    arrays = {
        name: (values.to_numpy() if isinstance(values.dtype, np.dtype) else values.array)
        for name, values in columns.items()
    }
    kept = ~chosen
    return (
        pd.DataFrame({name: values[kept] for name, values in arrays.items()}, copy=False),
        pd.DataFrame({name: values[chosen] for name, values in arrays.items()}, copy=False),
    )


_SPEC = re.compile(
    r"^(?P<kind>u[1-5]|random|temporal|leave-last|stratified)(?::(?P<arg>[0-9.]+))?$"
)


def make_split(ratings: pd.DataFrame, spec: str, *, layout: str, seed: int) -> Split:
    """Parse a split name (``u1``, ``random:0.2``, ``temporal``, ``leave-last:1``,
    ``stratified:0.25``, ``none``) and apply it."""
    if spec.strip().lower() == NO_TEST:
        return no_test(ratings)
    match = _SPEC.match(spec.strip())
    if not match:
        raise ConfigError(
            f"unknown split {spec!r}; use u1..u5 (ml-100k), random[:F], temporal[:F], "
            f"leave-last[:K], stratified[:F] or none (train on everything), e.g. random:0.2"
        )
    kind, arg = match["kind"], match["arg"]
    try:
        if kind.startswith("u") and kind[1:].isdigit():
            if arg is not None:
                raise ConfigError(f"split {kind} takes no argument")
            return canonical_fold(ratings, int(kind[1:]), layout)
        if kind == "random":
            return random_split(ratings, float(arg or 0.2), seed)
        if kind == "temporal":
            return temporal_split(ratings, float(arg or 0.2))
        if kind == "stratified":
            return stratified_split(ratings, float(arg or 0.25), seed)
        return leave_last_out(ratings, int(float(arg or 1)))
    except DataError:  # the data's own problem, already worded (DataError is a ValueError)
        raise
    except ValueError as exc:
        raise ConfigError(f"bad split argument in {spec!r}: {exc}") from None


def check_split(split: Split) -> None:
    """One DataError when a split leaves a part empty that training or evaluation needs.

    Called on every split :func:`movierec.pipeline.prepare` makes: an empty training part has
    nothing to learn from, and an empty test part gives metrics of nothing (NaN).
    """
    n_all = len(split.train) + len(split.test)
    if split.train.empty:
        raise DataError(
            f"split {split.name} leaves no ratings to train on ({n_all} ratings in all, "
            f"{len(split.test)} in the test part); use more ratings or a smaller test fraction"
        )
    if split.has_test and split.test.empty:
        raise DataError(
            f"split {split.name} leaves no ratings in the test part ({n_all} ratings in all), so "
            "there is nothing to evaluate on; use more ratings, a larger test fraction, or "
            "--split none to train on every rating without a test"
        )


def _check_fraction(fraction: float) -> None:
    if not 0.0 < fraction < 1.0:
        raise ConfigError(f"a split fraction must be between 0 and 1, got {fraction}")


def _sorted(frame: pd.DataFrame) -> pd.DataFrame:
    if frame.empty:
        raise DataError("a split produced an empty set; the ratings file is too small")
    return frame.sort_values(["user_id", "item_id"], kind="stable")
