"""Scale benchmark: write 25M synthetic ratings, then time loading them and measure peak memory.

Run: ``PYTHONPATH=src python benchmarks/scale.py [--ratings 25000000] [--csv-ratings N]``.

One run measures:
- write seconds of :func:`movierec.data.synthetic.write_synthetic` (Parquet, then CSV);
- Parquet load rate of :func:`movierec.data.load_data` (ratings/s; target >= 5M/s), in a child
  process that then fits the :class:`~movierec.data.encoder.IdEncoder` and builds the
  :class:`~movierec.data.tensors.RatingTensors`; the child's peak RSS (``ru_maxrss``) is the
  memory of load + encode + tensors (target <= 4 GiB);
- CSV load rate, in a second child.

Results go to ``benchmarks/results/scale.json`` and ``scale.md``; the generated files under
``/tmp`` are removed at the end unless ``--keep``.
"""

from __future__ import annotations

import argparse
import datetime as dt
import json
import os
import platform
import resource
import subprocess
import sys
import textwrap
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "src"))

from movierec.data.synthetic import write_synthetic  # noqa: E402

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import cpu_model  # noqa: E402  one definition for every benchmark script

CHILD = textwrap.dedent(
    """
    import json, sys, time
    from movierec.data import load_data
    from movierec.data.encoder import IdEncoder
    from movierec.data.tensors import RatingTensors
    start = time.perf_counter()
    data = load_data(sys.argv[1])
    loaded = time.perf_counter()
    encoder = IdEncoder.fit(data.ratings)
    tensors = RatingTensors.from_frame(data.ratings, encoder)
    done = time.perf_counter()
    print(json.dumps({"rows": len(data.ratings), "load_s": loaded - start,
                      "encode_tensors_s": done - loaded, "n_tensor_rows": len(tensors),
                      "report": data.report}))
    """
)


def child_load(path: Path) -> dict:
    """Load ``path``, encode it and build tensors in a fresh process: timings, peak RSS."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    env = {**os.environ, "PYTHONPATH": str(ROOT / "src")}
    out = subprocess.run(
        [sys.executable, "-c", CHILD, str(path)],
        env=env,
        check=True,
        capture_output=True,
        text=True,
    )
    result = json.loads(out.stdout.strip().splitlines()[-1])
    peak_kib = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    # ru_maxrss of children is the largest child so far: exact for the first child, and a bound
    # for later ones (reported only when it grew).
    result["peak_rss_gib"] = round(peak_kib / 2**20, 3) if peak_kib > before else None
    result["rate_per_s"] = round(result["rows"] / result["load_s"])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--ratings", type=int, default=25_000_000)
    parser.add_argument("--csv-ratings", type=int, default=None, help="default: --ratings")
    parser.add_argument("--users", type=int, default=162_541)
    parser.add_argument("--items", type=int, default=59_047)
    parser.add_argument("--workdir", type=Path, default=Path("/tmp/movierec-scale"))
    parser.add_argument("--keep", action="store_true", help="keep the generated files")
    args = parser.parse_args()
    args.workdir.mkdir(parents=True, exist_ok=True)
    parquet = args.workdir / f"ratings-{args.ratings}.parquet"
    csv_n = args.csv_ratings or args.ratings
    csv_path = args.workdir / f"ratings-{csv_n}.csv"
    sizes = {"n_users": args.users, "n_items": args.items, "seed": 0, "progress": False}
    results: dict = {
        "command": "PYTHONPATH=src python benchmarks/scale.py " + " ".join(sys.argv[1:]),
        "date": dt.datetime.now(dt.UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "python": platform.python_version(),
    }
    try:
        results["write_parquet"] = write_synthetic(
            parquet, n_ratings=args.ratings, fmt="parquet", **sizes
        )
        print("parquet written", results["write_parquet"], flush=True)
        results["load_parquet"] = child_load(parquet)
        print("parquet loaded", results["load_parquet"], flush=True)
        results["write_csv"] = write_synthetic(csv_path, n_ratings=csv_n, fmt="csv", **sizes)
        print("csv written", results["write_csv"], flush=True)
        results["load_csv"] = child_load(csv_path)
        print("csv loaded", results["load_csv"], flush=True)
    finally:
        if not args.keep:
            for path in (parquet, csv_path):
                path.unlink(missing_ok=True)
    write_results(results)


def write_results(results: dict) -> None:
    out = ROOT / "benchmarks" / "results"
    out.mkdir(parents=True, exist_ok=True)
    (out / "scale.json").write_text(json.dumps(results, indent=2) + "\n")
    wp, lp = results["write_parquet"], results["load_parquet"]
    wc, lc = results["write_csv"], results["load_csv"]
    lines = [
        "# Scale benchmark: synthetic MovieLens-25M-sized ratings",
        "",
        f"- Command: `{results['command']}`",
        f"- Date: {results['date']}; CPU: {results['cpu']}, {results['cores']} cores; "
        f"Python {results['python']}",
        "",
        "| step | rows | seconds | rate (rows/s) | file size | peak RSS (GiB) |",
        "|---|---:|---:|---:|---:|---:|",
        f"| write Parquet | {wp['rows']:,} | {wp['seconds']:.1f} | "
        f"{wp['rows'] / wp['seconds']:,.0f} | {wp['bytes'] / 2**20:,.0f} MiB | |",
        f"| load Parquet (`load_data`) | {lp['rows']:,} | {lp['load_s']:.2f} | "
        f"{lp['rate_per_s']:,} | | {lp['peak_rss_gib']} (load + encode + tensors) |",
        f"| encode + tensors | {lp['n_tensor_rows']:,} | {lp['encode_tensors_s']:.2f} | | | |",
        f"| write CSV | {wc['rows']:,} | {wc['seconds']:.1f} | "
        f"{wc['rows'] / wc['seconds']:,.0f} | {wc['bytes'] / 2**20:,.0f} MiB | |",
        f"| load CSV (`load_data`) | {lc['rows']:,} | {lc['load_s']:.2f} | "
        f"{lc['rate_per_s']:,} | | {lc['peak_rss_gib'] or '-'} |",
        "",
        "Peak RSS is the child process's `ru_maxrss` (load, IdEncoder fit, RatingTensors); "
        "targets: Parquet load >= 5M ratings/s, peak <= 4 GiB.",
        "",
    ]
    (out / "scale.md").write_text("\n".join(lines))


if __name__ == "__main__":
    main()
