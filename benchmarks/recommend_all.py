"""Every user's top-10 on ml-100k: ``Recommender.recommend(users=None, k=10)`` and the CLI's
``recommend --all --out``, timed for the default run (the EmbeddingNet with its ranking tower),
the article's EmbeddingNet (``--model embedding-net``) and MF, for each scoring precision
(``--precision fp32``, exact; ``auto``, bf16 where the CPU has native bf16 units), with the
Python call's and the CLI's CPU seconds beside their wall seconds (a busy machine inflates the
wall).

    python benchmarks/recommend_all.py [--runs /tmp/h3-runs] [--repeats 5] [--out FILE]
        [--models default embedding-net] [--precisions fp32 auto]

Runs missing under ``--runs`` are trained first (``movierec train --data ml-100k --split u1
--epochs 3``: a few epochs are enough for timing, the scoring cost does not depend on them).
Threads are what the CLI uses (``configure_threads(None)``: every core this process may run
on) unless ``--threads`` says. Each time is the median of ``--repeats``; the CLI's includes
starting Python, importing torch, loading the run and writing the parquet file. Prints the CPU
and its matrix ISA (avx2, avx512_bf16, amx) and writes benchmarks/results/recommend_all.json
with the command that made
it. The target (issues 14 and 16): under 2 s for ml-100k on 2 cores.
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import cpu_model  # one definition for every benchmark script

OUT = Path(__file__).resolve().parent / "results" / "recommend_all.json"
RUNS = {"default": [], "mf": ["--model", "mf"], "embedding-net": ["--model", "embedding-net"]}
ISA_FLAGS = ("avx2", "avx512f", "avx512_bf16", "amx_bf16", "amx_tile")


def cpu_isa() -> list[str]:
    """The matrix-relevant ISA flags of this CPU (from /proc/cpuinfo), in ISA_FLAGS order."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    line = next((ln for ln in text.splitlines() if ln.startswith("flags")), "")
    flags = set(line.split(":", 1)[-1].split())
    return [flag for flag in ISA_FLAGS if flag in flags]


def ensure_run(root: Path, name: str) -> Path:
    """The run ``root/name``, trained (3 epochs on u1) when it is not there yet."""
    run = root / name
    if not (run / "run.json").is_file():
        command = [sys.executable, "-m", "movierec", "train", "--data", "ml-100k"]
        command += ["--split", "u1", "--epochs", "3", "-q", "--out", str(run), *RUNS[name]]
        subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
    return run


def time_python(run: Path, repeats: int, precision: str, threads: int | None) -> dict[str, float]:
    """Median wall and CPU seconds of ``recommend(users=None, k=10)`` on the loaded run
    (one warm-up)."""
    from movierec.artifacts import load_run
    from movierec.train import configure_threads

    recommender, _ = load_run(run)
    recommender.precision = precision
    configure_threads(threads)
    rows = len(recommender.recommend(users=None, k=10))
    times, cpu = [], []
    for _ in range(repeats):
        started, started_cpu = time.perf_counter(), time.process_time()
        recommender.recommend(users=None, k=10)
        times.append(time.perf_counter() - started)
        cpu.append(time.process_time() - started_cpu)
    return {
        "python_s": statistics.median(times),
        "python_all_s": times,
        "python_cpu_s": statistics.median(cpu),
        "rows": rows,
    }


def time_cli(run: Path, repeats: int, precision: str, threads: int | None) -> dict[str, float]:
    """Median wall and CPU (user + system, all threads) seconds of ``movierec recommend RUN
    --all --out recs.parquet``: the CPU seconds say what the command costs on a busy machine,
    where the wall seconds mostly wait for a core."""
    times, cpu = [], []
    with tempfile.TemporaryDirectory() as folder:
        out = Path(folder) / "recs.parquet"
        command = [sys.executable, "-m", "movierec", "recommend", str(run), "--all", "-q"]
        command += ["--out", str(out), "--overwrite", "--precision", precision]
        command += [] if threads is None else ["--threads", str(threads)]
        for _ in range(repeats):
            before = resource.getrusage(resource.RUSAGE_CHILDREN)
            started = time.perf_counter()
            subprocess.run(command, check=True, stdout=subprocess.DEVNULL)
            times.append(time.perf_counter() - started)
            after = resource.getrusage(resource.RUSAGE_CHILDREN)
            cpu.append(after.ru_utime - before.ru_utime + after.ru_stime - before.ru_stime)
    return {
        "cli_s": statistics.median(times),
        "cli_all_s": times,
        "cli_cpu_s": statistics.median(cpu),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--runs", type=Path, default=Path("/tmp/h3-runs"))
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--out", type=Path, default=OUT)
    parser.add_argument(
        "--models", nargs="+", default=["default", "embedding-net"], choices=list(RUNS)
    )
    parser.add_argument("--precisions", nargs="+", default=["fp32", "auto"])
    parser.add_argument(
        "--threads",
        type=int,
        default=None,
        help="torch threads (default: every core, as the CLI; on a busy machine the OpenMP "
        "workers of two threads wait on each other: one thread measures the work)",
    )
    args = parser.parse_args()
    isa = cpu_isa()
    print(f"cpu: {cpu_model()}; isa: {', '.join(isa) or 'none of ' + ', '.join(ISA_FLAGS)}")
    rows = []
    for name in args.models:
        run = ensure_run(args.runs, name)
        for precision in args.precisions:
            row = {"run": name, "precision": precision}
            row.update(time_python(run, args.repeats, precision, args.threads))
            row.update(time_cli(run, args.repeats, precision, args.threads))
            row["threads"] = torch.get_num_threads()
            rows.append(row)
            print(
                f"{name:>14} {precision}: recommend(users=None, k=10) {row['python_s']:.3f} s "
                f"({row['python_cpu_s']:.3f} s CPU), CLI recommend --all --out "
                f"{row['cli_s']:.3f} s ({row['cli_cpu_s']:.3f} s CPU; {row['rows']:,} rows, "
                f"{row['threads']} threads)",
                flush=True,
            )
            write(args, isa, rows)  # after every row: a long run cut short keeps the others
    print(f"wrote {args.out}")


def write(args: argparse.Namespace, isa: list[str], rows: list[dict]) -> None:
    """The JSON document of the rows so far, with the command and the machine."""
    args.out.write_text(
        json.dumps(
            {
                "command": "python " + " ".join(["benchmarks/recommend_all.py", *sys.argv[1:]]),
                "cpu": cpu_model(),
                "isa": isa,
                "cores": len(os.sched_getaffinity(0)),
                "load_average_1min": os.getloadavg()[0],
                "torch": torch.__version__,
                "repeats": args.repeats,
                "rows": rows,
            },
            indent=2,
        )
        + "\n"
    )


if __name__ == "__main__":
    main()
