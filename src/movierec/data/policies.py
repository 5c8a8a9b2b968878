"""Policies for ratings that parse but need a decision: duplicates and out-of-scale ratings.

A :class:`DataPolicy` holds the three choices; :func:`apply_policy` is the one step every reader
runs after parsing, vectorised, in this order: the rating scale first (so a clipped rating is
what a ``mean`` averages), then duplicates. It returns the counts that go into
:attr:`RatingsData.report <movierec.data.schema.RatingsData.report>`.

- Duplicate ``(user_id, item_id)`` pairs (:data:`DUPLICATE_POLICIES`, default
  :data:`DEFAULT_DUPLICATES`): ``keep-last`` keeps the last rating in file order (a re-rating
  replaces the earlier one, as MovieLens' own exports do); ``mean`` keeps one row per pair, at the
  position and with the timestamp of its last rating, rated with the mean; ``error`` refuses the
  file, naming the two lines.
- Ratings outside a declared scale (:data:`OUT_OF_SCALE_POLICIES`, default
  :data:`DEFAULT_OUT_OF_SCALE`): ``error`` refuses the file naming the first such line, ``clip``
  moves them to the nearest bound, ``drop`` removes them.
- Ratings whose item is missing from the item metadata, or user from the user metadata
  (:data:`REFERENCE_POLICIES`): counted in the report and ``warn`` (a MovieRecWarning) by
  default, refused with ``error`` (``--strict``); see
  :func:`movierec.data.metadata.check_references`.
- A scale inferred from the data must make sense (:func:`check_inferred_scale`): not all ratings
  equal, some rating above zero, and nothing beyond :data:`ABSURD_RATING` in magnitude.
"""

from __future__ import annotations

import dataclasses
import math
import os
from collections.abc import Callable, Mapping
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd

from movierec.errors import DataError

DUPLICATE_POLICIES = ("keep-last", "mean", "error")
OUT_OF_SCALE_POLICIES = ("error", "clip", "drop")
DEFAULT_DUPLICATES = "keep-last"
DEFAULT_OUT_OF_SCALE = "error"
REFERENCE_POLICIES = ("warn", "error")
# No rating system people use goes beyond this; a larger value is a mis-read column (IDs, dates).
ABSURD_RATING = 1e6
# has_repeats: below this many keys one plain sort is as quick as cutting them into groups.
REPEAT_THREADED_MIN = 1 << 20
REPEAT_GROUPS = 16  # at most this many 32-bit groups; wider keys take one 64-bit sort
REPORT_KEYS = ("rows_read", "duplicates_resolved", "out_of_scale_clipped", "out_of_scale_dropped")

# Where row ``i`` of the parsed ratings came from: "line 12" or "row 12 (row group 0)".
Locate = Callable[[int], str]

SCALE_HINT = "declare the scale with rating_scale=(min, max) (--rating-scale MIN,MAX)"


@dataclass(frozen=True)
class DataPolicy:
    """What reading does with ratings that parse but need a decision; checked when made.

    Attributes:
        duplicates: Repeated (user, item) pairs: ``"keep-last"`` (default), ``"mean"`` or
            ``"error"`` (:data:`DUPLICATE_POLICIES`).
        rating_scale: The declared ``(min, max)``, as floats; None uses the layout's own scale
            (MovieLens, Netflix) or infers it from the data (a generic file), which must then
            make sense (:func:`check_inferred_scale`).
        out_of_scale: Ratings outside the scale: ``"error"`` (default), ``"clip"`` or
            ``"drop"`` (:data:`OUT_OF_SCALE_POLICIES`).
        references: Ratings of items (users) the item (user) metadata lacks: ``"warn"``
            (default) or ``"error"`` (:data:`REFERENCE_POLICIES`).

    Raises:
        DataError: A choice is not one of the allowed ones, or the scale makes no sense; before
            any file is read.
    """

    duplicates: str = DEFAULT_DUPLICATES
    rating_scale: tuple[float, float] | None = None
    out_of_scale: str = DEFAULT_OUT_OF_SCALE
    references: str = "warn"

    def __post_init__(self) -> None:
        check_policy("duplicates", self.duplicates, DUPLICATE_POLICIES)
        check_policy("out_of_scale", self.out_of_scale, OUT_OF_SCALE_POLICIES)
        check_policy("references", self.references, REFERENCE_POLICIES)
        # A JSON list or a pair of ints becomes the float pair the readers compare against.
        object.__setattr__(self, "rating_scale", check_declared_scale(self.rating_scale))

    def to_dict(self) -> dict[str, Any]:
        """The policy as JSON-ready values (``rating_scale`` a list, or None)."""
        scale = None if self.rating_scale is None else list(self.rating_scale)
        return {
            "duplicates": self.duplicates,
            "rating_scale": scale,
            "out_of_scale": self.out_of_scale,
            "references": self.references,
        }

    @classmethod
    def from_dict(cls, mapping: Mapping[str, Any]) -> DataPolicy:
        """The policy of :meth:`to_dict`'s mapping; absent keys take their defaults.

        Raises:
            DataError: A key is not a policy field, or a value is refused as in the constructor.
        """
        known = [f.name for f in dataclasses.fields(cls)]
        if unknown := sorted(set(mapping) - set(known)):
            raise DataError(f"unknown data policy {unknown}; the policies are {', '.join(known)}")
        return cls(**mapping)


def apply_policy(
    ratings: pd.DataFrame,
    policy: DataPolicy,
    source: str,
    locate: Locate,
    *,
    layout_scale: tuple[float, float] | None = None,
) -> tuple[pd.DataFrame, tuple[float, float], dict[str, int]]:
    """The scale policy, then the duplicates policy, vectorised; their counts.

    Args:
        ratings: The canonical frame in file order, indexed by row number in the file.
        policy: What to do.
        source: The file (or files), for messages.
        locate: Row number (in the file) -> where it is, for messages.
        layout_scale: The layout's own scale, used when the policy declares none; with neither
            the scale is inferred from the data (:func:`check_inferred_scale`).

    Returns:
        The ratings (a fresh RangeIndex), the rating scale, and the counts of
        :data:`REPORT_KEYS`.
    """
    scale = policy.rating_scale or layout_scale
    report = dict.fromkeys(REPORT_KEYS, 0)
    report["rows_read"] = len(ratings)
    if scale is None:
        scale = check_inferred_scale(ratings["rating"].to_numpy(), source, locate)
    else:
        ratings, clipped, dropped = apply_scale(ratings, scale, policy.out_of_scale, source, locate)
        report["out_of_scale_clipped"], report["out_of_scale_dropped"] = clipped, dropped
    ratings, report["duplicates_resolved"] = resolve_duplicates(
        ratings, policy.duplicates, source, locate
    )
    return ratings, scale, report


def check_policy(name: str, value: str, allowed: tuple[str, ...]) -> None:
    """Raise :class:`DataError` unless ``value`` is one of ``allowed``."""
    if value not in allowed:
        raise DataError(f"{name} must be one of {', '.join(allowed)}; got {value!r}")


def check_declared_scale(scale: tuple[float, float] | None) -> tuple[float, float] | None:
    """A declared ``(min, max)`` as floats; :class:`DataError` if it makes no sense."""
    if scale is None:
        return None
    try:
        low, high = (float(bound) for bound in scale)
    except (TypeError, ValueError):
        raise DataError(
            f"rating_scale must be two numbers (min, max), e.g. (1, 5); got {scale!r}"
        ) from None
    if not (math.isfinite(low) and math.isfinite(high)):
        raise DataError(f"rating_scale {scale!r} must be finite numbers, e.g. (1, 5)")
    if low >= high:
        raise DataError(
            f"rating_scale ({low:g}, {high:g}) has min >= max; give (lowest, highest), e.g. (1, 5)"
        )
    if max(abs(low), abs(high)) > ABSURD_RATING:
        raise DataError(
            f"rating_scale ({low:g}, {high:g}) goes beyond ±{ABSURD_RATING:g}; no rating system "
            f"is that wide, so the column is probably not ratings"
        )
    return low, high


def check_inferred_scale(ratings: np.ndarray, source: str, locate: Locate) -> tuple[float, float]:
    """The data's ``(min, max)``, refused when it cannot be a rating scale.

    Args:
        ratings: float32 ratings, all finite, shape ``(n,)``, ``n >= 1``.
        source: The file, for messages.
        locate: Row number -> where it is in the file, for messages.
    """
    low_row, high_row = int(np.argmin(ratings)), int(np.argmax(ratings))
    low, high = float(ratings[low_row]), float(ratings[high_row])
    if low == high:
        raise DataError(
            f"{source}: all {len(ratings):,} ratings are {low:g}, so no rating scale can be "
            f"inferred; {SCALE_HINT}, or check that the rating column is the right one"
        )
    if high <= 0:
        raise DataError(
            f"{source}: no rating is above 0 (the highest is {high:g} on {locate(high_row)}); "
            f"{SCALE_HINT} if that is really the scale"
        )
    worst_row = low_row if abs(low) > abs(high) else high_row
    if (worst := float(ratings[worst_row])) and abs(worst) > ABSURD_RATING:
        raise DataError(
            f"{source}: the rating on {locate(worst_row)} is {worst:g}, beyond "
            f"±{ABSURD_RATING:g}; that column is probably not ratings (IDs? dates?), or the "
            f"line is corrupt"
        )
    return low, high


def apply_scale(
    ratings: pd.DataFrame,
    scale: tuple[float, float],
    policy: str,
    source: str,
    locate: Locate,
) -> tuple[pd.DataFrame, int, int]:
    """Apply ``policy`` to the ratings outside ``scale``.

    Returns:
        The ratings (clipped or filtered, index still the file's row numbers; the same frame
        when nothing is outside), the number clipped and the number dropped.
    """
    low, high = scale
    values = ratings["rating"].to_numpy()
    outside = (values < low) | (values > high)
    count = int(np.count_nonzero(outside))
    if count == 0:
        return ratings, 0, 0
    row = int(np.flatnonzero(outside)[0])
    if policy == "error":
        raise DataError(
            f"{source}: the rating on {locate(row)} is {float(values[row]):g}, outside the "
            f"rating scale {low:g}..{high:g} ({count:,} ratings are); fix the data, declare the "
            f"right scale, or choose out_of_scale='clip' or 'drop' (--out-of-scale)"
        )
    if policy == "clip":
        clipped = np.clip(values, np.float32(low), np.float32(high)).astype(np.float32)
        return ratings.assign(rating=clipped), count, 0
    kept = ratings.loc[~outside]  # keeps the file's row numbers for later messages
    if kept.empty:
        raise DataError(
            f"{source}: every rating is outside the rating scale {low:g}..{high:g}; nothing is "
            f"left after dropping them. Declare the right scale"
        )
    return kept, 0, count


def resolve_duplicates(
    ratings: pd.DataFrame, policy: str, source: str, locate: Locate
) -> tuple[pd.DataFrame, int]:
    """Apply ``policy`` to repeated ``(user_id, item_id)`` pairs.

    Args:
        ratings: The canonical frame in file order, indexed by row number in the file.
        policy: One of :data:`DUPLICATE_POLICIES`.
        source: The file, for messages.
        locate: Row number (in the file) -> where it is, for messages.

    Returns:
        The ratings with one row per pair (a fresh RangeIndex), and how many rows were merged
        away.
    """
    pairs: pd.Series | pd.DataFrame = ratings[["user_id", "item_id"]]
    if (key := _pair_key(ratings)) is not None:
        # A sort finds whether any pair repeats faster than a hash table (pandas' takes about
        # 17 s for 25M keys); the hash runs only when something repeats.
        if not has_repeats(key):
            return ratings.reset_index(drop=True), 0
        pairs = pd.Series(key)
    later = pairs.duplicated(keep="first").to_numpy()
    count = int(np.count_nonzero(later))
    if count == 0:
        return ratings.reset_index(drop=True), 0
    if policy == "error":
        second = int(np.flatnonzero(later)[0])
        user, item = ratings["user_id"].iloc[second], ratings["item_id"].iloc[second]
        shown = [repr(v.item() if isinstance(v, np.generic) else v) for v in (user, item)]
        same = (ratings["user_id"] == user) & (ratings["item_id"] == item)
        first = int(np.flatnonzero(same.to_numpy())[0])
        index = ratings.index
        raise DataError(
            f"{source}: user {shown[0]} rates item {shown[1]} twice, on "
            f"{locate(int(index[first]))} and {locate(int(index[second]))} ({count:,} repeated "
            f"pairs in all); remove the repeats or choose duplicates='keep-last' or 'mean' "
            f"(--duplicates)"
        )
    last = ~pairs.duplicated(keep="last").to_numpy()
    if policy == "mean":
        means = ratings.groupby(["user_id", "item_id"], sort=False)["rating"].transform("mean")
        ratings = ratings.assign(rating=means.to_numpy(dtype=np.float32))
    return ratings.loc[last].reset_index(drop=True), count


def _pair_key(ratings: pd.DataFrame) -> np.ndarray | None:
    """One non-negative int64 per (user, item) pair, equal exactly when the pairs are, for
    int64 IDs whose ranges multiply to less than 2**63; else None."""
    users, items = ratings["user_id"], ratings["item_id"]
    if users.dtype != np.int64 or items.dtype != np.int64 or len(ratings) == 0:
        return None
    u, i = users.to_numpy(), items.to_numpy()
    u_low, i_low = int(u.min()), int(i.min())
    u_span, i_span = int(u.max()) - u_low + 1, int(i.max()) - i_low + 1
    if u_span * i_span >= 2**63:
        return None
    # In place on one fresh array: each temporary of 25M rows costs 200 MB and its page faults.
    key = u - np.int64(u_low)
    key *= np.int64(i_span)
    key += i
    key -= np.int64(i_low)
    return key


def has_repeats(key: np.ndarray) -> bool:
    """Whether any value of the non-negative int64 ``key`` occurs twice.

    Already-increasing keys (files sorted by user and item) need one pass. Otherwise the keys
    are cut by their high bits into at most :data:`REPEAT_GROUPS` groups whose low 32 bits are
    sorted apart, on a thread each (numpy releases the GIL while sorting): a 32-bit sort moves
    half the bytes of a 64-bit one, and the groups use every core. Equal keys always fall in
    the same group, so a repeat is found exactly when one exists.
    """
    if len(key) < 2 or bool(np.all(key[1:] > key[:-1])):
        return False
    top = int(key.max())
    shift = min(32, max(0, top.bit_length() - 2))  # about 4 groups, each within 32 bits
    n_groups = (top >> shift) + 1
    if len(key) < REPEAT_THREADED_MIN or n_groups > REPEAT_GROUPS:
        ordered = np.sort(key)
        return bool(np.any(ordered[1:] == ordered[:-1]))
    high = (key >> shift).astype(np.uint8)
    # Keys of one group differ only below ``shift`` <= 32, so their low 32 bits tell them apart.
    low = key.astype(np.uint32)
    groups = [low[high == group] for group in range(n_groups)]
    del high, low

    def repeats(values: np.ndarray) -> bool:
        values.sort()
        return bool(np.any(values[1:] == values[:-1]))

    with ThreadPoolExecutor(max_workers=min(len(groups), os.cpu_count() or 1)) as pool:
        return any(pool.map(repeats, groups))
