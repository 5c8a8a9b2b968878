"""Every committed config file is one `movierec train --config` accepts, and the best-model
config says exactly what the results table benchmarked."""

from pathlib import Path

import pytest

from movierec.config import ModelSpec, load_config_file

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.toml")), ids=lambda p: p.name)
def test_config_resolves_to_a_model_and_training_options(path):
    spec = ModelSpec.resolve(config_path=path)
    assert spec.name == load_config_file(path).model


def test_best_ml100k_is_the_benchmarked_autorec_config():
    best = load_config_file(CONFIGS / "best-ml100k.toml")
    row = load_config_file(CONFIGS / "ml100k" / "autorec.toml")
    assert (best.model, best.model_options, best.train_options) == (
        row.model,
        row.model_options,
        row.train_options,
    )
