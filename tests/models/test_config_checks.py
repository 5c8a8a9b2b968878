"""Model options are checked where every path goes through (``make_config`` and each config's
``__post_init__``): a TOML file, Python keywords and a saved run.json get the same one line."""

import math
import subprocess
import sys

import pytest
import torch

from movierec.config import ModelSpec
from movierec.errors import ConfigError
from movierec.models import (
    MODELS,
    BiasConfig,
    MFConfig,
    build_model,
    check_memory,
    model_bytes,
    plan_model,
)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"n_factors": -1}, "n_factors >= 1"),
        ({"n_factors": 0}, "n_factors >= 1"),
        ({"n_factors": "abc"}, "must be a whole number"),
        ({"n_factors": 64.5}, "must be a whole number"),
        ({"init_std": -0.1}, "init_std must be >= 0"),
        ({"reg_factors": math.nan}, r"must be >= 0 \(got \[nan"),
        ({"init_std": math.inf}, "must be a number, got inf"),
    ],
)
def test_bad_mf_options_are_refused_from_a_toml_file_and_from_keywords(tmp_path, options, message):
    # TOML spells NaN and infinity nan and inf, as Python prints them; strings are quoted.
    lines = [f'{k} = "{v}"' if isinstance(v, str) else f"{k} = {v}" for k, v in options.items()]
    (tmp_path / "c.toml").write_text("\n".join(["[model]", 'name = "mf"', *lines]))
    with pytest.raises(ConfigError, match=message):
        ModelSpec.resolve(config_path=tmp_path / "c.toml")
    with pytest.raises(ConfigError, match=message):
        ModelSpec.from_keywords("mf", options)


def test_a_config_built_in_python_checks_its_ranges_too():
    with pytest.raises(ConfigError, match="n_factors >= 1"):
        MFConfig(n_factors=-1)
    with pytest.raises(ConfigError, match="iterations >= 1"):
        BiasConfig(iterations=0)


@pytest.mark.parametrize("name", list(MODELS))
def test_a_planned_model_has_the_built_ones_shapes_and_no_memory(name):
    planned = plan_model(name, 30, 20, (1.0, 5.0))
    built = build_model(name, 30, 20, (1.0, 5.0))
    assert {k: (v.shape, v.dtype) for k, v in planned.state_dict().items()} == {
        k: (v.shape, v.dtype) for k, v in built.state_dict().items()
    }
    assert all(v.device.type == "meta" for v in planned.state_dict().values())
    assert model_bytes(planned) == model_bytes(built)


def test_a_model_larger_than_the_memory_is_one_config_error_before_allocating():
    planned = plan_model("mf", 1000, 500, (1.0, 5.0), {"n_factors": 10**9})  # 6 TB: meta only
    with pytest.raises(
        ConfigError, match=r"needs [\d,.]+ GiB for its weights alone, .* \(n_factors"
    ):
        check_memory(planned)
    with pytest.raises(ConfigError, match="more than this machine's"):
        build_model("mf", 1000, 500, (1.0, 5.0), {"n_factors": 10**9})
    small = plan_model("mf", 1000, 500, (1.0, 5.0), {"n_factors": 8})
    check_memory(small, available=model_bytes(small))  # exactly fits
    with pytest.raises(ConfigError):
        check_memory(small, available=model_bytes(small) - 1)
    assert torch.empty(0).device.type == "cpu"  # the meta device did not leak out


def test_planning_a_model_initialises_nothing_and_imports_no_compiler():
    # torch's meta fallback for normal_ imports torch._dynamo and sympy: a second of every
    # load_run (and of movierec serve's start-up) spent planning an embedding table.
    code = (
        "import sys\n"
        "from movierec.models import MODELS, plan_model\n"
        "for name in ('embedding-net', 'mf', 'svdpp', 'autorec', 'ease', 'bias'):\n"
        "    plan_model(name, 30, 20, (1.0, 5.0))\n"
        "print(sorted(m for m in ('torch._dynamo', 'sympy') if m in sys.modules))\n"
    )
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert done.stdout.strip() == "[]"
