"""GPU check, for sessions lent a CUDA machine (never a CI requirement): one script, one JSON.

    bash benchmarks/gpu.sh                 # on the GPU: writes $OUT/gpu.json, else
                                           # benchmarks/results/gpu.json; <= 7 minutes
    bash benchmarks/gpu.sh --dry-run       # the same code paths on the CPU, small set, 1 thread:
                                           # benchmarks/results/gpu-dryrun.json, < 2 minutes

What it measures (issue 16, item 4): one epoch of a 25M-shaped synthetic set (ml-25m's 162,541
users, 59,047 items; its 25,000,095 ratings rounded up to 25,165,824 = 24 * 2**20 distinct
ones, so that every batch size divides the epoch; Zipf-like activity and popularity and
low-rank ratings, the law of :func:`movierec.data.synthetic.synthetic_ratings`, drawn here with
torch on the device instead of ~45 s of numpy and pandas) through the article's
EmbeddingNet, the data resident on the device. Every variant trains a warm-up epoch (allocator,
cuBLAS heuristics, compilation) and then the timed one; both epochs' seconds, ratings/s of the
timed one, the train loss of each epoch (divergence is visible: the learning rate stays the
article's 1e-3 at every batch size, this is a speed measurement) and the MSE of the model on a
fixed sample of the training ratings after each epoch (no dropout; the plain loop has no loss of
its own to report) go into the JSON, which is rewritten after every variant so that a timeout
still leaves what was measured. The target: the timed epoch in <= 2 s (>= 10M ratings/s; goal
34M/s, NVIDIA's NCF on one A100); ``best`` names the fastest variant and whether it meets it.

Variants at batch 65,536, 262,144 and 1,048,576 (``--batches``), every RunOptions field spelled
out so that a change of the package's defaults does not change what a variant means:

- ``bf16 dense``: bf16 autocast (TF32 for what stays fp32), fused Adam, PyTorch's dropout (its
  CUDA kernel is already fused; ``fast_dropout`` is a CPU remedy), dense embedding gradients.
- ``plain loop``: :class:`reference_loop.PlainLoop` on the same device-resident tensors (fp32,
  TF32 off, ``torch.optim.Adam`` as PyTorch picks it, a device ``randperm`` per epoch).
- ``bf16 row-wise``: as ``bf16 dense`` with ``embedding_optimizer = "row-wise"`` (sparse table
  gradients and lazy row-wise Adam: no dense pass over 33M embedding weights per step).
- ``bf16 dense compile``: ``torch.compile`` of the forward and loss (the package refuses it with
  row-wise); dynamo's cache is reset before each, so no recompile limit carries over.
- ``fp32`` and ``tf32``: fused Adam, dense gradients, TF32 matmuls off and on (set for the
  variant and restored: the bf16 path turns TF32 on for the rest of the process).
- ``defaults row-wise``: ``RunOptions()`` as this checkout defines it (its fields recorded).
- ``legacy fp32 b8192``: fp32, PyTorch's Adam, batch 8192: the first GPU measurement's settings.

Order (:func:`plan`): at the largest batch bf16 dense, the plain loop, row-wise and compiled;
then the ml-100k ``u1`` check (EmbeddingNet and MF trained on the device in fp32, EmbeddingNet in
bf16: "RMSE of the u1 run unchanged"; saved, reloaded on the CPU; skipped with a reason when
ml-100k is not in ``$MOVIEREC_HOME``, as the GPU machine is offline); the other batches; the
precision ladder; defaults and legacy; last the compiled variants of the other batches, tens of
seconds of compilation each. Before them, ``overheads`` times a permutation of the data drawn
on the CPU and copied (serial, threads do not help: 2.5 s for 25.2M on a busy Xeon: what the
trainer paid every epoch before issue #16) and one drawn on the device (what the trainer and the
plain loop draw now).

A time budget (``--budget``, 380 s; gpu.sh's timeout is 420 s) guards the whole: no variant
starts with less than ``--reserve`` seconds left (60 s for a compiled one), and one whose
warm-up shows the timed epoch would not fit stops there (``status`` says so). A failing variant
(out of memory, a compiler error) is recorded with its one-line error and the next one runs.
The dry run caps compiled variants at one (``--max-compiled``: 35-50 s of CPU compilation each).

Not tried: CUDA graphs. Capturing the whole step needs a static batch, the learning rate and
Adam's step as device tensors (``capturable=True``) and no host sync inside the step (the
row-wise optimiser's ``coalesce`` has one): a package change (a ``mode="reduce-overhead"``
compile option, or a captured step in :class:`~movierec.train.trainer.Trainer`), while at
>= 65,536 ratings a step an epoch has at most 384 steps, so launch costs are a small share.
The wide config (500-500-500) of the first GPU measurement is not rerun: the article config is
the one compared with NCF.
"""

from __future__ import annotations

import argparse
import contextlib
import dataclasses
import gc
import json
import math
import os
import sys
import tempfile
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import cpu_model  # one definition for every benchmark script
from device_synthetic import RATING_SCALE, SHAPE_25M, synthetic_tensors
from recommend_all import cpu_isa
from reference_loop import PlainLoop

from movierec.artifacts import load_run
from movierec.config import RunOptions, TrainConfig
from movierec.data.catalogue import cache_dir
from movierec.data.tensors import RatingTensors
from movierec.experiment import compare_models
from movierec.models import build_model
from movierec.train import fit, precision

ARTICLE = {"n_factors": 150, "hidden": [100, 200, 300], "dropouts": [0.25, 0.5]}
TARGET = {"epoch_seconds": 2.0, "ratings_per_second": 10e6, "goal_ratings_per_second": 34e6}
MSE_SAMPLE = 1 << 20  # training rows the sample MSE is measured on
COMPILE_RESERVE = 60.0  # seconds a compiled variant needs left to start (compiling is slow)


@dataclasses.dataclass(frozen=True)
class Variant:
    """One timed configuration: which loop, at which batch, with which fast-path switches.

    ``defaults`` takes the RunOptions fields as this checkout defines them instead of the
    ones spelled out here (precision, fused_adam, fast_dropout, compile).
    """

    name: str
    batch_size: int
    loop: str = "movierec"  # or "plain"
    precision: str = "bf16"
    fused_adam: bool = True
    fast_dropout: bool = False
    compile: bool = False
    tf32: bool = False
    embedding_optimizer: str = "dense"
    defaults: bool = False

    def run_options(self, base: RunOptions) -> RunOptions:
        """``base`` (seed, device, threads, progress) with this variant's switches."""
        if self.defaults:
            return base
        return dataclasses.replace(
            base,
            precision=self.precision,
            fused_adam=self.fused_adam,
            fast_dropout=self.fast_dropout,
            compile=self.compile,
        )

    def train_config(self) -> TrainConfig:
        """Two epochs (warm-up, timed) at the article's lr, no early stopping."""
        return TrainConfig(
            epochs=2,
            batch_size=self.batch_size,
            lr=1e-3,
            weight_decay=1e-5,
            schedule="constant",
            patience=0,
            embedding_optimizer=self.embedding_optimizer,
        )


U1 = "u1"  # the plan's marker for the ml-100k u1 check


def plan(batches: list[int], legacy_batch: int) -> list[Variant | str]:
    """Every step in the order it runs: at the largest batch the candidates, the plain loop and
    the compiled one; the u1 check; the other batches; the precision ladder; the defaults and
    the first measurement's settings; last the compiled variants of the other batches (tens of
    seconds of compilation each, the first to go when time runs short)."""
    largest, *others = sorted(batches, reverse=True)

    def group(batch: int) -> list[Variant]:
        return [
            Variant(f"bf16 dense b{batch}", batch),
            Variant(f"plain loop b{batch}", batch, loop="plain", precision="fp32"),
            Variant(f"bf16 row-wise b{batch}", batch, embedding_optimizer="row-wise"),
        ]

    def compiled(batch: int) -> Variant:
        return Variant(f"bf16 dense compile b{batch}", batch, compile=True)

    def ladder(batch: int) -> list[Variant]:
        return [
            Variant(f"fp32 b{batch}", batch, precision="fp32"),
            Variant(f"tf32 b{batch}", batch, precision="fp32", tf32=True),
        ]

    middle = sorted(batches)[len(batches) // 2]
    return [
        *group(largest),
        compiled(largest),
        U1,
        *[v for batch in others for v in group(batch)],
        *[v for batch in (largest, *others) for v in ladder(batch)],
        Variant(
            f"defaults row-wise b{middle}", middle, embedding_optimizer="row-wise", defaults=True
        ),
        Variant(f"legacy fp32 b{legacy_batch}", legacy_batch, precision="fp32", fused_adam=False),
        *[compiled(batch) for batch in others],
    ]


# --- data ------------------------------------------------------------------------------------


def sample_rows(n: int, device: torch.device) -> torch.Tensor:
    """A fixed sample of training rows the models' MSE is measured on (the same for all)."""
    g = torch.Generator(device=device).manual_seed(1)
    return torch.randperm(n, generator=g, device=device)[: min(n, MSE_SAMPLE)]


@torch.no_grad()
def sample_mse(model: torch.nn.Module, data: RatingTensors, rows: torch.Tensor) -> float:
    """MSE of ``model`` (eval mode, fp32) on the training ``rows``; the model is left in
    training mode (both loops set it themselves at an epoch's start)."""
    model.eval()
    total = 0.0
    for chunk in rows.split(1 << 18):
        predicted = model(data.user_idx[chunk], data.item_idx[chunk]).reshape(-1).float()
        total += float(((predicted - data.rating[chunk]) ** 2).sum())
    model.train()
    return total / max(1, len(rows))


# --- timing ----------------------------------------------------------------------------------


def sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def overheads(n: int, device: torch.device) -> dict[str, float]:
    """Seconds of an epoch's permutation: a CPU generator's ``randperm`` and its copy to the
    device (the trainer's way before issue #16), and a device ``randperm`` (its way now)."""
    generator = torch.Generator().manual_seed(0)
    started = time.perf_counter()
    order = torch.randperm(n, generator=generator)
    cpu = time.perf_counter() - started
    order.to(device)
    sync(device)
    copied = time.perf_counter() - started - cpu
    started = time.perf_counter()
    torch.randperm(n, device=device)
    sync(device)
    return {
        "cpu_permutation_and_copy_seconds": cpu + copied,
        "cpu_randperm_seconds": cpu,
        "copy_to_device_seconds": copied,
        "device_randperm_seconds": time.perf_counter() - started,
    }


@contextlib.contextmanager
def tf32(enabled: bool) -> Iterator[None]:
    """TF32 matmuls on CUDA on or off inside the block (the bf16 path turns them on for the
    rest of the process: :func:`movierec.train.precision.enable_tf32`), restored after."""
    matmul, cudnn = torch.backends.cuda.matmul, torch.backends.cudnn
    saved = matmul.allow_tf32, cudnn.allow_tf32
    matmul.allow_tf32 = cudnn.allow_tf32 = enabled
    try:
        yield
    finally:
        matmul.allow_tf32, cudnn.allow_tf32 = saved


class OutOfTime(Exception):
    """The timed epoch would not fit in what is left of the budget."""


class Budget:
    """The script's deadline: may a step start, and may a variant's timed epoch run."""

    def __init__(self, seconds: float, reserve: float, max_compiled: int) -> None:
        self.deadline = time.perf_counter() + seconds
        self.reserve = reserve
        self.max_compiled, self.compiled = max_compiled, 0  # compiled variants: allowed, run

    def left(self) -> float:
        return self.deadline - time.perf_counter()

    def may_start(self, compiled: bool = False) -> bool:
        return self.left() > max(self.reserve, COMPILE_RESERVE if compiled else 0.0)

    def check_epoch(self, warm_up_seconds: float) -> None:
        """Raise :class:`OutOfTime` when another epoch as long as the warm-up would not fit."""
        if warm_up_seconds * 1.1 > self.left():
            raise OutOfTime(
                f"stopped after the warm-up epoch ({warm_up_seconds:.1f} s): "
                f"{self.left():.0f} s of the budget left"
            )


@dataclasses.dataclass(frozen=True)
class Bench:
    """What every variant shares: the resident data and its shape, the base run options, the
    rows of the sample MSE and the budget."""

    data: RatingTensors
    shape: tuple[int, int]
    base: RunOptions
    rows: torch.Tensor
    budget: Budget


# --- variants --------------------------------------------------------------------------------


def run_movierec(variant: Variant, bench: Bench) -> dict[str, Any]:
    """Two epochs of ``movierec.train.fit`` (the package's one loop) on the resident data."""
    data, rows, budget = bench.data, bench.rows, bench.budget
    options = variant.run_options(bench.base)
    device = data.rating.device
    torch.manual_seed(options.seed)
    model = build_model("embedding-net", *bench.shape, RATING_SCALE, ARTICLE)
    mse: list[float] = []

    def on_epoch(record: Any) -> None:
        mse.append(sample_mse(model, data, rows))
        if record.epoch == 1 and not options.compile:  # a compiled warm-up is mostly compiling
            budget.check_epoch(record.seconds)

    with tf32(variant.tf32):
        try:
            fitted = fit(model, data, None, variant.train_config(), options, on_epoch)
            history, status = fitted.history, "ok"
        except OutOfTime as stop:
            history, status = [], str(stop)
        tf32_used = torch.backends.cuda.matmul.allow_tf32  # the bf16 path turns it on
    dtype = precision.resolve_precision(options.precision, device)
    return {
        "options": {
            **{f: getattr(options, f) for f in ("precision", "fused_adam", "fast_dropout")},
            "compile": options.compile,
            "embedding_optimizer": variant.embedding_optimizer,
            "autocast": str(dtype).removeprefix("torch.") if dtype is not None else None,
            "tf32": bool(tf32_used) if device.type == "cuda" else None,
        },
        "epoch_seconds": [r.seconds for r in history],
        "train_loss": [r.train_loss for r in history],
        "sample_mse": mse,
        "status": status,
    }


def run_plain(variant: Variant, bench: Bench) -> dict[str, Any]:
    """Two epochs of the plain loop on the same resident tensors (fp32, TF32 off)."""
    data, rows, budget = bench.data, bench.rows, bench.budget
    with tf32(False):
        loop = PlainLoop(
            data.user_idx,
            data.item_idx,
            data.rating,
            batch_size=variant.batch_size,
            seed=bench.base.seed,
            **ARTICLE,
        )
        seconds, mse, status = [], [], "ok"
        for epoch in (1, 2):
            seconds.append(loop.epoch())
            mse.append(sample_mse(loop.model, data, rows))
            if epoch == 1:
                try:
                    budget.check_epoch(seconds[0])
                except OutOfTime as stop:
                    seconds, status = [], str(stop)
                    break
    return {
        "options": {"precision": "fp32", "optimizer": "torch.optim.Adam", "tf32": False},
        "epoch_seconds": seconds,
        "train_loss": None,
        "sample_mse": mse,
        "status": status,
    }


def run_variant(variant: Variant, bench: Bench) -> dict[str, Any]:
    """One variant's row: what it ran, its epochs, and its throughput against the target."""
    data, budget = bench.data, bench.budget
    device = data.rating.device
    row: dict[str, Any] = {
        "name": variant.name,
        "loop": variant.loop,
        "batch_size": variant.batch_size,
        "steps_per_epoch": math.ceil(len(data) / variant.batch_size),
    }
    if variant.compile and budget.compiled >= budget.max_compiled:
        return {**row, "status": f"skipped: --max-compiled {budget.max_compiled}"}
    if not budget.may_start(compiled=variant.compile):
        return {**row, "status": f"skipped: {budget.left():.0f} s of the budget left"}
    if variant.compile:
        budget.compiled += 1
        torch._dynamo.reset()  # a fresh cache: no recompile limit carried over
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)
    started = time.perf_counter()
    try:
        if variant.loop == "plain":
            row |= run_plain(variant, bench)
        else:
            row |= run_movierec(variant, bench)
    except Exception as exc:  # recorded; the next variant runs
        row["status"] = f"failed: {type(exc).__name__}: {one_line(exc)}"
    row["wall_seconds"] = time.perf_counter() - started
    if device.type == "cuda":
        row["peak_gib"] = torch.cuda.max_memory_allocated(device) / 2**30
    seconds = row.get("epoch_seconds") or []
    if len(seconds) == 2 and row["status"] == "ok":
        row["ratings_per_second"] = len(data) / seconds[1]
        row["meets_target"] = (
            seconds[1] <= TARGET["epoch_seconds"]
            and row["ratings_per_second"] >= TARGET["ratings_per_second"]
        )
        losses = [*(row.get("train_loss") or []), *row["sample_mse"]]
        row["finite"] = all(math.isfinite(v) for v in losses)
    return row


def summary(row: dict[str, Any]) -> str:
    """A variant's line on stdout (the JSON has the rest): what, how long, how fast."""
    if "ratings_per_second" not in row:
        return f"{row['name']}: {row['status']}"
    warm, timed = row["epoch_seconds"]
    return (
        f"{row['name']}: {timed:.3f} s ({warm:.1f} s warm-up), "
        f"{row['ratings_per_second'] / 1e6:.2f}M ratings/s, sample MSE {row['sample_mse'][-1]:.4f}"
        f"{'  TARGET MET' if row['meets_target'] else ''}"
    )


def one_line(exc: BaseException) -> str:
    """An exception's first line, cut to 300 characters (a compiler's error runs to pages)."""
    return (str(exc).strip().splitlines() or [""])[0][:300]


# --- ml-100k u1 ------------------------------------------------------------------------------


def u1_check(base: RunOptions, runs: Path, epochs: int | None) -> dict[str, Any]:
    """EmbeddingNet and MF on ml-100k u1 in fp32, EmbeddingNet in bf16 (fused Adam): test RMSE,
    each run saved and reloaded on the CPU."""
    train = {"epochs": epochs} if epochs is not None else None
    fp32 = dataclasses.replace(base, precision="fp32", fused_adam=False, fast_dropout=False)
    bf16 = dataclasses.replace(fp32, precision="bf16", fused_adam=True)
    rows = []
    for label, options, models in (
        ("fp32", fp32, ["embedding-net", "mf"]),
        ("bf16", bf16, ["embedding-net"]),
    ):
        out = runs / label
        with tf32(False):
            done = compare_models(
                "ml-100k", models, split="u1", out=out, options=options, train_options=train
            )
        for run in done:
            reloaded, _ = load_run(out / run.metrics["label"])  # loads on the CPU
            metrics = run.metrics
            rows.append(
                {
                    "model": run.metrics["label"],
                    "precision": label,
                    "rmse": metrics["rmse"],
                    "ndcg@10": metrics["ndcg@10"],
                    "epochs": metrics["epochs"],
                    "train_seconds": metrics["train_seconds"],
                    "ratings_per_second": metrics["ratings_per_second"],
                    "reloaded_on": str(next(reloaded.model.parameters()).device),
                }
            )
            print("u1", json.dumps(rows[-1]), flush=True)
    rmse = {(r["model"], r["precision"]): r["rmse"] for r in rows}
    change = rmse[("embedding-net", "bf16")] - rmse[("embedding-net", "fp32")]
    return {"runs": rows, "embedding_net_bf16_minus_fp32_rmse": change}


def run_u1(base: RunOptions, runs: Path | None, epochs: int | None) -> dict[str, Any] | str:
    """:func:`u1_check` saving under ``runs`` (or a temporary folder removed afterwards); a
    failure (ml-100k not in ``$MOVIEREC_HOME``, say) is returned as its one line."""
    home = cache_dir() / "ml-100k"
    if not (home / "u.data").is_file():  # the GPU machine is offline: no download to wait on
        return f"skipped: ml-100k is not in {home} (carry .cache/movierec to the GPU machine)"
    try:
        if runs is not None:
            return u1_check(base, runs, epochs)
        with tempfile.TemporaryDirectory(prefix="gpu-check-u1-") as tmp:
            return u1_check(base, Path(tmp), epochs)
    except Exception as exc:  # recorded; the variants still run
        return f"failed: {type(exc).__name__}: {one_line(exc)}"


# --- the report ------------------------------------------------------------------------------


class Report:
    """The JSON being built, rewritten (atomically) after every step."""

    def __init__(self, path: Path, head: dict[str, Any]) -> None:
        self.path, self.data = path, {**head, "variants": []}
        self.started = time.perf_counter()

    def write(self) -> None:
        self.data["elapsed_seconds"] = time.perf_counter() - self.started
        self.data["best"] = best(self.data["variants"], self.data["target"])
        self.data["times_plain_loop_same_batch"] = against_plain(self.data["variants"])
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.tmp")
        tmp.write_text(json.dumps(self.data, indent=2) + "\n")
        os.replace(tmp, self.path)


def best(variants: list[dict[str, Any]], target: dict[str, Any]) -> dict[str, Any] | None:
    """The fastest finished variant, the plain loop's best, their ratio, and the verdict."""
    done = [v for v in variants if "ratings_per_second" in v and v.get("finite")]
    if not done:
        return None
    top = max(done, key=lambda v: v["ratings_per_second"])
    plain = [v for v in done if v["loop"] == "plain"]
    plain_top = max(plain, key=lambda v: v["ratings_per_second"]) if plain else None
    return {
        "name": top["name"],
        "epoch_seconds": top["epoch_seconds"][1],
        "ratings_per_second": top["ratings_per_second"],
        "meets_target": top["meets_target"] and target["applies"],
        "meets_goal": target["applies"]
        and top["ratings_per_second"] >= target["goal_ratings_per_second"],
        "plain_loop": plain_top and plain_top["name"],
        "times_plain_loop": plain_top
        and top["ratings_per_second"] / plain_top["ratings_per_second"],
    }


def against_plain(variants: list[dict[str, Any]]) -> dict[str, float]:
    """Each finished movierec variant's ratings/s over the plain loop's at its batch size."""
    plain = {
        v["batch_size"]: v["ratings_per_second"]
        for v in variants
        if v["loop"] == "plain" and "ratings_per_second" in v
    }
    return {
        v["name"]: v["ratings_per_second"] / plain[v["batch_size"]]
        for v in variants
        if v["loop"] != "plain" and "ratings_per_second" in v and v["batch_size"] in plain
    }


def head(args: argparse.Namespace, device: torch.device, argv: list[str]) -> dict[str, Any]:
    """What the JSON opens with: what ran, where, and what the numbers are held to."""
    cuda = device.type == "cuda"
    return {
        "kind": "gpu" if cuda else "cpu dry run (code paths only; not a GPU measurement)",
        "command": " ".join(["benchmarks/gpu_check.py", *argv]),  # gpu.sh passes its arguments
        "date": datetime.now(UTC).strftime("%Y-%m-%d %H:%M UTC"),
        "device": torch.cuda.get_device_name(device) if cuda else "cpu",
        "gpu_memory_gib": (
            torch.cuda.get_device_properties(device).total_memory / 2**30 if cuda else None
        ),
        "cpu": cpu_model(),
        "cpu_isa": cpu_isa(),
        "torch_cpu_capability": torch.backends.cpu.get_cpu_capability(),
        "threads": torch.get_num_threads(),
        "torch": torch.__version__,
        "cuda": torch.version.cuda,
        "budget_seconds": args.budget,
        "target": {
            **TARGET,
            "applies": cuda and args.ratings >= 20_000_000,
            "note": "the timed epoch of the 25M-shaped set on one H100/H200",
        },
    }


DRY_RUN = {
    "device": "cpu",
    "ratings": 3 * 2**12,
    "users": 3_000,
    "items": 1_000,
    "batches": "256,1024,4096",
    "threads": 1,
    "budget": 110.0,
    "reserve": 3.0,
    "u1_epochs": 1,
    "max_compiled": 1,
    "out": Path("benchmarks/results/gpu-dryrun.json"),
}


def parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument(
        "--dry-run",
        action="store_true",
        help="the CPU dry run: every code path on a small set, 1 thread "
        f"({', '.join(f'{k}={v}' for k, v in DRY_RUN.items())}); "
        "options given after it override these",
    )
    parser.add_argument("--device", default="cuda")
    parser.add_argument("--ratings", type=int, default=SHAPE_25M["ratings"])
    parser.add_argument("--users", type=int, default=SHAPE_25M["users"])
    parser.add_argument("--items", type=int, default=SHAPE_25M["items"])
    parser.add_argument("--batches", default="65536,262144,1048576")
    parser.add_argument("--legacy-batch", type=int, default=8192)
    parser.add_argument(
        "--only",
        default=None,
        help="comma-separated substrings: run only the variants whose name has "
        "one (and u1 if listed)",
    )
    parser.add_argument("--skip-u1", action="store_true")
    parser.add_argument("--u1-epochs", type=int, default=None, help="cap u1's epochs")
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument("--budget", type=float, default=380.0, help="seconds for the whole")
    parser.add_argument(
        "--reserve", type=float, default=25.0, help="no variant starts with fewer seconds left"
    )
    parser.add_argument(
        "--max-compiled",
        type=int,
        default=99,
        help="compiled variants to run at most (each compiles for tens of "
        "seconds; the dry run compiles one)",
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/gpu.json"))
    parser.add_argument(
        "--runs",
        type=Path,
        default=None,
        help="where the u1 runs are saved (default: a temporary folder)",
    )
    if "--dry-run" in argv:
        parser.set_defaults(**DRY_RUN)
    args = parser.parse_args(argv)
    if os.environ.get("OUT"):  # the device tool's folder of files to bring back
        args.out = Path(os.environ["OUT"]) / args.out.name
    return args


def selected(steps: list[Variant | str], args: argparse.Namespace) -> list[Variant | str]:
    """The plan less what ``--only`` / ``--skip-u1`` leave out."""
    words = [w.strip() for w in (args.only or "").split(",") if w.strip()]

    def keep(step: Variant | str) -> bool:
        name = step if isinstance(step, str) else step.name
        return not words or any(word in name for word in words)

    return [s for s in steps if keep(s) and not (s == U1 and args.skip_u1)]


def main(argv: list[str] | None = None) -> dict[str, Any]:
    """Run the plan; returns the report (also written to ``--out`` or ``$OUT/<name>``)."""
    argv = sys.argv[1:] if argv is None else argv
    args = parse_args(argv)
    if args.threads:
        torch.set_num_threads(args.threads)
    device = torch.device(args.device)
    if device.type == "cuda" and not torch.cuda.is_available():
        print(
            "gpu_check: PyTorch sees no CUDA device here; `bash benchmarks/gpu.sh --dry-run` "
            "runs the CPU dry run",
            file=sys.stderr,
        )
        raise SystemExit(2)
    report = Report(args.out, head(args, device, argv))
    budget = Budget(args.budget, args.reserve, args.max_compiled)
    base = RunOptions(seed=0, device=args.device, threads=args.threads, progress=False)
    started = time.perf_counter()
    data = synthetic_tensors(args.users, args.items, args.ratings, device)
    sync(device)
    report.data["synthetic"] = {
        "ratings": len(data),
        "users": args.users,
        "items": args.items,
        "on": str(device),
        "generate_seconds": time.perf_counter() - started,
    }
    report.data["overheads"] = overheads(len(data), device)
    report.write()
    print(json.dumps({k: report.data[k] for k in ("synthetic", "overheads")}), flush=True)
    rows = sample_rows(len(data), device)
    bench = Bench(data, (args.users, args.items), base, rows, budget)
    batches = [int(b) for b in args.batches.split(",")]
    for step in selected(plan(batches, args.legacy_batch), args):
        if step == U1:
            u1_started = time.perf_counter()
            report.data["ml100k_u1"] = (
                run_u1(base, args.runs, args.u1_epochs) if budget.may_start() else "skipped"
            )
            report.data["ml100k_u1_seconds"] = time.perf_counter() - u1_started
        else:
            row = run_variant(step, bench)
            report.data["variants"].append(row)
            print(summary(row), flush=True)
        if device.type == "cuda":  # free the last step's model and optimiser state on the GPU
            gc.collect()  # (reference cycles hold some; 0.1-0.4 s, so not on the CPU)
            torch.cuda.empty_cache()
        report.write()
    print(json.dumps(report.data["best"], indent=2))
    return report.data


if __name__ == "__main__":
    main()
