"""Run directories: exact round trip, atomic replacement, refusal of what does not add up."""

import json

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors.torch import load_file, save_file

from movierec.artifacts import MANIFEST, WEIGHTS, load_run, save_run, sha256_of
from movierec.config import TrainConfig
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ArtifactError
from tests.factories import build_recommender


@pytest.fixture(scope="module")
def ratings():
    return synthetic_ratings(60, 40, 1500, seed=5)


@pytest.fixture(scope="module", params=["embedding-net", "mf", "bias", "mean"])
def trained(request, ratings):
    return build_recommender(request.param, ratings)


def save(recommender, path, **extra):
    return save_run(
        path,
        recommender,
        model_config=recommender.model.config,
        train_config=TrainConfig(),
        info={"dataset": "synthetic", "split": "none", "seed": 0},
        metrics={"rmse": 1.0},
        history=pd.DataFrame({"epoch": [1], "train_loss": [1.0]}),
        **extra,
    )


def test_loaded_run_predicts_like_the_trained_one(trained, ratings, tmp_path):
    save(trained, tmp_path / "run")
    loaded, run = load_run(tmp_path / "run")
    users, items = ratings["user_id"].to_numpy(), ratings["item_id"].to_numpy()
    np.testing.assert_allclose(
        loaded.predict(users, items), trained.predict(users, items), atol=1e-6
    )
    user = int(users[0])
    assert [r.item for r in loaded.top_n(user)] == [r.item for r in trained.top_n(user)]
    assert loaded.top_n(user)[0].title == trained.top_n(user)[0].title
    assert run["model"] == trained.model.name
    manifest = json.loads((tmp_path / "run" / MANIFEST).read_text())
    assert {"weights.safetensors", "run.json", "id_map.json", "items.json", "metrics.json"} <= set(
        manifest["files"]
    )


@pytest.fixture()
def saved(tmp_path, ratings):
    return save(build_recommender("mf", ratings), tmp_path / "run")


def test_a_tampered_weights_file_is_refused(saved):
    data = bytearray((saved / WEIGHTS).read_bytes())
    data[-1] ^= 0xFF
    (saved / WEIGHTS).write_bytes(bytes(data))
    with pytest.raises(ArtifactError, match="does not match its SHA-256"):
        load_run(saved)


def test_a_truncated_file_is_refused(saved):
    (saved / "id_map.json").write_text('{"users": [1')
    with pytest.raises(ArtifactError, match="SHA-256"):
        load_run(saved)


def test_an_id_map_of_the_wrong_size_is_refused_even_with_a_matching_manifest(saved):
    id_map = json.loads((saved / "id_map.json").read_text())
    id_map["users"] = id_map["users"][:-1]
    (saved / "id_map.json").write_text(json.dumps(id_map))
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest["files"]["id_map.json"] = sha256_of(saved / "id_map.json")
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match="ID map has"):
        load_run(saved)


def test_a_missing_file_is_refused(saved):
    (saved / "run.json").unlink()
    with pytest.raises(ArtifactError, match=r"run\.json is missing"):
        load_run(saved)


def test_a_folder_that_is_not_a_run_is_refused(tmp_path):
    with pytest.raises(ArtifactError, match="not a movierec run"):
        load_run(tmp_path)


def test_saving_never_overwrites_a_foreign_folder(tmp_path, ratings):
    precious = tmp_path / "notes"
    precious.mkdir()
    (precious / "thesis.txt").write_text("keep me")
    with pytest.raises(ArtifactError, match="not a movierec run directory"):
        save(build_recommender("bias", ratings), precious)
    assert (precious / "thesis.txt").read_text() == "keep me"


def test_a_failed_save_keeps_the_previous_run_whole(saved, ratings):
    before = sha256_of(saved / WEIGHTS)

    def crash(_folder):
        raise RuntimeError("disk full")

    with pytest.raises(RuntimeError):
        save(build_recommender("mf", ratings), saved, extra_files=crash)
    assert sha256_of(saved / WEIGHTS) == before
    load_run(saved)
    leftovers = [p.name for p in saved.parent.iterdir() if p.name.startswith(".")]
    assert leftovers == []


def test_saving_again_replaces_the_run(saved, ratings):
    save(build_recommender("embedding-net", ratings), saved)
    _, run = load_run(saved)
    assert run["model"] == "embedding-net"


def test_save_recommender_writes_a_run_that_loads_and_serves(ratings, tmp_path):
    from movierec import fit_recommender, save_recommender

    recommender = fit_recommender(
        ratings,
        model="mf",
        n_factors=4,
        epochs=2,
        progress=False,
        threads=1,
        split="none",
        validation_fraction=0.0,
    )
    path = save_recommender(recommender, tmp_path / "run")
    loaded, run = load_run(path)
    assert run["model"] == "mf" and run["model_config"]["n_factors"] == 4
    assert run["train_config"]["epochs"] == 2 and run["dataset"] == "dataframe"
    assert (path / "learning_curve.png").is_file() and (path / "history.csv").is_file()
    users = recommender.encoder.user_ids[:5]
    expected = recommender.recommend(users, k=5)
    pd.testing.assert_frame_equal(loaded.recommend(users, k=5), expected)
    with pytest.raises(ArtifactError, match=r"loaded from a run directory"):
        save_recommender(loaded, tmp_path / "again")


def test_weights_that_are_not_finite_are_refused_on_save(ratings, tmp_path):
    recommender = build_recommender("mf", ratings)
    with torch.no_grad():
        next(recommender.model.parameters())[0] = float("nan")
    with pytest.raises(ArtifactError, match="not finite numbers"):
        save(recommender, tmp_path / "run")
    assert not (tmp_path / "run").exists()
    assert [p.name for p in tmp_path.iterdir()] == []


def test_weights_that_are_not_finite_are_refused_on_load(saved):
    tensors = load_file(saved / WEIGHTS)
    name = next(k for k in tensors if k.startswith("model."))
    tensors[name] = torch.full_like(tensors[name], float("nan"))
    save_file(tensors, saved / WEIGHTS)
    manifest = json.loads((saved / MANIFEST).read_text())
    manifest["files"][WEIGHTS] = sha256_of(saved / WEIGHTS)  # a consistent, diverged run
    (saved / MANIFEST).write_text(json.dumps(manifest))
    with pytest.raises(ArtifactError, match=f"not finite numbers .*{name}"):
        load_run(saved)
