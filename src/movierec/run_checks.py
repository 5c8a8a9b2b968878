"""What a run directory's files must hold before :func:`movierec.artifacts.load_run` builds
anything from them.

The manifest proves a file is the one that was saved, not that what was saved makes sense: a
run written by another tool, edited by hand and re-signed, or produced by a bug must still be
refused in one line instead of crashing deep inside torch, allocating terabytes, or serving
nonsense. Each check raises :class:`~movierec.errors.ArtifactError` naming the file, the value
and what to do:

- :func:`check_run_record`: ``run.json`` is an object whose every field the loader reads has
  the right type and range (sizes >= 1, a rating scale ``low < high``, a finite global mean
  inside it, known objective, model and training configs that the project's own config
  validation accepts).
- :func:`check_state`: the saved tensors fit the model ``run.json`` describes, checked on
  PyTorch's ``meta`` device, so a tampered ``n_factors = 10**9`` is refused before a byte of
  the model is allocated; the model's own CSR buffers of training ratings (SVD++'s user
  histories, AutoRec's and Sparse FC's item columns: ``RatingModel.csr_buffers``) are checked
  as the seen items are.
- :func:`check_seen`: the seen-items CSR arrays are well formed (``indptr`` starts at 0, never
  decreases, ends at ``len(indices)``; indices inside the catalogue).
- :func:`check_items`: ``items.json`` is a list of flat records with an ID, a title and genres.
- :func:`check_validation`: ``validation.parquet`` holds rows of ``user_id``, ``item_id``,
  ``rating``, ``prediction``, the last two finite numbers inside the rating scale.
"""

from __future__ import annotations

import math
import numbers
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch

from movierec.config import OBJECTIVES, TrainConfig
from movierec.errors import ArtifactError, MovieRecError
from movierec.models import RatingModel, plan_model

FIX = "the run is corrupt or was edited; retrain it or restore it from a copy"


def _is_int(value: Any) -> bool:
    return isinstance(value, numbers.Integral) and not isinstance(value, bool)


def _is_number(value: Any) -> bool:
    return isinstance(value, numbers.Real) and not isinstance(value, bool) and math.isfinite(value)


def _count(value: Any) -> bool:
    return _is_int(value) and value >= 1


def _scale(value: Any) -> bool:
    return (
        isinstance(value, list)
        and len(value) == 2
        and all(_is_number(v) for v in value)
        and value[0] < value[1]
    )


# Field -> (required, check, what it must be). The loader reads exactly these.
FIELDS: dict[str, tuple[bool, Callable[[Any], bool], str]] = {
    "model": (True, lambda v: isinstance(v, str), "a model name"),
    "model_config": (True, lambda v: isinstance(v, dict), "an object of model options"),
    "train_config": (True, lambda v: isinstance(v, dict), "an object of training options"),
    "rating_scale": (True, _scale, "[low, high], two finite numbers with low < high"),
    "n_users": (True, _count, "a whole number >= 1"),
    "n_items": (True, _count, "a whole number >= 1"),
    "fallback_global_mean": (True, _is_number, "a finite number"),
    "objective": (False, lambda v: v is None or v in OBJECTIVES, f"one of {OBJECTIVES}"),
    "seed": (False, lambda v: v is None or _is_int(v), "a whole number"),
    "dataset": (False, lambda v: v is None or isinstance(v, str), "text"),
    "split": (False, lambda v: v is None or isinstance(v, str), "text"),
}


def check_run_record(run: Any, path: Path) -> dict[str, Any]:
    """``run`` (``run.json`` parsed) if every field the loader reads is sound.

    Raises:
        ArtifactError: It is not an object, a required field is missing, a field has the wrong
            type or range, the global mean lies outside the rating scale, or the training
            options are refused by :class:`~movierec.config.TrainConfig` (the model options
            are checked when the model is planned, :func:`check_state`).
    """
    if not isinstance(run, dict):
        raise ArtifactError(f"{path} holds a {type(run).__name__}, not an object; {FIX}")
    for name, (required, good, wanted) in FIELDS.items():
        if name not in run:
            if required:
                raise ArtifactError(f"{path} has no {name!r}; {FIX}")
            continue
        if not good(run[name]):
            raise ArtifactError(f"{path}: {name} must be {wanted}, got {run[name]!r}; {FIX}")
    low, high = run["rating_scale"]
    mean = run["fallback_global_mean"]
    if not low - 1e-6 <= mean <= high + 1e-6:  # a mean of in-scale ratings lies in the scale
        raise ArtifactError(
            f"{path}: fallback_global_mean {mean} lies outside the rating scale "
            f"[{low}, {high}]; {FIX}"
        )
    try:
        TrainConfig.from_mapping(run["train_config"])
    except MovieRecError as exc:
        raise ArtifactError(f"{path}: train_config is refused ({exc}); {FIX}") from None
    return run


def check_state(run: Mapping[str, Any], state: Mapping[str, torch.Tensor], path: Path) -> None:
    """Check that the ``model.*`` tensors ``state`` fit the model ``run`` describes, without
    allocating it: the model is planned on the ``meta`` device and the tensors' shapes and
    dtypes are loaded into it.

    Raises:
        ArtifactError: The model cannot be built from ``run`` (unknown name, options refused
            by the model's config), or a tensor is missing, unexpected, of another shape or of
            another dtype.
    """
    try:
        planned = plan_model(
            run["model"],
            run["n_users"],
            run["n_items"],
            tuple(run["rating_scale"]),
            run["model_config"],
        )
    except MovieRecError as exc:
        raise ArtifactError(
            f"{path.parent / 'run.json'} describes a model this movierec cannot build: {exc}"
        ) from None
    shapes = {k: torch.empty_like(v, device="meta") for k, v in state.items()}
    try:
        planned.load_state_dict(shapes, strict=True)
    except RuntimeError as exc:
        # torch's first line only says "Error(s) in loading state_dict for ..."; the next
        # names the tensor and both shapes.
        lines = [line.strip() for line in str(exc).strip().splitlines() if line.strip()]
        detail = lines[1] if len(lines) > 1 else lines[0] if lines else type(exc).__name__
        raise ArtifactError(
            f"{path} does not fit the model in run.json ({detail}); the run is inconsistent"
        ) from None
    _check_dtypes(planned, state, path)
    sizes = {"users": run["n_users"], "items": run["n_items"]}
    for buffers in planned.csr_buffers:
        ptr, index, value = (state[name] for name in buffers.names)
        problem = csr_problem(ptr, index, sizes[buffers.rows], sizes[buffers.cols], buffers.cols)
        if problem is None and value.shape != index.shape:
            problem = f"{list(value.shape)} values for {index.numel()} entries"
        if problem:
            names = ", ".join(f"model.{name}" for name in buffers.names)
            raise ArtifactError(f"{path}: the tensors {names} are malformed ({problem}); {FIX}")


def _check_dtypes(planned: RatingModel, state: Mapping[str, torch.Tensor], path: Path) -> None:
    """``load_state_dict`` casts silently (float indices to int64); a saved tensor must have
    the dtype the model declares."""
    for name, wanted in planned.state_dict().items():
        if state[name].dtype != wanted.dtype:
            raise ArtifactError(
                f"{path}: tensor model.{name} is {state[name].dtype}, the model holds "
                f"{wanted.dtype}; {FIX}"
            )


def check_seen(
    indptr: torch.Tensor, indices: torch.Tensor, n_users: int, n_items: int, path: Path
) -> None:
    """Refuse seen-item CSR arrays that would index out of range or slice backwards.

    Args:
        indptr: Should be int64 ``[n_users + 1]``, from 0, non-decreasing, to ``len(indices)``.
        indices: Should be int64 ``[N]`` item indices in ``0..n_items-1``.
    """
    problem = csr_problem(indptr, indices, n_users, n_items, "items")
    if problem:
        raise ArtifactError(f"{path}: the seen-items arrays are malformed ({problem}); {FIX}")


def csr_problem(
    indptr: torch.Tensor, indices: torch.Tensor, n_rows: int, n_cols: int, cols: str
) -> str | None:
    """What is wrong with CSR arrays of ``n_rows`` rows over ``n_cols`` columns (``cols`` says
    what a column is, for the message), or None when they are well formed.

    Args:
        indptr: Should be int64 ``[n_rows + 1]``, from 0, non-decreasing, to ``len(indices)``.
        indices: Should be int64 ``[N]`` column indices in ``0..n_cols-1``.
    """
    if indptr.dtype != torch.int64 or indices.dtype != torch.int64:
        return f"they are {indptr.dtype} and {indices.dtype}, not int64"
    if indptr.shape != (n_rows + 1,) or indices.dim() != 1:
        return f"indptr has shape {list(indptr.shape)}, expected [{n_rows + 1}]"
    if int(indptr[0]) != 0 or int(indptr[-1]) != indices.numel():
        return (
            f"indptr runs from {int(indptr[0])} to {int(indptr[-1])}, expected 0 to "
            f"{indices.numel()}"
        )
    if bool((indptr[1:] < indptr[:-1]).any()):
        return "indptr decreases"
    if indices.numel() and (int(indices.min()) < 0 or int(indices.max()) >= n_cols):
        catalogue = "the catalogue" if cols == "items" else "the users"
        return f"{cols} point outside {catalogue} of {n_cols}"
    return None


ITEM_FIELDS = ("item_id", "title", "genres")


def check_items(records: Any, path: Path) -> pd.DataFrame:
    """The items frame of ``items.json`` (a list of flat records), checked first.

    Raises:
        ArtifactError: It is not a list of objects, a record lacks ``item_id``, ``title`` or
            ``genres``, an ID is not an integer or text, a title or genres not text (or null),
            or a value is nested (a list or object).
    """
    if not isinstance(records, list):
        raise ArtifactError(f"{path} holds a {type(records).__name__}, not a list; {FIX}")
    for row, record in enumerate(records):
        if not isinstance(record, dict):
            raise ArtifactError(f"{path}: record {row} is not an object; {FIX}")
        if missing := [f for f in ITEM_FIELDS if f not in record]:
            raise ArtifactError(f"{path}: record {row} has no {missing[0]!r}; {FIX}")
        item_id = record["item_id"]
        if not (_is_int(item_id) or isinstance(item_id, str)):
            raise ArtifactError(
                f"{path}: record {row} has item_id {item_id!r}, not an integer or text; {FIX}"
            )
        for name in ("title", "genres"):
            if record[name] is not None and not isinstance(record[name], str):
                raise ArtifactError(
                    f"{path}: record {row} has {name} {record[name]!r}, not text; {FIX}"
                )
        if nested := [k for k, v in record.items() if isinstance(v, list | dict)]:
            raise ArtifactError(f"{path}: record {row} nests a value under {nested[0]!r}; {FIX}")
    return pd.DataFrame.from_records(records, columns=None if records else list(ITEM_FIELDS))


VALIDATION_COLUMNS = ("user_id", "item_id", "rating", "prediction")


def check_validation(
    frame: pd.DataFrame, rating_scale: tuple[float, float], path: Path
) -> pd.DataFrame:
    """``frame`` (a run's ``validation.parquet``) if it holds what a blend fits on.

    Raises:
        ArtifactError: Its columns are not :data:`VALIDATION_COLUMNS`, it has no rows, or a
            rating or prediction is not a finite number inside ``rating_scale``.
    """
    if tuple(frame.columns) != VALIDATION_COLUMNS:
        raise ArtifactError(
            f"{path} has columns {list(frame.columns)}, expected {list(VALIDATION_COLUMNS)}; {FIX}"
        )
    if frame.empty:
        raise ArtifactError(f"{path} holds no rows; {FIX}")
    low, high = rating_scale
    for name in ("rating", "prediction"):
        values = frame[name]
        if not pd.api.types.is_float_dtype(values.dtype) and not pd.api.types.is_integer_dtype(
            values.dtype
        ):
            raise ArtifactError(f"{path}: {name} is {values.dtype}, not numbers; {FIX}")
        array = values.to_numpy(dtype="float64")
        inside = (array >= low - 1e-6) & (array <= high + 1e-6)  # NaN is never inside
        if not inside.all():
            row = int((~inside).argmax())
            raise ArtifactError(
                f"{path}: row {row} has {name} {float(array[row])}, outside the rating scale "
                f"[{low}, {high}]; {FIX}"
            )
    return frame
