"""Run directories: everything needed to rebuild a recommender, saved as state, never pickled.

Layout of ``runs/<name>/``:

- ``weights.safetensors`` model tensors (``model.*``), the bias fallback (``fallback.*``) and the
  items each user rated in training (``seen.*``)
- ``run.json``          model name and config, training config, rating scale, sizes, provenance
- ``id_map.json``       raw user and item IDs in index order
- ``items.json``        item metadata (title, genres, year), when the dataset has it
- ``metrics.json``, ``history.csv``, ``learning_curve.png``  the run's results
- ``validation.parquet`` the validation carve-out's raw ``user_id``, ``item_id``, ``rating``
  and the ``prediction`` of the model that never learnt from it (the early-stopped one, before
  a refit), when the run had a carve-out and predicts ratings: what :mod:`movierec.blend`
  fits its weights on (:func:`read_validation`)
- ``manifest.json``     SHA-256 of every file above

A run is written into a temporary sibling folder and renamed into place, so a crash leaves either
the previous complete run or the new one, never a half-written mix. :func:`load_run` checks the
manifest, shapes and sizes before building anything, and refuses a run that does not add up.
Weights that are not finite numbers (a diverged model, which answers NaN) are refused both on
save and on load.
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
import json
import math
import os
import shutil
import tempfile
from collections.abc import Callable, Iterator, Mapping
from pathlib import Path
from typing import Any

import pandas as pd
import torch
from safetensors import SafetensorError
from safetensors.torch import load_file, save_file

from movierec import __version__
from movierec.data.encoder import IdEncoder
from movierec.data.tensors import SeenItems
from movierec.errors import ArtifactError, ConfigError
from movierec.models import build_model
from movierec.models.bias import Biases
from movierec.recommend import Recommender
from movierec.run_checks import (
    check_items,
    check_run_record,
    check_seen,
    check_state,
    check_validation,
)
from movierec.train.checkpoint import CHECKPOINT, write_failure

FORMAT_VERSION = 1
WEIGHTS = "weights.safetensors"
MANIFEST = "manifest.json"
VALIDATION = "validation.parquet"
REQUIRED = (WEIGHTS, "run.json", "id_map.json")


def sha256_of(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def write_json(path: Path, payload: Any) -> None:
    path.write_text(json.dumps(payload, indent=2, ensure_ascii=False) + "\n", encoding="utf-8")


def _jsonable(value: Any) -> Any:
    if dataclasses.is_dataclass(value) and not isinstance(value, type):
        return {k: _jsonable(v) for k, v in dataclasses.asdict(value).items()}
    if isinstance(value, tuple):
        return list(value)
    return value


def save_run(
    run_dir: Path,
    recommender: Recommender,
    *,
    model_config: Any,
    train_config: Any,
    info: Mapping[str, Any],
    metrics: Mapping[str, Any] | None = None,
    history: pd.DataFrame | None = None,
    extra_files: Callable[[Path], None] | None = None,
) -> Path:
    """Write a complete run directory atomically; returns its path.

    Args:
        run_dir: Target folder. An existing run there is replaced as a whole; any other
            non-empty folder is refused, so nothing of the user's is overwritten.
        recommender: The trained recommender to save.
        model_config: The model's config dataclass.
        train_config: The training config dataclass.
        info: Provenance (dataset, split, seed, ...), stored in ``run.json``.
        metrics: Test metrics for ``metrics.json``.
        history: Per-epoch history for ``history.csv``.
        extra_files: Called with the staging folder to add files (the learning curve) before the
            manifest is written.
    """

    def fill(staging: Path) -> None:
        _write_contents(staging, recommender, model_config, train_config, info, metrics, history)
        if extra_files is not None:
            extra_files(staging)

    return write_folder(Path(run_dir), fill, "the run")


def write_folder(folder: Path, fill: Callable[[Path], None], what: str) -> Path:
    """Write ``folder`` whole or not at all: ``fill`` writes its files into a temporary sibling,
    a manifest of their SHA-256 is added, and the sibling is renamed into place (a previous
    run or blend there is replaced; any other non-empty folder is refused).

    Args:
        folder: Target folder (a run directory, a blend's folder).
        fill: Writes the files into the folder it is given.
        what: What is written, for the error of a failed write ("the run").
    """
    if folder.exists() and not _replaceable(folder):
        raise ArtifactError(
            f"{folder} exists and is not a movierec run directory; choose another --out "
            f"or remove it yourself"
        )
    folder.parent.mkdir(parents=True, exist_ok=True)
    staging = Path(tempfile.mkdtemp(prefix=f".{folder.name}.tmp-", dir=folder.parent))
    try:
        with write_errors(folder, what):
            fill(staging)
            manifest = {
                "format": FORMAT_VERSION,
                "files": {
                    p.name: sha256_of(p) for p in sorted(staging.iterdir()) if p.name != MANIFEST
                },
            }
            write_json(staging / MANIFEST, manifest)
            _fsync_dir(staging)
            _swap_into_place(staging, folder)
    finally:
        shutil.rmtree(staging, ignore_errors=True)
    return folder


@contextlib.contextmanager
def write_errors(target: Path, what: str) -> Iterator[None]:
    """Turn a failed write (a full disk, a quota, a read-only folder) into one ArtifactError
    naming ``target``; the callers' ``finally`` blocks remove what was half written."""
    try:
        yield
    except (OSError, SafetensorError) as exc:
        raise write_failure(exc, target, what) from None


def check_out(run_dir: Path, overwrite: bool, flag: str = "--out", holds: str = "a run") -> Path:
    """``run_dir`` if a run may be written there, checked before any training starts.

    A missing or empty folder is free; an existing run (or an interrupted training's checkpoint)
    is replaced only with ``overwrite``, and then atomically by :func:`save_run`, so the old run
    stays loadable until the new one is complete; a folder that is not a run is never replaced.

    Raises:
        ArtifactError: ``run_dir`` holds a run and ``overwrite`` is False, or holds other files.
    """
    run_dir = Path(run_dir)
    if not run_dir.exists() or (run_dir.is_dir() and not any(run_dir.iterdir())):
        return run_dir
    if not _replaceable(run_dir):
        raise ArtifactError(
            f"{flag} {run_dir} exists and is not a movierec run directory; choose another "
            f"{flag} or remove it yourself"
        )
    if overwrite:
        return run_dir
    if (run_dir / MANIFEST).exists():
        raise ArtifactError(
            f"{flag} {run_dir} already holds {holds}; add --overwrite to replace it (the old "
            f"one stays whole until the new one is complete) or choose another {flag}"
        )
    raise ArtifactError(
        f"{flag} {run_dir} holds an interrupted training's checkpoint; continue it with "
        f"`movierec train --resume {run_dir}`, or add --overwrite to start again"
    )


def check_out_file(path: Path, overwrite: bool, flag: str = "--out") -> Path:
    """``path`` unless it exists and ``overwrite`` is False (then a one-line ConfigError): the
    files movierec writes (tables, configs, synthetic data) never replace one silently."""
    path = Path(path)
    if path.exists() and not overwrite:
        raise ConfigError(
            f"{flag} {path} already exists; add --overwrite to replace it (the old one is kept "
            f"until the new one is complete) or choose another {flag}"
        )
    return path


def _replaceable(run_dir: Path) -> bool:
    """A previous run, a training checkpoint in progress, or an empty folder may be replaced."""
    if not run_dir.is_dir():
        return False
    if (run_dir / MANIFEST).exists():
        return True
    return all(
        p.name == CHECKPOINT or p.name.startswith(f".{CHECKPOINT}.") for p in run_dir.iterdir()
    )


def _write_contents(
    folder: Path,
    recommender: Recommender,
    model_config: Any,
    train_config: Any,
    info: Mapping[str, Any],
    metrics: Mapping[str, Any] | None,
    history: pd.DataFrame | None,
) -> None:
    model = recommender.model
    tensors = {f"model.{k}": v.detach().cpu().contiguous() for k, v in model.state_dict().items()}
    tensors["fallback.user_bias"] = recommender.fallback.user_bias.contiguous()
    tensors["fallback.item_bias"] = recommender.fallback.item_bias.contiguous()
    tensors["seen.indptr"] = recommender.seen.indptr.contiguous()
    tensors["seen.indices"] = recommender.seen.indices.contiguous()
    broken = _not_finite(tensors)
    if broken or not math.isfinite(recommender.fallback.global_mean):
        raise ArtifactError(
            f"refusing to save {folder.name.split('.tmp-')[0].lstrip('.')}: the model's weights "
            f"({', '.join(broken[:3]) or 'fallback_global_mean'}) are not finite numbers, so it "
            "would answer NaN; training diverged: try a smaller lr in [train]"
        )
    save_file(tensors, folder / WEIGHTS, metadata={"format": f"movierec-run-{FORMAT_VERSION}"})
    run = {
        "format": FORMAT_VERSION,
        "movierec_version": __version__,
        "model": model.name,
        "model_config": _jsonable(model_config),
        "train_config": _jsonable(train_config),
        "rating_scale": list(model.rating_scale),
        "n_users": model.n_users,
        "n_items": model.n_items,
        "fallback_global_mean": recommender.fallback.global_mean,
        **{k: _jsonable(v) for k, v in info.items()},
    }
    write_json(folder / "run.json", run)
    write_json(folder / "id_map.json", recommender.encoder.to_json())
    if recommender.items is not None:
        # pandas writes <NA> as null and keeps ints as ints.
        records = json.loads(recommender.items.to_json(orient="records", force_ascii=False))
        write_json(folder / "items.json", records)
    if metrics is not None:
        write_json(folder / "metrics.json", dict(metrics))
    if history is not None:
        history.to_csv(folder / "history.csv", index=False)
    if recommender.validation is not None:
        recommender.validation.to_parquet(folder / VALIDATION, index=False)


def _not_finite(tensors: Mapping[str, Any]) -> list[str]:
    """The names of the floating-point tensors holding a NaN or an infinity."""
    return [
        name
        for name, tensor in tensors.items()
        if tensor.is_floating_point() and not bool(tensor.isfinite().all())
    ]


def _fsync_dir(folder: Path) -> None:
    for path in folder.iterdir():
        with open(path, "rb") as handle:
            os.fsync(handle.fileno())


def _swap_into_place(staging: Path, run_dir: Path) -> None:
    """Replace ``run_dir`` by ``staging`` with renames only (the old run is kept until then)."""
    if not run_dir.exists():
        os.replace(staging, run_dir)
        return
    retired = Path(tempfile.mkdtemp(prefix=f".{run_dir.name}.old-", dir=run_dir.parent))
    os.rmdir(retired)
    os.replace(run_dir, retired)
    try:
        os.replace(staging, run_dir)
    except OSError:
        os.replace(retired, run_dir)  # put the previous run back
        raise
    shutil.rmtree(retired, ignore_errors=True)


def read_json(path: Path) -> Any:
    try:
        return json.loads(path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ArtifactError(f"{path} cannot be read as JSON ({exc}); the run is corrupt") from None


def verify_manifest(run_dir: Path, required: tuple[str, ...] = REQUIRED) -> dict[str, str]:
    """Check every file listed in the manifest against its SHA-256; return the listing.

    A symbolic link among them is refused: a run is a folder of its own files, and a link
    would serve whatever it points at (outside the run) under the run's name.
    """
    _refuse_link(run_dir / MANIFEST)
    manifest = read_json(run_dir / MANIFEST)
    files = manifest.get("files") if isinstance(manifest, dict) else None
    if not isinstance(files, dict):
        raise ArtifactError(f"{run_dir / MANIFEST} has no file list; the run is corrupt")
    for name in required:
        if name not in files:
            raise ArtifactError(f"{run_dir}: the manifest does not list {name}; the run is corrupt")
    for name, expected in files.items():
        path = run_dir / name
        if Path(name).name != name:
            raise ArtifactError(f"{run_dir}: the manifest names a path outside the run ({name!r})")
        _refuse_link(path)
        if not path.is_file():
            raise ArtifactError(f"{run_dir}: {name} is missing; retrain or restore the run")
        if sha256_of(path) != expected:
            raise ArtifactError(
                f"{path} does not match its SHA-256 in the manifest: the file was changed or "
                f"truncated after the run was saved; retrain or restore the run"
            )
    return files


def _refuse_link(path: Path) -> None:
    if path.is_symlink():
        raise ArtifactError(
            f"{path} is a symbolic link (to {os.readlink(path)}); a run directory holds its "
            f"own files only: copy the file in place of the link, or retrain the run"
        )


def load_run(run_dir: Path) -> tuple[Recommender, dict[str, Any]]:
    """Rebuild the recommender saved in ``run_dir`` and return it with its ``run.json``.

    Every file is checked against the manifest, and every value the loader reads against
    :mod:`movierec.run_checks` (types, ranges, the tensors' shapes against the model planned
    on the ``meta`` device) before the model is allocated.

    Raises:
        ArtifactError: Any of those checks fails; one line naming the file and the value.
    """
    run_dir = Path(run_dir)
    if not (run_dir / MANIFEST).is_file():
        raise ArtifactError(
            f"{run_dir} is not a movierec run directory (no {MANIFEST}); "
            f"train one with `movierec train --out {run_dir}`"
        )
    files = verify_manifest(run_dir)
    run = read_json(run_dir / "run.json")
    if isinstance(run, dict) and run.get("format") != FORMAT_VERSION:
        raise ArtifactError(
            f"{run_dir} was written in run format {run.get('format')!r}; this movierec reads "
            f"format {FORMAT_VERSION}"
        )
    run = check_run_record(run, run_dir / "run.json")
    encoder = IdEncoder.from_json(read_json(run_dir / "id_map.json"))
    n_users, n_items = run["n_users"], run["n_items"]
    if (encoder.n_users, encoder.n_items) != (n_users, n_items):
        raise ArtifactError(
            f"{run_dir}: the ID map has {encoder.n_users} users and {encoder.n_items} items but "
            f"the model was built for {n_users} and {n_items}; the run is inconsistent"
        )
    tensors = _read_weights(run_dir / WEIGHTS, n_users, n_items)
    state = {k.removeprefix("model."): v for k, v in tensors.items() if k.startswith("model.")}
    check_state(run, state, run_dir / WEIGHTS)  # before the model takes any memory
    model = build_model(
        run["model"], n_users, n_items, tuple(run["rating_scale"]), run["model_config"]
    )
    model.load_state_dict(state, strict=True)
    fallback = Biases(
        float(run["fallback_global_mean"]),
        tensors["fallback.user_bias"],
        tensors["fallback.item_bias"],
    )
    seen = SeenItems(tensors["seen.indptr"], tensors["seen.indices"], n_items)
    items = None
    if "items.json" in files:
        items = check_items(read_json(run_dir / "items.json"), run_dir / "items.json")
    model.eval()
    info = {k: run.get(k) for k in ("model", "dataset", "split", "seed", "objective") if k in run}
    objective = run.get("objective") or "rating"
    return Recommender(model, encoder, fallback, seen, items, objective=objective, info=info), run


def read_validation(run_dir: Path, run: Mapping[str, Any]) -> pd.DataFrame | None:
    """The validation predictions of the run in ``run_dir`` (``run``: its ``run.json``), checked
    against the manifest and :func:`movierec.run_checks.check_validation`; None when the run
    has none (no carve-out, a ranking run, a resumed refit, or saved before they were kept).

    Raises:
        ArtifactError: The file does not match the manifest, cannot be read, or does not hold
            what it must.
    """
    run_dir = Path(run_dir)
    if VALIDATION not in verify_manifest(run_dir):
        return None
    path = run_dir / VALIDATION
    try:
        frame = pd.read_parquet(path)
    except (OSError, ValueError) as exc:
        raise ArtifactError(f"{path} cannot be read ({exc}); the run is corrupt") from None
    return check_validation(frame, tuple(run["rating_scale"]), path)


def _read_weights(path: Path, n_users: int, n_items: int) -> dict[str, torch.Tensor]:
    """The tensors of ``weights.safetensors``, refused unless the fallback and seen-items
    tensors are all there, well formed and finite (the model's are checked against it)."""
    try:
        tensors = load_file(path)
    except (SafetensorError, OSError, ValueError) as exc:
        raise ArtifactError(f"{path} cannot be read ({exc})") from None
    if missing := [name for name in _RUN_TENSORS if name not in tensors]:
        raise ArtifactError(f"{path} lacks tensor {missing[0]!r}; the run is corrupt")
    broken = _not_finite(tensors)
    if broken:
        raise ArtifactError(
            f"{path} holds weights that are not finite numbers ({', '.join(broken[:3])}): the "
            "model would answer NaN; retrain it (with a smaller lr if training diverged)"
        )
    for name, size in (("fallback.user_bias", n_users), ("fallback.item_bias", n_items)):
        tensor = tensors[name]
        if tensor.shape != (size,) or not tensor.is_floating_point():
            raise ArtifactError(
                f"{path}: {name} is {tensor.dtype} {list(tensor.shape)}, expected a float "
                f"vector of {size}; the run is inconsistent"
            )
    check_seen(tensors["seen.indptr"], tensors["seen.indices"], n_users, n_items, path)
    return tensors


_RUN_TENSORS = ("fallback.user_bias", "fallback.item_bias", "seen.indptr", "seen.indices")


@contextlib.contextmanager
def atomic_write(path: Path, mode: str = "w", **kwargs: Any):
    """Write ``path`` through a temporary sibling and rename it into place on success."""
    path = Path(path)
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    os.close(fd)
    try:
        with open(tmp, mode, **kwargs) as handle:
            yield handle
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.unlink(tmp)
