"""Sparse FC and GLocal-K against their published u1 RMSEs: validation runs, then test runs.

    python benchmarks/sota.py valid --config configs/ml100k/sparse-fc.toml --set epochs=1000
    python benchmarks/sota.py test --config configs/ml100k/sparse-fc.toml --seed 1 [--refit]
    python benchmarks/sota.py render     # docs/results.md's sota section from the JSON

``valid`` trains on u1.base less its 10% validation carve-out (seed as given) and records the
validation RMSE curve only: the best epoch, the curve every 10 epochs (50 past 300) and the
seconds per epoch; it never reads u1.test. ``test`` is one ``movierec train`` run (the CLI's
own path, which touches u1.test once) and records its test RMSE. Both append one record, with the
command that produced it, to ``benchmarks/results/sota.json``. ``--set key=value`` overrides
a ``[model]`` or ``[train]`` option of the config (values as TOML reads them). ``render``
writes the tables of ``docs/results.md`` between ``<!-- sota:start -->`` and
``<!-- sota:end -->`` from that JSON (the notes above them are :data:`NOTES`).
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import shlex
import statistics
import subprocess
import sys
import time
import tomllib
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parents[1]
JSON_OUT = ROOT / "benchmarks" / "results" / "sota.json"
RESULTS = ROOT / "docs" / "results.md"
START, END = "<!-- sota:start -->", "<!-- sota:end -->"
sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import cpu_model  # noqa: E402  (one definition for every benchmark script)
from marked_section import write_marked_section  # noqa: E402

NOTES = ""  # filled in when the measurements are done


def _isa() -> str:
    """PyTorch's CPU capability, with AMX noted where the CPU has it (bf16 matmuls)."""
    import torch

    isa = torch.backends.cpu.get_cpu_capability()
    try:
        amx = "amx_bf16" in Path("/proc/cpuinfo").read_text()
    except OSError:
        amx = False
    return f"{isa} + AMX" if amx else isa


def _overrides(pairs: list[str], model_fields: set[str]) -> tuple[dict, dict]:
    """``key=value`` pairs split into model and training options (TOML-parsed values)."""
    model, train = {}, {}
    for pair in pairs:
        key, _, text = pair.partition("=")
        value = tomllib.loads(f"v = {text}")["v"]
        (model if key in model_fields else train)[key] = value
    return model, train


def validate(args: argparse.Namespace) -> dict[str, Any]:
    """One fit on the carve-out's complement; the validation curve, never the test set."""
    import dataclasses

    import torch

    from movierec.config import ModelSpec, RunOptions, load_config_file
    from movierec.data import load_data
    from movierec.models import make_config
    from movierec.pipeline import fit_recommender

    torch.set_num_threads(args.threads)
    name = load_config_file(Path(args.config)).model
    fields = {f.name for f in dataclasses.fields(type(make_config(name, {})))}
    model_options, train_options = _overrides(args.set, fields)
    spec = ModelSpec.resolve(
        config_path=Path(args.config), model_options=model_options, train_options=train_options
    )
    options = RunOptions(seed=args.seed, threads=args.threads, progress=False, precision="fp32")
    started = time.perf_counter()
    recommender = fit_recommender(load_data("ml-100k"), spec, options, split="u1")
    wall = time.perf_counter() - started
    history = recommender.training.history
    best = min(history, key=lambda r: r.valid_rmse)
    every = 10 if len(history) <= 300 else 50  # the curve's resolution
    return {
        "kind": "valid",
        "label": args.label,
        "config": args.config,
        "overrides": args.set,
        "seed": args.seed,
        "epochs_run": len(history),
        "best_epoch": best.epoch,
        "best_valid_rmse": round(best.valid_rmse, 5),
        "last_valid_rmse": round(history[-1].valid_rmse, 5),
        "curve": {r.epoch: round(r.valid_rmse, 5) for r in history if r.epoch % every == 0},
        "seconds_per_epoch_median": round(statistics.median(r.seconds for r in history), 4),
        "wall_seconds": round(wall, 1),
    }


def test(args: argparse.Namespace) -> dict[str, Any]:
    """One ``movierec train`` run on u1 (test set touched once): its test RMSE."""
    command = [
        sys.executable, "-m", "movierec", "train", "--data", "ml-100k", "--split", "u1",
        "--config", args.config, "--seed", str(args.seed), "--threads", str(args.threads),
        "--precision", "fp32", "--json", "--quiet",
    ]  # fmt: skip
    if args.refit:
        command.append("--refit")
    if args.set:
        raise SystemExit("test runs take the config as committed: no --set")
    started = time.perf_counter()
    done = subprocess.run(command, capture_output=True, text=True, check=True)
    metrics = json.loads(done.stdout)
    return {
        "kind": "test",
        "label": args.label,
        "config": args.config,
        "seed": args.seed,
        "refit": args.refit,
        "rmse": metrics["rmse"],
        "mae": metrics.get("mae"),
        "best_epoch": metrics.get("best_epoch"),
        "epochs": metrics.get("epochs"),
        "train_seconds": round(metrics["train_seconds"], 1),
        "validation": metrics.get("validation"),
        "wall_seconds": round(time.perf_counter() - started, 1),
    }


def render(records: list[dict[str, Any]]) -> str:
    """The sota section: every validation run, then the test runs by config (mean +- sd)."""
    lines = [START, "## Sparse FC and GLocal-K against their papers (ml-100k u1)", "", NOTES, ""]
    lines += [
        "### Validation (10% carve-out of u1.base, seed 0; u1.test never read)",
        "",
        "Each row: `python benchmarks/sota.py valid --config CONFIG --set KEY=VALUE ...` (the "
        "`--set` column; `optimizer=lbfgs` runs also set `lr=1.0`); s / epoch is the median "
        "wall time of an epoch with its validation, one thread, on a machine shared with "
        "other jobs.",
        "",
        "| setting | config | --set | best valid RMSE | at epoch | epochs run | s / epoch |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for r in (r for r in records if r["kind"] == "valid"):
        sets = " ".join(x.replace('"', "") for x in r["overrides"] if x != "lr=1.0")
        lines.append(
            f"| {r['label']} | `{Path(r['config']).name}` | `{sets}` | "
            f"{r['best_valid_rmse']:.4f} | {r['best_epoch']} | {r['epochs_run']} | "
            f"{r['seconds_per_epoch_median']:.2f} |"
        )
    lines += [
        "",
        "### Test (u1.test, touched once per run)",
        "",
        "| config | refit | seeds | RMSE per seed | mean ± sd | commands |",
        "|---|---|---|---|---:|---|",
    ]
    groups: dict[tuple[str, bool], list[dict[str, Any]]] = {}
    for r in (r for r in records if r["kind"] == "test"):
        groups.setdefault((r["config"], r["refit"]), []).append(r)
    for (config, refit), runs in groups.items():
        rmse = [r["rmse"] for r in runs]
        sd = statistics.stdev(rmse) if len(rmse) > 1 else 0.0
        seeds = ", ".join(str(r["seed"]) for r in runs)
        per_seed = " / ".join(f"{x:.4f}" for x in rmse)
        command = f"python benchmarks/sota.py test --config {config} --seed S"
        command += " --refit" if refit else ""
        lines.append(
            f"| `{config}` | {'yes' if refit else 'no'} | {seeds} | {per_seed} | "
            f"{statistics.mean(rmse):.4f} ± {sd:.4f} | `{command}` |"
        )
    lines.append(END)
    return "\n".join(lines)


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("kind", choices=("valid", "test", "render"))
    parser.add_argument("--config")
    parser.add_argument("--set", action="append", default=[], metavar="KEY=VALUE")
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--refit", action="store_true")
    parser.add_argument("--label", default="")
    args = parser.parse_args()
    records = json.loads(JSON_OUT.read_text()) if JSON_OUT.exists() else []
    if args.kind == "render":
        write_marked_section(render(records), RESULTS, START, END)
        return
    if not args.config:
        parser.error("--config is required for valid and test runs")
    record = validate(args) if args.kind == "valid" else test(args)
    record.update(
        command="python benchmarks/sota.py " + shlex.join(sys.argv[1:]),
        date=dt.datetime.now(dt.UTC).strftime("%Y-%m-%d %H:%M UTC"),
        cpu=cpu_model(),
        torch_isa=_isa(),
        python=platform.python_version(),
        load=os.getloadavg()[0],
    )
    print(json.dumps(record))
    JSON_OUT.write_text(json.dumps([*records, record], indent=1) + "\n")


if __name__ == "__main__":
    main()
