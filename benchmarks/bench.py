"""Side-by-side benchmark of training speed, roofline, time to quality and inference.

One command, one process, one machine (issue #4, section 2)::

    python benchmarks/bench.py --out benchmarks/results/bench.json          # ~5-10 min
    python benchmarks/bench.py --quick --out /tmp/bench.json                # a smoke run
    python benchmarks/bench.py --isa avx2 --training-only --out benchmarks/results/bench-avx2.json

``--isa avx2`` runs the whole benchmark confined to AVX2 kernels (PyTorch's dispatch, MKL and
oneDNN: :data:`AVX2_ONLY`), so a machine with AVX-512 and bf16 units stands in for the
AVX2-only kind: ``auto`` then trains in fp32, as it would there. Clock speed, caches and
memory stay this machine's, so its ratios are a proxy, said so in the table.

It writes the JSON and a Markdown table next to it (same name, ``.md``) with the exact command,
the CPU model, cores, threads, torch version, the load average before and after, and the date.

What is measured, all in the same run:

1. **Training ratings/s** on ml-100k's ``u1.base`` (80,000 ratings), for the founding article's
   EmbeddingNet (``n_factors=150, hidden=[100,200,300], dropouts=[0.25,0.5]``, batch 2000) and a
   wide one (``hidden=[500,500,500], dropouts=[0.5,0.5,0.25]``): the reference
   (:mod:`reference_dataloader`: per-sample ``Dataset`` + ``DataLoader``, dense Adam), movierec's
   :func:`movierec.train.loop.fit` in fp32, and each fast-path option the package has (bf16
   autocast, ``torch.compile``, the row-wise embedding optimiser, all of them together); a
   variant whose option does not exist is reported as not available. Each variant trains in its
   own thread, but only one runs at a time: a :class:`Turnstile` hands the CPU from variant to
   variant after every epoch, so all of them see the same machine load, epoch by epoch. The first
   epoch of each is a warm-up (it pays for ``torch.compile``); the figure is the median of the
   timed epochs that follow.
2. **Roofline**: FLOPs of one training step (see :func:`step_flops`), the achieved GFLOP/s of
   each variant, and the GFLOP/s of plain ``torch.mm`` on the same layer shapes in fp32 and
   bf16, measured in this run; the fraction of the one the step reaches.
3. **Time to quality** on ``u1``: training exactly as ``movierec train`` does (validation carved
   from the training part, early stopping on validation RMSE), except that the test set is also
   scored after every epoch, *only* to time when test RMSE first reaches 0.96 and 0.95 (the test
   scoring time is left out of the clock and plays no part in model selection). Final RMSE is the
   test RMSE of the weights early stopping kept. Next to scikit-surprise's ``SVD`` and ``SVDpp``
   (default parameters, ``random_state=0``; fit seconds and test RMSE on the same split).
4. **Inference**: :meth:`movierec.recommend.Recommender.top_n` for one user over the whole
   catalogue (median and p99 ms over ``--users`` users), and batch scoring throughput of
   ``score_items`` in ``inference_mode`` (users x items scored per second).
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import itertools
import json
import math
import os
import platform
import shlex
import statistics
import sys
import threading
import time
import traceback
from collections.abc import Callable, Sequence
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import torch

from movierec.config import ModelSpec, RunOptions, TrainConfig
from movierec.data import load_data
from movierec.data.encoder import IdEncoder
from movierec.data.splits import Split, make_split
from movierec.data.tensors import RatingTensors
from movierec.models import EmbeddingNetConfig, build_model
from movierec.pipeline import fit_recommender, prepare
from movierec.recommend import SCORE_ROWS, Recommender
from movierec.train import EpochRecord, configure_threads, fit
from movierec.train.precision import resolve_precision

sys.path.insert(0, str(Path(__file__).resolve().parent))
import reference_dataloader as reference  # kept beside this script, not packaged
import reference_loop  # the plain loop every ratio is taken against
from bench_serve import cpu_model  # one definition for every benchmark script

BATCH = 2000
SEED = 0
CONFIGS: dict[str, EmbeddingNetConfig] = {
    "article": EmbeddingNetConfig(n_factors=150, hidden=(100, 200, 300), dropouts=(0.25, 0.5)),
    "wide": EmbeddingNetConfig(n_factors=150, hidden=(500, 500, 500), dropouts=(0.5, 0.5, 0.25)),
}
QUALITY_TARGETS = (0.96, 0.95)
REFERENCE = "plain loop"  # reference_loop.PlainLoop: tensors, randperm, dense Adam, fp32
DATALOADER = "reference DataLoader"  # reference_dataloader: the tutorials' per-sample loader
DEFAULT = "movierec default"  # RunOptions(): what `movierec train` runs with no speed flag
DEFAULT_FP32 = "movierec default, fp32"  # RunOptions() where the CPU has no native bf16
EXACT = "movierec fp32 (exact)"  # --precision fp32: PyTorch's plain modules, the fp32 numbers


# -- pure helpers --------------------------------------------------------------------------------


def layer_shapes(config: EmbeddingNetConfig) -> list[tuple[int, int]]:
    """``(in, out)`` of every linear layer of an EmbeddingNet, the output unit included."""
    widths = [2 * config.n_factors, *config.hidden, 1]
    return list(itertools.pairwise(widths))


def forward_flops(batch: int, shapes: Sequence[tuple[int, int]]) -> int:
    """FLOPs of the forward matrix products: ``sum 2 * batch * in * out`` (a multiply-add is 2)."""
    return sum(2 * batch * n_in * n_out for n_in, n_out in shapes)


def step_flops(batch: int, shapes: Sequence[tuple[int, int]]) -> int:
    """FLOPs of one training step: 3x the forward GEMMs.

    Per linear layer the step runs three products of the same size: the forward ``X W^T``, the
    gradient to the inputs ``dY W`` and the gradient to the weights ``dY^T X`` (the first layer
    needs its input gradient too, since the embeddings train). Embedding look-ups, element-wise
    work (bias, ReLU, dropout, sigmoid, loss) and the optimiser are memory-bound and not counted,
    so this is the work a perfect machine could not avoid.
    """
    return 3 * forward_flops(batch, shapes)


def rate_summary(seconds: Sequence[float], items: int) -> dict[str, float]:
    """Median, fastest and slowest rate of ``items`` per timed run of ``seconds``."""
    return {
        "median": items / statistics.median(seconds),
        "best": items / min(seconds),
        "worst": items / max(seconds),
    }


def latency_summary(seconds: Sequence[float]) -> dict[str, float]:
    """Median and p99 (linear interpolation, as ``numpy.percentile``) in milliseconds."""
    ms = np.asarray(seconds, dtype=np.float64) * 1e3
    return {"median_ms": float(np.median(ms)), "p99_ms": float(np.percentile(ms, 99))}


def first_reaching(curve: Sequence[tuple[float, float]], target: float) -> float | None:
    """The first ``seconds`` of ``(seconds, rmse)`` pairs whose RMSE is <= ``target``, or None."""
    return next((seconds for seconds, rmse in curve if rmse <= target), None)


class Turnstile:
    """Lets named workers run one at a time, in a fixed round-robin order.

    A worker calls :meth:`wait` before its turn's work and :meth:`passes` after it (the next
    worker in the ring runs), or :meth:`leave` when it has no more turns. Workers that leave drop
    out of the ring; the others keep their order.
    """

    def __init__(self, names: Sequence[str]):
        self._ring = list(names)
        self._turn = 0
        self._changed = threading.Condition()

    def wait(self, name: str) -> None:
        with self._changed:
            self._changed.wait_for(lambda: self._ring[self._turn] == name)

    def passes(self, name: str) -> None:
        with self._changed:
            self._turn = (self._ring.index(name) + 1) % len(self._ring)
            self._changed.notify_all()

    def leave(self, name: str) -> None:
        with self._changed:
            where = self._ring.index(name)
            current = self._ring[self._turn]
            self._ring.remove(name)
            if self._ring:
                self._turn = (
                    where % len(self._ring) if current == name else self._ring.index(current)
                )
            self._changed.notify_all()


def run_interleaved(workers: dict[str, Callable[[Callable[[], None]], None]]) -> dict[str, str]:
    """Run each ``worker(yield_turn)`` in its own thread, one at a time, round-robin.

    A worker calls ``yield_turn()`` between epochs to let the next one run. Returns the
    traceback's last line of every worker that raised (the others are unaffected).
    """
    gate = Turnstile(list(workers))
    errors: dict[str, str] = {}

    def body(name: str, work: Callable[[Callable[[], None]], None]) -> None:
        def yield_turn() -> None:
            gate.passes(name)
            gate.wait(name)

        gate.wait(name)
        try:
            work(yield_turn)
        except Exception as exc:  # a variant that fails is reported, the others go on
            errors[name] = f"{type(exc).__name__}: {exc}"
            traceback.print_exc()
        finally:
            gate.leave(name)

    threads = [threading.Thread(target=body, args=item, name=item[0]) for item in workers.items()]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join()
    return errors


# -- fast-path variants --------------------------------------------------------------------------


def fast_path_support() -> dict[str, bool]:
    """Which fast-path options this checkout's package has (issue #4's shared names)."""
    run = {f.name for f in dataclasses.fields(RunOptions)}
    train = {f.name for f in dataclasses.fields(TrainConfig)}
    return {
        "precision": "precision" in run,
        "compile": "compile" in run,
        "fast": {"precision", "fused_adam", "fast_dropout"} <= run,
        "embedding_optimizer": "embedding_optimizer" in train,
    }


@dataclasses.dataclass(frozen=True)
class Variant:
    """A way to train with :func:`fit`: options over the fp32 defaults, or why it is missing."""

    name: str
    run: dict[str, Any]
    train: dict[str, Any]
    missing: str | None = None


def variants(support: dict[str, bool]) -> list[Variant]:
    """The default, the exact fp32 path, bf16 alone, the default without bf16, and the default
    with compile or row-wise.

    ``movierec default, fp32`` is what ``RunOptions()`` runs on a CPU without native bf16 (the
    AVX2-only EPYC: ``auto`` resolves to fp32 there, the fused Adam and the cheap dropout
    stay): on a bf16 machine it stands in for the other CPU kind's default.

    Every variant names its speed options outright, so it means the same thing whatever the
    package's defaults are (the default itself is ``RunOptions()``).
    """
    options = [
        ("movierec bf16 only", ("precision",),
         {"precision": "bf16", "fused_adam": False, "fast_dropout": False}, {}),
        (DEFAULT_FP32, ("fast",),
         {"precision": "fp32", "fused_adam": True, "fast_dropout": True}, {}),
        (f"{DEFAULT} + compile", ("compile",), {"compile": True}, {}),
        (f"{DEFAULT} + row-wise", ("embedding_optimizer",), {},
         {"embedding_optimizer": "row-wise"}),
    ]  # fmt: skip
    out = [Variant(DEFAULT, {}, {}), Variant(EXACT, {"precision": "fp32"}, {})]
    for name, needs, run, train in options:
        absent = [field for field in needs if not support[field]]
        missing = f"not available (no {', '.join(absent)} option)" if absent else None
        out.append(Variant(name, run, train, missing))
    return out


def run_options(variant: Variant) -> RunOptions:
    return RunOptions(seed=SEED, device="cpu", progress=False, **variant.run)


# -- 1. training throughput ----------------------------------------------------------------------


def u1_tensors(split: Split) -> tuple[IdEncoder, RatingTensors]:
    """``u1.base`` (all 80,000 training ratings), encoded."""
    encoder = IdEncoder.fit(split.train)
    return encoder, RatingTensors.from_frame(split.train, encoder)


def bench_training(
    name: str,
    config: EmbeddingNetConfig,
    tensors: RatingTensors,
    encoder: IdEncoder,
    all_variants: list[Variant],
    epochs: int,
    scale: tuple[float, float],
) -> dict[str, Any]:
    """Every variant trains ``1 + epochs`` epochs, interleaved epoch by epoch.

    Each epoch is timed twice: wall seconds and the process's CPU seconds (only one variant runs
    at a time, so the process's CPU time is that variant's). On a shared machine the CPU figure
    is the steadier one: other processes' load lengthens the wall time, not the work.
    """
    n = len(tensors)
    wall: dict[str, list[float]] = {}
    cpu: dict[str, list[float]] = {}
    workers: dict[str, Callable[[Callable[[], None]], None]] = {}

    def timed_epochs(label: str, run_epoch: Callable[[], None]) -> Callable[..., None]:
        def worker(yield_turn: Callable[[], None]) -> None:
            for epoch in range(1 + epochs):
                started, started_cpu = time.perf_counter(), time.process_time()
                run_epoch()
                wall.setdefault(label, []).append(time.perf_counter() - started)
                cpu.setdefault(label, []).append(time.process_time() - started_cpu)
                if epoch < epochs:
                    yield_turn()

        return worker

    users, items = tensors.user_idx.numpy(), tensors.item_idx.numpy()
    ratings = tensors.rating.numpy()
    shape = {"n_factors": config.n_factors, "hidden": config.hidden, "dropouts": config.dropouts}
    plain = reference_loop.PlainLoop(
        tensors.user_idx, tensors.item_idx, tensors.rating, batch_size=BATCH, seed=SEED, **shape
    )
    workers[REFERENCE] = timed_epochs(REFERENCE, plain.epoch)
    torch.manual_seed(SEED)
    ref_model, ref_loader, ref_optimizer = reference.build(
        users, items, ratings, batch_size=BATCH, **shape
    )
    workers[DATALOADER] = timed_epochs(
        DATALOADER, lambda: reference.train_epoch(ref_model, ref_loader, ref_optimizer)
    )
    for variant in all_variants:
        if variant.missing:
            continue
        torch.manual_seed(SEED)
        model = build_model("embedding-net", encoder.n_users, encoder.n_items, scale, config)
        train_config = TrainConfig(
            epochs=1 + epochs, batch_size=BATCH, lr=1e-3, weight_decay=1e-5, patience=0,
            **variant.train,
        )  # fmt: skip

        def fit_worker(
            yield_turn: Callable[[], None],
            variant: Variant = variant,
            model: torch.nn.Module = model,
            train_config: TrainConfig = train_config,
        ) -> None:
            clock = {"cpu": time.process_time()}

            def on_epoch(record: EpochRecord) -> None:
                # record.seconds was taken before this call: waiting here is not timed.
                wall.setdefault(variant.name, []).append(record.seconds)
                cpu.setdefault(variant.name, []).append(time.process_time() - clock["cpu"])
                if record.epoch < train_config.epochs:
                    yield_turn()
                clock["cpu"] = time.process_time()

            fit(model, tensors, None, train_config, run_options(variant), on_epoch)

        workers[variant.name] = fit_worker

    errors = run_interleaved(workers)
    shapes = layer_shapes(config)
    per_rating = step_flops(BATCH, shapes) / BATCH
    rows: dict[str, Any] = {}
    for label in [REFERENCE, DATALOADER, *(v.name for v in all_variants)]:
        variant = next((v for v in all_variants if v.name == label), None)
        if variant is not None and variant.missing:
            rows[label] = {"available": False, "why": variant.missing}
            continue
        if label in errors or len(wall.get(label, [])) < 1 + epochs:
            rows[label] = {"available": False, "why": f"failed: {errors.get(label, 'no epochs')}"}
            continue
        timed, timed_cpu = wall[label][1:], cpu[label][1:]
        rate = rate_summary(timed, n)
        asked = "fp32" if variant is None else run_options(variant).precision
        rows[label] = {
            "available": True,
            "options": {} if variant is None else {**variant.run, **variant.train},
            "precision": "bf16" if resolve_precision(asked, torch.device("cpu")) else "fp32",
            "warmup_epoch_seconds": wall[label][0],
            "epoch_seconds": timed,
            "epoch_cpu_seconds": timed_cpu,
            "ratings_per_second": rate["median"],
            "ratings_per_second_best": rate["best"],
            "ratings_per_second_worst": rate["worst"],
            "ratings_per_cpu_second": rate_summary(timed_cpu, n)["median"],
            "gflops": rate["median"] * per_rating / 1e9,
        }
    for row in rows.values():
        if row["available"]:
            for base, key in ((REFERENCE, "vs_reference"), (DATALOADER, "vs_dataloader"),
                              (EXACT, "vs_exact")):  # fmt: skip
                if rows.get(base, {}).get("available"):
                    row[key] = row["ratings_per_second"] / rows[base]["ratings_per_second"]
                    row[f"{key}_cpu"] = (
                        row["ratings_per_cpu_second"] / rows[base]["ratings_per_cpu_second"]
                    )
    return {
        "model": dataclasses.asdict(config),
        "batch_size": BATCH,
        "ratings_per_epoch": n,
        "timed_epochs": epochs,
        "step_flops": step_flops(BATCH, shapes),
        "flops_per_rating": per_rating,
        "variants": rows,
        "name": name,
    }


# -- 2. roofline ---------------------------------------------------------------------------------


def bench_mm(
    shapes: Sequence[tuple[int, int]], batch: int, rounds: int, reps: int
) -> dict[str, dict[str, float]]:
    """GFLOP/s of plain ``torch.mm`` on the layer shapes, fp32 and bf16, rounds interleaved.

    ``forward``: ``[batch, in] @ [in, out]`` per layer (the weight stored ``[out, in]`` as in
    ``nn.Linear``). ``step``: the three products of a training step per layer (forward, input
    gradient ``[batch, out] @ [out, in]``, weight gradient ``[out, batch] @ [batch, in]``).
    """
    generator = torch.Generator().manual_seed(SEED)
    operands: dict[str, list[tuple[torch.Tensor, torch.Tensor, torch.Tensor]]] = {}
    for dtype_name, dtype in (("fp32", torch.float32), ("bf16", torch.bfloat16)):
        operands[dtype_name] = [
            (
                torch.randn(batch, n_in, generator=generator).to(dtype),
                torch.randn(n_out, n_in, generator=generator).to(dtype),
                torch.randn(batch, n_out, generator=generator).to(dtype),
            )
            for n_in, n_out in shapes
        ]

    def forward(ops: list[tuple[torch.Tensor, ...]]) -> None:
        for x, w, _ in ops:
            torch.mm(x, w.t())

    def step(ops: list[tuple[torch.Tensor, ...]]) -> None:
        for x, w, dy in ops:
            torch.mm(x, w.t())
            torch.mm(dy, w)
            torch.mm(dy.t(), x)

    kinds = {
        "forward": (forward, forward_flops(batch, shapes)),
        "step": (step, step_flops(batch, shapes)),
    }
    timings: dict[tuple[str, str], list[float]] = {}
    with torch.inference_mode():
        for round_ in range(rounds + 1):  # round 0 warms up
            for dtype_name, ops in operands.items():
                for kind, (run, _) in kinds.items():
                    started = time.perf_counter()
                    for _ in range(reps):
                        run(ops)
                    if round_:
                        took = (time.perf_counter() - started) / reps
                        timings.setdefault((kind, dtype_name), []).append(took)
    return {
        kind: {dtype: flops / statistics.median(timings[(kind, dtype)]) / 1e9 for dtype in operands}
        for kind, (_, flops) in kinds.items()
    }


def roofline(training: dict[str, Any], mm: dict[str, dict[str, float]]) -> dict[str, Any]:
    """Each available variant's achieved GFLOP/s against the mm figure of its precision."""
    rows = {}
    for label, row in training["variants"].items():
        if not row["available"]:
            continue
        dtype = row["precision"]  # "auto" is bf16 on a CPU with native bf16
        rows[label] = {
            "precision": dtype,
            "gflops": row["gflops"],
            "fraction_of_mm_forward": row["gflops"] / mm["forward"][dtype],
            "fraction_of_mm_step": row["gflops"] / mm["step"][dtype],
        }
    return {"step_flops": training["step_flops"], "mm_gflops": mm, "variants": rows}


# -- 3. time to quality --------------------------------------------------------------------------


def time_to_quality(
    prepared: Any, model_name: str, run_extra: dict[str, Any], train_extra: dict[str, Any]
) -> tuple[dict[str, Any], Recommender]:
    """Train as ``movierec train`` does and put the test RMSE of every epoch's weights on the
    training clock (the weights are copied after each epoch and scored once training ended)."""
    spec = ModelSpec.resolve(model_name, train_options=train_extra)
    # The threads the benchmark set: RunOptions' None would reset torch to every core.
    threads = torch.get_num_threads()
    options = RunOptions(seed=SEED, device="cpu", threads=threads, progress=False, **run_extra)
    test = prepared.split.test
    test_users, test_items = test["user_id"].to_numpy(), test["item_id"].to_numpy()
    actual = test["rating"].to_numpy(dtype=np.float64)
    snapshots: list[tuple[EpochRecord, float, dict[str, torch.Tensor]]] = []
    copying = 0.0
    started = time.perf_counter()

    def on_epoch(record: EpochRecord, model: torch.nn.Module) -> None:
        nonlocal copying
        paused = time.perf_counter()
        state = {k: v.detach().clone() for k, v in model.state_dict().items()}
        snapshots.append((record, paused - started - copying, state))
        copying += time.perf_counter() - paused

    recommender = fit_recommender(prepared, spec, options, on_epoch=on_epoch)
    total = time.perf_counter() - started - copying
    result = recommender.training

    def test_rmse() -> float:
        predicted = recommender.predict(test_users, test_items)
        return float(np.sqrt(np.mean((predicted - actual) ** 2)))

    final = test_rmse()
    best_state = {k: v.clone() for k, v in recommender.model.state_dict().items()}
    curve = []
    for record, seconds, state in snapshots:
        recommender.model.load_state_dict(state)
        curve.append(
            {
                "epoch": record.epoch,
                "seconds": seconds,
                "valid_rmse": record.valid_rmse,
                "test_rmse": test_rmse(),
            }
        )
    recommender.model.load_state_dict(best_state)
    points = [(row["seconds"], row["test_rmse"]) for row in curve]
    return {
        "model": model_name,
        "options": {**run_extra, **train_extra},
        "train": dataclasses.asdict(spec.train),
        "seconds_to": {f"{t:.2f}": first_reaching(points, t) for t in QUALITY_TARGETS},
        "train_seconds": total,
        "epochs": len(result.history),
        "best_epoch": result.best_epoch,
        "final_test_rmse": final,
        "curve": curve,
    }, recommender


def surprise_baselines(split: Split, scale: tuple[float, float]) -> list[dict[str, Any]]:
    """scikit-surprise's SVD and SVDpp on the same split: fit seconds and test RMSE."""
    try:
        from surprise import SVD, Dataset, Reader, SVDpp, accuracy
    except ImportError:
        return [{"model": m, "available": False, "why": "scikit-surprise not installed"}
                for m in ("SVD", "SVDpp")]  # fmt: skip
    columns = ["user_id", "item_id", "rating"]
    trainset = Dataset.load_from_df(
        split.train[columns], Reader(rating_scale=scale)
    ).build_full_trainset()
    testset = list(split.test[columns].itertuples(index=False, name=None))
    rows = []
    for algo_class in (SVD, SVDpp):
        algo = algo_class(random_state=SEED)
        started = time.perf_counter()
        algo.fit(trainset)
        seconds = time.perf_counter() - started
        rmse = accuracy.rmse(algo.test(testset), verbose=False)
        rows.append(
            {
                "model": f"surprise {algo_class.__name__}",
                "available": True,
                "fit_seconds": seconds,
                "test_rmse": float(rmse),
            }
        )
    return rows


# -- 4. inference --------------------------------------------------------------------------------


def bench_inference(
    label: str, recommender: Recommender, users: int, repeats: int
) -> dict[str, Any]:
    """Top-10 latency for one user at a time, and batch scoring throughput of ``score_items``."""
    model = recommender.model.eval()
    encoder = recommender.encoder
    rng = np.random.default_rng(SEED)
    chosen = rng.choice(
        np.asarray(encoder.user_ids), size=min(users, encoder.n_users), replace=False
    )
    for user in chosen[:5]:
        recommender.top_n(user, 10)  # warm-up (and the cached item side)
    latencies = []
    for user in chosen:
        started = time.perf_counter()
        recommender.top_n(user, 10)
        latencies.append(time.perf_counter() - started)

    # Throughput depends on the batch: wide batches spill the MLP's activations out of cache.
    all_users = torch.arange(encoder.n_users)
    scored = encoder.n_users * encoder.n_items
    recommender_batch = max(1, SCORE_ROWS // encoder.n_items)
    by_batch: dict[int, float] = {}
    with torch.inference_mode():
        side = model.item_side() if callable(getattr(model, "item_side", None)) else None
        for per_batch in sorted({1, 8, recommender_batch}):
            timings = []
            for _ in range(repeats + 1):  # the first pass warms up
                started = time.perf_counter()
                for start in range(0, encoder.n_users, per_batch):
                    batch = all_users[start : start + per_batch]
                    model.score_items(batch) if side is None else model.score_items(batch, side)
                timings.append(time.perf_counter() - started)
            by_batch[per_batch] = rate_summary(timings[1:], scored)["median"]
    return {
        "model": label,
        "top10_users": len(chosen),
        **latency_summary(latencies),
        "score_users_per_batch": recommender_batch,
        "scored_per_pass": scored,
        "scores_per_second": by_batch[recommender_batch],
        "scores_per_second_by_users_per_batch": by_batch,
        "scoring_passes": repeats,
    }


# -- report --------------------------------------------------------------------------------------


def _num(value: float | None, digits: int = 0, suffix: str = "") -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "-"
    return f"{value:,.{digits}f}{suffix}"


def confined_note(confined: dict[str, str]) -> str:
    """The ISA line's note for a run under ``--isa avx2`` (empty otherwise)."""
    if not confined:
        return ""
    settings = ", ".join(f"{name}={value}" for name, value in confined.items())
    return (
        f"; **confined to AVX2 kernels** ({settings}): this CPU stands in for an AVX2-only "
        "one (its clock and caches stay, so the ratios are a proxy)"
    )


def markdown(result: dict[str, Any]) -> str:
    env = result["environment"]
    lines = [
        "# Benchmark: training speed, roofline, time to quality, inference",
        "",
        f"- Command: `{result['command']}`",
        f"- Date: {result['date']}; CPU: {env['cpu_model']}, {env['cores']} cores, "
        f"{env['threads']} torch threads; torch {env['torch']}; Python {env['python']}",
        f"- ISA: torch CPU capability {env['isa']['torch_cpu_capability']}, flags "
        f"{', '.join(env['isa']['flags']) or 'none of avx2/avx512/amx'}; native bf16: "
        f"{'yes' if env['isa']['native_bf16'] else 'no'} (so `auto` trains in "
        f"{'bf16' if env['isa']['native_bf16'] else 'fp32'})"
        + confined_note(env["isa"].get("confined", {})),
        f"- Load average before / after: {env['load_before']} / {env['load_after']}; "
        f"whole run {result['seconds']['total']:.0f} s" + (" (--quick)" if result["quick"] else ""),
        "",
        "## Training throughput (ml-100k u1.base, 80,000 ratings per epoch, batch 2000)",
        "",
        "Median of the timed epochs after one warm-up epoch; every variant trained in the same "
        "process, interleaved epoch by epoch (one at a time). Ratios are of those medians, "
        "against the **plain loop** (`benchmarks/reference_loop.py`: tensors, `randperm`, dense "
        "`torch.optim.Adam`, fp32), the tutorials' DataLoader loop and movierec's exact fp32 "
        "path, by wall time and by the process's CPU time (the steadier on a shared machine). "
        "`movierec default` is `RunOptions()`, what `movierec train` runs.",
        "",
        "| config | variant | precision | ratings/s (median) | range | per CPU-s | vs plain loop "
        "(CPU) | vs DataLoader | vs exact fp32 | GFLOP/s |",
        "|---|---|---|---:|---:|---:|---:|---:|---:|---:|",
    ]
    for name, section in result["training"].items():
        for label, row in section["variants"].items():
            if not row["available"]:
                lines.append(f"| {name} | {label} | | {row['why']} | | | | | | |")
                continue
            spread = f"{row['ratings_per_second_worst']:,.0f}-{row['ratings_per_second_best']:,.0f}"
            lines.append(
                f"| {name} | {label} | {row['precision']} | {row['ratings_per_second']:,.0f} | "
                f"{spread} | {row['ratings_per_cpu_second']:,.0f} | "
                f"{_num(row.get('vs_reference'), 2, 'x')} "
                f"({_num(row.get('vs_reference_cpu'), 2, 'x')}) | "
                f"{_num(row.get('vs_dataloader'), 2, 'x')} | {_num(row.get('vs_exact'), 2, 'x')} | "
                f"{row['gflops']:.1f} |"
            )
    lines += [
        "",
        "## Roofline",
        "",
        "Step FLOPs = 3 x the forward GEMMs, `3 * sum(2 * batch * in * out)` over the linear "
        "layers (forward, input gradient, weight gradient); embedding look-ups, element-wise "
        "work and the optimiser are not counted. `mm fwd` is plain `torch.mm` on the forward "
        "shapes `[batch, in] @ [in, out]`; `mm step` runs the three products of a step per "
        "layer. Each variant is compared with the mm figure of its own precision.",
        "",
        "| config | step GFLOP | mm fwd fp32 | mm fwd bf16 | mm step fp32 | mm step bf16 |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for name, roof in result["roofline"].items():
        mm = roof["mm_gflops"]
        lines.append(
            f"| {name} | {roof['step_flops'] / 1e9:.3f} | {mm['forward']['fp32']:.0f} | "
            f"{mm['forward']['bf16']:.0f} | {mm['step']['fp32']:.0f} | {mm['step']['bf16']:.0f} |"
        )
    lines += [
        "",
        "| config | variant | precision | step GFLOP/s | of mm fwd | of mm step |",
        "|---|---|---|---:|---:|---:|",
    ]
    for name, roof in result["roofline"].items():
        for label, row in roof["variants"].items():
            lines.append(
                f"| {name} | {label} | {row['precision']} | {row['gflops']:.1f} | "
                f"{row['fraction_of_mm_forward']:.1%} | {row['fraction_of_mm_step']:.1%} |"
            )
    targets = list(result["time_to_quality"]["targets"])
    lines += [
        "",
        "## Time to quality (ml-100k u1: 80,000 training / 20,000 test ratings)",
        "",
        "movierec models train as `movierec train` does: early stopping on a validation set "
        "carved from the training part. The test set is scored after every epoch **only** to "
        "time when test RMSE first reaches each target; that scoring is not counted in the "
        "seconds and plays no part in model selection. Final RMSE: the weights early stopping "
        "kept. Surprise: default parameters, `random_state=0`, fit on all of u1.base.",
        "",
        "| model | options | "
        + " | ".join(f"s to RMSE <= {t}" for t in targets)
        + " | train / fit s | epochs (best) | final test RMSE |",
        "|---|---|" + "---:|" * (len(targets) + 3),
    ]
    for row in result["time_to_quality"]["rows"]:
        if not row.get("available", True):
            lines.append(f"| {row['model']} | {row['why']} |" + " |" * (len(targets) + 3))
            continue
        if "fit_seconds" in row:
            reached = [
                _num(row["fit_seconds"], 2) if row["test_rmse"] <= float(t) else "not reached"
                for t in targets
            ]
            lines.append(
                f"| {row['model']} | defaults | {' | '.join(reached)} | "
                f"{row['fit_seconds']:.2f} | - | {row['test_rmse']:.4f} |"
            )
            continue
        options = ", ".join(f"{k}={v}" for k, v in row["options"].items()) or "defaults"
        reached = [
            _num(row["seconds_to"][t], 2) if row["seconds_to"][t] is not None else "not reached"
            for t in targets
        ]
        lines.append(
            f"| {row['model']} | {options} | {' | '.join(reached)} | {row['train_seconds']:.2f} | "
            f"{row['epochs']} ({row['best_epoch']}) | {row['final_test_rmse']:.4f} |"
        )
    lines += [
        "",
        "## Inference (CPU, fp32, eval mode)",
        "",
        "Top-10: `Recommender.top_n` for one user over the whole catalogue, seen items excluded. "
        "Batch scoring: `score_items` over every user x every item in `inference_mode`, users "
        "batched as the recommender batches them.",
        "",
        "| model | top-10 median ms | top-10 p99 ms | users timed | scores/s (recommender's "
        "batch) | scores/s by users per batch |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for row in result["inference"]:
        lines.append(
            f"| {row['model']} | {row['median_ms']:.2f} | {row['p99_ms']:.2f} | "
            f"{row['top10_users']} | {row['scores_per_second']:,.0f} "
            f"({row['score_users_per_batch']} users) | "
            + "; ".join(
                f"{users}: {rate:,.0f}"
                for users, rate in row["scores_per_second_by_users_per_batch"].items()
            )
            + " |"
        )
    return "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/bench.json"))
    parser.add_argument("--epochs", type=int, default=5, help="timed epochs per variant")
    parser.add_argument("--users", type=int, default=200, help="users timed for top-10")
    parser.add_argument("--threads", type=int, default=None, help="torch threads (all cores)")
    parser.add_argument("--quick", action="store_true", help="2 timed epochs, fewer repeats")
    parser.add_argument(
        "--training-only", action="store_true", help="throughput and roofline alone (no time to "
        "quality, no inference): the speed ratios in a few minutes"
    )  # fmt: skip
    parser.add_argument("--configs", default=",".join(CONFIGS), help="which network shapes")
    parser.add_argument(
        "--isa", choices=("native", "avx2"), default="native",
        help="avx2: confine PyTorch, MKL and oneDNN to AVX2 kernels (an AVX2-only CPU's stand-in)",
    )  # fmt: skip
    args = parser.parse_args(argv)
    if args.isa == "avx2":
        confine_to_avx2()
    epochs = 2 if args.quick else args.epochs
    mm_rounds, mm_reps = (3, 5) if args.quick else (7, 20)
    users = min(args.users, 50) if args.quick else args.users
    scoring_passes = 2 if args.quick else 5

    began = time.perf_counter()
    load_before = [round(x, 2) for x in os.getloadavg()]
    configure_threads(args.threads)
    threads = torch.get_num_threads()  # every section runs on these (recorded below)
    support = fast_path_support()
    all_variants = variants(support)
    data = load_data("ml-100k")
    split = make_split(data.ratings, "u1", layout=data.layout, seed=SEED)
    encoder, tensors = u1_tensors(split)
    seconds: dict[str, float] = {}

    def reset_compiled() -> None:
        # Compiled graphs of finished variants are not needed again; dropping them keeps
        # later variants under dynamo's per-function recompile limit.
        if support["compile"]:
            torch._dynamo.reset()

    training: dict[str, Any] = {}
    configs = {name: CONFIGS[name] for name in args.configs.split(",")}
    for name, config in configs.items():
        started = time.perf_counter()
        print(f"training throughput: {name}", file=sys.stderr, flush=True)
        training[name] = bench_training(
            name, config, tensors, encoder, all_variants, epochs, data.rating_scale
        )
        seconds[f"training_{name}"] = time.perf_counter() - started
        reset_compiled()

    started = time.perf_counter()
    print("roofline", file=sys.stderr, flush=True)
    roof = {}
    for name, config in configs.items():
        roof[name] = roofline(
            training[name], bench_mm(layer_shapes(config), BATCH, mm_rounds, mm_reps)
        )
    seconds["roofline"] = time.perf_counter() - started

    ttq_rows: list[dict[str, Any]] = []
    recommenders: dict[str, Recommender] = {}
    if not args.training_only:
        ttq_rows, recommenders = quality_rows(data, split, seconds)
    started = time.perf_counter()
    print("inference", file=sys.stderr, flush=True)
    inference = [
        bench_inference(f"{name} (u1, article config)" if name == "embedding-net" else name,
                        recommender, users, scoring_passes)
        for name, recommender in recommenders.items()
    ]  # fmt: skip
    seconds["inference"] = time.perf_counter() - started
    seconds["total"] = time.perf_counter() - began
    result = {
        "command": "python benchmarks/bench.py "
        + shlex.join(sys.argv[1:] if argv is None else argv),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "quick": args.quick,
        "environment": {
            "cpu_model": cpu_model(),
            "isa": isa(),
            "cores": len(os.sched_getaffinity(0)),
            "threads": threads,
            "torch": torch.__version__,
            "python": platform.python_version(),
            "load_before": load_before,
            "load_after": [round(x, 2) for x in os.getloadavg()],
        },
        "fast_path": support,
        "training": training,
        "roofline": roof,
        "time_to_quality": {"targets": [f"{t:.2f}" for t in QUALITY_TARGETS], "rows": ttq_rows},
        "inference": inference,
        "seconds": seconds,
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n", encoding="utf-8")
    table = markdown(result)
    args.out.with_suffix(".md").write_text(table, encoding="utf-8")
    print(table)


AVX2_ONLY = {  # what --isa avx2 sets before PyTorch starts
    "ATEN_CPU_CAPABILITY": "avx2",
    "MKL_ENABLE_INSTRUCTIONS": "AVX2",
    "ONEDNN_MAX_CPU_ISA": "AVX2",
}


def confine_to_avx2() -> None:
    """Re-run this process with :data:`AVX2_ONLY` set, unless it already is (the variables
    must be there before PyTorch, MKL and oneDNN pick their kernels)."""
    if all(os.environ.get(name) == value for name, value in AVX2_ONLY.items()):
        return
    sys.stdout.flush()
    os.execve(sys.executable, [sys.executable, *sys.argv], {**os.environ, **AVX2_ONLY})


def isa() -> dict[str, Any]:
    """Which kernels this CPU gets: PyTorch's dispatch level and its bf16/AMX units."""
    flags: set[str] = set()
    with contextlib.suppress(OSError):
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("flags"):
                flags = set(line.split(":", 1)[1].split())
                break
    return {
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "native_bf16": resolve_precision("auto", torch.device("cpu")) is not None,
        "flags": sorted(flags & {"avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile"}),
        "confined": {name: os.environ[name] for name in AVX2_ONLY if name in os.environ},
    }


def quality_rows(
    data: Any, split: Split, seconds: dict[str, float]
) -> tuple[list[dict[str, Any]], dict[str, Recommender]]:
    """Time to quality of the default and the exact path for the net and MF, and Surprise's."""
    started = time.perf_counter()
    print("time to quality", file=sys.stderr, flush=True)
    prepared = prepare(data, "u1", seed=SEED, validation_fraction=0.1)
    ttq_rows: list[dict[str, Any]] = []
    recommenders: dict[str, Recommender] = {}
    exact = {"precision": "fp32"}
    plans = [("embedding-net", {}, {}), ("mf", {}, {})]
    plans += [("embedding-net", exact, {}), ("mf", exact, {})]
    for model_name, run_extra, train_extra in plans:
        try:
            row, recommender = time_to_quality(prepared, model_name, run_extra, train_extra)
        except Exception as exc:  # a failing fast path is a finding to report, not a crash
            traceback.print_exc()
            options = ", ".join(f"{k}={v}" for k, v in {**run_extra, **train_extra}.items())
            why = f"failed ({options}): {type(exc).__name__}: {str(exc).splitlines()[0]}"
            ttq_rows.append({"model": model_name, "available": False, "why": why})
            continue
        ttq_rows.append(row)
        if not run_extra and not train_extra:
            recommenders[model_name] = recommender
    ttq_rows += surprise_baselines(split, data.rating_scale)
    seconds["time_to_quality"] = time.perf_counter() - started
    return ttq_rows, recommenders


if __name__ == "__main__":
    main()
