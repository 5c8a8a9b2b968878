"""Regenerate README's results table from a real run (never typed by hand).

    python benchmarks/readme_table.py            # trains the four models on ml-100k u1, seed 0

Writes the table between the ``<!-- results:start -->`` and ``<!-- results:end -->`` markers.
"""

from __future__ import annotations

import argparse
import datetime as dt
import re
import sys
from pathlib import Path

import torch

from movierec.config import RunOptions
from movierec.experiment import compare_models

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import cpu_model  # one definition for every benchmark script

README = Path(__file__).resolve().parents[1] / "README.md"
START, END = "<!-- results:start -->", "<!-- results:end -->"
DEMO_MODELS = ["default", "embedding-net", "mf", "bias", "popularity"]  # as make demo compares


def command(threads: int | None) -> str:
    """The command line that made the table, and the ``movierec compare`` it amounts to."""
    flag = f" --threads {threads}" if threads is not None else ""
    return (
        f"python benchmarks/readme_table.py{flag}  (same as: movierec compare --data ml-100k "
        f"--split u1 --models {','.join(DEMO_MODELS)}{flag})"
    )


def render(rows: list[dict], seed: int, threads: int | None = None) -> str:
    lines = [
        START,
        f"Test set of ml-100k's canonical `u1` split (80,000 training / 20,000 test ratings), "
        f"seed {seed}, {cpu_model()}, {torch.get_num_threads()} threads, "
        f"torch {torch.__version__}, "
        f"{dt.date.today().isoformat()}. Produced by `{command(threads)}`.",
        "",
        "| model | RMSE | MAE | NDCG@10 | P@10 | coverage | long tail | median n | epochs (best) "
        "| train s | ratings/s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for row in rows:
        epochs = f"{row['epochs']} ({row['best_epoch']})" if row["epochs"] else "closed form"
        speed = f"{row['ratings_per_second']:,.0f}" if row["ratings_per_second"] else "-"
        lines.append(
            f"| {label(row)} | {cell(row['rmse'])} | {cell(row['mae'])} | {row['ndcg@10']:.4f} | "
            f"{row['precision@10']:.4f} | {row['coverage']:.3f} | {row['long_tail_share']:.3f} | "
            f"{row['median_item_ratings']:.0f} | {epochs} | {row['train_seconds']:.2f} | {speed} |"
        )
    lines.append(END)
    return "\n".join(lines)


def label(row: dict) -> str:
    """The row's name: compare's label, with the model when they differ (``default``)."""
    name = row.get("label") or row["model"]
    if name == "embedding-net":
        return "embedding-net (the article's)"
    return f"{name} ({row['model']})" if name != row["model"] else name


def cell(value: float | None) -> str:
    return "-" if value is None else f"{value:.4f}"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument(
        "--threads", type=int, default=None, help="PyTorch threads (default: every core)"
    )
    args = parser.parse_args()
    runs = compare_models(
        "ml-100k",
        DEMO_MODELS,
        split="u1",
        options=RunOptions(seed=args.seed, progress=False, threads=args.threads),
    )
    table = render([run.metrics for run in runs], args.seed, args.threads)
    text = README.read_text(encoding="utf-8")
    pattern = re.compile(re.escape(START) + ".*?" + re.escape(END), re.DOTALL)
    if not pattern.search(text):
        raise SystemExit(f"{README} lacks the {START} ... {END} markers")
    README.write_text(pattern.sub(lambda _: table, text), encoding="utf-8")
    print(table)


if __name__ == "__main__":
    main()
