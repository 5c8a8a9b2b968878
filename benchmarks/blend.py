"""Stacking on ml-100k u1: every member refit, a ridge blend of them, per seed (generated).

    python benchmarks/blend.py                    # train the members (skips finished runs), blend
    python benchmarks/blend.py --seeds 0          # one seed
    python benchmarks/blend.py --train-only       # members only (the long part)
    python benchmarks/blend.py --folds            # u1..u5, seed 0 on each: the 5-fold section

For each seed, each ``--configs`` file is trained with ``movierec train --data ml-100k --split
u1 --config FILE --refit --seed S --threads T --out RUNS/seedS/NAME`` (one process at a time;
a finished run there is kept, so an interrupted harness continues), and the members of that
seed are blended with ``movierec blend`` (:func:`movierec.blend.blend_runs`): ridge weights
fitted on the validation carve-out only (the early-stopped models' predictions, before their
refit), then the test set scored once. Writes the section between ``<!-- blend:start -->``
and ``<!-- blend:end -->`` of ``docs/results.md`` and every number to
``benchmarks/results/blend.json``. With ``--folds`` the same runs over the folds ``u1``..``u5``
(seed 0 on each; members in ``RUNS/uK-seed0/NAME``, u1's in ``RUNS/seed0``), into the section
between ``<!-- blend-5fold:start -->`` and ``<!-- blend-5fold:end -->`` and
``benchmarks/results/blend-5fold.json``, mean ± sd over the folds.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import cpu_model  # one definition for every benchmark script
from marked_section import write_marked_section
from rating_results import PUBLISHED

ROOT = Path(__file__).resolve().parents[1]
RESULTS = ROOT / "docs" / "results.md"
JSON_OUT = ROOT / "benchmarks" / "results" / "blend.json"
START, END = "<!-- blend:start -->", "<!-- blend:end -->"
FOLD_START, FOLD_END = "<!-- blend-5fold:start -->", "<!-- blend-5fold:end -->"
FOLD_JSON_OUT = ROOT / "benchmarks" / "results" / "blend-5fold.json"
FOLDS = ("u1", "u2", "u3", "u4", "u5")
CONFIGS = (
    "configs/ml100k/autorec.toml",
    "configs/ml100k/svdpp.toml",
    "configs/ml100k/mf-tuned.toml",
    "configs/ml100k/embedding-net-features.toml",
    "configs/ml100k/embedding-net-tuned.toml",
    "configs/ml100k/sparse-fc.toml",
    "configs/ml100k/glocal-k.toml",
    "configs/ml100k/sparse-fc-features.toml",
)


def train_command(config: str, seed: int, threads: int, out: Path, split: str = "u1") -> list[str]:
    """The ``movierec train`` command line of one member (refit, on ``split``)."""
    return [
        sys.executable,
        "-m",
        "movierec",
        "train",
        "--data",
        "ml-100k",
        "--split",
        split,
        "--config",
        config,
        "--refit",
        "--seed",
        str(seed),
        "--threads",
        str(threads),
        "--out",
        str(out),
        "--json",
        "--quiet",
    ]


def unit_dir(runs: Path, split: str, seed: int) -> Path:
    """Where one (split, seed)'s members live: ``RUNS/seedS`` for u1, ``RUNS/uK-seedS`` else."""
    return runs / (f"seed{seed}" if split == "u1" else f"{split}-seed{seed}")


def train_member(config: str, seed: int, threads: int, runs: Path, split: str = "u1") -> Path:
    """Train one member unless its run is already there; returns the run directory."""
    out = unit_dir(runs, split, seed) / Path(config).stem
    if (out / "manifest.json").exists():
        print(f"{out}: done already", file=sys.stderr, flush=True)
        return out
    started = time.perf_counter()
    env = {**os.environ, "OMP_NUM_THREADS": str(threads)}
    done = subprocess.run(
        train_command(config, seed, threads, out, split),
        cwd=ROOT,
        env=env,
        capture_output=True,
    )
    if done.returncode != 0:
        sys.stderr.write(done.stderr.decode(errors="replace"))
        raise SystemExit(f"training {config} (seed {seed}) failed")
    metrics = json.loads(done.stdout)
    print(
        f"{out}: test RMSE {metrics['rmse']:.4f}, {metrics['epochs']} epochs, "
        f"{time.perf_counter() - started:.0f} s",
        file=sys.stderr,
        flush=True,
    )
    return out


def member_row(run_dir: Path) -> dict[str, Any]:
    """A member's own numbers, from its run directory (test metrics of the refit model)."""
    metrics = json.loads((run_dir / "metrics.json").read_text(encoding="utf-8"))
    validation = metrics.get("validation", {})
    return {
        "name": run_dir.name,
        "run": str(run_dir),
        "rmse": metrics["rmse"],
        "mae": metrics["mae"],
        "epochs": metrics["epochs"],
        "validation_best_epoch": validation.get("best_epoch"),
        "train_seconds": metrics["train_seconds"],
        "validation_train_seconds": validation.get("train_seconds"),
    }


def blend_seed(runs: list[Path], out: Path) -> dict[str, Any]:
    """Blend one seed's members (``movierec blend RUN... --out OUT --overwrite``)."""
    import numpy as np
    import pandas as pd

    from movierec.blend import PREDICTIONS, blend_runs

    report = blend_runs(runs, out, overwrite=True)  # features: auto (the carve-out decides)
    # For reference: the plain ridge blend (one weight per member) of the same runs.
    plain = blend_runs(runs, out.with_name(out.name + "-plain"), features="none", overwrite=True)
    report["plain"] = {key: plain[key] for key in ("test", "validation_rmse", "alpha", "cv_rmse")}
    # For reference: the plain mean of the members (no fitted weights), on the same test rows.
    frame = pd.read_parquet(out / PREDICTIONS)
    names = [m["name"] for m in report["members"]]
    mean = frame[names].to_numpy().mean(axis=1)
    actual = frame["rating"].to_numpy(dtype=np.float64)
    report["test"]["mean_of_members"] = {
        "rmse": float(np.sqrt(np.mean((mean - actual) ** 2))),
        "mae": float(np.mean(np.abs(mean - actual))),
    }
    return report


def mean_sd(values: list[float]) -> tuple[float, float | None]:
    return statistics.fmean(values), statistics.stdev(values) if len(values) > 1 else None


def cell(values: list[float], digits: int = 4) -> str:
    if not values:
        return "-"
    mean, sd = mean_sd(values)
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")


def unit_label(entry: dict[str, Any], folds: bool) -> str:
    """How one (split, seed) entry is named in the section: its fold, or its seed on u1."""
    return entry.get("split", "u1") if folds else f"seed {entry['seed']}"


def render(payload: dict[str, Any]) -> str:
    folds = bool(payload.get("folds"))
    seeds = payload["seeds"]
    names = [Path(c).stem for c in payload["configs"]]
    by_seed = payload["per_seed"]
    if folds:
        over = f"the folds {', '.join(e['split'] for e in by_seed)} (seed {seeds[0]} on each)"
    else:
        over = f"seeds {', '.join(map(str, seeds))}" if len(seeds) > 1 else f"seed {seeds[0]}"
    lines = [
        FOLD_START if folds else START,
        "## Stacking: a ridge blend of refit runs (ml-100k "
        + ("5-fold: u1..u5)" if folds else "u1)"),
        "",
        f"Generated by `{payload['command']}` on {payload['date']}: {payload['cpu']} "
        f"({payload['threads']} PyTorch thread{'s' if payload['threads'] != 1 else ''}), "
        f"torch {payload['torch']} (ISA {payload['torch_isa']}); the members trained "
        f"{payload['train_minutes']:.0f} minutes in all (validation runs and refits, one at a "
        "time). Every member is trained with `--refit`: early stopping on the 10% "
        "validation carve-out of the training part (u1.base, or the fold's) chooses the "
        "epochs, then the model is trained again from scratch on all of it and that model is "
        "scored. The blend (`movierec blend RUN... --out DIR`) fits ridge weights and an "
        "intercept on the members' predictions "
        "for the carve-out, made by the early-stopped models that never saw it (before the "
        "refit), its penalty chosen by 5-fold cross-validation within the carve-out; then it "
        "combines the refit models' test predictions, clipped to 1-5. By default (`--features "
        "auto`) the weights may also move linearly with four facts of the user and the item "
        "(log number of ratings, rating deviation, from the ratings the early-stopped models "
        "learnt from): feature-weighted linear stacking, kept only where it cross-validates "
        "better than one weight per member within the carve-out (chosen there: "
        + "; ".join(
            f"{unit_label(s, folds)} "
            + ("features" if s["blend"].get("features") else "plain")
            + (
                f" (features {s['blend']['cv_rmse']['features']:.4f}, plain "
                f"{s['blend']['cv_rmse']['plain']:.4f})"
                if "features" in s["blend"].get("cv_rmse", {})
                else ""
            )
            for s in by_seed
        )
        + "). The blend with plain weights is the row below it. The test set is read "
        f"once per number. Mean ± sd over {over}.",
        "",
        f"| model | {'test' if folds else 'u1 test'} RMSE | MAE | validation RMSE (carve-out, "
        "before refit) | "
        "blend weight | config |",
        "|---|---:|---:|---:|---:|---|",
    ]
    for name, config in zip(names, payload["configs"], strict=True):
        rows = [s["members"][name] for s in by_seed]
        weights = [s["blend"]["weights"][name] for s in by_seed]
        valid = [s["blend"]["validation_rmse"][name] for s in by_seed]
        lines.append(
            f"| {name} (refit) | {cell([r['rmse'] for r in rows])} | "
            f"{cell([r['mae'] for r in rows])} | {cell(valid)} | {cell(weights, 3)} | "
            f"`{config}` |"
        )
    blends = [s["blend"] for s in by_seed]
    lines += [
        f"| **blend of the {len(names)}** | "
        f"**{cell([b['test']['blend']['rmse'] for b in blends])}** | "
        f"{cell([b['test']['blend']['mae'] for b in blends])} | "
        f"{cell([b['validation_rmse']['blend'] for b in blends])} | intercept "
        f"{cell([b['intercept'] for b in blends], 3)}, alpha "
        f"{', '.join(format(b['alpha'], 'g') for b in blends)} | `movierec blend` |",
        *(
            [
                f"| blend of the {len(names)}, plain weights (`--features none`) | "
                f"{cell([b['plain']['test']['blend']['rmse'] for b in blends])} | "
                f"{cell([b['plain']['test']['blend']['mae'] for b in blends])} | "
                f"{cell([b['plain']['validation_rmse']['blend'] for b in blends])} | alpha "
                f"{', '.join(format(b['plain']['alpha'], 'g') for b in blends)} | "
                "`movierec blend --features none` |"
            ]
            if all("plain" in b for b in blends)
            else []
        ),
        f"| mean of the {len(names)} (equal weights, nothing fitted) | "
        f"{cell([b['test']['mean_of_members']['rmse'] for b in blends])} | "
        f"{cell([b['test']['mean_of_members']['mae'] for b in blends])} | - | "
        f"{1 / len(names):.3f} each | - |",
        "",
        ("Per fold" if folds else "Per seed")
        + " (test RMSE): "
        + "; ".join(
            f"{unit_label(s, folds)}: blend {s['blend']['test']['blend']['rmse']:.4f}"
            + (
                f" (plain weights {s['blend']['plain']['test']['blend']['rmse']:.4f}), "
                if "plain" in s["blend"]
                else ", "
            )
            + ", ".join(f"{n} {s['members'][n]['rmse']:.4f}" for n in names)
            for s in by_seed
        )
        + ".",
        "",
        "The validation RMSE of the blend is its in-sample fit on the carve-out (the rows its "
        "weights were fitted on), beside the members' on the same rows; only the test column "
        "is a result. Published u1 test RMSEs, for reference (not run here):",
        "",
        "| published model | u1 RMSE | source |",
        "|---|---:|---|",
        *[f"| {name} | {rmse} | {source} |" for name, rmse, source in PUBLISHED],
        FOLD_END if folds else END,
    ]
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--seeds", default="0,1,2", help="Comma-separated seeds (default 0,1,2).")
    parser.add_argument(
        "--configs", default=",".join(CONFIGS), help="Comma-separated member config files."
    )
    parser.add_argument("--threads", type=int, default=1, help="PyTorch threads (default 1).")
    parser.add_argument(
        "--runs", type=Path, default=ROOT / "runs" / "blend", help="Where the member runs go."
    )
    parser.add_argument("--train-only", action="store_true", help="Train the members only.")
    parser.add_argument(
        "--folds",
        action="store_true",
        help="The folds u1..u5 with the first seed on each (the 5-fold section), not u1's seeds.",
    )
    parser.add_argument("--out", type=Path, default=RESULTS, help="Markdown file to update.")
    parser.add_argument("--json-out", type=Path, default=None, help="JSON of every number.")
    args = parser.parse_args()
    seeds = [int(s) for s in args.seeds.split(",") if s.strip()]
    configs = [c.strip() for c in args.configs.split(",") if c.strip()]
    units = [(fold, seeds[0]) for fold in FOLDS] if args.folds else [("u1", s) for s in seeds]
    members = {
        unit: [train_member(c, unit[1], args.threads, args.runs, unit[0]) for c in configs]
        for unit in units
    }
    if args.train_only:
        return
    started = time.perf_counter()
    per_seed = []
    for split, seed in units:
        runs = members[(split, seed)]
        report = blend_seed(runs, unit_dir(args.runs, split, seed) / "blend")
        report["weights"] = {m["name"]: m["weight"] for m in report["members"]}
        per_seed.append(
            {
                "split": split,
                "seed": seed,
                "members": {run.name: member_row(run) for run in runs},
                "blend": report,
            }
        )
    command = "python benchmarks/blend.py" + (" --folds" if args.folds else "")
    if args.seeds != "0,1,2" and not (args.folds and seeds == [0]):
        command += f" --seeds {args.seeds}"
    if args.configs != ",".join(CONFIGS):
        command += f" --configs {args.configs}"
    payload = {
        "command": command,
        "date": dt.date.today().isoformat(),
        "cpu": cpu_model(),
        "threads": args.threads,
        "torch": torch.__version__,
        "torch_isa": torch.backends.cpu.get_cpu_capability(),
        "blend_seconds": time.perf_counter() - started,  # blending and scoring only
        "train_minutes": sum(
            (row["train_seconds"] + (row["validation_train_seconds"] or 0)) / 60
            for entry in per_seed
            for row in entry["members"].values()
        ),
        "seeds": seeds[:1] if args.folds else seeds,
        "folds": args.folds,
        "configs": configs,
        "per_seed": per_seed,
        "published": [dict(zip(("model", "rmse", "source"), p, strict=True)) for p in PUBLISHED],
    }
    start, end = (FOLD_START, FOLD_END) if args.folds else (START, END)
    write_marked_section(render(payload), args.out, start, end)
    json_out = args.json_out or (FOLD_JSON_OUT if args.folds else JSON_OUT)
    json_out.parent.mkdir(parents=True, exist_ok=True)
    json_out.write_text(json.dumps(payload, indent=2) + "\n", encoding="utf-8")
    print(f"wrote {args.out} and {json_out}", file=sys.stderr)


if __name__ == "__main__":
    main()
