"""Where one training step of the EmbeddingNet spends its time, by kind of work (issue 16, item 2).

    python benchmarks/profile_step.py --out benchmarks/results/profile_step.json
    python benchmarks/profile_step.py --config wide --precision fp32 --out /tmp/profile.json

Trains the bench's network (ml-100k's u1.base shape: 80,000 ratings, 943 users, 1,682 items,
random ratings: the step's cost does not depend on their values) with movierec's own
:class:`~movierec.train.Trainer` and fit-time dropout, as ``movierec train`` does, for one warm-up
epoch and then ``--epochs`` epochs under ``torch.profiler``. Every operator's self CPU time is
put in one bucket (matrix products, dropout masks, casts and copies, ReLU, the optimiser,
embeddings, the rest) and the buckets are printed as shares of the step, with the ISA, so the
two CPU kinds this project runs on (AVX2-only, avx512_bf16/AMX) can be compared op by op. The
profiler's own overhead inflates the small operators; compare shares, not seconds, with
``benchmarks/bench.py``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from collections import defaultdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch
from torch.profiler import ProfilerActivity, profile

from movierec.config import RunOptions, TrainConfig
from movierec.data.tensors import RatingTensors
from movierec.models import build_model
from movierec.train import cheap_dropout, configure_threads
from movierec.train.trainer import Trainer

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import BATCH, CONFIGS, isa  # one definition of the shapes and the ISA probe
from bench_serve import cpu_model

N_USERS, N_ITEMS, N_RATINGS = 943, 1682, 80_000
# Operator name -> bucket; the first bucket whose words appear in the name wins.
BUCKETS: list[tuple[str, tuple[str, ...]]] = [
    ("matrix products", ("aten::mm", "aten::addmm", "aten::bmm", "aten::linear")),
    ("dropout masks", ("random_", "bitwise", "bernoulli", "aten::sub_", "logical_and", "aten::ge")),
    ("ReLU", ("relu", "clamp_min", "threshold_backward")),
    ("optimiser", ("adam", "Optimizer", "zero_grad", "_foreach")),
    ("embeddings", ("embedding", "index_select", "aten::index")),
    ("casts and copies", ("copy_", "_to_copy", "aten::to", "aten::cat", "contiguous")),
    ("element-wise", ("aten::mul", "aten::add", "aten::sigmoid", "aten::sum", "mse", "aten::div")),
]


def bucket(name: str) -> str:
    """The kind of work of one profiled operator (``other`` for bookkeeping and the rest)."""
    for label, words in BUCKETS:
        if any(word in name for word in words):
            return label
    return "other"


def shares(rows: list[tuple[str, float]]) -> dict[str, float]:
    """Each bucket's share of the summed self time of ``rows`` (operator, seconds)."""
    total = sum(seconds for _, seconds in rows)
    out: dict[str, float] = defaultdict(float)
    for name, seconds in rows:
        out[bucket(name)] += seconds / total if total else 0.0
    return dict(sorted(out.items(), key=lambda item: -item[1]))


def trainer_for(
    config_name: str, precision: str, seed: int = 0, ratings: int = N_RATINGS
) -> Trainer:
    """movierec's Trainer over random u1.base-shaped ratings, with ``RunOptions(precision)``."""
    generator = torch.Generator().manual_seed(seed)
    train = RatingTensors(
        torch.randint(0, N_USERS, (ratings,), generator=generator),
        torch.randint(0, N_ITEMS, (ratings,), generator=generator),
        torch.randint(1, 6, (ratings,), generator=generator).float(),
    )
    torch.manual_seed(seed)
    model = build_model("embedding-net", N_USERS, N_ITEMS, (1.0, 5.0), CONFIGS[config_name])
    config = TrainConfig(batch_size=BATCH, lr=1e-3, weight_decay=1e-5, epochs=1000)
    options = RunOptions(seed=seed, precision=precision, progress=False, device="cpu")
    return Trainer(model, train, config, options, torch.device("cpu"))


def profile_steps(trainer: Trainer, epochs: int) -> dict[str, Any]:
    """Warm up one epoch, then profile ``epochs`` epochs: operators and buckets."""
    with cheap_dropout(trainer.model, enabled=trainer.options.use_fast_dropout):
        trainer.train_epoch()
        started = time.process_time()
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for _ in range(epochs):
                trainer.train_epoch()
        cpu_seconds = time.process_time() - started
    rows = [
        (event.key, event.self_cpu_time_total / 1e6)
        for event in prof.key_averages()
        if event.self_cpu_time_total > 0
    ]
    rows.sort(key=lambda row: -row[1])
    steps = epochs * trainer.steps_per_epoch
    return {
        "steps": steps,
        "cpu_seconds_per_step_profiled": cpu_seconds / steps,
        "buckets": shares(rows),
        "operators": [
            {"name": name, "self_ms_per_step": 1e3 * seconds / steps, "bucket": bucket(name)}
            for name, seconds in rows[:25]
        ],
    }


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="article")
    parser.add_argument("--precision", default="auto", help="auto (the default path), bf16, fp32")
    parser.add_argument("--epochs", type=int, default=2, help="profiled epochs (40 steps each)")
    parser.add_argument("--ratings", type=int, default=N_RATINGS, help="ratings per epoch")
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--out", type=Path, required=True)
    args = parser.parse_args(argv)
    configure_threads(args.threads)
    trainer = trainer_for(args.config, args.precision, ratings=args.ratings)
    result = {
        "command": "python benchmarks/profile_step.py " + " ".join(argv or sys.argv[1:]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "isa": isa(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "config": args.config,
        "precision": args.precision,
        "autocast": str(trainer.autocast_dtype),
        **profile_steps(trainer, args.epochs),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    print(
        f"{result['cpu']}, {result['isa']['torch_cpu_capability']}, autocast {result['autocast']}"
    )
    for label, share in result["buckets"].items():
        print(f"{label:18s} {100 * share:5.1f}%")


if __name__ == "__main__":
    main()
