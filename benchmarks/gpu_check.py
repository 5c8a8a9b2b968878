"""GPU check, for sessions lent a CUDA machine (never a CI requirement).

    bash benchmarks/gpu.sh            # writes benchmarks/results/gpu.json (or $OUT/gpu.json)

1. ml-100k u1: EmbeddingNet and MF trained with ``--device cuda`` (data resident on the GPU),
   saved, reloaded on the CPU, RMSE compared with the CPU figures in README.
2. Throughput: 25M synthetic ratings (ml-25m's shape) for the article config and the wide
   config, two epochs each (the second is the timed one), ratings/s of optimiser steps, in three
   variants: ``fp32`` at batch 8192 (the first GPU measurement), ``fast`` (bf16 autocast and
   fused Adam, batch 8192) and ``fast+row-wise+big-batch`` (also the row-wise embedding
   optimiser, batch 65536: fewer steps, and no dense Adam pass over 33M embedding weights per
   step).
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
import time
from pathlib import Path

import torch

from movierec.artifacts import load_run
from movierec.config import RunOptions, TrainConfig
from movierec.data.encoder import IdEncoder
from movierec.data.synthetic import synthetic_ratings
from movierec.data.tensors import RatingTensors
from movierec.experiment import compare_models
from movierec.models import build_model
from movierec.train import fit

# (name, run options, train options) over fp32 defaults.
VARIANTS = [
    ("fp32", {}, {"batch_size": 8192}),
    ("fast", {"precision": "auto", "fused_adam": True}, {"batch_size": 8192}),
    (
        "fast+row-wise+big-batch",
        {"precision": "auto", "fused_adam": True},
        {"batch_size": 65536, "embedding_optimizer": "row-wise"},
    ),
]

CONFIGS = {
    "article": {"n_factors": 150, "hidden": [100, 200, 300], "dropouts": [0.25, 0.5]},
    "wide": {"n_factors": 150, "hidden": [500, 500, 500], "dropouts": [0.5, 0.5, 0.25]},
}


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.json"))
    parser.add_argument("--runs", type=Path, default=Path("/tmp/gpu-runs"))
    parser.add_argument("--device", default="cuda", help="cpu only for a dry run of the script")
    args = parser.parse_args()
    result: dict = {
        "device": torch.cuda.get_device_name(0) if args.device != "cpu" else "cpu",
        "torch": torch.__version__,
        "command": " ".join(sys.argv),
    }
    options = RunOptions(seed=0, device=args.device, progress=False)
    runs = compare_models("ml-100k", ["embedding-net", "mf"], split="u1", out=args.runs,
                          options=options)  # fmt: skip
    result["ml100k_u1"] = []
    for run in runs:
        reloaded, _ = load_run(args.runs / run.spec.name)  # on the CPU
        split_test = run.metrics
        result["ml100k_u1"].append(
            {
                "model": run.spec.name,
                "rmse": split_test["rmse"],
                "ndcg@10": split_test["ndcg@10"],
                "epochs": split_test["epochs"],
                "train_seconds": split_test["train_seconds"],
                "ratings_per_second": split_test["ratings_per_second"],
                "reloaded_on": str(next(reloaded.model.parameters()).device),
            }
        )
        print(json.dumps(result["ml100k_u1"][-1]), flush=True)

    started = time.perf_counter()
    frame = synthetic_ratings(162_541, 59_047, args.ratings, seed=0, step=0.5,
                              rating_scale=(0.5, 5.0))  # fmt: skip
    encoder = IdEncoder.fit(frame)
    tensors = RatingTensors.from_frame(frame, encoder)
    result["synthetic"] = {
        "ratings": len(tensors),
        "generate_seconds": time.perf_counter() - started,
    }
    del frame
    for name, config in CONFIGS.items():
        for variant, run_extra, train_extra in VARIANTS:
            torch.manual_seed(0)
            model = build_model(
                "embedding-net", encoder.n_users, encoder.n_items, (0.5, 5.0), config
            )
            train = TrainConfig(epochs=2, patience=0, **train_extra)
            fitted = fit(model, tensors, None, train, dataclasses.replace(options, **run_extra))
            epoch_seconds = [r.seconds for r in fitted.history]
            key = name if variant == "fp32" else f"{name} {variant}"
            result["synthetic"][key] = {
                "variant": variant,
                "batch_size": train.batch_size,
                "epoch_seconds": epoch_seconds,
                "ratings_per_second_second_epoch": len(tensors) / epoch_seconds[-1],
                "train_loss": [r.train_loss for r in fitted.history],
            }
            print(key, json.dumps(result["synthetic"][key]), flush=True)
            del model, fitted
            if torch.cuda.is_available():
                torch.cuda.empty_cache()
    out = Path(os.environ.get("OUT", "")) / "gpu.json" if os.environ.get("OUT") else args.out
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result, indent=2))


if __name__ == "__main__":
    main()
