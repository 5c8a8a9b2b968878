"""Rating models and their registry.

Each model lives in its own module with its own frozen config dataclass:

- ``embedding-net``: :class:`EmbeddingNet` (the founding article's model)
- ``mf``: :class:`MatrixFactorization` (biased MF)
- ``svdpp``: :class:`SVDpp` (biased MF plus implicit feedback from each user's rated items)
- ``autorec``: :class:`AutoRec` (I-AutoRec: an autoencoder over each item's training ratings)
- ``sparse-fc``: :class:`SparseFC` (an item autoencoder with kernelised weight matrices)
- ``glocal-k``: :class:`GLocalK` (Sparse FC pre-trained, then fine-tuned with a global kernel)
- ``embedding-net-ensemble``: :class:`EmbeddingNetEnsemble` (EmbeddingNets of several seeds,
  averaged)
- ``bias``: :class:`BiasModel` (user + item biases, closed form)
- ``mean``: :class:`GlobalMean`
- ``ease``: :class:`EASE` (closed-form item-item model; ranks, predicts no ratings)
- ``popularity``: :class:`Popularity` (most-rated items first; ranks, predicts no ratings)
"""

from __future__ import annotations

import dataclasses
import numbers
import typing
from collections.abc import Mapping
from typing import Any

import numpy as np

from movierec.errors import ConfigError
from movierec.models.autorec import AutoRec, AutoRecConfig
from movierec.models.base import RatingModel
from movierec.models.bias import BiasConfig, BiasModel
from movierec.models.ease import EASE, EASEConfig
from movierec.models.embedding_net import EmbeddingNet, EmbeddingNetConfig
from movierec.models.ensemble import EmbeddingNetEnsemble, EmbeddingNetEnsembleConfig
from movierec.models.glocal_k import GLocalK, GLocalKConfig
from movierec.models.mean import GlobalMean, GlobalMeanConfig
from movierec.models.mf import MatrixFactorization, MFConfig
from movierec.models.popularity import Popularity, PopularityConfig
from movierec.models.sparse_fc import SparseFC, SparseFCConfig
from movierec.models.svdpp import SVDpp, SVDppConfig

MODELS: dict[str, type[RatingModel]] = {
    cls.name: cls
    for cls in (
        EmbeddingNet,
        MatrixFactorization,
        BiasModel,
        GlobalMean,
        EASE,
        Popularity,
        SVDpp,
        AutoRec,
        EmbeddingNetEnsemble,
        SparseFC,
        GLocalK,
    )
}

__all__ = [
    "EASE",
    "MODELS",
    "AutoRec",
    "AutoRecConfig",
    "BiasConfig",
    "BiasModel",
    "EASEConfig",
    "EmbeddingNet",
    "EmbeddingNetConfig",
    "EmbeddingNetEnsemble",
    "EmbeddingNetEnsembleConfig",
    "GLocalK",
    "GLocalKConfig",
    "GlobalMean",
    "GlobalMeanConfig",
    "MFConfig",
    "MatrixFactorization",
    "Popularity",
    "PopularityConfig",
    "RatingModel",
    "SVDpp",
    "SVDppConfig",
    "SparseFC",
    "SparseFCConfig",
    "build_model",
    "make_config",
    "model_class",
]


def model_class(name: str) -> type[RatingModel]:
    """Look a model up by its registry name, with a clear error for unknown names."""
    try:
        return MODELS[name]
    except KeyError:
        raise ConfigError(f"unknown model {name!r}; choose one of: {', '.join(MODELS)}") from None


def make_config(name: str, values: Mapping[str, Any] | None = None) -> Any:
    """Build a model's config dataclass from plain values, rejecting unknown keys."""
    config_class = model_class(name).config_class
    values = dict(values or {})
    known = {f.name for f in dataclasses.fields(config_class)}
    unknown = sorted(set(values) - known)
    if unknown:
        raise ConfigError(
            f"unknown option(s) {', '.join(unknown)} for model {name!r}; "
            f"its options are: {', '.join(sorted(known)) or 'none'}"
        )
    try:
        config = config_class(**values)
    except (TypeError, ValueError) as exc:
        raise ConfigError(f"invalid options for model {name!r}: {exc}") from exc
    _check_types(name, config_class, values)  # what the config's own checks let through
    return config


def _check_types(name: str, config_class: type, values: Mapping[str, Any]) -> None:
    """Refuse a value of the wrong kind (``n_factors="64"``) before it reaches torch, whose
    error would not name the option. Numbers may be ints where floats are declared; tuples
    may be lists (TOML and JSON have no tuples)."""
    hints = typing.get_type_hints(config_class)
    kinds = {int: "a whole number", float: "a number", bool: "true or false", str: "text"}
    for key, value in values.items():
        hint = hints.get(key)
        element = typing.get_args(hint)[0] if typing.get_origin(hint) is tuple else None
        if hint in kinds:
            good = _is_kind(value, hint)
            wanted = kinds[hint]
        elif element in kinds:
            good = isinstance(value, list | tuple) and all(_is_kind(v, element) for v in value)
            wanted = f"a list of {kinds[element].removeprefix('a ')}s"
        else:
            continue
        if not good:
            raise ConfigError(f"option {key} of model {name!r} must be {wanted}, got {value!r}")


def _is_kind(value: Any, kind: type) -> bool:
    """numpy scalars count as the Python ones (a tuner's or a frame's numbers)."""
    if kind is bool or isinstance(value, bool | np.bool_):
        return kind is bool and isinstance(value, bool | np.bool_)
    if kind is int:
        return isinstance(value, numbers.Integral)
    if kind is float:
        return isinstance(value, numbers.Real)
    return isinstance(value, kind)


def build_model(
    name: str,
    n_users: int,
    n_items: int,
    rating_scale: tuple[float, float],
    config: Any = None,
) -> RatingModel:
    """Instantiate a registered model (config: its dataclass, a mapping, or None for defaults)."""
    cls = model_class(name)
    if config is None or isinstance(config, Mapping):
        config = make_config(name, config)
    return cls(n_users, n_items, rating_scale, config)
