"""Fixtures of the command-line tests: a saved run and a ratings file."""

import pytest

from movierec.artifacts import save_run
from movierec.config import TrainConfig
from movierec.data.synthetic import synthetic_ratings
from tests.factories import build_recommender


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    ratings = synthetic_ratings(50, 30, 900, seed=4)
    recommender = build_recommender("mf", ratings)
    path = tmp_path_factory.mktemp("cli") / "run"
    save_run(
        path,
        recommender,
        model_config=recommender.model.config,
        train_config=TrainConfig(),
        info={"dataset": "synthetic", "split": "none", "seed": 0},
    )
    return path


@pytest.fixture(scope="module")
def ratings_file(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "ratings.csv"
    synthetic_ratings(60, 40, 1500, seed=6).to_csv(path, index=False)
    return path
