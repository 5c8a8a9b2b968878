"""The synthetic generator: determinism, shape, scale, long tail, round trips, atomic writes."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from movierec.data import load_data
from movierec.data import synthetic as synth
from movierec.data.synthetic import synthetic_ratings, user_quotas, write_synthetic

SIZES = {"n_users": 300, "n_items": 400, "n_ratings": 20_000, "chunk_size": 6_000}


def _write(tmp_path: Path, name: str, fmt: str = "parquet", **changes: int) -> dict:
    return write_synthetic(tmp_path / name, fmt=fmt, progress=False, **{**SIZES, **changes})


def test_synthetic_ratings_unchanged_shape() -> None:
    frame = synthetic_ratings(50, 30, 900, seed=4)
    assert list(frame.columns) == ["user_id", "item_id", "rating", "timestamp"]
    assert not frame.duplicated(["user_id", "item_id"]).any()
    assert frame["rating"].between(1, 5).all()


def test_parquet_deterministic_exact_count_dtypes_half_stars(tmp_path: Path) -> None:
    stats = _write(tmp_path, "a.parquet")
    _write(tmp_path, "b.parquet")
    a = pd.read_parquet(tmp_path / "a.parquet")
    b = pd.read_parquet(tmp_path / "b.parquet")
    pd.testing.assert_frame_equal(a, b)
    assert not a.equals(pd.read_parquet(_write(tmp_path, "c.parquet", seed=1)["path"]))
    assert stats["rows"] == len(a) == SIZES["n_ratings"]
    assert stats["bytes"] == (tmp_path / "a.parquet").stat().st_size
    assert list(a.columns) == ["userId", "movieId", "rating", "timestamp"]
    assert [str(t) for t in a.dtypes] == ["int64", "int64", "float32", "int64"]
    assert not a.duplicated(["userId", "movieId"]).any()
    ratings = a["rating"].to_numpy()
    assert ratings.min() >= 0.5 and ratings.max() <= 5
    assert np.all(ratings * 2 == np.round(ratings * 2))
    assert len(np.unique(ratings)) >= 8
    assert a["userId"].between(1, SIZES["n_users"]).all()
    assert a["movieId"].between(1, SIZES["n_items"]).all()


def test_long_tails(tmp_path: Path) -> None:
    path = _write(tmp_path, "t.parquet", n_users=2_000, n_items=3_000, n_ratings=100_000)["path"]
    frame = pd.read_parquet(path)
    per_item = np.sort(frame["movieId"].value_counts().to_numpy())[::-1]
    assert per_item[:30].sum() / len(frame) > 0.12  # top 1% of items: > 12 times their share
    per_user = frame["userId"].value_counts()
    assert per_user.min() >= 20
    assert per_user.max() > 10 * per_user.median()


def test_quotas_sum_and_bounds() -> None:
    weights = synth.zipf_weights(1_000, 0.6)
    quotas = user_quotas(weights, 50_000, 20, 400)
    assert quotas.sum() == 50_000 and quotas.min() >= 20 and quotas.max() <= 400
    with pytest.raises(ValueError, match="cannot be split"):
        user_quotas(weights, 10, 20, 400)


@pytest.mark.parametrize(
    ("fmt", "name", "scale"),
    [
        ("parquet", "r.parquet", (0.5, 5.0)),
        ("csv", "r.csv", (0.5, 5.0)),
        ("netflix", "netflix", (1.0, 5.0)),
    ],
)
def test_round_trip_through_load_data(
    tmp_path: Path, fmt: str, name: str, scale: tuple[float, float]
) -> None:
    stats = _write(tmp_path, name, fmt)
    data = load_data(stats["path"])
    assert len(data.ratings) == stats["rows"] == SIZES["n_ratings"]
    assert data.report["duplicates_resolved"] == 0
    assert data.rating_scale == scale
    assert [str(t) for t in data.ratings.dtypes] == ["int64", "int64", "float32", "int64"]
    assert data.ratings["timestamp"].min() > 700_000_000
    if fmt == "netflix":
        assert data.layout == "netflix"
        assert data.items is not None and len(data.items) == SIZES["n_items"]
        assert np.all(data.ratings["rating"].to_numpy() % 1 == 0)


def test_csv_matches_parquet(tmp_path: Path) -> None:
    parquet = load_data(_write(tmp_path, "p.parquet")["path"]).ratings
    text = load_data(_write(tmp_path, "p.csv", "csv")["path"]).ratings
    pd.testing.assert_frame_equal(parquet, text)
    assert (tmp_path / "p.csv").read_text().startswith("userId,movieId,rating,timestamp\n")


@pytest.mark.parametrize("fmt", ["parquet", "csv", "netflix"])
def test_atomic_write_leaves_nothing_on_failure(
    tmp_path: Path, fmt: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls = {"n": 0}
    original = synth._Sink.write

    def failing(self, *args):  # the second chunk fails
        calls["n"] += 1
        if calls["n"] == 2:
            raise RuntimeError("disk full")
        return original(self, *args)

    monkeypatch.setattr(synth._Sink, "write", failing)
    with pytest.raises(RuntimeError, match="disk full"):
        _write(tmp_path, "out", fmt)
    assert list(tmp_path.iterdir()) == []


def test_bad_arguments(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="fmt must be one of"):
        _write(tmp_path, "x", "xlsx")
    with pytest.raises(ValueError, match="cannot be split"):
        _write(tmp_path, "x", n_users=2, n_items=4, n_ratings=100)
