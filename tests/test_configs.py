"""Every committed config file is one `movierec train --config` accepts, and the best-model
config says exactly what the results table benchmarked."""

from pathlib import Path

import pytest

from movierec.config import DEFAULT_CONFIG, ModelSpec, load_config_file
from movierec.errors import ConfigError
from movierec.models import make_config

CONFIGS = Path(__file__).resolve().parents[1] / "configs"


@pytest.mark.parametrize("path", sorted(CONFIGS.rglob("*.toml")), ids=lambda p: p.name)
def test_config_resolves_to_a_model_and_training_options(path):
    spec = ModelSpec.resolve(config_path=path)
    assert spec.name == load_config_file(path).model


def test_best_ml100k_is_the_benchmarked_sparse_fc_with_side_term_config():
    best = load_config_file(CONFIGS / "best-ml100k.toml")
    row = load_config_file(CONFIGS / "ml100k" / "sparse-fc-features.toml")
    assert (best.model, best.model_options, best.train_options) == (
        row.model,
        row.model_options,
        row.train_options,
    )


def test_no_model_and_no_file_is_the_default_configuration():
    spec = ModelSpec.resolve()
    assert spec == ModelSpec.resolve("default") == ModelSpec.resolve(config_path=DEFAULT_CONFIG)
    assert spec.name == "embedding-net" and spec.train.objective == "joint"
    assert spec.config.ranking_head and spec.config.rank_factors > 0
    # Flags still override it.
    assert ModelSpec.resolve(model_options={"rank_factors": 16}).config.rank_factors == 16


def test_naming_the_model_or_the_article_file_gives_the_article():
    article = ModelSpec.resolve(config_path=CONFIGS / "article.toml")
    assert (
        article.config
        == make_config("embedding-net", {})
        == ModelSpec.resolve("embedding-net").config
    )
    assert (article.config.n_factors, article.config.hidden) == (150, (100, 200, 300))
    assert article.train.objective == "rating"


def test_another_objective_without_a_model_uses_the_models_own_defaults():
    spec = ModelSpec.resolve(train_options={"objective": "bpr"})
    assert (spec.name, spec.train.objective) == ("embedding-net", "bpr")
    assert not spec.config.ranking_head


def test_a_ranking_head_needs_the_joint_objective():
    with pytest.raises(ConfigError, match="ranking_head = true is the ranking score of"):
        ModelSpec.resolve("embedding-net", model_options={"ranking_head": True}, train_options={})
    with pytest.raises(ConfigError, match="not both"):
        ModelSpec.resolve("default", config_path=CONFIGS / "article.toml")
