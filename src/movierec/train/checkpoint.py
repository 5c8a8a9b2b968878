"""Training checkpoints: everything needed to continue a run exactly where it stopped.

A checkpoint is one safetensors file: tensors (model, best-so-far model, optimiser moments, RNG
states) plus a JSON document in its metadata (epoch and position within it, history, early
stopping state, scheduler state, and what was being trained). One file renamed into place after
an fsync means a crash at any instant leaves either the previous checkpoint or the new one.
Nothing is pickled.
"""

from __future__ import annotations

import json
import os
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        save_file(tensors, tmp, metadata={"format": FORMAT, "state": json.dumps(meta)})
        with open(tmp, "rb") as handle:
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)


def load_checkpoint(path: Path) -> TrainingState:
    """Read a checkpoint written by :func:`save_checkpoint`, refusing anything else."""
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
        meta = json.loads(metadata["state"])
    except (SafetensorError, OSError, RuntimeError, ValueError, KeyError) as exc:
        raise ArtifactError(f"checkpoint {path} cannot be read ({exc}); it is corrupt") from None
    model = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    best = {k.removeprefix("best."): v for k, v in tensors.items() if k.startswith("best.")}
    rating_best = {
        k.removeprefix("rating_best."): v
        for k, v in tensors.items()
        if k.startswith("rating_best.")
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
    )
