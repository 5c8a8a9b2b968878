"""Run directories: exact round trip, atomic replacement, refusal of what does not add up."""

import errno
import json
import shutil
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from movierec.artifacts import (
    MANIFEST,
    VALIDATION,
    WEIGHTS,
    load_run,
    read_validation,
    save_run,
    sha256_of,
)
from movierec.config import TrainConfig
from movierec.data.synthetic import synthetic_ratings
from movierec.errors import ArtifactError
from movierec.experiment import save_recommender
from movierec.pipeline import fit_recommender
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


# Runs that pass the manifest (re-signed after the edit) but hold values that make no sense:
# each is one ArtifactError naming the value, before any model is allocated.


@pytest.fixture(scope="module")
def pristine(tmp_path_factory, ratings):
    return save(build_recommender("mf", ratings), tmp_path_factory.mktemp("pristine") / "run")


@pytest.fixture()
def copy(pristine, tmp_path):
    return Path(shutil.copytree(pristine, tmp_path / "run"))


def resign(run_dir, name):
    manifest = json.loads((run_dir / MANIFEST).read_text())
    manifest["files"][name] = sha256_of(run_dir / name)
    (run_dir / MANIFEST).write_text(json.dumps(manifest))


def edit_json(run_dir, name, edit):
    payload = json.loads((run_dir / name).read_text())
    payload = edit(payload) or payload
    (run_dir / name).write_text(json.dumps(payload))
    resign(run_dir, name)


def edit_weights(run_dir, edit):
    tensors = load_file(run_dir / WEIGHTS)
    edit(tensors)
    save_file(tensors, run_dir / WEIGHTS)
    resign(run_dir, WEIGHTS)


def drop(key):
    return lambda run: run.pop(key) and None


def set_value(key, value):
    return lambda run: run.__setitem__(key, value)


def set_option(key, value):
    return lambda run: run["model_config"].__setitem__(key, value)


BAD_RUN_JSON = [
    ("no n_users", drop("n_users"), "has no 'n_users'"),
    ("no n_items", drop("n_items"), "has no 'n_items'"),
    ("no model", drop("model"), "has no 'model'"),
    ("no rating_scale", drop("rating_scale"), "has no 'rating_scale'"),
    ("no model_config", drop("model_config"), "has no 'model_config'"),
    ("no fallback mean", drop("fallback_global_mean"), "has no 'fallback_global_mean'"),
    ("a list", lambda run: [run], "holds a list, not an object"),
    ("n_users text", set_value("n_users", "abc"), "n_users must be a whole number"),
    ("n_users zero", set_value("n_users", 0), "n_users must be a whole number >= 1"),
    ("n_items float", set_value("n_items", 40.5), "n_items must be a whole number"),
    ("n_users bool", set_value("n_users", True), "n_users must be a whole number"),
    ("scale reversed", set_value("rating_scale", [5, 1]), "rating_scale must be"),
    ("scale of three", set_value("rating_scale", [1, 3, 5]), "rating_scale must be"),
    ("scale text", set_value("rating_scale", "1-5"), "rating_scale must be"),
    ("scale NaN", set_value("rating_scale", [float("nan"), 5]), "rating_scale must be"),
    ("mean text", set_value("fallback_global_mean", "x"), "fallback_global_mean must be"),
    ("mean NaN", set_value("fallback_global_mean", float("nan")), "fallback_global_mean must"),
    ("mean off scale", set_value("fallback_global_mean", 40.0), "outside the rating scale"),
    ("objective", set_value("objective", "magic"), "objective must be one of"),
    ("seed text", set_value("seed", "zero"), "seed must be a whole number"),
    ("model unknown", set_value("model", "gpt"), "unknown model 'gpt'"),
    ("model_config list", set_value("model_config", [64]), "model_config must be an object"),
    ("train_config bad", set_value("train_config", {"epochs": -1}), "epochs must be >= 0"),
    ("train_config list", set_value("train_config", []), "train_config must be an object"),
    ("n_factors -1", set_option("n_factors", -1), "n_factors >= 1"),
    ("n_factors text", set_option("n_factors", "abc"), "n_factors .* must be a whole number"),
    ("n_factors 64.5", set_option("n_factors", 64.5), "n_factors .* must be a whole number"),
    ("n_factors 1e9", set_option("n_factors", 10**9), r"does not fit .*user_factors\.weight"),
    ("init_std 'nan'", set_option("init_std", "nan"), "init_std .* must be a number"),
    ("init_std NaN", set_option("init_std", float("nan")), r"init_std must be >= 0 .*nan\]"),
    ("init_std -1", set_option("init_std", -1.0), "init_std must be >= 0"),
    ("unknown option", set_option("n_factor", 8), "unknown option"),
    ("more users", set_value("n_users", 61), "ID map has 60 users"),
]


@pytest.mark.parametrize(
    ("edit", "message"), [c[1:] for c in BAD_RUN_JSON], ids=[c[0] for c in BAD_RUN_JSON]
)
def test_a_run_json_with_a_bad_value_is_one_artifact_error(copy, edit, message, monkeypatch):
    def never(*args, **kwargs):
        raise AssertionError("the model was allocated before its values were checked")

    edit_json(copy, "run.json", edit)
    # Only the plan on the meta device may be built (n_factors = 1e9 would ask for 240 GB).
    monkeypatch.setattr("movierec.artifacts.build_model", never)
    with pytest.raises(ArtifactError, match=message) as caught:
        load_run(copy)
    assert "\n" not in str(caught.value)


BAD_ITEMS = [
    ("an object", {"1": "Movie 1"}, "holds a dict, not a list"),
    ("numbers", [1, 2], "record 0 is not an object"),
    ("no id", [{"title": "Movie 1", "genres": ""}], "record 0 has no 'item_id'"),
    ("no genres", [{"item_id": 1, "title": "Movie 1"}], "record 0 has no 'genres'"),
    ("id null", [{"item_id": None, "title": "x", "genres": ""}], "not an integer or text"),
    ("title number", [{"item_id": 1, "title": 5, "genres": ""}], "title 5, not text"),
    ("nested", [{"item_id": 1, "title": "x", "genres": "", "cast": []}], "nests a value"),
]


@pytest.mark.parametrize(
    ("payload", "message"), [c[1:] for c in BAD_ITEMS], ids=[c[0] for c in BAD_ITEMS]
)
def test_an_items_json_of_the_wrong_shape_is_refused(copy, payload, message):
    edit_json(copy, "items.json", lambda _: payload)
    with pytest.raises(ArtifactError, match=message):
        load_run(copy)


def set_tensor(name, make):
    return lambda tensors: tensors.__setitem__(name, make(tensors[name]))


BAD_TENSORS = [
    ("indptr decreases", set_tensor("seen.indptr", lambda t: t.flip(0)), "indptr runs from"),
    (
        "indptr unsorted",
        set_tensor("seen.indptr", lambda t: torch.cat([t[:1], t[2:3], t[1:2], t[3:]])),
        "indptr decreases",
    ),
    ("indptr short", set_tensor("seen.indptr", lambda t: t[:-1]), "indptr has shape"),
    ("indptr float", set_tensor("seen.indptr", lambda t: t.double()), "not int64"),
    (
        "indptr overruns",
        set_tensor("seen.indptr", lambda t: torch.cat([t[:-1], t[-1:] + 5])),
        "indptr runs from 0 to",
    ),
    ("indices outside", set_tensor("seen.indices", lambda t: t + 1000), "outside the catalogue"),
    ("fallback NaN", set_tensor("fallback.item_bias", lambda t: t * float("nan")), "not finite"),
    ("fallback short", set_tensor("fallback.user_bias", lambda t: t[:-1]), "expected a float"),
    ("fallback ints", set_tensor("fallback.user_bias", lambda t: t.long()), "expected a float"),
    ("seen missing", lambda tensors: tensors.pop("seen.indices"), "lacks tensor 'seen.indices'"),
    ("model missing", lambda t: t.pop("model.user_bias.weight"), "Missing key"),
    (
        "model dtype",
        set_tensor("model.user_factors.weight", lambda t: t.double()),
        "is torch.float64, the model holds torch.float32",
    ),
]


@pytest.mark.parametrize(
    ("edit", "message"), [c[1:] for c in BAD_TENSORS], ids=[c[0] for c in BAD_TENSORS]
)
def test_tampered_tensors_are_refused(copy, edit, message):
    edit_weights(copy, edit)
    with pytest.raises(ArtifactError, match=message):
        load_run(copy)


# The training ratings SVD++ and AutoRec keep as CSR buffers index the embedding tables at
# predict time: a re-signed edit used to load and fail there (an IndexError traceback).
@pytest.fixture(scope="module", params=["svdpp", "autorec"])
def history_run(request, tmp_path_factory, ratings):
    run = tmp_path_factory.mktemp(request.param) / "run"
    return request.param, save(build_recommender(request.param, ratings), run)


HISTORY = {
    "svdpp": ("user_ptr", "user_items", "user_weights"),
    "autorec": ("item_ptr", "item_users", "item_ratings"),
}
BAD_HISTORIES = [
    ("index outside", 1, lambda t: t + 1000, "point outside the"),
    ("index negative", 1, lambda t: t - 1000, "point outside the"),
    ("ptr decreases", 0, lambda t: torch.cat([t[:1], t[2:3], t[1:2], t[3:]]), "indptr decreases"),
    ("ptr overruns", 0, lambda t: torch.cat([t[:-1], t[-1:] + 5]), "indptr runs from 0 to"),
    ("ptr short", 0, lambda t: t[:-1], "indptr has shape"),
    ("index float", 1, lambda t: t.double(), "model holds torch.int64"),
    ("values short", 2, lambda t: t[:-1], "values for"),
]


@pytest.mark.parametrize(
    ("which", "make", "message"), [c[1:] for c in BAD_HISTORIES], ids=[c[0] for c in BAD_HISTORIES]
)
def test_tampered_rating_histories_are_refused_on_load(history_run, tmp_path, which, make, message):
    name, pristine_run = history_run
    run = Path(shutil.copytree(pristine_run, tmp_path / "run"))
    edit_weights(run, set_tensor(f"model.{HISTORY[name][which]}", make))
    with pytest.raises(ArtifactError, match=message) as caught:
        load_run(run)
    assert "\n" not in str(caught.value) and HISTORY[name][which] in str(caught.value)


def test_an_untampered_rating_history_loads_and_predicts(history_run):
    recommender, _ = load_run(history_run[1])
    assert np.isfinite(recommender.predict([1, 2, 3], [1, 2, 3])).all()


@pytest.mark.parametrize("name", ["items.json", MANIFEST])
def test_a_symlink_in_the_run_dir_is_refused_even_to_identical_content(copy, tmp_path, name):
    outside = tmp_path / "elsewhere"
    outside.write_bytes((copy / name).read_bytes())  # same bytes: the SHA-256 still matches
    (copy / name).unlink()
    (copy / name).symlink_to(outside)
    with pytest.raises(ArtifactError, match=f"{name} is a symbolic link"):
        load_run(copy)


@pytest.mark.parametrize(
    "failure",
    [OSError(errno.ENOSPC, "No space left on device"), SafetensorError("IoError: No space left")],
    ids=["OSError", "SafetensorError"],
)
def test_a_full_disk_is_one_line_and_leaves_nothing(ratings, tmp_path, monkeypatch, failure):
    def full(*args, **kwargs):
        raise failure

    monkeypatch.setattr("movierec.artifacts.save_file", full)
    with pytest.raises(ArtifactError, match=r"No space left.*free some disk space") as caught:
        save(build_recommender("bias", ratings), tmp_path / "run")
    assert "\n" not in str(caught.value)
    assert list(tmp_path.iterdir()) == []


def test_a_full_disk_while_writing_json_keeps_the_previous_run(saved, ratings, monkeypatch):
    before = sha256_of(saved / WEIGHTS)

    def full(path, payload):
        raise OSError(errno.ENOSPC, "No space left on device", str(path))

    monkeypatch.setattr("movierec.artifacts.write_json", full)
    with pytest.raises(ArtifactError, match="could not write the run"):
        save(build_recommender("mf", ratings), saved)
    monkeypatch.undo()
    assert sha256_of(saved / WEIGHTS) == before
    load_run(saved)
    assert [p.name for p in saved.parent.iterdir() if p.name.startswith(".")] == []


# The validation predictions a blend fits on: saved with the run, listed in its manifest, and
# refused on reading when they do not hold what they must.


@pytest.fixture(scope="module")
def validated(tmp_path_factory, ratings):
    recommender = fit_recommender(
        ratings, model="mf", epochs=2, split="random:0.2", threads=1, progress=False
    )
    return save_recommender(recommender, tmp_path_factory.mktemp("validated") / "run")


def test_validation_predictions_are_saved_listed_and_read_back(validated):
    _, run = load_run(validated)
    frame = read_validation(validated, run)
    assert list(frame.columns) == ["user_id", "item_id", "rating", "prediction"]
    assert VALIDATION in json.loads((validated / MANIFEST).read_text())["files"]
    assert frame["prediction"].between(1, 5).all() and len(frame) > 0


def test_a_run_without_a_carve_out_has_no_validation_predictions(saved):
    _, run = load_run(saved)
    assert read_validation(saved, run) is None


BAD_VALIDATION = [
    ("column", lambda f: f.rename(columns={"prediction": "score"}), "has columns"),
    ("empty", lambda f: f.iloc[:0], "holds no rows"),
    ("off scale", lambda f: f.assign(prediction=7.0), "prediction 7.0, outside the rating"),
    ("NaN", lambda f: f.assign(rating=float("nan")), "rating nan, outside the rating"),
    ("text", lambda f: f.assign(prediction="4"), "prediction is .*, not numbers"),
]


@pytest.mark.parametrize(
    ("edit", "message"), [c[1:] for c in BAD_VALIDATION], ids=[c[0] for c in BAD_VALIDATION]
)
def test_tampered_validation_predictions_are_refused(validated, tmp_path, edit, message):
    copied = Path(shutil.copytree(validated, tmp_path / "run"))
    edit(pd.read_parquet(copied / VALIDATION)).to_parquet(copied / VALIDATION, index=False)
    resign(copied, VALIDATION)
    _, run = load_run(copied)
    with pytest.raises(ArtifactError, match=message):
        read_validation(copied, run)
