"""Item cold start on ml-100k: films with metadata but no ratings, scored from their features.

    python benchmarks/item_cold_start.py               # seed 0, writes docs/results.md's section
    python benchmarks/item_cold_start.py --seeds 0 1 2 --epochs 3   # more seeds / a smoke run

Protocol: 10% of the rated items (seeded) are held out entirely: every rating of them is test,
none is seen in training (nor in the validation carve-out, which comes from the other items'
ratings). The models learn from the other 90% of items; u.item's genres and year and u.user's
age, gender, occupation and ZIP are the metadata. RMSE is over every held-out rating; NDCG@10
ranks, for each test user, all held-out items (none of which they rated in training), the items
they rated >= 4 being relevant. Rows:

- bias fallback: ``mu + b_u``, what movierec predicts for an item it does not know; it cannot
  order the held-out items (they tie; ranked in a seeded random order).
- popularity by genre: an item scores the mean training rating count of the items sharing its
  genres (how popular its kind of film is); it predicts no ratings.
- genre mean: ``mu + b_u`` plus the mean over its genres of each genre's mean residual
  ``r - mu - b_u`` in training.
- the EmbeddingNet of ``configs/ml100k/embedding-net-features.toml``: with the mean trained item
  embedding standing in for the unseen ID (``cold_items = "mean"``), and with zeros there and
  ``item_id_dropout`` in training (the net also learns to predict from features alone).

Writes the section between ``<!-- item-cold-start:start -->`` and ``<!-- item-cold-start:end -->``
of ``docs/results.md`` and the raw numbers to ``benchmarks/results/item_cold_start.json``.
"""

from __future__ import annotations

import argparse
import json
import statistics
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch

from movierec.config import ModelSpec, RunOptions
from movierec.data import RatingsData, load_data
from movierec.data.splits import Split
from movierec.evaluate.metrics import ndcg_at_k, rmse
from movierec.models.bias import fit_biases
from movierec.pipeline import fit_recommender, prepare_split

sys.path.insert(0, str(Path(__file__).resolve().parent))
from marked_section import write_marked_section  # shared by the results scripts
from ranking import device_name

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
RAW = ROOT / "benchmarks" / "results" / "item_cold_start.json"
CONFIG = ROOT / "configs" / "ml100k" / "embedding-net-features.toml"
START, END = "<!-- item-cold-start:start -->", "<!-- item-cold-start:end -->"
TITLE = "## Item cold start (ml-100k, 10% of items held out entirely, k=10)"
HELD_OUT, K, RELEVANT = 0.1, 10, 4.0
# The EmbeddingNet rows: label -> [model] options over the features config.
NETS: dict[str, dict[str, Any]] = {
    "embedding-net + features, cold_items = mean": {"cold_items": "mean"},
    "embedding-net + features, cold_items = zero, item_id_dropout = 0.2": {
        "cold_items": "zero",
        "item_id_dropout": 0.2,
    },
}


def cold_split(data: RatingsData, seed: int) -> Split:
    """Every rating of a seeded 10% of the rated items is test; the rest is training."""
    items = np.sort(data.ratings["item_id"].unique())
    rng = np.random.default_rng(seed)
    cold = rng.choice(items, size=round(HELD_OUT * len(items)), replace=False)
    held = data.ratings["item_id"].isin(cold).to_numpy()
    return Split(f"cold-items:{HELD_OUT}", data.ratings[~held], data.ratings[held])


class Baselines:
    """The rows that need no training: closed forms over the training ratings and genres."""

    def __init__(self, data: RatingsData, split: Split):
        train = split.train
        self.users = pd.Index(np.sort(train["user_id"].unique()))
        items = pd.Index(np.sort(train["item_id"].unique()))
        biases = fit_biases(
            torch.from_numpy(self.users.get_indexer(train["user_id"])),
            torch.from_numpy(items.get_indexer(train["item_id"])),
            torch.tensor(train["rating"].to_numpy(np.float32)),
            len(self.users),
            len(items),
        )
        self.mu, self.user_bias = biases.global_mean, biases.user_bias.double().numpy()
        genres = data.items.set_index("item_id")["genres"].str.get_dummies(sep="|")
        self.genres = genres.astype(np.float64)
        bias_of = self.bias_of(train["user_id"].to_numpy())
        residual = train["rating"].to_numpy(np.float64) - self.mu - bias_of
        flags = self.genres.reindex(train["item_id"]).fillna(0).to_numpy()
        self.genre_effect = (flags * residual[:, None]).sum(0) / np.maximum(flags.sum(0), 1)
        counts = train["item_id"].value_counts()
        flags_items = self.genres.reindex(counts.index).fillna(0).to_numpy()
        self.genre_count = (flags_items * counts.to_numpy()[:, None]).sum(0) / np.maximum(
            flags_items.sum(0), 1
        )

    def bias_of(self, users: np.ndarray) -> np.ndarray:
        found = self.users.get_indexer(users)
        return np.where(found >= 0, self.user_bias[np.maximum(found, 0)], 0.0)

    def per_genre(self, values: np.ndarray, items: np.ndarray) -> np.ndarray:
        """The mean of ``values`` (one per genre) over each item's genres (0: none)."""
        flags = self.genres.reindex(items).fillna(0).to_numpy()
        return (flags @ values) / np.maximum(flags.sum(1), 1)


def ndcg(scores: np.ndarray, relevant: np.ndarray) -> float:
    """NDCG@10 of ``scores`` [U, m] against bool ``relevant`` [U, m] (users with any)."""
    keep = relevant.any(axis=1)
    top = np.argsort(-scores[keep], axis=1, kind="stable")[:, :K]
    hits = np.take_along_axis(relevant[keep], top, axis=1)
    return ndcg_at_k(hits, relevant[keep].sum(axis=1))


def run_seed(data: RatingsData, seed: int, epochs: int | None) -> dict[str, dict[str, Any]]:
    split = cold_split(data, seed)
    test = split.test
    cold_items = np.sort(test["item_id"].unique())
    users = np.sort(test["user_id"].unique())
    relevant = np.zeros((len(users), len(cold_items)), dtype=bool)
    good = test[test["rating"] >= RELEVANT]
    relevant[
        np.searchsorted(users, good["user_id"]), np.searchsorted(cold_items, good["item_id"])
    ] = True
    actual = test["rating"].to_numpy(np.float64)
    base = Baselines(data, split)
    low, high = data.rating_scale
    fallback = base.mu + base.bias_of(test["user_id"].to_numpy())
    genre_mean = fallback + base.per_genre(base.genre_effect, test["item_id"].to_numpy())
    ties = np.random.default_rng(seed).random((len(users), len(cold_items)))
    rows: dict[str, dict[str, Any]] = {
        "bias fallback (mu + b_u)": {
            "rmse": rmse(np.clip(fallback, low, high), actual),
            "ndcg@10": ndcg(ties, relevant),
        },
        "popularity by genre": {
            "rmse": None,
            "ndcg@10": ndcg(
                np.broadcast_to(base.per_genre(base.genre_count, cold_items), relevant.shape),
                relevant,
            ),
        },
        "genre mean": {
            "rmse": rmse(np.clip(genre_mean, low, high), actual),
            "ndcg@10": ndcg(
                np.broadcast_to(base.per_genre(base.genre_effect, cold_items), relevant.shape),
                relevant,
            ),
        },
    }
    for label, options in NETS.items():
        overrides = {} if epochs is None else {"epochs": epochs}
        spec = ModelSpec.resolve(config_path=CONFIG, model_options=options, train_options=overrides)
        prepared = prepare_split(
            data, split, seed=seed, validation_fraction=spec.train.validation_fraction
        )
        started = time.perf_counter()
        recommender = fit_recommender(prepared, spec, RunOptions(seed=seed, progress=False))
        seconds = time.perf_counter() - started
        predicted = recommender.predict(test["user_id"].to_numpy(), test["item_id"].to_numpy())
        encoder = recommender.encoder
        user_idx = encoder.encode_users(users)
        known = user_idx >= 0
        with torch.no_grad():
            scores = recommender.model.score_items(torch.from_numpy(user_idx[known])).numpy()
        rows[label] = {
            "rmse": rmse(predicted, actual),
            "ndcg@10": ndcg(scores[:, encoder.encode_items(cold_items)], relevant[known]),
            "train_seconds": seconds,
            "epochs": len(recommender.training.history),
        }
        print(f"seed {seed} {label}: {rows[label]}", file=sys.stderr, flush=True)
    rows["_protocol"] = {
        "held_out_items": len(cold_items),
        "test_ratings": len(test),
        "test_users": int(relevant.any(axis=1).sum()),
    }
    return rows


def cell(values: list[float | None]) -> str:
    present = [v for v in values if v is not None]
    if not present:
        return "—"
    sd = statistics.stdev(present) if len(present) > 1 else 0.0
    return f"{statistics.fmean(present):.4f}" + (f" ± {sd:.4f}" if len(present) > 1 else "")


def render(runs: list[dict[str, Any]], seeds: list[int], command: str) -> str:
    protocol = runs[0]["_protocol"]
    labels = [k for k in runs[0] if not k.startswith("_")]
    lines = [
        START,
        TITLE,
        "",
        f"Generated by `{command}` on {device_name('cpu')}, 1 thread, seeds {seeds}. "
        f"{protocol['held_out_items']} items held out with their {protocol['test_ratings']:,} "
        f"ratings (seed {seeds[0]}); NDCG@10 over {protocol['test_users']} users with a held-out "
        f"item rated >= {RELEVANT:g}, ranking all held-out items. Protocol and rows: "
        "`benchmarks/item_cold_start.py`'s docstring.",
        "",
        "| model | RMSE (held-out items) | NDCG@10 (among held-out items) | train s |",
        "|---|---|---|---|",
    ]
    for label in labels:
        per_seed = [run[label] for run in runs]
        seconds = [r.get("train_seconds") for r in per_seed]
        shown = cell(seconds).split(".")[0] if any(s is not None for s in seconds) else "—"
        lines.append(
            f"| {label} | {cell([r['rmse'] for r in per_seed])} | "
            f"{cell([r['ndcg@10'] for r in per_seed])} | {shown} |"
        )
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", type=int, nargs="+", default=[0])
    parser.add_argument("--epochs", type=int, default=None, help="cap epochs (a smoke run)")
    parser.add_argument("--no-write", action="store_true", help="print, do not write files")
    args = parser.parse_args()
    torch.set_num_threads(1)
    data = load_data("ml-100k", progress=False)
    runs = [run_seed(data, seed, args.epochs) for seed in args.seeds]
    command = "python benchmarks/item_cold_start.py" + (
        f" --seeds {' '.join(map(str, args.seeds))}" if args.seeds != [0] else ""
    )
    section = render(runs, args.seeds, command)
    print(section)
    if not args.no_write:
        RAW.write_text(json.dumps({"seeds": args.seeds, "runs": runs}, indent=2) + "\n")
        write_marked_section(section, RESULTS, START, END)


if __name__ == "__main__":
    main()
