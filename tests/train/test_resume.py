"""Interrupted training: SIGKILL mid-epoch or SIGTERM, then --resume, ends where an
uninterrupted run ends (same epochs, no duplicate or missing epoch, same weights on one CPU
thread)."""

import json
import os
import signal
import subprocess
import sys
import time

import pandas as pd
import pytest

from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ArtifactError
from movierec.train.checkpoint import CHECKPOINT, load_checkpoint

EPOCHS = 4


@pytest.fixture(scope="module")
def job(tmp_path_factory):
    folder = tmp_path_factory.mktemp("resume")
    synthetic_ratings(300, 200, 30_000, seed=8).to_csv(folder / "ratings.csv", index=False)
    # patience 0: every run trains exactly EPOCHS epochs; small batches: many steps per epoch.
    (folder / "cfg.toml").write_text(
        '[model]\nname = "embedding-net"\nn_factors = 32\nhidden = [64, 64]\n'
        f"[train]\nepochs = {EPOCHS}\nbatch_size = 128\npatience = 0\n"
    )
    return folder


def command(job, out, *extra):
    return [
        sys.executable, "-m", "movierec", "train", "--data", str(job / "ratings.csv"),
        "--config", str(job / "cfg.toml"), "--out", str(out), "--threads", "1", "--quiet",
        "--json", *extra,
    ]  # fmt: skip


def finish(args):
    done = subprocess.run(args, capture_output=True, text=True, timeout=300, check=False)
    assert done.returncode == 0, done.stderr
    return json.loads(done.stdout)


@pytest.fixture(scope="module")
def uninterrupted(job):
    return finish(command(job, job / "straight"))


def wait_for_mid_epoch_checkpoint(path, process, minimum_epoch=2):
    deadline = time.monotonic() + 120
    while time.monotonic() < deadline:
        assert process.poll() is None, "training ended before it could be interrupted"
        if path.exists():
            try:
                state = load_checkpoint(path)
            except ArtifactError:
                state = None  # being replaced right now; look again
            if state is not None and state.epoch >= minimum_epoch and state.position > 0:
                return state
        time.sleep(0.01)
    raise AssertionError("no mid-epoch checkpoint appeared")


def assert_same_run(job, out, uninterrupted, resumed):
    history = pd.read_csv(out / "history.csv")
    assert history.columns[0] == "epoch"
    assert history["epoch"].tolist() == list(range(1, EPOCHS + 1))
    straight = pd.read_csv(job / "straight" / "history.csv")
    # One thread on a CPU: resuming replays the same permutation, dropout draws and Adam moments.
    pd.testing.assert_series_equal(history["train_loss"], straight["train_loss"])
    assert resumed["rmse"] == pytest.approx(uninterrupted["rmse"], abs=1e-9)
    assert not (out / CHECKPOINT).exists()
    assert json.loads((out / "metrics.json").read_text())["rmse"] == resumed["rmse"]


def test_sigkill_mid_epoch_then_resume_matches_an_uninterrupted_run(job, uninterrupted):
    out = job / "killed"
    process = subprocess.Popen(
        command(job, out, "--checkpoint-minutes", "0.0003"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        wait_for_mid_epoch_checkpoint(out / CHECKPOINT, process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    assert not (out / "manifest.json").exists()  # nothing a loader could half-accept
    resumed = finish(
        [sys.executable, "-m", "movierec", "train", "--resume", str(out), "--quiet", "--json"]
    )
    assert resumed["resumed_from_epoch"] >= 2
    assert_same_run(job, out, uninterrupted, resumed)


def test_sigterm_stops_cleanly_with_a_checkpoint_and_resumes(job, uninterrupted):
    out = job / "terminated"
    process = subprocess.Popen(
        command(job, out, "--checkpoint-minutes", "0.0003"),
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    wait_for_mid_epoch_checkpoint(out / CHECKPOINT, process, minimum_epoch=1)
    process.send_signal(signal.SIGTERM)
    _, stderr = process.communicate(timeout=60)
    assert process.returncode == 130
    assert "SIGTERM" in stderr and "--resume" in stderr
    assert load_checkpoint(out / CHECKPOINT).epoch >= 1
    resumed = finish(
        [sys.executable, "-m", "movierec", "train", "--resume", str(out), "--quiet", "--json"]
    )
    assert_same_run(job, out, uninterrupted, resumed)


def test_resuming_a_finished_run_is_a_clear_error(job, uninterrupted):
    done = subprocess.run(
        [sys.executable, "-m", "movierec", "train", "--resume", str(job / "straight")],
        capture_output=True,
        text=True,
        check=False,
    )
    assert done.returncode == 2
    assert "finished run" in done.stderr


def job_folder(tmp_path_factory, name, extra_train=""):
    """A ratings file and a config training EPOCHS epochs in many small steps."""
    folder = tmp_path_factory.mktemp(name)
    synthetic_ratings(300, 200, 30_000, seed=8).to_csv(folder / "ratings.csv", index=False)
    (folder / "cfg.toml").write_text(
        '[model]\nname = "embedding-net"\nn_factors = 32\nhidden = [64, 64]\n'
        f"[train]\nepochs = {EPOCHS}\nbatch_size = 128\npatience = 0\n{extra_train}"
    )
    return folder


def killed_mid_epoch_then_resumed(job):
    """Train ``job`` into ``job/killed``, SIGKILL it at a mid-epoch checkpoint, resume it:
    the checkpoint's state and the resumed run's metrics."""
    out = job / "killed"
    process = subprocess.Popen(
        command(job, out, "--checkpoint-minutes", "0.0003"),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        state = wait_for_mid_epoch_checkpoint(out / CHECKPOINT, process)
        os.kill(process.pid, signal.SIGKILL)
        process.wait(timeout=30)
    finally:
        if process.poll() is None:
            process.kill()
    resumed = finish(
        [sys.executable, "-m", "movierec", "train", "--resume", str(out), "--quiet", "--json"]
    )
    return state, resumed


@pytest.fixture(scope="module")
def row_wise_job(tmp_path_factory):
    extra = 'weight_decay = 1e-4\nembedding_optimizer = "row-wise"\n'
    return job_folder(tmp_path_factory, "resume_row_wise", extra)


def test_row_wise_optimizer_resumes_bit_identically(row_wise_job):
    # The lazy optimiser's per-row moments and step counts travel through the checkpoint.
    job = row_wise_job
    straight = finish(command(job, job / "straight"))
    state, resumed = killed_mid_epoch_then_resumed(job)
    names = {name for values in state.optimizer["state"].values() for name in values}
    assert "row_step" in names
    assert_same_run(job, job / "killed", straight, resumed)


@pytest.fixture(scope="module")
def averaged_job(tmp_path_factory):
    return job_folder(tmp_path_factory, "resume_averaged", "ema_decay = 0.95\n")


def test_the_weight_average_resumes_bit_identically(averaged_job, uninterrupted):
    job = averaged_job
    straight = finish(command(job, job / "straight"))
    # Same data, model and seed as the plain job: the kept weights are the average, not its.
    assert straight["rmse"] != pytest.approx(uninterrupted["rmse"], abs=1e-6)
    state, resumed = killed_mid_epoch_then_resumed(job)
    assert state.average is not None and int(state.average["__updates__"]) > 0
    assert_same_run(job, job / "killed", straight, resumed)
