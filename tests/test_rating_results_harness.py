"""benchmarks/rating_results.py's --only: re-measured rows merged into the full run's table."""

import json
import sys
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import rating_results as results  # the harness lives in benchmarks/, not in the package

from movierec.errors import ConfigError
from movierec.evaluate.protocols import BenchmarkResult, Row, RunRecord


def record(rmse: float, seed: int = 0) -> RunRecord:
    return RunRecord("u1", seed, rmse, 0.7, 1.0, 10, epochs=3, best_epoch=2, ndcg=0.1)


def protocol(rows: list[Row], seeds=(0, 1)) -> BenchmarkResult:
    return BenchmarkResult("ml-100k", "u1", ["u1"], list(seeds), rows)


def test_fresh_rows_replace_theirs_new_ones_join_in_config_order_and_surprise_stays_last():
    old = protocol([
        Row("mf", "configs/ml100k/mf-tuned.toml", "movierec", [record(0.93)]),
        Row("svdpp", "configs/ml100k/svdpp.toml", "movierec", [record(0.92)]),
        Row("gone", "configs/ml100k/no-such-config.toml", "movierec", [record(0.99)]),
        Row("SVD", None, "surprise", [record(0.95)]),
    ])  # fmt: skip
    fresh = protocol([
        Row("svdpp", "configs/ml100k/svdpp.toml", "movierec", [record(0.91)]),
        Row("glocal-k", "configs/ml100k/glocal-k.toml", "movierec", [record(0.90)]),
    ])  # fmt: skip
    merged = results.merge_rows(old, fresh)
    assert [(r.config, r.runs[0].rmse) for r in merged.rows] == [
        ("configs/ml100k/glocal-k.toml", 0.90),
        ("configs/ml100k/mf-tuned.toml", 0.93),
        ("configs/ml100k/svdpp.toml", 0.91),
        (None, 0.95),  # Surprise's row, unchanged; the deleted config's row is gone
    ]


def test_rows_of_other_seeds_are_not_merged():
    with pytest.raises(ConfigError, match="seeds"):
        results.merge_rows(protocol([]), protocol([], seeds=(0,)))


def test_a_result_comes_back_from_its_json():
    original = protocol([Row("mf", "configs/ml100k/mf-tuned.toml", "movierec", [record(0.93)])])
    back = results.result_from_dict(json.loads(json.dumps(original.to_dict())))
    assert back == original


def test_only_names_existing_configs_and_needs_a_full_run_to_merge_into(tmp_path):
    assert [e.config for e in results.entries(None, ["svdpp"])] == ["configs/ml100k/svdpp.toml"]
    with pytest.raises(ConfigError, match=r"no configs/ml100k/nope\.toml"):
        results.entries(None, ["nope"])
    with pytest.raises(ConfigError, match="does not exist"):
        results._previous(tmp_path / "ratings.json")
    (tmp_path / "quick.json").write_text(json.dumps({"quick": True, "protocols": []}))
    with pytest.raises(ConfigError, match="smoke run"):
        results._previous(tmp_path / "quick.json")


def test_the_section_says_which_rows_were_measured_later():
    committed = json.loads(results.JSON_OUT.read_text(encoding="utf-8"))
    meta, old = results._previous(results.JSON_OUT)
    assert len(old) == len(committed["protocols"])
    update = {
        "command": "python benchmarks/rating_results.py --only svdpp",
        "date": "2026-12-07",
        "cpu": "Some CPU",
        "torch": "2.13.0+cpu",
        "minutes": 3.0,
        "configs": ["configs/ml100k/svdpp.toml"],
    }
    text = results.render(old, {**meta, "updates": [update]})
    assert "Measured later (`python benchmarks/rating_results.py --only svdpp`, 2026-12-07" in text
    assert "the rows of `configs/ml100k/svdpp.toml`" in text
