"""Scale benchmark: 25M synthetic ratings loaded, encoded and trained on, with peak memory.

Run: ``PYTHONPATH=src python benchmarks/scale.py [--ratings 25000000] [--train]``.

One run measures, each step in a fresh child process (so that each peak RSS is its own):
- write seconds of :func:`movierec.data.synthetic.write_synthetic` (Parquet, then CSV), unless
  ``--parquet``/``--csv`` name files written before (``movierec synth ... --seed 0``);
- Parquet load rate of :func:`movierec.data.load_data` (ratings/s, the median of
  ``--load-repeats`` children; target >= 5M/s); each child then fits the
  :class:`~movierec.data.encoder.IdEncoder` and builds the
  :class:`~movierec.data.tensors.RatingTensors`, and its peak RSS is that of load + encode +
  tensors;
- CSV load rate (one child, unless ``--skip-csv``);
- with ``--train``: the whole pipeline on the Parquet file (load, random split, validation
  carve-out, encode, tensors, ``--epochs`` epochs of EmbeddingNet with the article config) in
  one child, its epoch seconds, ratings/s and peak RSS (target <= 4 GiB for the whole run), next
  to the same model's ratings/s on ml-100k (split u1) measured in the same run: the issue's
  target is a per-rating cost within 25% of it. By default the child stops after training,
  because ``movierec train`` then ranks the whole catalogue for every test user (about 10^10
  scores on 25M ratings: hours on a CPU); ``--train-cli`` runs ``movierec train --epochs N``
  itself, evaluation included. ``--row-wise`` trains with ``embedding_optimizer = "row-wise"``
  (when :class:`~movierec.config.TrainConfig` has that field).

Peak RSS comes from ``/usr/bin/time -v`` (GNU time) when it exists, else from ``ru_maxrss``.
Results go to ``benchmarks/results/scale.json`` and ``scale.md``; generated files under
``--workdir`` are removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import dataclasses
import datetime as dt
import json
import os
import platform
import re
import resource
import statistics
import subprocess
import sys
import textwrap
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from movierec.config import TrainConfig  # noqa: E402
from movierec.data.synthetic import write_synthetic  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import cpu_model  # noqa: E402  one definition for every benchmark script

GNU_TIME = Path("/usr/bin/time")
GIB = 2**30

LOAD_CHILD = textwrap.dedent(
    """
    import json, sys, time
    from movierec.data import load_data
    from movierec.data.encoder import IdEncoder
    from movierec.data.tensors import RatingTensors
    start = time.perf_counter()
    data = load_data(sys.argv[1], progress=False)
    loaded = time.perf_counter()
    encoder = IdEncoder.fit(data.ratings)
    tensors = RatingTensors.from_frame(data.ratings, encoder)
    done = time.perf_counter()
    print(json.dumps({"rows": len(data.ratings), "load_s": loaded - start,
                      "encode_tensors_s": done - loaded, "n_tensor_rows": len(tensors),
                      "index_dtype": str(tensors.user_idx.dtype), "report": data.report}))
    """
)

# The steps of `movierec train` up to the end of training (movierec.pipeline.fit_recommender),
# without the final evaluation.
TRAIN_CHILD = textwrap.dedent(
    """
    import dataclasses, json, sys, time
    from pathlib import Path
    from movierec.config import ModelSpec, RunOptions
    from movierec.data import load_data
    from movierec.pipeline import fit_recommender, prepare
    data_spec, split, config, epochs = sys.argv[1], sys.argv[2], Path(sys.argv[3]), int(sys.argv[4])
    fast = sys.argv[5] == "fast"  # movierec train --fast
    options = RunOptions(progress=False, precision="auto" if fast else "fp32",
                         fused_adam=fast, fast_dropout=fast)
    spec = ModelSpec.resolve("embedding-net", config, train_options={"epochs": epochs})
    start = time.perf_counter()
    data = load_data(data_spec, progress=False)
    loaded = time.perf_counter()
    prepared = prepare(data, split, seed=options.seed,
                       validation_fraction=spec.train.validation_fraction)
    ready = time.perf_counter()
    encoder = prepared.encoder
    result = fit_recommender(prepared, spec, options).training
    print(json.dumps({
        "rows": len(data.ratings), "n_fit": len(prepared.fit_tensors),
        "n_users": encoder.n_users, "n_items": encoder.n_items,
        "index_dtype": str(prepared.fit_tensors.user_idx.dtype),
        "load_s": loaded - start, "prepare_s": ready - loaded,
        "train_seconds": result.train_seconds, "ratings_per_second": result.ratings_per_second,
        "epoch_seconds": [record.seconds for record in result.history],
        "valid_rmse": [record.valid_rmse for record in result.history],
        "train_config": dataclasses.asdict(spec.train),
    }))
    """
)

# EmbeddingNet with the article's configuration (the model's defaults, spelled out).
ARTICLE_TOML = """\
[model]
n_factors = 150
hidden = [100, 200, 300]
dropouts = [0.25, 0.5]

[train]
batch_size = 2000
"""


def measured(command: list[str], env: dict[str, str]) -> tuple[dict[str, Any], dict[str, Any]]:
    """Run ``command`` (whose last stdout line is JSON) in a child: that JSON, and the child's
    peak RSS and wall seconds (from GNU time, else ``ru_maxrss`` and None)."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    timed = [str(GNU_TIME), "-v", *command] if GNU_TIME.exists() else command
    out = subprocess.run(timed, env=env, capture_output=True, text=True)
    if out.returncode != 0:
        sys.stderr.write(out.stderr[-4000:])
        raise SystemExit(f"child failed ({out.returncode}): {' '.join(command)}")
    result = json.loads(out.stdout.strip().splitlines()[-1])
    usage: dict[str, Any] = {"peak_rss_source": "GNU time -v" if GNU_TIME.exists() else None}
    if GNU_TIME.exists():
        rss = re.search(r"Maximum resident set size \(kbytes\): (\d+)", out.stderr)
        wall = re.search(r"Elapsed \(wall clock\) time.*: (?:(\d+):)?(\d+):([\d.]+)", out.stderr)
        usage["peak_rss_gib"] = round(int(rss.group(1)) * 1024 / GIB, 3) if rss else None
        if wall:
            hours, minutes, seconds = (float(g) if g else 0.0 for g in wall.groups())
            usage["wall_s"] = round(hours * 3600 + minutes * 60 + seconds, 2)
    else:
        # ru_maxrss of children is the largest child so far: exact for the first child only.
        peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
        usage["peak_rss_source"] = "ru_maxrss (largest child so far)"
        usage["peak_rss_gib"] = round(peak_kib * 1024 / GIB, 3) if peak_kib > before else None
    return result, usage


def child_env() -> dict[str, str]:
    return {**os.environ, "PYTHONPATH": str(ROOT / "src")}


def child_load(path: Path, repeats: int) -> dict[str, Any]:
    """Load ``path``, encode it and build tensors in ``repeats`` fresh processes: the median
    load rate, every load's seconds, and the largest peak RSS."""
    runs = []
    for _ in range(repeats):
        result, usage = measured([sys.executable, "-c", LOAD_CHILD, str(path)], child_env())
        runs.append({**result, **usage})
        print(f"  load {path.name}: {result['load_s']:.2f} s", flush=True)
    best = runs[len(runs) // 2]
    load_times = sorted(run["load_s"] for run in runs)
    median_s = statistics.median(load_times)
    peaks = [run["peak_rss_gib"] for run in runs if run["peak_rss_gib"] is not None]
    return {
        "rows": best["rows"],
        "n_tensor_rows": best["n_tensor_rows"],
        "index_dtype": best["index_dtype"],
        "report": best["report"],
        "load_s": median_s,
        "load_s_all": [round(s, 3) for s in load_times],
        "encode_tensors_s": statistics.median(run["encode_tensors_s"] for run in runs),
        "rate_per_s": round(best["rows"] / median_s),
        "peak_rss_gib": max(peaks) if peaks else None,
        "peak_rss_source": best["peak_rss_source"],
    }


def train_config(workdir: Path, row_wise: bool) -> tuple[Path, str]:
    """The TOML file both training runs use, and the embedding optimiser it asks for."""
    text = ARTICLE_TOML
    optimiser = "dense"
    if row_wise:
        if "embedding_optimizer" not in {f.name for f in dataclasses.fields(TrainConfig)}:
            raise SystemExit("--row-wise: this TrainConfig has no embedding_optimizer field yet")
        text += 'embedding_optimizer = "row-wise"\n'
        optimiser = "row-wise"
    path = workdir / f"scale-train-{optimiser}.toml"
    path.write_text(text)
    return path, optimiser


def child_train(
    data: str, split: str, config: Path, epochs: int, cli: bool, fast: bool = False
) -> dict[str, Any]:
    """Train EmbeddingNet on ``data`` in a fresh process: timings, throughput and peak RSS."""
    if cli:
        command = [sys.executable, "-m", "movierec", "train", "--data", data, "--split", split]
        command += ["--model", "embedding-net", "--config", str(config), "--epochs", str(epochs)]
        command += ["--json", "--quiet", *(["--fast"] if fast else [])]
    else:
        command = [sys.executable, "-c", TRAIN_CHILD, data, split, str(config), str(epochs)]
        command.append("fast" if fast else "fp32")
    result, usage = measured(command, child_env())
    if cli:  # movierec train --json: the run's metrics
        result = {
            key: result.get(key)
            for key in ("n_fit", "train_seconds", "ratings_per_second", "epochs", "rmse")
        } | {"evaluation_seconds": result.get("evaluation_seconds")}
        if result.get("train_seconds") and result.get("epochs"):  # its mean epoch, no validation
            result["epoch_seconds"] = [result["train_seconds"] / result["epochs"]]
    via = "movierec train" if cli else "fit"
    return {"data": data, "split": split, "via": via} | result | usage


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--csv-ratings", type=int, default=None, help="default: --ratings")
    parser.add_argument("--users", type=int, default=162_541)
    parser.add_argument("--items", type=int, default=59_047)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/movierec-scale"))
    parser.add_argument("--parquet", type=Path, help="an existing Parquet file (skip writing)")
    parser.add_argument("--csv", type=Path, help="an existing CSV file (skip writing)")
    parser.add_argument("--skip-csv", action="store_true", help="no CSV write and load")
    parser.add_argument("--load-repeats", type=int, default=3, help="Parquet loads (median)")
    parser.add_argument("--train", action="store_true", help="also train on the Parquet file")
    parser.add_argument("--epochs", type=int, default=1, help="epochs on the 25M file")
    parser.add_argument("--ml100k-epochs", type=int, default=3, help="epochs on ml-100k u1")
    parser.add_argument("--train-cli", action="store_true", help="train with movierec train")
    parser.add_argument("--row-wise", action="store_true", help='embedding_optimizer "row-wise"')
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    parser.add_argument(
        "--fast", action="store_true", help="train with movierec train --fast (both runs)"
    )
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    parquet = args.parquet or args.workdir / f"ratings-{args.ratings}.parquet"
    csv_n = args.csv_ratings or args.ratings
    csv_path = args.csv or args.workdir / f"ratings-{csv_n}.csv"
    generated = [p for p, given in ((parquet, args.parquet), (csv_path, args.csv)) if not given]
    sizes = {"n_users": args.users, "n_items": args.items, "seed": 0, "progress": False}
    results: dict[str, Any] = {
        "command": "PYTHONPATH=src python benchmarks/scale.py " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        # Cores this run may use (taskset / cgroup affinity): training uses one thread each.
        "cores_usable": len(os.sched_getaffinity(0)),
        "python": platform.python_version(),
        "gnu_time": GNU_TIME.exists(),
    }
    try:
        if args.parquet is None:
            results["write_parquet"] = write_synthetic(
                parquet, n_ratings=args.ratings, fmt="parquet", **sizes
            )
            print("parquet written", results["write_parquet"], flush=True)
        results["load_parquet"] = child_load(parquet, args.load_repeats)
        print("parquet loaded", results["load_parquet"], flush=True)
        if not args.skip_csv:
            if args.csv is None:
                results["write_csv"] = write_synthetic(
                    csv_path, n_ratings=csv_n, fmt="csv", **sizes
                )
                print("csv written", results["write_csv"], flush=True)
            results["load_csv"] = child_load(csv_path, 1)
            print("csv loaded", results["load_csv"], flush=True)
        if args.train:
            config, optimiser = train_config(args.workdir, args.row_wise)
            results["train_optimizer"] = optimiser
            results["train_fast"] = args.fast
            # The per-rating reference first: the same model and config on ml-100k's u1.
            small = child_train(
                "ml-100k", "u1", config, args.ml100k_epochs, cli=False, fast=args.fast
            )
            results["train_ml100k"] = small
            print("ml-100k trained", small, flush=True)
            big = child_train(
                str(parquet), "random", config, args.epochs, args.train_cli, fast=args.fast
            )
            results["train_25m"] = big
            print("25M trained", big, flush=True)
            if big.get("ratings_per_second") and small.get("ratings_per_second"):
                results["per_rating_cost_ratio"] = round(
                    small["ratings_per_second"] / big["ratings_per_second"], 3
                )
    finally:
        if not args.keep:
            for path in generated:
                path.unlink(missing_ok=True)
    write_results(results)


def _seconds(value: float | None, digits: int = 2) -> str:
    return "" if value is None else f"{value:.{digits}f}"


def write_results(results: dict[str, Any]) -> None:
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    lines = [
        "# Scale benchmark: synthetic MovieLens-25M-sized ratings",
        "",
        f"- Command: `{results['command']}`",
        f"- Date: {results['date']}; CPU: {results['cpu']}, {results['cores']} cores "
        f"({results.get('cores_usable', results['cores'])} usable by this run); "
        f"Python {results['python']}",
        "",
        "| step | rows | seconds | rate (rows/s) | file size | peak RSS (GiB) |",
        "|---|---:|---:|---:|---:|---:|",
    ]
    for key, label in (("write_parquet", "write Parquet"), ("write_csv", "write CSV")):
        if (written := results.get(key)) is not None:
            lines.append(
                f"| {label} | {written['rows']:,} | {written['seconds']:.1f} | "
                f"{written['rows'] / written['seconds']:,.0f} | "
                f"{written['bytes'] / 2**20:,.0f} MiB | |"
            )
    for key, label in (("load_parquet", "load Parquet"), ("load_csv", "load CSV")):
        if (loaded := results.get(key)) is None:
            continue
        runs = len(loaded["load_s_all"])
        what = f"median of {runs}" if runs > 1 else "one load"
        lines.append(
            f"| {label} (`load_data`, {what}) | {loaded['rows']:,} | {loaded['load_s']:.2f} | "
            f"{loaded['rate_per_s']:,} | | {loaded['peak_rss_gib'] or '-'} "
            f"(load + encode + tensors) |"
        )
        lines.append(
            f"| encode + tensors ({loaded['index_dtype']} indices) | "
            f"{loaded['n_tensor_rows']:,} | {loaded['encode_tensors_s']:.2f} | | | |"
        )
    for key in ("train_ml100k", "train_25m"):
        if (run := results.get(key)) is None:
            continue
        epochs = run.get("epoch_seconds") or []
        per_epoch = f"{statistics.median(epochs):.1f} per epoch" if epochs else ""
        lines.append(
            f"| train EmbeddingNet on {run['data']} ({run['split']}, via {run['via']}, "
            f"{results['train_optimizer']} embeddings) | {run.get('n_fit') or 0:,} | "
            f"{per_epoch} | {run.get('ratings_per_second') or 0:,.0f} | | "
            f"{run.get('peak_rss_gib') or '-'} (whole run) |"
        )
    lines += [""]
    if (ratio := results.get("per_rating_cost_ratio")) is not None:
        lines += [
            f"Per-rating training cost, 25M / ml-100k: {ratio:.2f} (target <= 1.25).",
            "",
        ]
    lines += [
        "Peak RSS: each step's child process, by "
        f"{'GNU `time -v`' if results.get('gnu_time') else '`ru_maxrss`'}. Load children load,"
        " fit the IdEncoder and build RatingTensors; training children load, split (random,"
        " then the validation carve-out), encode, build tensors and train (the final"
        " evaluation is left out unless run via `movierec train`). Targets: Parquet load >= 5M"
        " ratings/s; peak <= 4 GiB for the whole run.",
        "",
    ]
    (out / "scale.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
