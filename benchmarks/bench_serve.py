"""Load benchmark of the HTTP API: concurrent clients asking for users' top-10.

Starts ``python -m movierec.serving.server RUN`` on 127.0.0.1 on a free port (or uses ``--url``),
then runs ``--clients`` asyncio + httpx clients for ``--seconds``, each cycling through the run's
real user IDs on ``GET /users/{id}/recommendations?k=10``. Writes JSON and a Markdown table with
throughput, latency percentiles, errors, the exact command, the CPU model and core count.

    python benchmarks/bench_serve.py --run runs/demo --clients 16 --seconds 60 \\
        --out benchmarks/results/serve.json

The load generator shares the machine with the server: on a small machine it competes with it for
the cores, and the numbers say so (``cpu_count`` in the results).
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import platform
import shlex
import socket
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import httpx
import numpy as np


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(run: Path, port: int, workers: int, threads: int | None, cache_size: int):
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    command = [
        sys.executable,
        "-m",
        "movierec.serving.server",
        str(run),
        "--host",
        "127.0.0.1",
        "--port",
        str(port),
        "--workers",
        str(workers),
        "--cache-size",
        str(cache_size),
        "--log-level",
        "warning",
    ]
    if threads is not None:
        command += ["--threads", str(threads)]
    return subprocess.Popen(command, env=env)


async def wait_ready(url: str, server: subprocess.Popen | None, timeout: float = 120.0) -> dict:
    deadline = time.monotonic() + timeout
    async with httpx.AsyncClient(base_url=url, timeout=5.0) as client:
        while True:
            if server is not None and server.poll() is not None:
                raise SystemExit(f"the server exited with code {server.returncode}")
            try:
                response = await client.get("/health")
                if response.status_code == 200:
                    return response.json()
            except httpx.TransportError:
                pass
            if time.monotonic() > deadline:
                raise SystemExit(f"the server at {url} did not become healthy in {timeout:.0f} s")
            await asyncio.sleep(0.2)


def run_users(run: Path) -> list[Any]:
    """The real user IDs of a run, from its ID map."""
    return json.loads((run / "id_map.json").read_text(encoding="utf-8"))["users"]


async def client_loop(
    client: httpx.AsyncClient,
    users: list[Any],
    offset: int,
    stop_at: float,
    latencies: list[float],
    errors: dict[str, int],
) -> None:
    i = offset
    while time.perf_counter() < stop_at:
        user = users[i % len(users)]
        i += 17  # clients walk the users in different orders
        started = time.perf_counter()
        try:
            response = await client.get(f"/users/{user}/recommendations?k=10")
            ok = response.status_code == 200 and len(response.json()["items"]) == 10
            key = "ok" if ok else f"status {response.status_code}"
        except httpx.HTTPError as exc:
            key = type(exc).__name__
        elapsed = time.perf_counter() - started
        if key == "ok":
            latencies.append(elapsed)
        else:
            errors[key] = errors.get(key, 0) + 1


async def run_load(url: str, users: list[Any], clients: int, seconds: float, warmup: float):
    limits = httpx.Limits(max_connections=clients, max_keepalive_connections=clients)
    async with httpx.AsyncClient(base_url=url, timeout=30.0, limits=limits) as client:
        if warmup > 0:
            await asyncio.gather(
                *(
                    client_loop(client, users, c, time.perf_counter() + warmup, [], {})
                    for c in range(clients)
                )
            )
        latencies: list[float] = []
        errors: dict[str, int] = {}
        started = time.perf_counter()
        stop_at = started + seconds
        await asyncio.gather(
            *(client_loop(client, users, c, stop_at, latencies, errors) for c in range(clients))
        )
        elapsed = time.perf_counter() - started
    return latencies, errors, elapsed


def summarise(latencies: list[float], errors: dict[str, int], elapsed: float) -> dict[str, Any]:
    ms = np.asarray(latencies) * 1000
    count = len(latencies)
    pct = (lambda q: round(float(np.percentile(ms, q)), 2)) if count else (lambda q: None)
    return {
        "requests": count,
        "errors": sum(errors.values()),
        "error_kinds": errors,
        "seconds": round(elapsed, 2),
        "throughput_rps": round(count / elapsed, 1) if elapsed else 0.0,
        "latency_ms": {
            "mean": round(float(ms.mean()), 2) if count else None,
            "p50": pct(50),
            "p95": pct(95),
            "p99": pct(99),
            "max": round(float(ms.max()), 2) if count else None,
        },
    }


def markdown(result: dict[str, Any]) -> str:
    lat = result["latency_ms"]
    rows = [
        ("command", f"`{result['command']}`"),
        ("machine", f"{result['cpu_model']}, {result['cpu_count']} cores"),
        ("server", result["server"]),
        ("model", f"{result['model']} on {result['dataset']}"),
        ("clients", result["clients"]),
        ("duration (s)", result["seconds"]),
        ("requests", result["requests"]),
        ("throughput (req/s)", result["throughput_rps"]),
        ("latency p50 / p95 / p99 (ms)", f"{lat['p50']} / {lat['p95']} / {lat['p99']}"),
        ("latency mean / max (ms)", f"{lat['mean']} / {lat['max']}"),
        ("errors", result["errors"]),
    ]
    lines = ["| | |", "|---|---|", *(f"| {k} | {v} |" for k, v in rows)]
    return "# Serving benchmark\n\n" + "\n".join(lines) + "\n"


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    target = parser.add_mutually_exclusive_group(required=True)
    target.add_argument("--run", type=Path, help="run directory to serve on a fresh server")
    target.add_argument("--url", help="an already running server, e.g. http://127.0.0.1:8000")
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--seconds", type=float, default=60.0)
    parser.add_argument("--warmup", type=float, default=3.0, help="seconds of unmeasured load")
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None, help="torch threads per worker")
    parser.add_argument(
        "--cache-size", type=int, default=0, help="server's top-k cache (0: every request scores)"
    )
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve.json"))
    args = parser.parse_args(argv)

    server = None
    url = args.url
    if args.run is not None:
        if not str(args.url or "127.0.0.1").startswith(("http://127.0.0.1", "127.0.0.1")):
            raise SystemExit("only 127.0.0.1 is benchmarked")
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(args.run, port, args.workers, args.threads, args.cache_size)
    try:
        health = asyncio.run(wait_ready(url, server))
        # The API lists no users (on purpose): take them from the run, or assume 1..n (MovieLens).
        users = run_users(args.run) if args.run else list(range(1, int(health["n_users"]) + 1))
        latencies, errors, elapsed = asyncio.run(
            run_load(url, users, args.clients, args.seconds, args.warmup)
        )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    result = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "server": (
            f"{args.workers} worker(s), {args.threads or 'default'} torch thread(s), "
            f"cache {args.cache_size}"
            if server is not None
            else url
        ),
        "workers": args.workers,
        "cache_size": args.cache_size,
        "model": health["model"],
        "dataset": health["dataset"],
        "n_users": health["n_users"],
        "n_items": health["n_items"],
        "clients": args.clients,
        "endpoint": "/users/{id}/recommendations?k=10",
        **summarise(latencies, errors, elapsed),
    }
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))


if __name__ == "__main__":
    main()
