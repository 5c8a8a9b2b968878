"""Start-up time of ``movierec serve``: process start to listening, to ``/health`` ok, and to
the score matrix in place.

Starts ``movierec serve RUN`` (as ``python -m movierec serve``, the command line's own imports
included) ``--starts`` times on a free loopback port and records, per start (seconds from the
process start):

- ``listening_s``: the port first answers;
- ``ready_s``: ``/health`` answers 200 ``ok`` (every route answers from then on, scoring users
  per request while the matrix is built);
- ``ready_cpu_s``: the server's CPU seconds (user + system) at ``ready_s``: on a shared machine
  the wall time depends on the other processes, this much less;
- ``first_list_s``: how long the first ``/users/{id}/recommendations`` took once ready;
- ``precomputed_s``: ``/health`` says ``scores: "precomputed"``; ``precompute_s``: the
  precompute's own time, as the server logs it (``scores ready in X s``);
- ``load_1min``: the load average when the start began.

Writes the medians, every start, the command, the CPU model, the load average and torch's CPU
ISA to JSON.

    python benchmarks/serve_startup.py --run /tmp/h1-article --starts 5 \\
        --out benchmarks/results/serve_startup.json
"""

from __future__ import annotations

import argparse
import json
import os
import re
import socket
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import torch
from bench_serve import cpu_model, free_port, provenance

READY = re.compile(r"scores ready in ([0-9.]+) s")
TICKS = os.sysconf("SC_CLK_TCK")
KEYS = (
    "listening_s",
    "ready_s",
    "ready_cpu_s",
    "first_list_s",
    "precomputed_s",
    "precompute_s",
    "load_1min",
)


def isa_flags() -> list[str]:
    """The CPU flags that change torch's kernels (and so timings and last bits)."""
    try:
        text = Path("/proc/cpuinfo").read_text()
    except OSError:
        return []
    flags = next(
        (line.split(":", 1)[1].split() for line in text.splitlines() if line.startswith("flags")),
        [],
    )
    return [f for f in ("avx2", "avx512f", "avx512_bf16", "amx_tile", "amx_bf16") if f in flags]


def get(port: int, path: str) -> tuple[int, dict] | None:
    """``(status, JSON body)`` of ``GET path``, or None while nothing listens."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
            conn.sendall(
                f"GET {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n".encode()
            )
            answer = b""
            while chunk := conn.recv(65536):
                answer += chunk
    except OSError:
        return None
    if not answer.startswith(b"HTTP/1.1 "):
        return None
    head, _, body = answer.partition(b"\r\n\r\n")
    try:
        return int(head[9:12]), json.loads(body or b"null")
    except ValueError:
        return int(head[9:12]), {}


def cpu_seconds(pid: int) -> float:
    """User + system CPU seconds of process ``pid`` so far (Linux ``/proc``)."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / TICKS


def one_start(run: Path, user: str, timeout: float) -> dict[str, float | None]:
    port = free_port()
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "movierec", "serve", str(run), "--port", str(port)]
    result: dict[str, float | None] = dict.fromkeys(KEYS)
    result["load_1min"] = os.getloadavg()[0]
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        server = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        try:
            while result["precomputed_s"] is None:
                if server.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"the server exited:\n{log.read()[-2000:]}")
                if time.perf_counter() - started > timeout:
                    raise SystemExit(f"the server was not done in {timeout:.0f} s")
                answer = get(port, "/health")
                now = time.perf_counter() - started
                if answer is not None and result["listening_s"] is None:
                    result["listening_s"] = now
                if answer is not None and answer[0] == 200 and result["ready_s"] is None:
                    result["ready_s"] = now
                    result["ready_cpu_s"] = cpu_seconds(server.pid)
                    asked = time.perf_counter()
                    listed = get(port, f"/users/{user}/recommendations?k=10")
                    assert listed is not None and listed[0] == 200, listed
                    result["first_list_s"] = time.perf_counter() - asked
                if (
                    answer is not None
                    and answer[0] == 200
                    and answer[1].get("scores") != "precomputing"
                ):
                    result["precomputed_s"] = now
                time.sleep(0.05)
        finally:
            server.terminate()
            server.wait(timeout=30)
        log.seek(0)
        found = READY.search(log.read())
    result["precompute_s"] = float(found.group(1)) if found else None
    return {k: None if v is None else round(v, 3) for k, v in result.items()}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--user", default="1", help="a raw user ID the run knows (first list)")
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    isa = torch.backends.cpu.get_cpu_capability()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch ISA {isa}, flags {isa_flags()}")
    starts = []
    for i in range(args.starts):
        starts.append(one_start(args.run, args.user, args.timeout))
        print(f"start {i + 1}: {starts[-1]}")
    medians = {
        key: statistics.median(s[key] for s in starts if s[key] is not None)
        for key in KEYS
        if any(s[key] is not None for s in starts)
    }
    print("medians:", medians)
    if args.out:
        result = {
            **provenance(),
            "isa_flags": isa_flags(),
            "run": str(args.run),
            "median": medians,
            "starts": starts,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
