"""Rating prediction on ml-100k: every config on two protocols beside Surprise (generated).

    python benchmarks/rating_results.py           # the full run: docs/results.md + ratings.json
    python benchmarks/rating_results.py --quick   # smoke run: 1 seed, 2 epochs, 2 Surprise models
    python benchmarks/rating_results.py --only sparse-fc,glocal-k   # re-measure some rows

Runs :mod:`movierec.evaluate.protocols` twice over every ``configs/ml100k/*.toml`` (sorted by
file name; each model's defaults when the folder holds none) and Surprise's BaselineOnly, SVD,
SVDpp and KNNBaseline (item-based, pearson_baseline) with default settings:

- ``u1``: train ``u1.base``, test ``u1.test``; seeds 0, 1, 2; mean +- sd over the seeds.
- ``5-fold``: ``u1``..``u5``; seed 0 on each fold; mean +- sd over the folds.

Validation for early stopping is carved from each fold's training part; each run touches its
test set once. Writes only the section between ``<!-- rating:start -->`` and
``<!-- rating:end -->`` of ``docs/results.md`` (creating the section if needed) and every run's
numbers to ``benchmarks/results/ratings.json``.

``--only STEM,...`` runs only those ``configs/ml100k/STEM.toml`` (both protocols, no Surprise)
and merges them into the rows of the existing JSON: a new config gets its row, a re-measured one
replaces its old row, every other row is kept as measured before, and the section says which
rows were measured when (the header's date and machine are the full run's).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import platform
import sys
import time
from concurrent.futures import ProcessPoolExecutor
from multiprocessing import get_context
from pathlib import Path
from typing import Any

import torch

from movierec.config import ModelSpec, RunOptions
from movierec.data import load_data
from movierec.errors import ConfigError, MovieRecError
from movierec.evaluate.protocols import (
    SURPRISE_DEFAULT,
    BenchmarkResult,
    Entry,
    Row,
    RunRecord,
    require_surprise,
    run_benchmark,
)

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import cpu_model  # one definition for every benchmark script
from marked_section import write_marked_section

ROOT = Path(__file__).resolve().parents[1]
CONFIG_DIR = ROOT / "configs" / "ml100k"
RESULTS = ROOT / "docs" / "results.md"
JSON_OUT = ROOT / "benchmarks" / "results" / "ratings.json"
START, END = "<!-- rating:start -->", "<!-- rating:end -->"
NOTES_START, NOTES_END = "<!-- rating-notes:start -->", "<!-- rating-notes:end -->"
FALLBACK_MODELS = ("embedding-net", "mf")  # when configs/ml100k/ holds no file
QUICK_SURPRISE = ("BaselineOnly", "SVD")
# Published u1 test RMSEs (not run here): (model, RMSE as published, source).
PUBLISHED = [
    (
        "GC-MC",
        "0.905-0.910",
        "Berg, Kipf, Welling 2017, *Graph Convolutional Matrix Completion*, arXiv:1706.02263 "
        "(0.910; 0.905 with side features)",
    ),
    (
        "Sparse FC",
        "~0.895",
        "Muller, Martel, Indiveri 2018, *Kernelized Synaptic Weight Matrices*, ICML 2018",
    ),
    (
        "GLocal-K",
        "0.889",
        "Han, Lim, Long, Burgstaller, Poon 2021, *GLocal-K: Global and Local Kernels for "
        "Recommender Systems*, CIKM 2021, arXiv:2108.12184",
    ),
]


def entries(epochs: int | None, only: list[str] | None = None) -> list[Entry]:
    """One row per ``configs/ml100k/*.toml`` in file-name order, else the fallback models;
    with ``only``, the configs of those file stems (a ConfigError names an unknown one)."""
    overrides = {"epochs": epochs} if epochs is not None else None
    files = sorted(CONFIG_DIR.glob("*.toml"))
    if only is not None:
        known = {path.stem: path for path in files}
        unknown = [stem for stem in only if stem not in known]
        if unknown:
            raise ConfigError(
                f"--only: no configs/ml100k/{unknown[0]}.toml; the configs are "
                f"{', '.join(sorted(known))}"
            )
        files = [known[stem] for stem in sorted(set(only))]
    if not files:
        print(f"no configs in {CONFIG_DIR}: using the defaults of {', '.join(FALLBACK_MODELS)}")
        return [
            Entry(ModelSpec.resolve(name, train_options=overrides), None)
            for name in FALLBACK_MODELS
        ]
    return [
        Entry(
            ModelSpec.resolve(config_path=path, train_options=overrides),
            str(path.relative_to(ROOT)),
        )
        for path in files
    ]


def result_from_dict(data: dict[str, Any]) -> BenchmarkResult:
    """A protocol's :class:`BenchmarkResult` back from the JSON :meth:`to_dict` wrote."""
    rows = [
        Row(row["model"], row["config"], row["source"], [RunRecord(**r) for r in row["per_run"]])
        for row in data["rows"]
    ]
    return BenchmarkResult(data["dataset"], data["protocol"], data["folds"], data["seeds"], rows)


def merge_rows(previous: BenchmarkResult, fresh: BenchmarkResult) -> BenchmarkResult:
    """``previous`` with each row of ``fresh`` replacing the row of the same config (or added):
    movierec's rows in config-file order, then Surprise's. Rows of configs that no longer exist
    are dropped."""
    if (previous.protocol, previous.folds, previous.seeds) != (
        fresh.protocol,
        fresh.folds,
        fresh.seeds,
    ):
        raise ConfigError(
            f"cannot merge {fresh.protocol} rows over folds {fresh.folds} and seeds "
            f"{fresh.seeds} into a table over {previous.folds} and seeds {previous.seeds}"
        )
    by_config = {row.config: row for row in previous.rows if row.source == "movierec"}
    by_config.update({row.config: row for row in fresh.rows})
    kept = [
        by_config[config]
        for config in sorted(by_config, key=str)
        if config is None or (ROOT / config).exists()
    ]
    others = [row for row in previous.rows if row.source != "movierec"]
    return BenchmarkResult(
        previous.dataset, previous.protocol, previous.folds, previous.seeds, [*kept, *others]
    )


def progress(label: str, record: Any) -> None:
    rmse = f"{record.rmse:.4f}" if record.rmse is not None else "-"
    print(
        f"{label:50s} {record.fold} seed {record.seed}: RMSE {rmse}  {record.train_seconds:.1f} s",
        file=sys.stderr,
        flush=True,
    )


def cell(mean: float | None, sd: float | None, digits: int = 4) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def table(result: BenchmarkResult) -> list[str]:
    lines = [
        "| model | RMSE | MAE | NDCG@10 | long tail | train s | params | runs | config |",
        "|---|---:|---:|---:|---:|---:|---:|---:|---|",
    ]
    rows = [row.summary() for row in result.rows]
    for row in rows:
        name = f"Surprise {row['model']}" if row["source"] == "surprise" else row["model"]
        if row["source"] == "movierec" and row["config"]:
            variant = Path(row["config"]).stem  # several configs of one model: say which
            name = f"{name} ({variant})" if variant != row["model"] else name
        config = f"`{row['config']}`" if row["config"] else "defaults"
        params = f"{row['parameters']:,}" if row["parameters"] is not None else "-"
        lines.append(
            f"| {name} | {cell(row['rmse_mean'], row['rmse_sd'])} | "
            f"{cell(row['mae_mean'], row['mae_sd'])} | "
            f"{cell(row['ndcg_mean'], row['ndcg_sd'], 3)} | "
            f"{cell(row['long_tail_share_mean'], row['long_tail_share_sd'], 3)} | "
            f"{cell(row['train_seconds_mean'], row['train_seconds_sd'], 1)} | {params} | "
            f"{row['runs']} | {config if row['source'] == 'movierec' else 'Surprise defaults'} |"
        )
    return lines


def render(results: list[BenchmarkResult], meta: dict[str, Any]) -> str:
    quick = meta["quick"]
    lines = [START, "## Rating prediction (ml-100k, u1 and 5-fold)", ""]
    if quick:
        lines += [
            "**Smoke run (`--quick`: 1 seed, at most 2 epochs): these numbers are not results; "
            "run `python benchmarks/rating_results.py` for the table.**",
            "",
        ]
    lines += [
        f"Generated by `{meta['command']}` on {meta['date']}: {meta['cpu']} "
        f"({meta['threads']} PyTorch thread{'s' if meta['threads'] != 1 else ''}), "
        f"torch {meta['torch']}, scikit-surprise "
        f"{meta['surprise']}; {meta['minutes']:.0f} minutes in all. A single run shows no sd; "
        f"Surprise's deterministic models run once per fold. Every model trains on the "
        f"same training rows of each fold and is scored once on its test rows; movierec's "
        f"models stop early on a 10% validation set carved from the training part, Surprise's "
        f"fit on the whole training part with default settings (fixed random_state). Params: "
        f"trained parameters; for Surprise the sizes of the fitted arrays (biases, factors, "
        f"the item-item similarity matrix for KNNBaseline). NDCG@10: each run's top-10 lists "
        f"(every item the user did not rate in training, ranked as `movierec train` ranks: "
        f"the shrunk estimate for rating models, the ranking score for joint ones) against "
        f"the test items rated >= 4; long tail: the share of recommended items with fewer "
        f"than 10 training ratings. Surprise's models rank nothing here (-).",
        "",
    ]
    for update in meta.get("updates", []):
        configs = ", ".join(f"`{config}`" for config in update["configs"])
        lines += [
            f"Measured later (`{update['command']}`, {update['date']}, {update['cpu']}, torch "
            f"{update['torch']}, {update['minutes']:.0f} minutes): the rows of {configs}; "
            f"their train seconds are from that machine.",
            "",
        ]
    for result in results:
        if result.protocol == "u1":
            heading = "### u1 (train u1.base, test u1.test): " + (
                f"mean ± sd over seeds {', '.join(map(str, result.seeds))}"
                if len(result.seeds) > 1
                else f"seed {result.seeds[0]}"
            )
        else:
            heading = (
                f"### 5-fold ({', '.join(result.folds)}): mean ± sd over the folds, seed "
                f"{', '.join(map(str, result.seeds))} on each"
            )
        lines += [heading, "", *table(result), ""]
    lines += [
        "Published u1 test RMSEs, for reference (not run here; numbers as their papers report):",
        "",
        "| published model | u1 RMSE | source |",
        "|---|---:|---|",
        *[f"| {name} | {rmse} | {source} |" for name, rmse, source in PUBLISHED],
        "",
        "One row from the command line: `movierec benchmark --data ml-100k --protocol u1 "
        "--config CONFIG --seeds 3 --surprise SVD,SVDpp`.",
        END,
    ]
    return "\n".join(lines)


def config_notes() -> str:
    """The "how was this chosen" comment at the top of every benchmarked config, as a section:
    why each row has the values it has, and what was tried, from the files themselves."""
    lines = [
        NOTES_START,
        "### How each configuration was chosen",
        "",
        "The leading comment of each `configs/ml100k/*.toml` (written when its values were "
        "chosen, on validation RMSE only), rendered by `python benchmarks/rating_results.py "
        "--notes-only`:",
        "",
    ]
    for path in sorted(CONFIG_DIR.glob("*.toml")):
        comment = []
        for line in path.read_text(encoding="utf-8").splitlines():
            if not line.startswith("#"):
                break
            comment.append(line.lstrip("#").strip())
        text = " ".join(part for part in comment if part and not part.startswith("movierec "))
        lines.append(f"- `{path.relative_to(ROOT)}`: {text or '(no comment)'}")
    lines.append(NOTES_END)
    return "\n".join(lines)


def write_section(
    section: str, path: Path, start: str | None = None, end: str | None = None
) -> None:
    """Replace (or append) the rating section (or the notes'); the rest of the file stays."""
    write_marked_section(section, path, start or START, end or END)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--quick", action="store_true", help="Smoke run: 1 seed, 2 epochs.")
    parser.add_argument("--device", default="auto", help="auto (CUDA when present), cpu, cuda.")
    # One thread by default: Surprise is single-threaded, so "train s" compares like with like,
    # and on a shared machine extra threads slowed training 5-10x here (spinning OpenMP).
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1).")
    parser.add_argument("--out", type=Path, default=RESULTS, help="Markdown file to update.")
    parser.add_argument("--json-out", type=Path, default=JSON_OUT, help="JSON of every run.")
    parser.add_argument(
        "--jobs",
        type=int,
        default=1,
        help="Processes running (protocol, model) jobs side by side, each with --threads "
        "threads; the numbers are the same, the train seconds share the machine.",
    )
    parser.add_argument(
        "--only",
        default=None,
        help="Comma-separated config stems (configs/ml100k/STEM.toml) to run and merge into "
        "the existing JSON's rows; no Surprise runs.",
    )
    parser.add_argument(
        "--notes-only",
        action="store_true",
        help="Only refresh the configs' notes section (no training).",
    )
    args = parser.parse_args()
    if args.notes_only:
        write_section(config_notes(), args.out, NOTES_START, NOTES_END)
        return
    try:
        surprise = require_surprise()  # the bench extra: fail before any training
        run(args, surprise)
    except MovieRecError as exc:
        print(f"error: {exc}", file=sys.stderr)
        raise SystemExit(2) from None


def device_label(device: str) -> str:
    """The CPU model, and the GPU's name when the runs used one."""
    if device.startswith("cuda") or (device == "auto" and torch.cuda.is_available()):
        return f"{torch.cuda.get_device_name(0)} (CPU {cpu_model()})"
    return cpu_model()


def run(args: argparse.Namespace, surprise: Any) -> None:
    started = time.perf_counter()
    only = args.only.split(",") if args.only else None
    previous = _previous(args.json_out) if only else None  # refuse before any training
    data = load_data("ml-100k", progress=False)
    rows = entries(2 if args.quick else None, only)
    surprise_models = () if only else QUICK_SURPRISE if args.quick else SURPRISE_DEFAULT
    options = RunOptions(device=args.device, threads=args.threads, progress=False)
    plan = [("u1", [0] if args.quick else [0, 1, 2]), ("5-fold", [0])]
    if args.jobs > 1:
        results = run_in_parallel(plan, rows, surprise_models, options, args.jobs)
    else:
        results = [
            run_benchmark(
                data,
                protocol,
                rows,
                seeds=seeds,
                surprise=surprise_models,
                options=options,
                on_run=progress,
            )
            for protocol, seeds in plan
        ]
    command = "python benchmarks/rating_results.py" + (" --quick" if args.quick else "")
    if args.device != "auto":
        command += f" --device {args.device}"
    if args.threads != 1:
        command += f" --threads {args.threads}"
    if args.jobs != 1:
        command += f" --jobs {args.jobs}"
    if only:
        command += f" --only {','.join(sorted(set(only)))}"
    meta = {
        "command": command,
        "quick": args.quick,
        "date": dt.date.today().isoformat(),
        "cpu": device_label(args.device),
        "threads": args.threads,
        "jobs": args.jobs,
        "torch": torch.__version__,
        "surprise": surprise.__version__,
        "python": platform.python_version(),
        "minutes": (time.perf_counter() - started) / 60,
    }
    if previous is not None:
        update = {key: meta[key] for key in ("command", "date", "cpu", "torch", "minutes")}
        update["configs"] = sorted(entry.config for entry in rows if entry.config)
        old_meta, old_results = previous
        meta = {**old_meta, "updates": [*old_meta.get("updates", []), update]}
        by_protocol = {result.protocol: result for result in results}
        results = [merge_rows(old, by_protocol[old.protocol]) for old in old_results]
    write_section(render(results, meta), args.out)
    write_section(config_notes(), args.out, NOTES_START, NOTES_END)
    args.json_out.parent.mkdir(parents=True, exist_ok=True)
    payload = {
        **meta,
        "published": [dict(zip(("model", "rmse", "source"), p, strict=True)) for p in PUBLISHED],
        "protocols": [r.to_dict() for r in results],
    }
    partial = args.json_out.with_suffix(".partial")
    partial.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    partial.replace(args.json_out)
    print(f"wrote {args.out} and {args.json_out}", file=sys.stderr)


def _previous(path: Path) -> tuple[dict[str, Any], list[BenchmarkResult]]:
    """The full run's meta and results that ``--only`` merges into (a ConfigError if none)."""
    if not path.exists():
        raise ConfigError(f"--only merges into {path}, which does not exist; run without --only")
    payload = json.loads(path.read_text(encoding="utf-8"))
    if payload.get("quick"):
        raise ConfigError(f"{path} holds a --quick smoke run; run without --only first")
    meta = {k: v for k, v in payload.items() if k not in ("protocols", "published")}
    return meta, [result_from_dict(p) for p in payload["protocols"]]


def _one_job(
    protocol: str, seeds: list[int], entry: Entry | None, surprise: str | None, options: RunOptions
) -> BenchmarkResult:
    """One model (or one Surprise model) over one protocol, in a worker process."""
    data = load_data("ml-100k", progress=False)
    return run_benchmark(
        data,
        protocol,
        [entry] if entry is not None else [],
        seeds=seeds,
        surprise=[surprise] if surprise is not None else [],
        options=options,
        on_run=progress,
    )


def run_in_parallel(
    plan: list[tuple[str, list[int]]],
    rows: list[Entry],
    surprise_models: tuple[str, ...] | list[str],
    options: RunOptions,
    jobs: int,
) -> list[BenchmarkResult]:
    """:func:`run_benchmark` per (protocol, model) in ``jobs`` processes, merged in the serial
    order: the same rows and numbers as one process gives (every run is seeded on its own)."""
    # The longest jobs (5 folds of a model) first, so the last ones to finish are short.
    longest_first = sorted(plan, key=lambda step: step[0] != "5-fold")
    tasks = [(p, seeds, entry, None) for p, seeds in longest_first for entry in rows] + [
        (p, seeds, None, name) for p, seeds in longest_first for name in surprise_models
    ]
    with ProcessPoolExecutor(max_workers=jobs, mp_context=get_context("spawn")) as pool:
        futures = [pool.submit(_one_job, *task, options) for task in tasks]
        parts = [future.result() for future in futures]
    merged = []
    for protocol, seeds in plan:
        mine = [part for part, task in zip(parts, tasks, strict=True) if task[0] == protocol]
        merged.append(
            BenchmarkResult(
                mine[0].dataset,
                protocol,
                mine[0].folds,
                list(seeds),
                [row for part in mine for row in part.rows],
            )
        )
    return merged


if __name__ == "__main__":
    main()
