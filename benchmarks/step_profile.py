"""Where the time of an EmbeddingNet training step goes, and how near it is to the mm roofline.

Measures, on ml-100k-shaped synthetic data (943 users, 1,682 items, 80,000 ratings) unless told
otherwise:

1. Throughput (ratings/s) of whole training epochs through ``movierec.train.loop.fit`` for each
   variant asked for (fp32 / bf16 autocast, dense / row-wise embedding optimiser, compile),
   interleaved round by round so that a noisy shared CPU hurts all variants alike; medians.
2. A torch.profiler breakdown of the step by category: matmul, element-wise, embedding,
   optimiser, other (self CPU time of each ATen op, classified by name).
3. Achieved GFLOP/s of the step (the three matrix products per linear layer, forward and
   backward) next to a plain ``torch.mm`` of the same shapes, fp32 and bf16.
4. With ``--table-rows``: step time with small and large embedding tables, dense vs row-wise
   (the per-step cost of a row-wise step must not grow with the table).

Usage::

    PYTHONPATH=src python benchmarks/step_profile.py --config article --variants fp32,bf16
    PYTHONPATH=src python benchmarks/step_profile.py --config wide --rounds 5 --json out.json
    PYTHONPATH=src python benchmarks/step_profile.py --table-rows 1000,200000 --skip-fit

Variants are ``+``-joined flags: ``fp32``, ``bf16``, ``rw`` (row-wise), ``compile``, ``fd``
(cheap dropout masks), ``fused`` (fused Adam), e.g. ``bf16+fd+fused``.
"""

from __future__ import annotations

import argparse
import itertools
import json
import statistics
import sys
import time

import torch

from movierec.config import RunOptions, TrainConfig
from movierec.data.tensors import RatingTensors
from movierec.models.embedding_net import EmbeddingNet, EmbeddingNetConfig
from movierec.train import cheap_dropout, fit
from movierec.train.objectives import rating_loss
from movierec.train.optim import build_optimizer, sparse_embeddings
from movierec.train.precision import autocast

CONFIGS = {
    "article": EmbeddingNetConfig(n_factors=150, hidden=(100, 200, 300), dropouts=(0.25, 0.5)),
    "wide": EmbeddingNetConfig(n_factors=150, hidden=(500, 500, 500), dropouts=(0.5, 0.5, 0.25)),
}
CATEGORIES = (
    "matmul",
    "dropout-rng",
    "relu",
    "casts",
    "elementwise",
    "embedding",
    "optimizer",
    "other",
)


def synthetic(n_users: int, n_items: int, n: int, seed: int = 0) -> RatingTensors:
    """Random indices with ml-100k's shape; ratings 1..5 (the values do not change the cost)."""
    g = torch.Generator().manual_seed(seed)
    return RatingTensors(
        torch.randint(0, n_users, (n,), generator=g),
        torch.randint(0, n_items, (n,), generator=g),
        torch.randint(1, 6, (n,), generator=g).float(),
    )


def parse_variant(name: str) -> tuple[RunOptions, str]:
    flags = set(name.split("+"))
    unknown = flags - {"fp32", "bf16", "rw", "compile", "fd", "fused"}
    if unknown:
        raise SystemExit(f"unknown variant flag(s) {sorted(unknown)} in {name!r}")
    options = RunOptions(
        seed=0,
        device="cpu",
        progress=False,
        precision="bf16" if "bf16" in flags else "fp32",
        compile="compile" in flags,
        fast_dropout="fd" in flags,
        fused_adam="fused" in flags,
    )
    return options, "row-wise" if "rw" in flags else "dense"


def epoch_throughput(
    config: EmbeddingNetConfig, data: RatingTensors, variants: list[str], rounds: int, batch: int
) -> dict[str, dict[str, float]]:
    """Median ratings/s per variant, interleaved over ``rounds`` rounds.

    Every round fits every variant in turn for two epochs and times the second (the first pays
    for warm-up and any compilation, reported apart as ``first_epoch_extra_seconds``): a
    shared CPU drifts, and interleaving makes the drift hurt all variants alike.
    """
    n_users = int(data.user_idx.max()) + 1
    n_items = int(data.item_idx.max()) + 1
    samples: dict[str, list[float]] = {v: [] for v in variants}
    first: dict[str, list[float]] = {v: [] for v in variants}
    for _ in range(rounds):
        for variant in variants:
            options, embedding_optimizer = parse_variant(variant)
            torch.manual_seed(0)
            model = EmbeddingNet(n_users, n_items, (1.0, 5.0), config)
            train_config = TrainConfig(
                epochs=2, batch_size=batch, patience=0, embedding_optimizer=embedding_optimizer
            )
            result = fit(model, data, None, train_config, options)
            one, two = result.history[0].seconds, result.history[1].seconds
            samples[variant].append(len(data) / two)
            first[variant].append(one - two)
    return {
        v: {
            "ratings_per_second": statistics.median(samples[v]),
            "min": min(samples[v]),
            "max": max(samples[v]),
            "first_epoch_extra_seconds": statistics.median(first[v]),
        }
        for v in variants
    }


def classify(name: str) -> str:
    """The kind of work of one profiled operator: the dropout masks (PyTorch's ``bernoulli_``
    or the fit-time masks' random words and int16 passes), the ReLU, casts and copies, matrix
    products, the optimiser, the embeddings, other element-wise work, or bookkeeping."""
    lowered = name.lower()
    if any(k in lowered for k in ("bernoulli", "uniform", "random", "bitwise", "logical_and")):
        return "dropout-rng"
    if any(k in lowered for k in ("optimizer", "adam", "_foreach", "lerp", "addcdiv", "sqrt")):
        return "optimizer"
    if any(k in lowered for k in ("mm", "linear", "matmul", "mkldnn")):
        return "matmul"
    if any(k in lowered for k in ("embedding", "index", "coalesce", "sparse", "unique", "sort")):
        return "embedding"
    if any(k in lowered for k in ("relu", "clamp_min", "threshold_backward")):
        return "relu"
    if any(k in lowered for k in ("copy_", "_to_copy", "aten::to", "aten::cat")):
        return "casts"
    if lowered.startswith("aten::"):
        return "elementwise"
    return "other"


def make_step(model, optimizer, data, batch, dtype):
    order = torch.randperm(len(data))

    def step(i: int) -> None:
        start = (i * batch) % max(1, len(data) - batch)
        rows = order[start : start + batch]
        users, items = data.user_idx[rows], data.item_idx[rows]
        with autocast(torch.device("cpu"), dtype):
            loss = rating_loss(model(users, items), data.rating[rows])
        optimizer.zero_grad(set_to_none=True)
        loss.backward()
        optimizer.step()

    return step


def step_breakdown(config, data, batch, variant, steps=20, top=0):
    """Per-category share of a step's self CPU time, and the step's median wall time."""
    from torch.profiler import ProfilerActivity, profile

    n_users = int(data.user_idx.max()) + 1
    n_items = int(data.item_idx.max()) + 1
    torch.manual_seed(0)
    model = EmbeddingNet(n_users, n_items, (1.0, 5.0), config).train()
    options, embedding_optimizer = parse_variant(variant)
    dtype = torch.bfloat16 if options.precision == "bf16" else None
    fused = True if options.fused_adam else None
    optimizer = build_optimizer(model, embedding_optimizer, 1e-3, 1e-5, fused=fused)
    with (
        sparse_embeddings(model, enabled=embedding_optimizer == "row-wise"),
        cheap_dropout(model, enabled=options.fast_dropout),
    ):
        step = make_step(model, optimizer, data, batch, dtype)
        for i in range(5):
            step(i)
        times = []
        for i in range(steps):
            started = time.perf_counter()
            step(i)
            times.append(time.perf_counter() - started)
        with profile(activities=[ProfilerActivity.CPU]) as prof:
            for i in range(steps):
                step(i)
    totals = dict.fromkeys(CATEGORIES, 0.0)
    for event in prof.key_averages():
        totals[classify(event.key)] += event.self_cpu_time_total
    whole = sum(totals.values()) or 1.0
    if top:
        events = sorted(prof.key_averages(), key=lambda e: -e.self_cpu_time_total)[:top]
        for event in events:
            print(
                f"    {event.key[:40]:40s} {classify(event.key):12s} "
                f"{event.self_cpu_time_total / whole:6.1%} {event.count // steps:4d} calls/step"
            )
    return statistics.median(times), {k: v / whole for k, v in totals.items()}


def layer_shapes(config: EmbeddingNetConfig) -> list[tuple[int, int]]:
    widths = [2 * config.n_factors, *config.hidden, 1]
    return list(itertools.pairwise(widths))


def step_flops(config: EmbeddingNetConfig, batch: int) -> float:
    """Forward (B x K x N) plus the two backward products, per linear layer: 6 B K N."""
    return sum(6.0 * batch * k * n for k, n in layer_shapes(config))


def mm_gflops(config: EmbeddingNetConfig, batch: int, dtype: torch.dtype, reps: int = 20):
    """GFLOP/s of plain torch.mm doing a step's products (forward, grad input, grad weight)."""
    products = []
    for k, n in layer_shapes(config):
        x, w, gy = (torch.randn(batch, k), torch.randn(k, n), torch.randn(batch, n))
        products += [(x, w), (gy, w.T.contiguous()), (x.T.contiguous(), gy)]
    products = [(a.to(dtype), b.to(dtype)) for a, b in products]
    for a, b in products:
        torch.mm(a, b)
    times = []
    for _ in range(reps):
        started = time.perf_counter()
        for a, b in products:
            torch.mm(a, b)
        times.append(time.perf_counter() - started)
    return step_flops(config, batch) / statistics.median(times) / 1e9


def table_scaling(config, rows_list, batch, steps=15):
    """Median step time per (rows, embedding optimiser), interleaved."""
    results: dict[str, list[float]] = {}
    setups = {}
    for rows in rows_list:
        data = synthetic(rows, rows, 40_000, seed=1)
        for opt in ("dense", "row-wise"):
            torch.manual_seed(0)
            model = EmbeddingNet(rows, rows, (1.0, 5.0), config).train()
            optimizer = build_optimizer(model, opt, 1e-3, 1e-5)
            setups[f"{rows} rows, {opt}"] = (model, optimizer, data, opt)
    for _ in range(3):
        for key, (model, optimizer, data, opt) in setups.items():
            with sparse_embeddings(model, enabled=opt == "row-wise"):
                step = make_step(model, optimizer, data, batch, None)
                step(0)
                for i in range(steps):
                    started = time.perf_counter()
                    step(i)
                    results.setdefault(key, []).append(time.perf_counter() - started)
    return {key: statistics.median(v) * 1e3 for key, v in results.items()}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--config", choices=sorted(CONFIGS), default="article")
    parser.add_argument("--variants", default="fp32,bf16")
    parser.add_argument("--rounds", type=int, default=3)
    parser.add_argument("--batch", type=int, default=2000)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--ratings", type=int, default=80_000)
    parser.add_argument("--skip-fit", action="store_true")
    parser.add_argument("--skip-profile", action="store_true")
    parser.add_argument("--top", type=int, default=0, help="list the N costliest ops")
    parser.add_argument("--profile-variants", default="fp32,bf16,bf16+fd+fused")
    parser.add_argument("--table-rows", default="")
    parser.add_argument("--json", default=None, help="also write the results to this file")
    args = parser.parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    config = CONFIGS[args.config]
    data = synthetic(943, 1682, args.ratings)
    report: dict = {
        "config": args.config,
        "batch": args.batch,
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
    }
    print(f"{args.config}: {config}; batch {args.batch}; {torch.get_num_threads()} threads")
    if not args.skip_fit:
        variants = [v for v in args.variants.split(",") if v]
        report["throughput"] = epoch_throughput(config, data, variants, args.rounds, args.batch)
        for variant, row in report["throughput"].items():
            print(
                f"  {variant:22s} {row['ratings_per_second']:>10,.0f} ratings/s "
                f"(min {row['min']:,.0f}, max {row['max']:,.0f}; "
                f"first epoch +{row['first_epoch_extra_seconds']:.1f} s)"
            )
    if not args.skip_profile:
        flops = step_flops(config, args.batch)
        report["roofline"] = {}
        for label in args.profile_variants.split(","):
            seconds, shares = step_breakdown(config, data, args.batch, label, top=args.top)
            dtype = torch.bfloat16 if "bf16" in label else torch.float32
            mm = mm_gflops(config, args.batch, dtype)
            achieved = flops / seconds / 1e9
            report["roofline"][label] = {
                "step_ms": seconds * 1e3,
                "step_gflops": achieved,
                "mm_gflops": mm,
                "fraction": achieved / mm,
                "shares": shares,
            }
            parts = ", ".join(f"{k} {v:.0%}" for k, v in shares.items())
            print(
                f"  step {label}: {seconds * 1e3:.1f} ms = {args.batch / seconds:,.0f} ratings/s; "
                f"{achieved:.0f} GFLOP/s vs torch.mm {mm:.0f} GFLOP/s ({achieved / mm:.0%}); "
                f"{parts}"
            )
    if args.table_rows:
        rows = [int(r) for r in args.table_rows.split(",")]
        report["table_scaling_ms"] = table_scaling(config, rows, args.batch)
        for key, ms in report["table_scaling_ms"].items():
            print(f"  step with {key}: {ms:.2f} ms")
    if args.json:
        with open(args.json, "w", encoding="utf-8") as handle:
            json.dump(report, handle, indent=2)
    return 0


if __name__ == "__main__":
    sys.exit(main())
