"""The pure pieces of benchmarks/bench.py: FLOP counts, summaries, and the interleaving gate."""

import sys
import threading
from pathlib import Path

import pytest

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench  # the harness lives in benchmarks/, not in the package

from movierec.models import EmbeddingNetConfig


def test_layer_shapes_include_the_concatenated_input_and_the_output_unit():
    config = EmbeddingNetConfig(n_factors=150, hidden=(100, 200, 300))
    assert bench.layer_shapes(config) == [(300, 100), (100, 200), (200, 300), (300, 1)]


def test_step_flops_of_the_article_config_by_hand():
    # Per rating: 300*100 + 100*200 + 200*300 + 300*1 = 110,300 multiply-adds in the forward,
    # 2 FLOPs each, times 3 for forward + input gradient + weight gradient.
    shapes = bench.layer_shapes(bench.CONFIGS["article"])
    assert bench.forward_flops(2000, shapes) == 2 * 2000 * 110_300
    assert bench.step_flops(2000, shapes) == 3 * 2 * 2000 * 110_300


def test_step_flops_of_the_wide_config_by_hand():
    # 300*500 + 500*500 + 500*500 + 500*1 = 650,500 multiply-adds per rating.
    shapes = bench.layer_shapes(bench.CONFIGS["wide"])
    assert bench.step_flops(1, shapes) == 6 * 650_500


def test_rate_summary_uses_the_median_time():
    rates = bench.rate_summary([2.0, 1.0, 4.0], 100)
    assert rates == {"median": 50.0, "best": 100.0, "worst": 25.0}


def test_latency_summary_in_milliseconds():
    seconds = [i / 1000 for i in range(1, 101)]  # 1..100 ms
    summary = bench.latency_summary(seconds)
    assert summary["median_ms"] == pytest.approx(50.5)
    assert summary["p99_ms"] == pytest.approx(99.01)


def test_first_reaching_takes_the_first_point_at_or_below_the_target():
    curve = [(1.0, 0.99), (2.0, 0.955), (3.0, 0.96), (4.0, 0.949)]
    assert bench.first_reaching(curve, 0.96) == 2.0
    assert bench.first_reaching(curve, 0.95) == 4.0
    assert bench.first_reaching(curve, 0.90) is None


def test_variants_mark_missing_fast_path_options():
    nothing = dict.fromkeys(("precision", "compile", "fast", "embedding_optimizer"), False)
    none = bench.variants(nothing)
    assert [v.name for v in none if v.missing is None] == [bench.FP32]
    some = bench.variants({**nothing, "precision": True, "fast": True})
    by_name = {v.name: v for v in some}
    assert by_name["movierec bf16"].missing is None
    assert by_name["movierec bf16"].run == {"precision": "bf16"}
    assert by_name["movierec compile"].missing is not None
    assert by_name[bench.FAST].missing is None
    assert "embedding_optimizer" in by_name[f"{bench.FAST} + row-wise"].missing
    every = bench.variants(dict.fromkeys(nothing, True))
    combined = {v.name: v for v in every}[f"{bench.FAST} + row-wise"]
    assert combined.missing is None
    assert combined.run == {"precision": "auto", "fused_adam": True, "fast_dropout": True}
    assert combined.train == {"embedding_optimizer": "row-wise"}
    assert bench.fast_path_support() == dict.fromkeys(nothing, True)  # this checkout has all


def test_run_interleaved_alternates_turns_and_survives_a_failing_worker():
    log = []
    lock = threading.Lock()

    def worker(name, turns, fail_at=None):
        def work(yield_turn):
            for turn in range(turns):
                if turn == fail_at:
                    raise RuntimeError("boom")
                with lock:
                    log.append(name)
                if turn < turns - 1:
                    yield_turn()

        return work

    errors = bench.run_interleaved(
        {"a": worker("a", 3), "b": worker("b", 1), "c": worker("c", 3, fail_at=2)}
    )
    # b leaves after its one turn, c fails on its third: a goes on alone.
    assert log == ["a", "b", "c", "a", "c", "a"]
    assert list(errors) == ["c"]
    assert "boom" in errors["c"]
