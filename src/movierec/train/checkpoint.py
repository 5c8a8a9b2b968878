"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one safetensors file: tensors (model, best-so-far model, optimiser moments, RNG
states) plus a JSON document in its metadata (epoch and position within it, history, early
stopping state, scheduler state, and what was being trained). One file renamed into place after
an fsync means a crash at any instant leaves either the previous checkpoint or the new one.
Nothing is pickled.

The metadata also holds a SHA-256 over every tensor (name, dtype, shape, bytes) and the JSON
document (:func:`state_digest`), checked before anything is resumed: a flipped bit anywhere, an
edited epoch or a renamed key is refused in one line, never resumed from silently. The JSON is
then checked field by field (:func:`check_meta`), so even a re-signed file cannot reach the loop
with a missing key or an epoch that does not follow its history.
"""

from __future__ import annotations

import errno
import hashlib
import json
import math
import numbers
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from safetensors import SafetensorError, safe_open
from safetensors.torch import save_file

from movierec.errors import ArtifactError

CHECKPOINT = "checkpoint.safetensors"
FORMAT = "movierec-checkpoint-1"


@dataclass
class TrainingState:
    """The mutable state of the training loop at a step boundary.

    Attributes:
        epoch: The epoch in progress (1-based); ``position`` ratings of it are done.
        position: Ratings of the current epoch's permutation already stepped through.
        epoch_generator: State of the shuffling generator at the start of this epoch, so the
            same permutation is drawn again on resume.
        loss_sum: Sum of training loss x batch size so far in this epoch.
        model: Model state dict.
        optimizer: Optimiser state dict.
        scheduler: Scheduler state dict (JSON-able values only).
        torch_rng: The global CPU RNG state (dropout draws).
        cuda_rng: CUDA RNG states, one per device, when CUDA is in use.
        sampler_rng: State of the negative sampler's generator (ranking objectives).
        history: Completed epochs' records as dicts.
        best_metric: Best validation value so far (lower is better).
        best_epoch: Epoch of ``best_metric``.
        best_model: Model state dict at the best epoch, or None.
        stale: Epochs since the last improvement.
        rating_best_metric: With a ranking tower, the rating half's best validation RMSE
            (``rating_best_epoch``, ``rating_best_model`` and ``rating_stale`` as above).
        ratings_seen: Ratings stepped through over the whole run.
        train_seconds: Seconds of optimiser steps over the whole run.
        context: What is being trained (data, split, model, configs, seed) so ``--resume`` can
            rebuild the same job.
        average: With ``ema_decay``, the weight average's state
            (:meth:`movierec.train.averaging.WeightAverage.state_dict`), else None.
    """

    epoch: int
    position: int
    epoch_generator: torch.Tensor
    loss_sum: float
    model: dict[str, torch.Tensor]
    optimizer: dict[str, Any]
    scheduler: dict[str, Any]
    torch_rng: torch.Tensor
    cuda_rng: list[torch.Tensor] = field(default_factory=list)
    sampler_rng: torch.Tensor | None = None
    history: list[dict[str, Any]] = field(default_factory=list)
    best_metric: float | None = None
    best_epoch: int | None = None
    best_model: dict[str, torch.Tensor] | None = None
    stale: int = 0
    rating_best_metric: float | None = None
    rating_best_epoch: int | None = None
    rating_best_model: dict[str, torch.Tensor] | None = None
    rating_stale: int = 0
    ratings_seen: int = 0
    train_seconds: float = 0.0
    context: dict[str, Any] = field(default_factory=dict)
    average: dict[str, torch.Tensor] | None = None


def _flatten_optimizer(state: dict[str, Any]) -> tuple[dict[str, torch.Tensor], dict[str, Any]]:
    """Split an optimiser state dict into tensors and a JSON part."""
    tensors: dict[str, torch.Tensor] = {}
    scalars: dict[str, dict[str, Any]] = {}
    for param_id, values in state["state"].items():
        for name, value in values.items():
            if torch.is_tensor(value):
                tensors[f"optimizer.{param_id}.{name}"] = value.detach().cpu().contiguous()
            else:
                scalars.setdefault(str(param_id), {})[name] = value
    return tensors, {"param_groups": state["param_groups"], "scalars": scalars}


def _unflatten_optimizer(tensors: dict[str, torch.Tensor], meta: dict[str, Any]) -> dict[str, Any]:
    state: dict[int, dict[str, Any]] = {}
    for key, value in tensors.items():
        if key.startswith("optimizer."):
            _, param_id, name = key.split(".", 2)
            state.setdefault(int(param_id), {})[name] = value
    for param_id, values in meta["scalars"].items():
        state.setdefault(int(param_id), {}).update(values)
    return {"state": state, "param_groups": meta["param_groups"]}


def state_digest(tensors: dict[str, torch.Tensor], state_json: str) -> str:
    """SHA-256 over every tensor's name, dtype, shape and bytes (in name order), then the JSON
    state: what :func:`save_checkpoint` stores and :func:`load_checkpoint` recomputes."""
    digest = hashlib.sha256()
    for name in sorted(tensors):
        tensor = tensors[name].detach().cpu().contiguous()
        digest.update(f"{name}|{tensor.dtype}|{list(tensor.shape)}\n".encode())
        # Bytes as stored, whatever the dtype (bfloat16 has no numpy twin).
        digest.update(np.ascontiguousarray(tensor.reshape(-1).view(torch.uint8).numpy()).data)
    digest.update(state_json.encode())
    return digest.hexdigest()


def write_failure(exc: OSError | SafetensorError, target: Path, what: str) -> ArtifactError:
    """One line for a write that failed (a full disk, a quota, a read-only folder).

    safetensors reports the operating system's error as a SafetensorError holding its text,
    so both kinds are described the same way.
    """
    reason = exc.strerror if isinstance(exc, OSError) and exc.strerror else str(exc)
    reason = reason.strip().splitlines()[0] if reason.strip() else type(exc).__name__
    full = getattr(exc, "errno", None) == errno.ENOSPC or "No space left" in str(exc)
    hint = "free some disk space" if full else "check the folder's permissions and free space"
    return ArtifactError(
        f"could not write {what} to {target}: {reason}; nothing was left half written: {hint} "
        "and run again"
    )


def save_checkpoint(path: Path, state: TrainingState) -> None:
    """Write ``state`` atomically to ``path`` (temporary file, fsync, rename)."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in state.model.items()}
    if state.best_model is not None:
        tensors.update(
            {f"best.{k}": v.detach().cpu().contiguous() for k, v in state.best_model.items()}
        )
    if state.rating_best_model is not None:
        tensors.update(
            {
                f"rating_best.{k}": v.detach().cpu().contiguous()
                for k, v in state.rating_best_model.items()
            }
        )
    if state.average is not None:
        tensors.update(
            {f"average.{k}": v.detach().cpu().contiguous() for k, v in state.average.items()}
        )
    optimizer_tensors, optimizer_meta = _flatten_optimizer(state.optimizer)
    tensors.update(optimizer_tensors)
    tensors["rng.epoch_generator"] = state.epoch_generator.contiguous()
    tensors["rng.torch"] = state.torch_rng.contiguous()
    if state.sampler_rng is not None:
        tensors["rng.sampler"] = state.sampler_rng.cpu().contiguous()
    for index, rng in enumerate(state.cuda_rng):
        tensors[f"rng.cuda.{index}"] = rng.cpu().contiguous()
    meta = {
        "epoch": state.epoch,
        "position": state.position,
        "loss_sum": state.loss_sum,
        "optimizer": optimizer_meta,
        "scheduler": {k: v for k, v in state.scheduler.items() if k != "lr_lambdas"},
        "history": state.history,
        "best_metric": state.best_metric,
        "best_epoch": state.best_epoch,
        "has_best": state.best_model is not None,
        "stale": state.stale,
        "rating_best_metric": state.rating_best_metric,
        "rating_best_epoch": state.rating_best_epoch,
        "rating_stale": state.rating_stale,
        "ratings_seen": state.ratings_seen,
        "train_seconds": state.train_seconds,
        "context": state.context,
        "n_cuda_rng": len(state.cuda_rng),
    }
    state_json = json.dumps(meta)
    metadata = {"format": FORMAT, "state": state_json, "sha256": state_digest(tensors, state_json)}
    tmp = None
    try:
        fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
        os.close(fd)
        save_file(tensors, tmp, metadata=metadata)
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    except (OSError, SafetensorError) as exc:
        raise write_failure(exc, path, "the checkpoint") from None
    finally:
        if tmp is not None and os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path) -> TrainingState:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing anything else.

    Raises:
        ArtifactError: The file is missing, unreadable, not a movierec checkpoint, fails its
            SHA-256 (any bit of it changed), or its state does not add up (:func:`check_meta`).
    """
    path = Path(path)
    if not path.is_file():
        raise ArtifactError(f"no checkpoint at {path}; nothing to resume")
    try:
        # One open for tensors and metadata: both come from the same version of the file.
        with safe_open(path, framework="pt") as handle:
            metadata = handle.metadata() or {}
            if metadata.get("format") != FORMAT:
                raise ArtifactError(
                    f"{path} is not a movierec checkpoint ({metadata.get('format')})"
                )
            tensors = {key: handle.get_tensor(key) for key in handle.keys()}  # noqa: SIM118
    except (SafetensorError, OSError, RuntimeError, ValueError) as exc:
        raise ArtifactError(f"checkpoint {path} cannot be read ({exc}); it is corrupt") from None
    state_json, expected = metadata.get("state"), metadata.get("sha256")
    if state_json is None or expected is None:
        raise ArtifactError(
            f"checkpoint {path} has no {'state' if state_json is None else 'checksum'} (written "
            f"by an older movierec, or cut); start the run again with --overwrite"
        )
    if state_digest(tensors, state_json) != expected:
        raise ArtifactError(
            f"checkpoint {path} does not match its SHA-256: the file changed after it was "
            f"written (a disk error or an edit); resuming from it would train on corrupt state. "
            f"Start the run again with --overwrite"
        )
    try:
        meta = json.loads(state_json)
    except ValueError as exc:
        raise ArtifactError(f"checkpoint {path}: its state is not JSON ({exc})") from None
    check_meta(meta, tensors, path)
    return _state(meta, tensors)


def _state(meta: dict[str, Any], tensors: dict[str, torch.Tensor]) -> TrainingState:
    model = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    best = {k.removeprefix("best."): v for k, v in tensors.items() if k.startswith("best.")}
    rating_best = {
        k.removeprefix("rating_best."): v
        for k, v in tensors.items()
        if k.startswith("rating_best.")
    }
    average = {
        k.removeprefix("average."): v for k, v in tensors.items() if k.startswith("average.")
    }
    return TrainingState(
        epoch=meta["epoch"],
        position=meta["position"],
        epoch_generator=tensors["rng.epoch_generator"],
        loss_sum=meta["loss_sum"],
        model=model,
        optimizer=_unflatten_optimizer(tensors, meta["optimizer"]),
        scheduler=meta["scheduler"],
        torch_rng=tensors["rng.torch"],
        cuda_rng=[tensors[f"rng.cuda.{i}"] for i in range(meta["n_cuda_rng"])],
        sampler_rng=tensors.get("rng.sampler"),
        history=meta["history"],
        best_metric=meta["best_metric"],
        best_epoch=meta["best_epoch"],
        best_model=best if meta["has_best"] else None,
        stale=meta["stale"],
        rating_best_metric=meta.get("rating_best_metric"),
        rating_best_epoch=meta.get("rating_best_epoch"),
        rating_best_model=rating_best or None,
        rating_stale=meta.get("rating_stale", 0),
        ratings_seen=meta["ratings_seen"],
        train_seconds=meta["train_seconds"],
        context=meta["context"],
        average=average or None,
    )


def _int(low: int) -> Any:
    return lambda v: isinstance(v, numbers.Integral) and not isinstance(v, bool) and v >= low


def _number(v: Any) -> bool:
    return isinstance(v, numbers.Real) and not isinstance(v, bool) and math.isfinite(v)


def _optional(check: Any) -> Any:
    return lambda v: v is None or check(v)


def _optimizer(v: Any) -> bool:
    return (
        isinstance(v, dict)
        and isinstance(v.get("param_groups"), list)
        and isinstance(v.get("scalars"), dict)
        and all(str(k).isdigit() and isinstance(x, dict) for k, x in v["scalars"].items())
    )


# Key -> (required, check, what it must be): everything _state and the loop read.
META_FIELDS: dict[str, tuple[bool, Any, str]] = {
    "epoch": (True, _int(1), "a whole number >= 1"),
    "position": (True, _int(0), "a whole number >= 0"),
    "loss_sum": (True, _number, "a finite number"),
    "optimizer": (True, _optimizer, "an object with param_groups and scalars"),
    "scheduler": (True, lambda v: isinstance(v, dict), "an object"),
    "history": (True, lambda v: isinstance(v, list), "a list of epoch records"),
    "best_metric": (True, _optional(_number), "a finite number or null"),
    "best_epoch": (True, _optional(_int(1)), "an epoch or null"),
    "has_best": (True, lambda v: isinstance(v, bool), "true or false"),
    "stale": (True, _int(0), "a whole number >= 0"),
    "ratings_seen": (True, _int(0), "a whole number >= 0"),
    "train_seconds": (True, lambda v: _number(v) and v >= 0, "a number >= 0"),
    "context": (True, lambda v: isinstance(v, dict), "an object"),
    "n_cuda_rng": (True, _int(0), "a whole number >= 0"),
    "rating_best_metric": (False, _optional(_number), "a finite number or null"),
    "rating_best_epoch": (False, _optional(_int(1)), "an epoch or null"),
    "rating_stale": (False, _int(0), "a whole number >= 0"),
}


def check_meta(meta: Any, tensors: dict[str, torch.Tensor], path: Path) -> None:
    """Refuse a checkpoint state the loop could not resume from exactly.

    Every field the loop reads has its type and range (:data:`META_FIELDS`); the history is
    epochs ``1..n`` in order and the epoch in progress is ``n + 1``; the best epochs are among
    them; the RNG and optimiser tensors are there and well named.
    """
    fix = "it is corrupt; start the run again with --overwrite"
    if not isinstance(meta, dict):
        raise ArtifactError(f"checkpoint {path}: its state is not an object; {fix}")
    for name, (required, good, wanted) in META_FIELDS.items():
        if name not in meta:
            if required:
                raise ArtifactError(f"checkpoint {path} has no {name!r} in its state; {fix}")
        elif not good(meta[name]):
            raise ArtifactError(f"checkpoint {path}: {name} must be {wanted}, got {meta[name]!r}")
    epochs = [row.get("epoch") if isinstance(row, dict) else None for row in meta["history"]]
    if epochs != list(range(1, len(epochs) + 1)) or meta["epoch"] != len(epochs) + 1:
        raise ArtifactError(
            f"checkpoint {path}: epoch {meta['epoch']} does not follow its history of epochs "
            f"{epochs[:10]}; {fix}"
        )
    for name in ("best_epoch", "rating_best_epoch"):
        if (meta.get(name) or 0) > len(epochs):
            raise ArtifactError(f"checkpoint {path}: {name} {meta[name]} was never trained; {fix}")
    needed = ["rng.epoch_generator", "rng.torch"]
    needed += [f"rng.cuda.{i}" for i in range(meta["n_cuda_rng"])]
    if missing := [name for name in needed if name not in tensors]:
        raise ArtifactError(f"checkpoint {path} lacks tensor {missing[0]!r}; {fix}")
    for name in tensors:
        if name.startswith("optimizer.") and _id(name) is None:
            raise ArtifactError(f"checkpoint {path}: tensor {name!r} names no parameter; {fix}")


def check_position(state: TrainingState, n_train: int, path: Path | None = None) -> None:
    """Refuse to resume mid-epoch at a position the training ratings do not reach.

    A checkpoint is saved mid-epoch only before the epoch's last step, so its ``position`` is 0
    or below the number of training ratings. One beyond it was written for other data (the
    ratings file changed since) or edited: the epoch would end at once with a loss averaged
    over ratings it never stepped through.

    Args:
        state: The checkpoint's state (:func:`load_checkpoint`).
        n_train: Training ratings the resumed run steps through per epoch.
        path: The checkpoint's file, for the message.
    """
    if state.position and state.position >= n_train:
        where = f"checkpoint {path}" if path is not None else "the checkpoint"
        raise ArtifactError(
            f"{where} stopped {state.position:,} ratings into epoch {state.epoch}, but this run "
            f"trains on {n_train:,}: it was written for other data (or edited); resume with "
            "the data it was trained on, or start the run again with --overwrite"
        )


def _id(name: str) -> int | None:
    """The parameter number in ``optimizer.<n>.<moment>``, or None."""
    parts = name.split(".", 2)
    return int(parts[1]) if len(parts) == 3 and parts[1].isdigit() else None
