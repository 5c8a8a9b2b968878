"""The pure pieces of benchmarks/bench.py: FLOP counts, summaries, and the interleaving gate."""

import sys
import threading
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import bench  # the harness lives in benchmarks/, not in the package

from movierec.config import RunOptions
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


def test_variants_name_their_speed_options_and_mark_missing_ones():
    nothing = dict.fromkeys(("precision", "compile", "fast", "embedding_optimizer"), False)
    none = bench.variants(nothing)
    # The default and the exact path are always there: they are RunOptions() and fp32.
    assert [v.name for v in none if v.missing is None] == [bench.DEFAULT, bench.EXACT]
    by_name = {v.name: v for v in none}
    assert by_name[bench.DEFAULT].run == {}
    assert by_name[bench.EXACT].run == {"precision": "fp32"}
    assert "precision" in by_name["movierec bf16 only"].missing
    some = {v.name: v for v in bench.variants({**nothing, "precision": True})}
    assert some["movierec bf16 only"].missing is None
    assert some["movierec bf16 only"].run == {
        "precision": "bf16",
        "fused_adam": False,
        "fast_dropout": False,
    }
    assert "compile" in some[f"{bench.DEFAULT} + compile"].missing
    assert "fast" in some[bench.DEFAULT_FP32].missing
    every = {v.name: v for v in bench.variants(dict.fromkeys(nothing, True))}
    row_wise = every[f"{bench.DEFAULT} + row-wise"]
    assert row_wise.missing is None
    assert (row_wise.run, row_wise.train) == ({}, {"embedding_optimizer": "row-wise"})
    # What RunOptions() resolves to without native bf16: fp32 with the other speed options on.
    no_bf16 = RunOptions(**every[bench.DEFAULT_FP32].run)
    assert no_bf16.precision == "fp32" and no_bf16.use_fused_adam and no_bf16.use_fast_dropout
    assert bench.fast_path_support() == dict.fromkeys(nothing, True)  # this checkout has all


def test_isa_names_torch_dispatch_and_bf16():
    found = bench.isa()
    assert found["torch_cpu_capability"] == torch.backends.cpu.get_cpu_capability()
    assert set(found["flags"]) <= {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}
    assert isinstance(found["native_bf16"], bool)


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


def test_bench_training_times_the_plain_loop_beside_the_default_and_the_exact_path():
    from movierec.data.encoder import IdEncoder
    from movierec.data.synthetic import synthetic_ratings
    from movierec.data.tensors import RatingTensors

    frame = synthetic_ratings(60, 40, 3000, seed=0, step=1.0, rating_scale=(1.0, 5.0))
    encoder = IdEncoder.fit(frame)
    tensors = RatingTensors.from_frame(frame, encoder)
    config = EmbeddingNetConfig(n_factors=8, hidden=(16, 8), dropouts=(0.25, 0.5))
    chosen = [v for v in bench.variants(bench.fast_path_support()) if v.name in (
        bench.DEFAULT, bench.EXACT)]  # fmt: skip
    result = bench.bench_training("tiny", config, tensors, encoder, chosen, 2, (1.0, 5.0))
    rows = result["variants"]
    assert list(rows) == [bench.REFERENCE, bench.DATALOADER, bench.DEFAULT, bench.EXACT]
    for label, row in rows.items():
        assert row["available"], label
        assert len(row["epoch_seconds"]) == len(row["epoch_cpu_seconds"]) == 2
        assert row["ratings_per_cpu_second"] > 0
    assert rows[bench.REFERENCE]["vs_reference"] == 1.0
    assert rows[bench.EXACT]["precision"] == "fp32"
    native = bench.isa()["native_bf16"]
    assert rows[bench.DEFAULT]["precision"] == ("bf16" if native else "fp32")
    expected = (
        rows[bench.DEFAULT]["ratings_per_second"] / rows[bench.REFERENCE]["ratings_per_second"]
    )
    assert rows[bench.DEFAULT]["vs_reference"] == pytest.approx(expected)


def test_the_plain_loop_learns():
    from reference_loop import PlainLoop

    from movierec.data.synthetic import synthetic_ratings

    frame = synthetic_ratings(50, 30, 2000, seed=1, step=1.0, rating_scale=(1.0, 5.0))
    users = torch.as_tensor(frame["user_id"].to_numpy() - frame["user_id"].min())
    items = torch.as_tensor(frame["item_id"].to_numpy() - frame["item_id"].min())
    ratings = torch.tensor(frame["rating"].to_numpy(dtype="float32"))
    loop = PlainLoop(users, items, ratings, n_factors=8, hidden=(16,), dropouts=(), batch_size=200)

    def mse() -> float:
        loop.model.eval()
        with torch.no_grad():
            return float(((loop.model(users, items).squeeze(1) - ratings) ** 2).mean())

    before = mse()
    for _ in range(5):
        assert loop.epoch() > 0
    assert mse() < before
