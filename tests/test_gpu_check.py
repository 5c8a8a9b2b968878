"""benchmarks/gpu_check.py (the GPU path of issue 16) run as its CPU dry run on a tiny set.

No timing is asserted: the script's numbers only mean something on a GPU. What is checked is that
every code path runs and the JSON says what ran: every variant trained two epochs with finite
losses, the plan's order, the budget's skips, and the synthetic set's shape.
"""

import json
import math
import sys
from pathlib import Path

import pytest
import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "benchmarks"))
import gpu_check  # the harness lives in benchmarks/, not in the package
from device_synthetic import RATING_SCALE, synthetic_tensors

TINY = ["--device", "cpu", "--ratings", "1024", "--users", "100", "--items", "50"]
TINY += ["--batches", "128,512", "--legacy-batch", "256", "--skip-u1"]


@pytest.fixture(autouse=True)
def _no_device_out(monkeypatch):
    monkeypatch.delenv("OUT", raising=False)  # the device tool's folder would take the JSON


def test_dry_run_trains_every_variant_and_writes_what_ran(tmp_path):
    out = tmp_path / "gpu.json"
    report = gpu_check.main([*TINY, "--max-compiled", "0", "--out", str(out)])
    assert json.loads(out.read_text()) == json.loads(json.dumps(report))
    assert report["kind"].startswith("cpu dry run") and report["target"]["applies"] is False
    assert {"cpu", "cpu_isa", "torch", "command", "overheads"} <= set(report)
    assert report["synthetic"]["ratings"] == 1024
    names = [v["name"] for v in report["variants"]]
    assert len(names) == len(set(names)) == 4 * 2 + 2 * 2 + 2
    for row in report["variants"]:
        if row["name"].startswith("bf16 dense compile"):
            assert row["status"] == "skipped: --max-compiled 0"
            continue
        assert row["status"] == "ok", row
        assert len(row["epoch_seconds"]) == 2 and len(row["sample_mse"]) == 2
        assert row["finite"] and all(math.isfinite(v) for v in row["sample_mse"])
        assert row["ratings_per_second"] == pytest.approx(1024 / row["epoch_seconds"][1])
        if row["loop"] == "movierec":
            assert len(row["train_loss"]) == 2
    by_name = {v["name"]: v for v in report["variants"]}
    assert by_name["bf16 row-wise b512"]["options"]["embedding_optimizer"] == "row-wise"
    assert by_name["fp32 b128"]["options"]["precision"] == "fp32"
    assert by_name["legacy fp32 b256"]["options"]["fused_adam"] is False
    assert report["best"]["name"] in by_name and report["best"]["meets_target"] is False
    assert set(report["times_plain_loop_same_batch"]) == {
        n
        for n, v in by_name.items()
        if v["loop"] == "movierec" and v["batch_size"] in (128, 512) and v["status"] == "ok"
    }


def test_no_budget_left_skips_every_variant_and_still_writes_the_json(tmp_path):
    out = tmp_path / "gpu.json"
    gpu_check.main([*TINY, "--budget", "0", "--out", str(out)])
    report = json.loads(out.read_text())
    assert report["variants"] and all(
        v["status"].startswith("skipped: ") for v in report["variants"]
    )
    assert report["best"] is None


def test_the_plan_runs_the_largest_batch_and_the_plain_loop_first():
    steps = gpu_check.plan([65536, 1048576, 262144], legacy_batch=8192)
    first = [s.name for s in steps[:4]]
    assert first == [
        "bf16 dense b1048576",
        "plain loop b1048576",
        "bf16 row-wise b1048576",
        "bf16 dense compile b1048576",
    ]
    assert steps[4] == gpu_check.U1
    variants = [s for s in steps if s != gpu_check.U1]
    assert {v.batch_size for v in variants if v.loop == "plain"} == {65536, 262144, 1048576}
    assert not any(v.compile and v.embedding_optimizer == "row-wise" for v in variants)


def test_variants_spell_out_every_run_option_whatever_the_defaults():
    base = gpu_check.RunOptions(precision="auto", fused_adam=False, fast_dropout=True)
    fp32 = gpu_check.Variant("fp32", 1024, precision="fp32").run_options(base)
    assert (fp32.precision, fp32.fused_adam, fp32.fast_dropout, fp32.compile) == (
        "fp32",
        True,
        False,
        False,
    )
    assert gpu_check.Variant("d", 1024, defaults=True).run_options(base) == base


def test_synthetic_tensors_are_distinct_pairs_on_the_half_star_scale():
    data = synthetic_tensors(300, 120, 5000, torch.device("cpu"), seed=3)
    assert len(data) == 5000
    keys = data.user_idx * 120 + data.item_idx
    assert len(torch.unique(keys)) == 5000
    assert int(data.user_idx.min()) >= 0 and int(data.user_idx.max()) < 300
    assert int(data.item_idx.min()) >= 0 and int(data.item_idx.max()) < 120
    low, high = RATING_SCALE
    assert float(data.rating.min()) >= low and float(data.rating.max()) <= high
    assert torch.equal(data.rating * 2, torch.round(data.rating * 2))
    again = synthetic_tensors(300, 120, 5000, torch.device("cpu"), seed=3)
    assert torch.equal(again.user_idx, data.user_idx) and torch.equal(again.rating, data.rating)


@pytest.mark.slow
def test_dry_run_compiles_one_variant(tmp_path):
    report = gpu_check.main([*TINY, "--only", "compile b512", "--out", str(tmp_path / "g.json")])
    [row] = report["variants"]
    assert row["status"] == "ok" and row["options"]["compile"] is True and row["finite"]


def test_u1_is_skipped_with_a_reason_when_ml100k_is_not_cached(tmp_path, monkeypatch):
    monkeypatch.setenv("MOVIEREC_HOME", str(tmp_path))  # offline GPU machines cannot download
    result = gpu_check.run_u1(gpu_check.RunOptions(progress=False), None, 1)
    assert result.startswith("skipped: ml-100k is not in") and ".cache/movierec" in result


def test_asking_for_cuda_without_one_exits_2_and_names_the_dry_run(tmp_path, capsys):
    if torch.cuda.is_available():
        pytest.skip("this machine has a GPU")
    with pytest.raises(SystemExit) as exit_:
        gpu_check.main(["--out", str(tmp_path / "g.json")])
    assert exit_.value.code == 2 and "--dry-run" in capsys.readouterr().err
    assert not (tmp_path / "g.json").exists()
