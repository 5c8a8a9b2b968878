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
import math
import numbers
import os
import typing
from collections.abc import Callable, Mapping
from typing import Any

import numpy as np
import torch
from torch.overrides import TorchFunctionMode

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
    "check_memory",
    "make_config",
    "model_class",
    "plan_model",
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
        # A range check met a value of the wrong kind ("abc" < 1): name the option and kind.
        _check_types(name, config_class, values)
        raise ConfigError(f"invalid options for model {name!r}: {exc}") from exc
    _check_types(name, config_class, values)  # what the config's own checks let through
    return config


def _check_types(name: str, config_class: type, values: Mapping[str, Any]) -> None:
    """Refuse a value of the wrong kind (``n_factors="64"``) before it reaches torch, whose
    error would not name the option. Numbers may be ints where floats are declared, never NaN
    or infinite (JSON's ``NaN`` would slip past every ``>=`` check); tuples may be lists
    (TOML and JSON have no tuples)."""
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
        return isinstance(value, numbers.Real) and math.isfinite(value)
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
    check_memory(plan_model(name, n_users, n_items, rating_scale, config))
    return cls(n_users, n_items, rating_scale, config)


def plan_model(
    name: str,
    n_users: int,
    n_items: int,
    rating_scale: tuple[float, float],
    config: Any = None,
) -> RatingModel:
    """The model :func:`build_model` would build, on PyTorch's ``meta`` device: every tensor's
    shape and dtype, no memory and no initialisation, to check sizes before allocating."""
    cls = model_class(name)
    if config is None or isinstance(config, Mapping):
        config = make_config(name, config)
    with torch.device("meta"), _SkipRandomInit():
        return cls(n_users, n_items, rating_scale, config)


# Random initialisers, as tensor methods and as torch.nn.init functions (which call them).
_RANDOM_INITS = frozenset(
    {
        "normal_",
        "uniform_",
        "trunc_normal_",
        "bernoulli_",
        "exponential_",
        "random_",
        "log_normal_",
        "cauchy_",
        "geometric_",
    }
)

_RANDOM_FACTORIES = frozenset({"randn", "rand"})  # same arguments as torch.empty


class _SkipRandomInit(TorchFunctionMode):
    """Skip random initialisers on ``meta`` tensors, which hold no values to fill anyway
    (and make ``randn``/``rand`` plain ``empty``: the device context makes them meta).

    PyTorch has no meta kernel for ``normal_``: its Python fallback imports ``torch._dynamo``
    and sympy on first use, a second of CPU (five on a busy 2-core machine) that every
    ``load_run`` paid to plan an embedding table, ``movierec serve``'s start-up included.
    """

    def __torch_function__(
        self,
        func: Callable[..., Any],
        types: Any,
        args: tuple[Any, ...] = (),
        kwargs: dict[str, Any] | None = None,
    ) -> Any:
        kwargs = kwargs or {}
        name = getattr(func, "__name__", "")
        if name in _RANDOM_FACTORIES:  # (meta: the device context below makes it a meta tensor)
            kwargs.pop("generator", None)
            return torch.empty(*args, **kwargs)
        target = args[0] if args else kwargs.get("tensor")  # torch.nn.init passes it by name
        if name in _RANDOM_INITS and isinstance(target, torch.Tensor) and target.is_meta:
            return target
        return func(*args, **kwargs)


def model_bytes(model: torch.nn.Module) -> int:
    """Bytes of a model's parameters and buffers (of a planned model too)."""
    return sum(t.numel() * t.element_size() for t in model.state_dict().values())


def check_memory(model: RatingModel, available: int | None = None) -> None:
    """Refuse a model whose weights alone exceed the machine's memory (``n_factors = 1e9``),
    with one ConfigError instead of the allocator's traceback (or the OOM killer).

    Args:
        model: The model, planned (:func:`plan_model`) or built.
        available: Bytes of memory to compare against; None: the machine's physical memory
            (where the OS says; otherwise nothing is checked).
    """
    available = _physical_memory() if available is None else available
    needed = model_bytes(model)
    if available is not None and needed > available:
        raise ConfigError(
            f"model {model.name!r} with {model.n_users:,} users and {model.n_items:,} items "
            f"needs {needed / 2**30:,.1f} GiB for its weights alone, more than this machine's "
            f"{available / 2**30:,.1f} GiB of memory; use smaller sizes (n_factors, hidden)"
        )


def _physical_memory() -> int | None:
    try:
        return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")
    except (ValueError, OSError, AttributeError):  # not POSIX, or the OS does not say
        return None
