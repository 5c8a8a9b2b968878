"""Checkpoint integrity: a SHA-256 over tensors and state, and a state that adds up, checked
before anything resumes; a failed write (a full disk) is one line and leaves the old file."""

import errno
import json
import random
import shutil
from pathlib import Path

import pytest
from safetensors import SafetensorError, safe_open
from safetensors.torch import load_file, save_file

from movierec import fit_recommender
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ArtifactError
from movierec.train.checkpoint import load_checkpoint, save_checkpoint, state_digest


@pytest.fixture(scope="module")
def written(tmp_path_factory):
    """A real checkpoint of 3 epochs of MF (with Adam moments, RNG states, history)."""
    path = tmp_path_factory.mktemp("ckpt") / "checkpoint.safetensors"
    fit_recommender(
        synthetic_ratings(60, 40, 1500, seed=5),
        model="mf",
        n_factors=4,
        epochs=3,
        progress=False,
        threads=1,
        split="none",
        validation_fraction=0.1,
        checkpoint=path,
    )
    return path


@pytest.fixture()
def copy(written, tmp_path):
    return Path(shutil.copy(written, tmp_path / "checkpoint.safetensors"))


def test_a_checkpoint_round_trips(written):
    state = load_checkpoint(written)
    assert state.epoch == 4 and [row["epoch"] for row in state.history] == [1, 2, 3]
    assert state.model and state.optimizer["state"]


def tensor_data_span(path):
    """(start, end) byte offsets of the tensor data: after the 8-byte length and the header."""
    header = int.from_bytes(path.read_bytes()[:8], "little")
    return 8 + header, path.stat().st_size


def test_every_one_of_100_bit_flips_in_tensor_data_is_refused(copy):
    pristine = copy.read_bytes()
    start, end = tensor_data_span(copy)
    rng = random.Random(0)
    for _ in range(100):
        data = bytearray(pristine)
        at = rng.randrange(start, end)
        data[at] ^= 1 << rng.randrange(8)
        copy.write_bytes(bytes(data))
        with pytest.raises(ArtifactError, match="does not match its SHA-256"):
            load_checkpoint(copy)


def rewrite(path, edit_meta=None, edit_tensors=None, resign=False):
    """Rewrite ``path`` with its state JSON and/or tensors edited; ``resign`` recomputes the
    checksum (a deliberate forgery, or a bug in a writer), else the old one is kept."""
    with safe_open(path, framework="pt") as handle:
        metadata = dict(handle.metadata())
    tensors = load_file(path)
    meta = json.loads(metadata["state"])
    if edit_meta:
        meta = edit_meta(meta) or meta
    if edit_tensors:
        edit_tensors(tensors)
    metadata["state"] = json.dumps(meta)
    if resign:
        metadata["sha256"] = state_digest(tensors, metadata["state"])
    save_file(tensors, path, metadata=metadata)


def test_an_edited_epoch_is_refused_by_the_checksum(copy):
    rewrite(copy, lambda meta: meta.__setitem__("epoch", 2))
    with pytest.raises(ArtifactError, match="does not match its SHA-256"):
        load_checkpoint(copy)


def test_a_renamed_tensor_is_refused_by_the_checksum(copy):
    rewrite(copy, edit_tensors=lambda t: t.__setitem__("rng.torchx", t.pop("rng.torch")))
    with pytest.raises(ArtifactError, match="does not match its SHA-256"):
        load_checkpoint(copy)


def test_a_checkpoint_without_a_checksum_is_refused(copy):
    with safe_open(copy, framework="pt") as handle:
        metadata = dict(handle.metadata())
    del metadata["sha256"]
    save_file(load_file(copy), copy, metadata=metadata)
    with pytest.raises(ArtifactError, match="has no checksum"):
        load_checkpoint(copy)


def drop(key):
    return lambda meta: meta.pop(key) and None


def put(key, value):
    return lambda meta: meta.__setitem__(key, value)


# Re-signed states: the checksum passes, the state still has to add up.
BAD_STATES = [
    ("renamed key", lambda m: m.__setitem__("epochs", m.pop("epoch")), "has no 'epoch'"),
    ("no history", drop("history"), "has no 'history'"),
    ("no context", drop("context"), "has no 'context'"),
    ("epoch skips", put("epoch", 6), "epoch 6 does not follow its history"),
    ("epoch text", put("epoch", "4"), "epoch must be a whole number"),
    ("epoch zero", put("epoch", 0), "epoch must be a whole number >= 1"),
    (
        "history gap",
        lambda m: m["history"][1].__setitem__("epoch", 3),
        r"does not follow its history of epochs \[1, 3, 3\]",
    ),
    ("position -1", put("position", -1), "position must be"),
    ("loss NaN", put("loss_sum", float("nan")), "loss_sum must be a finite number"),
    ("best epoch 9", put("best_epoch", 9), "best_epoch 9 was never trained"),
    ("optimizer list", put("optimizer", []), "optimizer must be an object"),
    ("cuda rngs", put("n_cuda_rng", 2), "lacks tensor 'rng.cuda.0'"),
    ("a list", lambda m: [m], "its state is not an object"),
]


@pytest.mark.parametrize(
    ("edit", "message"), [c[1:] for c in BAD_STATES], ids=[c[0] for c in BAD_STATES]
)
def test_a_resigned_state_that_does_not_add_up_is_one_line(copy, edit, message):
    rewrite(copy, edit, resign=True)
    with pytest.raises(ArtifactError, match=message) as caught:
        load_checkpoint(copy)
    assert "\n" not in str(caught.value)


def test_a_resigned_file_missing_an_rng_tensor_is_refused(copy):
    rewrite(copy, edit_tensors=lambda t: t.pop("rng.torch"), resign=True)
    with pytest.raises(ArtifactError, match=r"lacks tensor 'rng\.torch'"):
        load_checkpoint(copy)


@pytest.mark.parametrize(
    "failure",
    [OSError(errno.ENOSPC, "No space left on device"), SafetensorError("IoError: No space left")],
    ids=["OSError", "SafetensorError"],
)
def test_a_full_disk_keeps_the_previous_checkpoint_and_is_one_line(copy, monkeypatch, failure):
    state = load_checkpoint(copy)
    before = copy.read_bytes()

    def full(*args, **kwargs):
        raise failure

    monkeypatch.setattr("movierec.train.checkpoint.save_file", full)
    with pytest.raises(ArtifactError, match=r"could not write the checkpoint .*free some disk"):
        save_checkpoint(copy, state)
    assert copy.read_bytes() == before
    assert [p.name for p in copy.parent.iterdir()] == [copy.name]  # no temporary left


def test_a_foreign_safetensors_file_is_not_a_checkpoint(tmp_path):
    save_file({}, tmp_path / "other.safetensors", metadata={"format": "something-else"})
    with pytest.raises(ArtifactError, match="not a movierec checkpoint"):
        load_checkpoint(tmp_path / "other.safetensors")


def test_a_position_beyond_the_training_ratings_is_refused_on_resume(copy):
    # Signed and self-consistent, but stopped further into its epoch than this data reaches:
    # written for another ratings file (or edited). The epoch would end at once on a loss
    # averaged over ratings it never saw.
    rewrite(copy, put("position", 1_000_000), resign=True)
    state = load_checkpoint(copy)
    with pytest.raises(
        ArtifactError,
        match=r"stopped 1,000,000 ratings into epoch 4, but this run trains on [0-9,]+: it was",
    ) as caught:
        fit_recommender(
            synthetic_ratings(60, 40, 1500, seed=5),
            model="mf",
            n_factors=4,
            epochs=5,
            progress=False,
            threads=1,
            split="none",
            validation_fraction=0.1,
            checkpoint=copy,
            resume=state,
        )
    assert "\n" not in str(caught.value)
