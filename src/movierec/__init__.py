"""movierec: a deep-learning movie recommender (the EmbeddingNet) with honest baselines.

Public API::

    from movierec import Job, ModelSpec, fit_recommender, load_data, load_run, run_job
    from movierec import save_recommender

    data = load_data("ml-100k")                        # a catalogue name, a folder or a file
    recommender = fit_recommender(data, "mf", split="u1")
    recommender.top_n(196, k=10)                       # raw IDs in, titles and scores out

    recommender = fit_recommender(df, model="mf", n_factors=64, epochs=5)  # a DataFrame too
    save_recommender(recommender, "runs/mine")         # for `movierec serve runs/mine`

    job = Job(ModelSpec.resolve("embedding-net"), data="ml-100k", split="u1")
    run = run_job(job, out="runs/demo")              # trained, scored once on the test set, saved
    recommender, info = load_run("runs/demo")

The names are imported on first use, so ``import movierec`` stays cheap for the command line.
"""

from __future__ import annotations

import importlib
from typing import TYPE_CHECKING, Any

__version__ = "0.1.0"

# public name -> the module that defines it
_EXPORTS = {
    "load_data": "movierec.data",
    "RatingsData": "movierec.data",
    "fit_recommender": "movierec.pipeline",
    "Recommender": "movierec.recommend",
    "load_run": "movierec.artifacts",
    "run_job": "movierec.experiment",
    "save_recommender": "movierec.experiment",
    "MODELS": "movierec.models",
    "ModelSpec": "movierec.config",
    "Job": "movierec.config",
    "RunOptions": "movierec.config",
    "TrainConfig": "movierec.config",
}

__all__ = [
    "MODELS",
    "Job",
    "ModelSpec",
    "RatingsData",
    "Recommender",
    "RunOptions",
    "TrainConfig",
    "__version__",
    "fit_recommender",
    "load_data",
    "load_run",
    "run_job",
    "save_recommender",
]

if TYPE_CHECKING:
    from movierec.artifacts import load_run
    from movierec.config import Job, ModelSpec, RunOptions, TrainConfig
    from movierec.data import RatingsData, load_data
    from movierec.experiment import run_job, save_recommender
    from movierec.models import MODELS
    from movierec.pipeline import fit_recommender
    from movierec.recommend import Recommender


def __getattr__(name: str) -> Any:
    if name not in _EXPORTS:
        raise AttributeError(f"module 'movierec' has no attribute {name!r}")
    value = getattr(importlib.import_module(_EXPORTS[name]), name)
    globals()[name] = value  # later look-ups skip this function
    return value
