"""Top-N ranking on ml-100k: every model and objective side by side (never typed by hand).

    python benchmarks/ranking.py                 # 3 seeds, writes docs/results.md's section
    python benchmarks/ranking.py --seeds 0 --epochs 2   # one seed, a smoke run
    python benchmarks/ranking.py --rows joint --cache /tmp/ranking   # a killed run resumes

With ``--cache DIR`` each (row, seed) run's metrics are written to ``DIR`` as soon as it ends,
and a later run with the same cache reads them back instead of training again: a run killed
after hours loses only the runs in progress. A cached run is reused only when everything that
makes it (model, objective, options, seed, device, epoch cap, the package's commit and torch
version) is the same; clear the folder to measure again on unchanged code.

Protocol (the Microsoft Recommenders benchmark's): the stratified split, 75% of each user's
ratings to train and 25% to test, seeded; every test item is relevant whatever its rating; the
candidates are all items the user did not rate in training; k = 10. Each row is the mean +- sd
over the seeds. Writes only the section between ``<!-- ranking:start -->`` and
``<!-- ranking:end -->`` of ``docs/results.md``, creating the file or the section if needed.
"""

from __future__ import annotations

import argparse
import datetime as dt
import functools
import hashlib
import json
import platform
import statistics
import subprocess
import sys
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from movierec.config import Job, ModelSpec, RunOptions
from movierec.data import load_data
from movierec.experiment import train_model
from movierec.pipeline import prepare

sys.path.insert(0, str(Path(__file__).resolve().parent))
from marked_section import write_marked_section  # shared by the results scripts

RESULTS = Path(__file__).resolve().parents[1] / "docs" / "results.md"
START, END = "<!-- ranking:start -->", "<!-- ranking:end -->"
TITLE = "## Top-N ranking (ml-100k, stratified 75/25, k=10)"
JOINT_START, JOINT_END = "<!-- ranking-joint:start -->", "<!-- ranking-joint:end -->"
JOINT_TITLE = (
    "### One model for ratings and lists: the joint rows beside their references "
    "(same protocol, measured together)"
)
# (model, objective, model options other than the model's defaults)
RUNS: list[tuple[str, str, dict[str, Any]]] = [
    ("popularity", "rating", {}),
    ("ease", "rating", {}),
    ("mf", "rating", {}),
    ("mf", "bpr", {"reg_factors": 0.01}),
    ("mf", "bce", {"reg_factors": 0.01}),
    ("embedding-net", "rating", {}),
    ("embedding-net", "bpr", {}),
    ("embedding-net", "bce", {}),
    ("embedding-net", "joint", {"interaction": "concat+product"}),
    ("mf", "joint", {"ranking_head": True}),
    ("default", "joint", {}),  # movierec's default: the EmbeddingNet + a ranking tower
]
METRICS = [
    ("ndcg@10", "NDCG@10"),
    ("precision@10", "P@10"),
    ("recall@10", "R@10"),
    ("map@10", "MAP@10"),
    ("coverage", "coverage"),
    ("novelty", "novelty"),
    ("long_tail_share", "long tail"),
    ("median_item_ratings", "median n"),
    ("rmse", "RMSE"),
    ("train_seconds", "train s"),
]


def device_name(device: str) -> str:
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return torch.cuda.get_device_name(0)
    for line in Path("/proc/cpuinfo").read_text().splitlines():
        if line.startswith("model name"):
            return line.split(":", 1)[1].strip()
    return platform.processor() or "CPU"


def cell(values: list[Any]) -> str:
    values = [v for v in values if v is not None]
    if not values:
        return "-"
    mean = statistics.fmean(values)
    sd = statistics.stdev(values) if len(values) > 1 else 0.0
    digits = 1 if abs(mean) >= 10 else 3
    return f"{mean:.{digits}f} ± {sd:.{digits}f}"


JOINT_ROWS = ["popularity", "ease", "default-joint"]
"""``--rows joint``: the default (joint) beside the references it must beat, measured together
(a short run for a CPU; the full table has every row)."""


def run_key(name: str, objective: str) -> str:
    return f"{name}-{objective}"


def run_one(
    name: str,
    objective: str,
    model_options: dict[str, Any],
    seed: int,
    device: str,
    epochs: int | None,
) -> dict[str, Any]:
    """One (row, seed) run's metrics: what each worker of ``--jobs`` computes."""
    torch.set_num_threads(1)
    data = load_data("ml-100k", progress=False)
    overrides: dict[str, Any] = {"objective": objective}
    if epochs is not None:
        overrides["epochs"] = epochs
    spec = ModelSpec.resolve(name, model_options=model_options, train_options=overrides)
    prepared = prepare(
        data, "stratified", seed=seed, validation_fraction=spec.train.validation_fraction
    )
    options = RunOptions(seed=seed, device=device, progress=False)
    metrics = train_model(prepared, Job(spec, options, k=10)).metrics
    print(
        f"{name:14s} {objective:6s} seed {seed}: NDCG@10 {metrics['ndcg@10']:.4f}",
        file=sys.stderr,
        flush=True,
    )
    return metrics


def code_version() -> str:
    """The checkout's commit (``-dirty`` with uncommitted changes) and torch's version."""
    root = Path(__file__).resolve().parents[1]
    try:
        commit = subprocess.run(
            ["git", "describe", "--always", "--dirty"],
            cwd=root,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
    except (OSError, subprocess.CalledProcessError):
        commit = "unknown"
    return f"{commit} torch {torch.__version__}"


def cache_path(cache: Path, task: tuple[Any, ...], version: str) -> Path:
    """Where the metrics of one (row, seed) task live in ``cache``: named by the row and seed,
    keyed by a hash of everything that makes the run."""
    name, objective, options, seed, device, epochs = task
    identity = json.dumps([name, objective, options, seed, device, epochs, version], sort_keys=True)
    digest = hashlib.sha256(identity.encode()).hexdigest()[:16]
    return cache / f"{run_key(name, objective)}-seed{seed}-{digest}.json"


def cached_run_one(cache: Path, version: str, *task: Any) -> dict[str, Any]:
    """:func:`run_one`, read from ``cache`` when it holds the task, written there when it ends
    (through a temporary file, so a killed run leaves no half-written entry)."""
    path = cache_path(cache, task, version)
    if path.exists():
        print(f"cached: {path.name}", file=sys.stderr, flush=True)
        return json.loads(path.read_text())
    metrics = run_one(*task)
    partial = path.with_suffix(".partial")
    partial.write_text(json.dumps(metrics, indent=1))
    partial.replace(path)
    return metrics


def run_all(
    seeds: list[int],
    device: str,
    epochs: int | None,
    only: list[str] | None = None,
    jobs: int = 1,
    cache: Path | None = None,
) -> list[dict[str, Any]]:
    """Every selected row over the seeds; ``jobs`` > 1 runs (row, seed) pairs side by side in
    processes of one thread each (the same numbers; the train seconds share the machine);
    ``cache`` keeps each finished (row, seed) run (see the module's docstring)."""
    chosen = [
        run for run in RUNS if only is None or run_key(run[0], run[1]) in only or run[0] in only
    ]
    tasks = [(*run, seed, device, epochs) for run in chosen for seed in seeds]
    work: Any = run_one
    if cache is not None:
        cache.mkdir(parents=True, exist_ok=True)
        work = functools.partial(cached_run_one, cache, code_version())
    if jobs > 1:
        with ProcessPoolExecutor(jobs, mp_context=get_context("spawn")) as pool:
            results = list(pool.map(work, *zip(*tasks, strict=True)))
    else:
        results = [work(*task) for task in tasks]
    rows = []
    for index, (name, objective, model_options) in enumerate(chosen):
        per_seed = results[index * len(seeds) : (index + 1) * len(seeds)]
        rows.append(
            {"model": name, "objective": objective, "options": model_options, "runs": per_seed}
        )
    return rows


def label(row: dict[str, Any]) -> str:
    """The model's name, with the options that make the row differ from its defaults."""
    if row["model"] == "default":
        return "**default** (embedding-net + ranking tower, `src/movierec/default.toml`)"
    options = ", ".join(f"{k} = {v}" for k, v in row["options"].items())
    return f"{row['model']} ({options})" if options else row["model"]


def render(rows: list[dict[str, Any]], seeds: list[int], device: str, command: str) -> str:
    relevance = rows[0]["runs"][0]["relevance"]
    lines = [
        START,
        TITLE,
        "",
        f"Generated by `{command}` on {dt.date.today().isoformat()}: {device_name(device)}, "
        f"torch {torch.__version__}. Stratified split of ml-100k (per user, a seeded 25% of the "
        f"ratings to test), seeds {', '.join(map(str, seeds))}; mean ± sd over the seeds. "
        f"Relevant: {relevance} (as the published table); candidates: every item the user did "
        f"not rate in training; k = 10. MAP@10 divides by min(relevant, 10), so it is larger "
        f"than the Recommenders library's MAP, which divides by all relevant items. Novelty: "
        f"mean popularity rank of the recommended items (1 = most rated); long tail: share of "
        f"recommended items with fewer than 10 training ratings; median n: median training "
        f"ratings of the recommended items. RMSE is blank for runs "
        f"that rank rather than predict ratings.",
        "",
        "| model | objective | " + " | ".join(h for _, h in METRICS) + " | epochs |",
        "|---|---|" + "---:|" * (len(METRICS) + 1),
    ]
    for row in rows:
        cells = [cell([run.get(key) for run in row["runs"]]) for key, _ in METRICS]
        epochs = cell([float(run["epochs"]) for run in row["runs"]])
        lines.append(
            f"| {label(row)} | {row['objective']} | " + " | ".join(cells) + f" | {epochs} |"
        )
    lines += [
        "",
        "Published on the same protocol (Microsoft Recommenders, ml-100k, NDCG@10): SVD 0.096, "
        "fastai dot+bias 0.148, NCF 0.396, BPR 0.442, BiVAE 0.475.",
        "",
        "One run from the command line: `movierec train --data ml-100k --split stratified "
        "--model mf --objective bpr --json`.",
        END,
    ]
    return "\n".join(lines)


def write_section(section: str, path: Path = RESULTS) -> None:
    write_marked_section(section, path, START, END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds.")
    parser.add_argument("--device", default="auto")
    parser.add_argument("--epochs", type=int, default=None, help="Cap epochs (smoke runs).")
    parser.add_argument("--out", type=Path, default=RESULTS)
    parser.add_argument(
        "--rows",
        default=None,
        help="'joint': only the joint rows and their references, into their own section "
        "(a shorter run on a CPU); default: every row, the main table.",
    )
    parser.add_argument(
        "--jobs", type=int, default=1, help="Processes running (row, seed) pairs side by side."
    )
    parser.add_argument(
        "--cache",
        type=Path,
        default=None,
        help="Folder keeping each finished (row, seed) run, read back by a later run.",
    )
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",")]
    only = JOINT_ROWS if args.rows == "joint" else None
    rows = run_all(seeds, args.device, args.epochs, only, args.jobs, args.cache)
    command = (
        "python benchmarks/ranking.py"
        + ("" if args.seeds == "0,1,2" else f" --seeds {args.seeds}")
        + (f" --rows {args.rows}" if args.rows else "")
        + (f" --jobs {args.jobs}" if args.jobs > 1 else "")
    )
    section = render(rows, seeds, args.device, command)
    if only is not None:
        section = section.replace(START, JOINT_START).replace(END, JOINT_END)
        section = section.replace(TITLE, JOINT_TITLE)
        write_marked_section(section, args.out, JOINT_START, JOINT_END)
    else:
        write_section(section, args.out)
    print(f"wrote {args.out}", file=sys.stderr)


if __name__ == "__main__":
    main()
