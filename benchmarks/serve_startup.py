"""Start-up time of ``movierec serve``: process start to listening, and to ``/health`` ok.

Starts ``python -m movierec.serving.server RUN`` ``--starts`` times on a free loopback port and
records, per start, when the port first answers (``/health`` 503 ``starting`` or 200), when it
answers 200 ``ok``, and the precompute time the server logs (``scores ready in X s``). Writes the
medians, every start, the command, the CPU model and torch's CPU ISA to JSON.

    python benchmarks/serve_startup.py --run /tmp/h1-run --starts 3 \\
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


def health(port: int) -> int | None:
    """The status of ``GET /health``, or None while nothing listens."""
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=2) as conn:
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n\r\n")
            head = conn.recv(64)
    except OSError:
        return None
    return int(head[9:12]) if head.startswith(b"HTTP/1.1 ") else None


def one_start(run: Path, timeout: float) -> dict[str, float | None]:
    port = free_port()
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [sys.executable, "-m", "movierec.serving.server", str(run), "--port", str(port)]
    with tempfile.TemporaryFile("w+") as log:
        started = time.perf_counter()
        server = subprocess.Popen(command, env=env, stdout=log, stderr=log)
        listening = ready = None
        try:
            while ready is None:
                if server.poll() is not None:
                    log.seek(0)
                    raise SystemExit(f"the server exited:\n{log.read()[-2000:]}")
                if time.perf_counter() - started > timeout:
                    raise SystemExit(f"the server was not ready in {timeout:.0f} s")
                status = health(port)
                now = time.perf_counter() - started
                if status is not None and listening is None:
                    listening = now
                if status == 200:
                    ready = now
                time.sleep(0.05)
        finally:
            server.terminate()
            server.wait(timeout=30)
        log.seek(0)
        found = READY.search(log.read())
    return {
        "listening_s": round(listening, 3),
        "ready_s": round(ready, 3),
        "precompute_s": float(found.group(1)) if found else None,
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--starts", type=int, default=3)
    parser.add_argument("--timeout", type=float, default=300.0)
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    isa = torch.backends.cpu.get_cpu_capability()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch ISA {isa}")
    starts = []
    for i in range(args.starts):
        starts.append(one_start(args.run, args.timeout))
        print(f"start {i + 1}: {starts[-1]}")
    medians = {
        key: statistics.median(s[key] for s in starts if s[key] is not None)
        for key in ("listening_s", "ready_s", "precompute_s")
        if any(s[key] is not None for s in starts)
    }
    print("medians:", medians)
    if args.out:
        result = {
            **provenance(),
            "run": str(args.run),
            "median": medians,
            "starts": starts,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(result, indent=2) + "\n")


if __name__ == "__main__":
    main()
