"""Synthetic ratings with a MovieLens-like shape, for tests and scale experiments.

Users and items have long-tailed activity and popularity (Zipf-like weights), and each rating is
``mu + b_u + b_i + p_u . q_i + noise``, rounded to the rating step and clipped to the scale, so a
model that learns the low-rank structure beats the biases: learnability can be checked.

- :func:`synthetic_ratings`: a small canonical frame in memory (tests).
- :func:`write_synthetic`: up to tens of millions of ratings written in chunks to Parquet, CSV
  (MovieLens ``ratings.csv`` columns) or the Netflix Prize layout, atomically.
- :class:`LatentModel`: the biases and factors both draw ratings from.
"""

from __future__ import annotations

import itertools
import os
import shutil
import sys
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

FORMATS = ("parquet", "csv", "netflix")
CSV_HEADER = b"userId,movieId,rating,timestamp\n"
# MovieLens 25M spans 1995-01-09 .. 2019-11-21; the Netflix Prize 1999-11-11 .. 2005-12-31.
ML_TIME = (789_652_009, 1_574_327_703)
NETFLIX_TIME = (942_278_400, 1_136_073_599)
NETFLIX_RECORD = np.dtype([("item", "<i4"), ("user", "<i4"), ("rating", "i1"), ("day", "<i4")])
MIN_USER_RATINGS = 20  # MovieLens keeps users with at least 20 ratings
MAX_ROUNDS = 40  # redraw rounds while users lack distinct items


def zipf_weights(n: int, exponent: float) -> np.ndarray:
    """``1 / rank**exponent`` for ranks ``1..n``: float64 ``[n]``, unnormalised."""
    return 1.0 / np.arange(1, n + 1) ** exponent


@dataclass(frozen=True)
class LatentModel:
    """Biases and low-rank factors of users and items, from which ratings are drawn.

    Attributes:
        user_factors: float64 ``[n_users, rank]``.
        item_factors: float64 ``[n_items, rank]``.
        user_bias: float64 ``[n_users]``.
        item_bias: float64 ``[n_items]``.
    """

    user_factors: np.ndarray
    item_factors: np.ndarray
    user_bias: np.ndarray
    item_bias: np.ndarray

    @classmethod
    def draw(cls, rng: np.random.Generator, n_users: int, n_items: int, rank: int) -> LatentModel:
        """Draw the model; the draws' order is fixed, so a seed gives the same model."""
        factor_std = (0.5 / rank) ** 0.25  # the dot product's variance is 0.5: a learnable signal
        users_f = rng.normal(0, factor_std, (n_users, rank))
        items_f = rng.normal(0, factor_std, (n_items, rank))
        user_bias = rng.normal(0, 0.4, n_users)
        item_bias = rng.normal(0, 0.5, n_items)
        return cls(users_f, items_f, user_bias, item_bias)

    def rate(
        self,
        users: np.ndarray,
        items: np.ndarray,
        rng: np.random.Generator,
        *,
        noise: float,
        rating_scale: tuple[float, float],
        step: float,
    ) -> np.ndarray:
        """Ratings of 0-based ``users`` and ``items`` (int ``[n]``): float64 ``[n]`` on the scale,
        multiples of ``step``."""
        low, high = rating_scale
        mid = (low + high) / 2 + 0.3
        value = (
            mid
            + self.user_bias[users]
            + self.item_bias[items]
            + np.einsum("ij,ij->i", self.user_factors[users], self.item_factors[items])
            + rng.normal(0, noise, len(users))
        )
        return np.clip(np.round(value / step) * step, low, high)


def synthetic_ratings(
    n_users: int,
    n_items: int,
    n_ratings: int,
    *,
    seed: int = 0,
    rank: int = 8,
    noise: float = 0.5,
    rating_scale: tuple[float, float] = (1.0, 5.0),
    step: float = 1.0,
) -> pd.DataFrame:
    """A canonical ratings frame (``user_id, item_id, rating, timestamp``) of distinct pairs.

    Args:
        n_users: Users (IDs ``1..n_users``).
        n_items: Items (IDs ``1..n_items``).
        n_ratings: Ratings wanted; fewer come back if sampling repeats pairs (deduplicated).
        seed: Seed of every random draw.
        rank: Dimension of the latent factors.
        noise: Standard deviation of the rating noise.
        rating_scale: ``(min, max)`` of the ratings.
        step: Rating granularity (1 for whole stars, 0.5 for half stars).
    """
    rng = np.random.default_rng(seed)
    user_weight = zipf_weights(n_users, 0.6)
    item_weight = zipf_weights(n_items, 0.9)
    users = rng.choice(n_users, size=n_ratings, p=user_weight / user_weight.sum())
    items = rng.choice(n_items, size=n_ratings, p=item_weight / item_weight.sum())
    keys = np.unique(users.astype(np.int64) * n_items + items)
    users, items = keys // n_items, keys % n_items
    model = LatentModel.draw(rng, n_users, n_items, rank)
    rating = model.rate(users, items, rng, noise=noise, rating_scale=rating_scale, step=step)
    order = rng.permutation(users.size)  # files are not sorted by user
    return pd.DataFrame(
        {
            "user_id": users[order] + 1,
            "item_id": items[order] + 1,
            "rating": rating[order].astype(np.float32),
            "timestamp": (880_000_000 + rng.integers(0, 10_000_000, users.size)).astype(np.int64),
        }
    )


# --- large files, written in chunks --------------------------------------------------------------


def user_quotas(weights: np.ndarray, total: int, low: int, high: int) -> np.ndarray:
    """Ratings per user: int64 ``[n]`` in ``[low, high]`` summing to ``total``, each roughly
    ``low + s * weight`` (``s`` found by bisection; the rounding remainder goes to the largest
    fractions)."""
    n = len(weights)
    if not n * low <= total <= n * high:
        raise ValueError(f"{total:,} ratings cannot be split over {n:,} users as {low}..{high}")

    def filled(scale: float) -> np.ndarray:
        return np.clip(low + scale * weights, low, high)

    lo, hi = 0.0, float(total) / float(weights.min())
    for _ in range(100):
        mid = (lo + hi) / 2
        lo, hi = (mid, hi) if filled(mid).sum() < total else (lo, mid)
    exact = filled(hi)
    quotas = np.floor(exact).astype(np.int64)
    short = total - int(quotas.sum())
    if short > 0:
        room = np.where(quotas < high, exact - quotas, -1.0)
        quotas[np.argsort(-room, kind="stable")[:short]] += 1
    elif short < 0:
        room = np.where(quotas > low, quotas, -1)
        quotas[np.argsort(-room, kind="stable")[:-short]] -= 1
    return quotas


def distinct_items(
    rng: np.random.Generator, quotas: np.ndarray, cdf: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each user ``u`` of a block, ``quotas[u]`` distinct items drawn by popularity.

    Items are drawn with replacement from ``cdf`` (cumulative popularity, float64 ``[n_items]``),
    repeats are dropped and the users still short draw again (over-sampled), which is sampling
    without replacement in effect. After :data:`MAX_ROUNDS` a user may keep fewer.

    Returns:
        0-based block users and items, int64 ``[n]``, grouped by user.
    """
    n_items = len(cdf)
    n_users = len(quotas)
    keys = np.empty(0, dtype=np.int64)
    need = quotas.astype(np.int64)
    for _ in range(MAX_ROUNDS):
        if not need.any():
            break
        draws = need + (need + 3) // 4 + np.where(need > 0, 2, 0)
        users = np.repeat(np.arange(n_users, dtype=np.int64), draws)
        items = np.minimum(np.searchsorted(cdf, rng.random(len(users)), side="right"), n_items - 1)
        keys = np.concatenate([keys, users * n_items + items])
        _, first = np.unique(keys, return_index=True)
        keys = keys[np.sort(first)]  # draw order: earlier (kept) draws first, unbiased by item
        owner = keys // n_items
        order = np.argsort(owner, kind="stable")
        starts = np.searchsorted(owner[order], np.arange(n_users))
        rank = np.empty(len(keys), dtype=np.int64)
        rank[order] = np.arange(len(keys)) - starts[owner[order]]
        keys = keys[rank < quotas[owner]]
        need = quotas - np.bincount(keys // n_items, minlength=n_users)
    keys.sort()
    return keys // n_items, keys % n_items


class _Sink:
    """Where chunks go: a Parquet or CSV file, or the Netflix layout's spill buckets."""

    def __init__(self, tmp: Path, fmt: str, n_items: int, n_buckets: int) -> None:
        self.tmp, self.fmt, self.n_items, self.n_buckets = tmp, fmt, n_items, n_buckets
        self.writer = None
        if fmt == "parquet":
            import pyarrow as pa
            import pyarrow.parquet as pq

            schema = pa.schema(
                [
                    ("userId", pa.int64()),
                    ("movieId", pa.int64()),
                    ("rating", pa.float32()),
                    ("timestamp", pa.int64()),
                ]
            )
            self.writer = pq.ParquetWriter(tmp, schema)
        elif fmt == "csv":
            self.handle = tmp.open("wb")
            self.handle.write(CSV_HEADER)
        else:
            tmp.mkdir()
            self.buckets = [(tmp / f".bucket-{b}").open("wb") for b in range(n_buckets)]

    def write(
        self, users: np.ndarray, items: np.ndarray, rating: np.ndarray, ts: np.ndarray
    ) -> None:
        import pyarrow as pa

        if self.fmt == "netflix":
            records = np.empty(len(users), dtype=NETFLIX_RECORD)
            records["item"], records["user"] = items, users
            records["rating"], records["day"] = rating, ts // 86_400
            bucket = (items - 1) * self.n_buckets // self.n_items
            order = np.argsort(bucket, kind="stable")
            bounds = np.searchsorted(bucket[order], np.arange(self.n_buckets + 1))
            for b in range(self.n_buckets):
                records[order[bounds[b] : bounds[b + 1]]].tofile(self.buckets[b])
            return
        table = pa.table(
            {
                "userId": pa.array(users, pa.int64()),
                "movieId": pa.array(items, pa.int64()),
                "rating": pa.array(rating.astype(np.float32), pa.float32()),
                "timestamp": pa.array(ts, pa.int64()),
            }
        )
        if self.writer is not None:
            self.writer.write_table(table, row_group_size=len(users))
        else:
            import pyarrow.csv as pa_csv

            options = pa_csv.WriteOptions(include_header=False, quoting_style="none")
            pa_csv.write_csv(table, self.handle, options)

    def close(self, n_items: int, item_rng: np.random.Generator) -> None:
        if self.writer is not None:
            self.writer.close()
        elif self.fmt == "csv":
            self.handle.close()
        else:
            for handle in self.buckets:
                handle.close()
            self._write_netflix(n_items, item_rng)

    def abort(self) -> None:
        """Close what is open (errors ignored); the caller removes the temporary path."""
        for handle in [self.writer, getattr(self, "handle", None), *getattr(self, "buckets", [])]:
            try:
                if handle is not None:
                    handle.close()
            except Exception:  # already failing; the temporary path is removed next
                pass

    def _write_netflix(self, n_items: int, rng: np.random.Generator) -> None:
        """Each bucket (a range of movie IDs) sorted by movie and written as ``MovieID:`` blocks
        into ``combined_data_1.txt``; then ``movie_titles.csv``."""
        import pyarrow as pa
        import pyarrow.compute as pc
        import pyarrow.csv as pa_csv

        options = pa_csv.WriteOptions(include_header=False, quoting_style="none", delimiter="\t")
        with (self.tmp / "combined_data_1.txt").open("wb") as out:
            for b in range(self.n_buckets):
                spill = self.tmp / f".bucket-{b}"
                records = np.fromfile(spill, dtype=NETFLIX_RECORD)
                spill.unlink()
                if not len(records):
                    continue
                records = records[np.argsort(records["item"], kind="stable")]
                movies, first = np.unique(records["item"], return_index=True)
                rows = pc.binary_join_element_wise(
                    pa.array(records["user"]).cast(pa.string()),
                    pa.array(records["rating"]).cast(pa.string()),
                    pa.array(records["day"]).cast(pa.date32()).cast(pa.string()),
                    ",",
                )
                heads = pc.binary_join_element_wise(pa.array(movies).cast(pa.string()), "", ":")
                # Output line of each movie header and each rating row, interleaved.
                head_at = first + np.arange(len(movies))
                row_at = np.arange(len(records)) + np.searchsorted(
                    first, np.arange(len(records)), side="right"
                )
                where = np.empty(len(records) + len(movies), dtype=np.int64)
                where[head_at] = np.arange(len(movies)) + len(records)
                where[row_at] = np.arange(len(records))
                lines = pa.concat_arrays([rows, heads]).take(pa.array(where))
                pa_csv.write_csv(pa.table({"line": lines}), out, options)
        years = rng.integers(1920, 2006, n_items)
        titles = [
            f"{i},{'NULL' if years[i - 1] < 1925 else years[i - 1]},Movie {i}, part {i % 7}\n"
            for i in range(1, n_items + 1)
        ]
        (self.tmp / "movie_titles.csv").write_text("".join(titles), encoding="latin-1")


def write_synthetic(
    path: Path,
    *,
    n_users: int,
    n_items: int,
    n_ratings: int,
    seed: int = 0,
    fmt: str = "parquet",
    chunk_size: int = 2_000_000,
    progress: bool = True,
) -> dict:
    """Write ``n_ratings`` synthetic ratings of distinct (user, item) pairs, chunk by chunk.

    Each user gets a quota of ratings from a long-tailed activity distribution (at least
    ``min(20, n_ratings // (2 * n_users))``, at most half the items) and that many distinct items
    drawn by a long-tailed popularity (Zipf 0.9, popularity ranks shuffled over item IDs). Pairs
    never repeat within the file, because each block of users is drawn once and its pairs are
    distinct; in the rare case a user's quota cannot be filled after :data:`MAX_ROUNDS` redraws
    the file holds fewer rows (``stats["rows"] < n_ratings``). Ratings come from one
    :class:`LatentModel` (rank 8, noise 0.5): half stars on 0.5..5 for Parquet and CSV, whole
    stars on 1..5 for the Netflix layout. Rows within a chunk are shuffled; chunks follow blocks
    of user IDs, whose activity ranks are shuffled too.

    Memory is about one chunk (plus the model and the per-user quotas); the Netflix layout is
    sorted by movie through per-movie-range spill files on disk. Output is deterministic for a
    given ``seed`` and ``chunk_size``.

    Args:
        path: The file to write (``fmt`` ``"parquet"`` or ``"csv"``), or for ``"netflix"`` the
            folder to create, holding ``combined_data_1.txt`` and ``movie_titles.csv``. It is
            written under a temporary name next to it and renamed into place at the end; an
            existing file (or folder) there is replaced.
        n_users: Users (IDs ``1..n_users``).
        n_items: Items (IDs ``1..n_items``).
        n_ratings: Ratings to write.
        seed: Seed of every random draw.
        fmt: ``"parquet"`` (row groups of one chunk; columns ``userId`` int64, ``movieId``
            int64, ``rating`` float32, ``timestamp`` int64), ``"csv"`` (header
            ``userId,movieId,rating,timestamp``) or ``"netflix"``.
        chunk_size: Ratings per chunk (about; chunks end on user boundaries).
        progress: Print progress to stderr.

    Returns:
        ``{"path", "format", "rows", "requested", "users", "items", "seconds", "bytes"}``.

    Raises:
        ValueError: An unknown ``fmt``, non-positive sizes, or more ratings than
            ``n_users * n_items / 2`` distinct pairs allow.
    """
    if fmt not in FORMATS:
        raise ValueError(f"fmt must be one of {', '.join(FORMATS)}; got {fmt!r}")
    if min(n_users, n_items, n_ratings, chunk_size) < 1:
        raise ValueError("n_users, n_items, n_ratings and chunk_size must be positive")
    start = time.perf_counter()
    path = Path(path).expanduser()
    root = np.random.SeedSequence(seed)
    model_seed, quota_seed, item_seed = root.spawn(3)
    rng = np.random.default_rng(model_seed)
    model = LatentModel.draw(rng, n_users, n_items, rank=8)
    low = max(1, min(MIN_USER_RATINGS, n_ratings // (2 * n_users)))
    high = max(low, n_items // 2)
    quota_rng = np.random.default_rng(quota_seed)
    weights = zipf_weights(n_users, 0.6)[quota_rng.permutation(n_users)]
    quotas = user_quotas(weights, n_ratings, low, high)
    popularity = zipf_weights(n_items, 0.9)[quota_rng.permutation(n_items)]
    cdf = np.cumsum(popularity / popularity.sum())
    if fmt == "netflix":
        scale, step, (t0, t1) = (1.0, 5.0), 1.0, NETFLIX_TIME
    else:
        scale, step, (t0, t1) = (0.5, 5.0), 0.5, ML_TIME
    user_start = t0 + (t1 - t0) * quota_rng.random(n_users) ** 2
    # Blocks of consecutive users holding about chunk_size ratings each.
    ends = np.searchsorted(np.cumsum(quotas), np.arange(chunk_size, n_ratings, chunk_size))
    bounds = np.unique(np.concatenate([[0], ends + 1, [n_users]]).clip(0, n_users))
    tmp = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    _remove(tmp)
    n_buckets = max(1, -(-n_ratings // chunk_size))
    sink = _Sink(tmp, fmt, n_items, n_buckets)
    written = 0
    try:
        for block, (first, last) in enumerate(itertools.pairwise(bounds)):
            chunk_rng = np.random.default_rng([seed, 1, block])
            users, items = distinct_items(chunk_rng, quotas[first:last], cdf)
            users += first
            rating = model.rate(users, items, chunk_rng, noise=0.5, rating_scale=scale, step=step)
            span = t1 - user_start[users]
            ts = (user_start[users] + span * chunk_rng.random(len(users)) ** 3).astype(np.int64)
            order = chunk_rng.permutation(len(users))
            sink.write(users[order] + 1, items[order] + 1, rating[order], ts[order])
            written += len(users)
            if progress:
                print(f"\rsynth: {written:,}/{n_ratings:,} ratings", end="", file=sys.stderr)
        sink.close(n_items, np.random.default_rng(item_seed))
    except BaseException:
        sink.abort()
        _remove(tmp)
        raise
    _swap_into_place(tmp, path)
    if progress:
        print(file=sys.stderr)
    size = sum(f.stat().st_size for f in path.iterdir()) if path.is_dir() else path.stat().st_size
    return {
        "path": str(path),
        "format": fmt,
        "rows": written,
        "requested": n_ratings,
        "users": n_users,
        "items": n_items,
        "seconds": round(time.perf_counter() - start, 3),
        "bytes": size,
    }


def _remove(path: Path) -> None:
    if path.is_dir():
        shutil.rmtree(path)
    elif path.exists():
        path.unlink()


def _swap_into_place(tmp: Path, path: Path) -> None:
    """Put the finished ``tmp`` at ``path`` with renames only: what was at ``path`` stays whole
    until the new data is complete (a netflix folder is moved aside, then removed)."""
    if not path.is_dir():
        os.replace(tmp, path)  # a file, or nothing: one atomic rename
        return
    retired = path.with_name(f".{path.name}.old-{os.getpid()}")
    _remove(retired)
    os.replace(path, retired)
    try:
        os.replace(tmp, path)
    except OSError:
        os.replace(retired, path)  # put the old one back
        raise
    _remove(retired)
