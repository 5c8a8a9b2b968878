"""Evaluation seconds beside training seconds (issue 16): the default run and the article's
EmbeddingNet on ml-100k u1 and on a synthetic 100k-rating / 10k-item / 600-user file.

    python benchmarks/eval_speed.py [--runs /tmp/eval-speed] [--repeats 3] [--threads 1]

Each run is trained once by the CLI (``movierec train --json --out``, the default and
``--model embedding-net``, no other flag): its JSON's ``train_seconds`` (the final fit; with the
default's refit, ``validation.train_seconds`` is the run that chose the epochs, both reported)
and ``evaluation_seconds``. The saved run is then evaluated ``--repeats`` times in this process
by :func:`movierec.experiment.evaluate_run` for each scoring precision (``fp32``, ``auto``:
bf16 where the CPU has native bf16 units) and the median is kept, with the metrics of each
precision (bf16 must leave them within noise). Prints the CPU and its matrix ISA; writes
benchmarks/results/eval_speed.json with the command. The target: evaluation <= 25% of training
for the default run on both data sets.
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import provenance
from recommend_all import cpu_isa

OUT = Path(__file__).resolve().parent / "results" / "eval_speed.json"
RUNS = {"default": [], "embedding-net": ["--model", "embedding-net"]}
SYNTHETIC = ("--users", "600", "--items", "10000", "--ratings", "100000", "--seed", "0")
KEPT = ("rmse", "ndcg@10", "precision@10", "recall@10", "coverage", "novelty", "long_tail_share")


def movierec(*args: str) -> list[str]:
    return [sys.executable, "-m", "movierec", *args]


def datasets(root: Path) -> dict[str, tuple[str, str]]:
    """name -> (data, split): ml-100k's u1 and the synthetic file (written once)."""
    synthetic = root / "synthetic-100k-10k-600.csv"
    if not synthetic.is_file():
        root.mkdir(parents=True, exist_ok=True)
        command = movierec("synth", *SYNTHETIC, "--format", "csv", "-q", "--out", str(synthetic))
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return {"ml-100k u1": ("ml-100k", "u1"), "synthetic": (str(synthetic), "random:0.2")}


def train(root: Path, data: str, split: str, model: str, threads: int) -> tuple[Path, dict]:
    """Train (or reuse) one run and return its folder and the train command's JSON."""
    run = root / f"{Path(data).stem}-{model}"
    record = run.with_suffix(".train.json")
    if not record.is_file():
        command = movierec("train", "--data", data, "--split", split, *RUNS[model])
        command += ["--threads", str(threads), "--json", "-q", "--out", str(run), "--overwrite"]
        started = time.perf_counter()
        done = subprocess.run(command, check=True, capture_output=True, text=True)
        summary = json.loads(done.stdout)
        summary["wall_seconds"] = time.perf_counter() - started
        record.write_text(json.dumps(summary, indent=2))
    return run, json.loads(record.read_text())


def evaluations(run: Path, data: str, split: str, repeats: int) -> dict[str, dict]:
    """Per precision: the median evaluation seconds of ``repeats`` and the metrics."""
    from movierec.data import load_data
    from movierec.experiment import evaluate_run

    dataset = load_data(data, progress=False)
    out = {}
    for precision in ("fp32", "auto"):
        times, metrics = [], {}
        for _ in range(repeats):
            metrics = evaluate_run(run, dataset, split=split, precision=precision)
            times.append(metrics["evaluation_seconds"])
        out[precision] = {
            "evaluation_seconds": statistics.median(times),
            "evaluation_seconds_all": times,
            **{key: metrics.get(key) for key in KEPT},
        }
    return out


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("/tmp/eval-speed"))
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--models", nargs="+", default=list(RUNS), choices=list(RUNS))
    parser.add_argument("--out", type=Path, default=OUT)
    args = parser.parse_args()
    import torch

    from movierec.train.precision import native_bf16

    torch.set_num_threads(args.threads)
    isa = cpu_isa()
    bf16 = native_bf16(torch.device("cpu"))
    print(f"isa: {', '.join(isa) or 'none'}; native bf16: {bf16}; threads {args.threads}")
    rows = []
    for name, (data, split) in datasets(args.runs).items():
        for model in args.models:
            run, trained = train(args.runs, data, split, model, args.threads)
            row = {
                "data": name,
                "model": model,
                "train_seconds": trained["train_seconds"],
                "validation_train_seconds": trained.get("validation", {}).get("train_seconds"),
                "evaluation_seconds_in_train": trained["evaluation_seconds"],
                "epochs": trained["epochs"],
                "evaluate": evaluations(run, data, split, args.repeats),
            }
            fit = row["train_seconds"]
            for found in row["evaluate"].values():
                found["share_of_train"] = found["evaluation_seconds"] / fit
            rows.append(row)
            fp32, auto = row["evaluate"]["fp32"], row["evaluate"]["auto"]
            choosing = row["validation_train_seconds"] or 0.0
            print(
                f"{name:>10} {model:>13}: train {fit:6.1f} s (+{choosing:.1f} s "
                f"choosing epochs); evaluate fp32 {fp32['evaluation_seconds']:.2f} s "
                f"({fp32['share_of_train']:.1%}), auto {auto['evaluation_seconds']:.2f} s "
                f"({auto['share_of_train']:.1%}); NDCG@10 {fp32['ndcg@10']:.4f} / "
                f"{auto['ndcg@10']:.4f}",
                flush=True,
            )
            write(args, isa, bf16, rows)
    print(f"wrote {args.out}")


def write(args: argparse.Namespace, isa: list[str], bf16: bool, rows: list[dict]) -> None:
    document = {
        **provenance(),
        "isa": isa,
        "native_bf16": bf16,
        "threads": args.threads,
        "repeats": args.repeats,
        "rows": rows,
    }
    args.out.write_text(json.dumps(document, indent=2) + "\n")


if __name__ == "__main__":
    main()
