"""Load benchmark of the HTTP API: concurrent clients asking for users' top-10.

Starts ``python -m movierec.serving.server RUN`` on 127.0.0.1 on a free port (or uses ``--url``),
then runs ``--clients`` closed-loop clients for ``--seconds``, each cycling through the run's real
user IDs on ``GET /users/{id}/recommendations?k=10``. Writes JSON and a Markdown table with
throughput, latency percentiles, errors, the exact command, the CPU model, core count and date.

    python benchmarks/bench_serve.py --run runs/embedding-net --clients 16 --seconds 60 \\
        --out benchmarks/results/serve.json

The load generator shares the machine with the server, so it is kept lean: one asyncio coroutine
per client over its own keep-alive HTTP/1.1 connection (raw streams, on uvloop when installed),
reading each response by its Content-Length. A general-purpose client (httpx) costs more CPU per
request than the server does, and on a 2-core machine that would measure the client.
``--server-cpus``/``--client-cpus`` pin the two sides to separate cores.
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
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import numpy as np


def cpu_model() -> str:
    try:
        for line in Path("/proc/cpuinfo").read_text().splitlines():
            if line.startswith("model name"):
                return line.split(":", 1)[1].strip()
    except OSError:
        pass
    return platform.processor() or "unknown"


def provenance() -> dict[str, Any]:
    """What a serving benchmark's JSON opens with: the command, when, and on what machine (the
    load average too: these numbers are only comparable within one run on a quiet machine)."""
    import torch

    return {
        "command": shlex.join([sys.executable, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "load_average": os.getloadavg(),
        "torch_isa": torch.backends.cpu.get_cpu_capability(),
    }


def free_port() -> int:
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def start_server(
    run: Path,
    port: int,
    workers: int,
    threads: int | None,
    score_budget_mib: float | None,
    cpus: set[int] | None,
) -> subprocess.Popen:
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
        "--log-level",
        "warning",
    ]
    if threads is not None:
        command += ["--threads", str(threads)]
    if score_budget_mib is not None:
        command += ["--score-budget-mib", str(score_budget_mib)]
    pin = (lambda: os.sched_setaffinity(0, cpus)) if cpus else None  # workers inherit it
    return subprocess.Popen(command, env=env, preexec_fn=pin)


async def get(reader, writer, host: str, path: str) -> tuple[int, bytes]:
    """One keep-alive ``GET`` on an open connection: ``(status, body)``."""
    writer.write(f"GET {path} HTTP/1.1\r\nHost: {host}\r\n\r\n".encode())
    head = await reader.readuntil(b"\r\n\r\n")
    status = int(head[9:12])
    length = 0
    for line in head.split(b"\r\n")[1:]:
        name, _, value = line.partition(b":")
        if name.strip().lower() == b"content-length":
            length = int(value)
    return status, await reader.readexactly(length)


async def wait_ready(url: str, server: subprocess.Popen | None, timeout: float = 300.0) -> dict:
    host, port = address(url)
    deadline = time.monotonic() + timeout
    while True:
        if server is not None and server.poll() is not None:
            raise SystemExit(f"the server exited with code {server.returncode}")
        try:
            reader, writer = await asyncio.open_connection(host, port)
            try:
                status, body = await get(reader, writer, host, "/health")
            finally:
                writer.close()
            if status == 200:
                return json.loads(body)
        except (OSError, asyncio.IncompleteReadError, ValueError):
            pass
        if time.monotonic() > deadline:
            raise SystemExit(f"the server at {url} did not become healthy in {timeout:.0f} s")
        await asyncio.sleep(0.2)


def address(url: str) -> tuple[str, int]:
    parts = urlsplit(url if "://" in url else f"http://{url}")
    return parts.hostname or "127.0.0.1", parts.port or 80


def run_users(run: Path) -> list[Any]:
    """The real user IDs of a run, from its ID map."""
    return json.loads((run / "id_map.json").read_text(encoding="utf-8"))["users"]


async def client_loop(
    url: str,
    users: list[Any],
    offset: int,
    stop_at: float,
    latencies: list[int],
    errors: dict[str, int],
) -> None:
    """One client: a request at a time on its own connection until ``stop_at``."""
    host, port = address(url)
    connection = None
    i = offset
    while time.perf_counter() < stop_at:
        path = f"/users/{users[i % len(users)]}/recommendations?k=10"
        i += 17  # clients walk the users in different orders
        started = time.perf_counter_ns()
        try:
            async with asyncio.timeout(30):
                if connection is None:
                    connection = await asyncio.open_connection(host, port)
                status, body = await get(*connection, host, path)
            # Ten items, each with a predicted rating: cheaper than parsing the JSON.
            ok = status == 200 and body.count(b'"predicted_rating":') == 10
            key = "ok" if ok else f"status {status}"
        except (OSError, asyncio.IncompleteReadError, TimeoutError, ValueError) as exc:
            key = type(exc).__name__
            if connection is not None:
                connection[1].close()
            connection = None  # reconnect on the next request
        elapsed = time.perf_counter_ns() - started
        if key == "ok":
            latencies.append(elapsed)
        else:
            errors[key] = errors.get(key, 0) + 1
    if connection is not None:
        connection[1].close()


async def run_load(url: str, users: list[Any], clients: int, seconds: float, warmup: float):
    if warmup > 0:
        stop = time.perf_counter() + warmup
        await asyncio.gather(*(client_loop(url, users, c, stop, [], {}) for c in range(clients)))
    latencies: list[int] = []
    errors: dict[str, int] = {}
    started = time.perf_counter()
    stop_at = started + seconds
    await asyncio.gather(
        *(client_loop(url, users, c, stop_at, latencies, errors) for c in range(clients))
    )
    return latencies, errors, time.perf_counter() - started


def run_async(coroutine):
    """``asyncio.run`` on uvloop when it is installed (it comes with uvicorn[standard])."""
    try:
        import uvloop
    except ImportError:
        return asyncio.run(coroutine)
    return uvloop.run(coroutine)


def cpu_set(text: str | None) -> set[int] | None:
    """``"0"``, ``"0,1"`` or ``"0-1"`` -> a set of CPU numbers; None or empty -> no pinning."""
    if not text:
        return None
    cpus: set[int] = set()
    for part in text.split(","):
        low, _, high = part.partition("-")
        cpus.update(range(int(low), int(high or low) + 1))
    return cpus


def summarise(latencies: list[int], errors: dict[str, int], elapsed: float) -> dict[str, Any]:
    ms = np.asarray(latencies, dtype=np.float64) / 1e6
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
        ("date", result["date"]),
        ("machine", f"{result['cpu_model']}, {result['cpu_count']} cores"),
        ("server", result["server"]),
        ("load generator", result["client"]),
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
        "--score-budget-mib",
        type=float,
        default=None,
        help="server's precomputed-score budget (default: the server's; 0: score per request)",
    )
    parser.add_argument("--server-cpus", help="pin the server to these CPUs, e.g. 0 or 0-1")
    parser.add_argument("--client-cpus", help="pin the load generator to these CPUs, e.g. 1")
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/serve.json"))
    args = parser.parse_args(argv)

    server_cpus, client_cpus = cpu_set(args.server_cpus), cpu_set(args.client_cpus)
    if client_cpus:
        os.sched_setaffinity(0, client_cpus)
    server = None
    url = args.url
    if args.run is not None:
        port = free_port()
        url = f"http://127.0.0.1:{port}"
        server = start_server(
            args.run, port, args.workers, args.threads, args.score_budget_mib, server_cpus
        )
    load_before = os.getloadavg()
    try:
        health = run_async(wait_ready(url, server))
        # The API lists no users (on purpose): take them from the run, or assume 1..n (MovieLens).
        users = run_users(args.run) if args.run else list(range(1, int(health["n_users"]) + 1))
        latencies, errors, elapsed = run_async(
            run_load(url, users, args.clients, args.seconds, args.warmup)
        )
    finally:
        if server is not None:
            server.terminate()
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                server.kill()
    budget = "default" if args.score_budget_mib is None else f"{args.score_budget_mib:g} MiB"
    result = {
        "command": shlex.join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu_model": cpu_model(),
        "cpu_count": os.cpu_count(),
        "python": platform.python_version(),
        "server": (
            f"{args.workers} worker(s), {args.threads or 'default'} torch thread(s), "
            f"score budget {budget}, CPUs {args.server_cpus or 'any'}"
            if server is not None
            else url
        ),
        "client": (
            f"{args.clients} keep-alive connections, asyncio streams "
            f"({'uvloop' if _has_uvloop() else 'asyncio'}), CPUs {args.client_cpus or 'any'}"
        ),
        "workers": args.workers,
        "server_cpus": args.server_cpus,
        "client_cpus": args.client_cpus,
        "load_average_before": [round(x, 2) for x in load_before],
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


def _has_uvloop() -> bool:
    try:
        import uvloop  # noqa: F401
    except ImportError:
        return False
    return True


if __name__ == "__main__":
    main()
