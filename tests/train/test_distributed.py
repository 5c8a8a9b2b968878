"""Data-parallel training under torchrun (CPU, gloo, loopback only)."""

import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import torch
from typer.testing import CliRunner

from movierec.artifacts import MANIFEST
from movierec.cli import app
from movierec.data.synthetic import synthetic_ratings
from movierec.train import distributed

runner = CliRunner()
SRC = Path(__file__).resolve().parents[1] / "src"


@pytest.mark.parametrize("n, size", [(1000, 2), (1001, 2), (1003, 4), (7, 3), (5, 1)])
def test_shards_are_disjoint_equal_and_drop_less_than_one_row_per_rank(n, size):
    order = torch.randperm(n, generator=torch.Generator().manual_seed(n))
    shards = [distributed.shard(order, rank, size) for rank in range(size)]
    assert len({len(s) for s in shards}) == 1  # every rank takes the same number of steps
    together = torch.cat(shards)
    assert together.unique().numel() == together.numel()  # disjoint
    assert n - together.numel() < size  # only the ragged tail is dropped
    if n % size == 0:
        assert sorted(together.tolist()) == list(range(n))  # every rating exactly once


def test_shard_batches_rebuild_the_single_process_batches():
    order = torch.randperm(40, generator=torch.Generator().manual_seed(1))
    size, local = 2, 5
    shards = [distributed.shard(order, rank, size) for rank in range(size)]
    for step in range(4):
        parts = torch.cat([s[step * local : (step + 1) * local] for s in shards])
        single = order[step * local * size : (step + 1) * local * size]
        assert sorted(parts.tolist()) == sorted(single.tolist())


def test_without_one_process_group_the_collectives_are_no_ops():
    assert distributed.is_main()
    assert not distributed.is_distributed()
    assert distributed.all_reduce_sum(torch.tensor([2.0])).item() == 2.0
    assert distributed.broadcast_flag(True) is True
    assert distributed.any_rank(False) is False
    assert distributed.without_option(["train", "--nproc", "2", "--nproc=3", "-q"], "--nproc") == [
        "train",
        "-q",
    ]


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("dist") / "ratings.csv"
    synthetic_ratings(300, 200, 20_000, seed=3).to_csv(path, index=False)
    return path


def _env(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if k not in ("RANK", "WORLD_SIZE", "LOCAL_RANK")}
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(SRC), env.get("PYTHONPATH")]))
    env["MOVIEREC_DIST_TIMEOUT"] = "30"
    return {**env, **extra}


def _torchrun(args, **env):
    command = distributed.launch_command(2, ["train", *args])
    return subprocess.run(command, capture_output=True, text=True, env=_env(**env), timeout=120)


TRAIN = ["--model", "mf", "--epochs", "3", "--seed", "0", "--json", "--threads", "1"]


def test_two_processes_match_one_and_write_one_run(ratings_file, tmp_path):
    out = tmp_path / "runs" / "two"
    done = _torchrun(["--data", str(ratings_file), *TRAIN, "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    lines = [line for line in done.stdout.splitlines() if line.startswith("{")]
    assert len(lines) == 1  # rank 0 alone prints
    two = json.loads(lines[0])
    assert two["world_size"] == 2
    assert two["effective_batch_size"] == 1024  # mf's batch_size: 2 x 512
    assert [p.name for p in (tmp_path / "runs").iterdir()] == ["two"]
    assert (out / MANIFEST).exists()

    single = runner.invoke(app, ["train", "--data", str(ratings_file), *TRAIN])
    assert single.exit_code == 0, single.output
    one = json.loads(single.stdout)
    assert two["rmse"] == pytest.approx(one["rmse"], abs=0.01)

    # The distributed run's weights load in a single process (no ``module.`` prefix).
    evaluated = runner.invoke(app, ["evaluate", str(out), "--data", str(ratings_file), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["rmse"] == pytest.approx(two["rmse"], abs=1e-6)


def test_a_dead_rank_ends_the_whole_job(ratings_file, tmp_path):
    started = time.monotonic()
    done = _torchrun(
        ["--data", str(ratings_file), *TRAIN, "--out", str(tmp_path / "r")],
        MOVIEREC_TEST_DIE_AT_STEP="3",
    )
    assert done.returncode != 0
    assert "ChildFailedError" in done.stderr  # torchrun reports the lost rank
    assert time.monotonic() - started < 60
    assert not (tmp_path / "r" / MANIFEST).exists()


def test_nproc_is_refused_under_torchrun(monkeypatch):
    monkeypatch.setenv("WORLD_SIZE", "2")
    result = runner.invoke(app, ["train", "--data", "x", "--nproc", "2"])
    assert result.exit_code == 2
    assert "--nproc" in result.stderr


ROW_WISE_SCRIPT = """
import sys

import torch

from movierec.train import distributed
from movierec.config import RunOptions, TrainConfig
from movierec.data.encoder import IdEncoder
from movierec.data.synthetic import synthetic_ratings
from movierec.data.tensors import RatingTensors
from movierec.models import build_model
from movierec.train import fit

frame = synthetic_ratings(300, 200, 8_000, seed=4)
encoder = IdEncoder.fit(frame)
data = RatingTensors.from_frame(frame, encoder)
with distributed.session(torch.device("cpu")):
    torch.manual_seed(0)
    model = build_model(
        "embedding-net", encoder.n_users, encoder.n_items, (1.0, 5.0),
        {"n_factors": 8, "hidden": [16], "dropouts": [0.1]},
    )
    start = {k: v.clone() for k, v in model.state_dict().items()}
    config = TrainConfig(
        epochs=2, batch_size=256, patience=0, weight_decay=1e-3,
        embedding_optimizer="row-wise",
    )
    fit(model, data, None, config, RunOptions(seed=0, device="cpu", progress=False))
    rank = distributed.world().rank
    torch.save({"start": start, "end": model.state_dict()}, f"{sys.argv[1]}/rank{rank}.pt")
"""


def test_row_wise_embeddings_train_under_ddp_and_stay_identical_across_ranks(tmp_path):
    script = tmp_path / "row_wise.py"
    script.write_text(ROW_WISE_SCRIPT)
    command = [
        sys.executable, "-m", "torch.distributed.run", "--standalone", "--nproc_per_node", "2",
        str(script), str(tmp_path),
    ]  # fmt: skip
    done = subprocess.run(command, capture_output=True, text=True, env=_env(), timeout=120)
    assert done.returncode == 0, done.stderr[-3000:]
    ranks = [torch.load(tmp_path / f"rank{r}.pt") for r in (0, 1)]
    for name in ("user_embedding.weight", "item_embedding.weight", "hidden.0.weight"):
        end0, end1 = ranks[0]["end"][name], ranks[1]["end"][name]
        assert torch.equal(end0, end1), name  # the same averaged update on every rank
        assert not torch.equal(end0, ranks[0]["start"][name]), name  # and it trained


def test_row_wise_run_under_torchrun_loads_in_one_process(ratings_file, tmp_path):
    config = tmp_path / "rw.toml"
    config.write_text(
        '[model]\nname = "embedding-net"\nn_factors = 8\nhidden = [16]\ndropouts = [0.1]\n'
        '[train]\nembedding_optimizer = "row-wise"\nepochs = 2\nbatch_size = 512\n'
    )
    args = ["--data", str(ratings_file), "--config", str(config), "--seed", "0", "--json"]
    out = tmp_path / "run"
    done = _torchrun([*args, "--threads", "1", "--out", str(out)])
    assert done.returncode == 0, done.stderr[-3000:]
    two = json.loads(next(line for line in done.stdout.splitlines() if line.startswith("{")))
    assert two["world_size"] == 2
    evaluated = runner.invoke(app, ["evaluate", str(out), "--data", str(ratings_file), "--json"])
    assert evaluated.exit_code == 0, evaluated.output
    assert json.loads(evaluated.stdout)["rmse"] == pytest.approx(two["rmse"], abs=1e-6)
    single = runner.invoke(app, ["train", *args])
    assert single.exit_code == 0, single.output
    assert two["rmse"] == pytest.approx(json.loads(single.stdout)["rmse"], abs=0.01)


def test_a_diverging_run_stops_every_rank_and_saves_nothing(ratings_file, tmp_path):
    config = tmp_path / "huge-lr.toml"
    config.write_text('[model]\nname = "mf"\n\n[train]\nlr = 1e30\nepochs = 5\n')
    args = ["--data", str(ratings_file), "--config", str(config), "--threads", "1", "-q"]
    done = _torchrun([*args, "--out", str(tmp_path / "r")])
    assert done.returncode != 0
    assert "training diverged in epoch" in done.stderr
    assert not (tmp_path / "r" / MANIFEST).exists()
