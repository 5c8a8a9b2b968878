"""Soak test of the HTTP server: mixed requests from 16 clients for 10 minutes, with the server's
memory and open file descriptors sampled every minute. Not part of CI (`make soak`).

    python benchmarks/soak.py --run runs/embedding-net --clients 16 --minutes 10 \
        --out benchmarks/results/soak.json

Passes when there are zero 5xx responses and zero transport errors, and memory (RSS) and the
file-descriptor count stay within 10% of their first (post-warm-up) sample.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import os
import random
import sys
import time
from collections import Counter
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import httpx

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_serve import cpu_model, free_port, run_users, start_server, wait_ready

FLAT_WITHIN = 0.10


def process_sample(pid: int) -> dict[str, int]:
    """RSS (KiB) and open file descriptors of the server and its children (uvicorn workers)."""
    pids = [pid]
    children = Path(f"/proc/{pid}/task/{pid}/children")
    if children.exists():
        pids += [int(p) for p in children.read_text().split()]
    rss = fds = 0
    for each in pids:
        try:
            for line in Path(f"/proc/{each}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    rss += int(line.split()[1])
            fds += len(os.listdir(f"/proc/{each}/fd"))
        except OSError:
            continue
    return {"rss_kib": rss, "fds": fds}


def mixed_request(rng: random.Random, users: list[Any], items: list[Any]) -> tuple[str, str, Any]:
    """One request drawn from the mix a web page produces: mostly recommendations."""
    roll = rng.random()
    if roll < 0.5:
        return "GET", f"/users/{rng.choice(users)}/recommendations?k=10", None
    if roll < 0.65:
        return "GET", f"/items/{rng.choice(items)}/similar?k=10", None
    if roll < 0.8:
        return "GET", f"/predict?user={rng.choice(users)}&item={rng.choice(items)}", None
    if roll < 0.9:
        return (
            "GET",
            f"/items?query={rng.choice(['the', 'star', 'love', 'toy', 'ä'])}&limit=20",
            None,
        )
    if roll < 0.97:
        ratings = [{"item": rng.choice(items), "rating": rng.randint(1, 5)} for _ in range(3)]
        return "POST", "/recommendations", {"ratings": ratings, "k": 10}
    return "GET", f"/users/{10**9 + rng.randint(0, 9)}/recommendations", None  # a 404


async def client(
    base: str, users: list[Any], items: list[Any], stop_at: float, seed: int, codes: Counter
) -> None:
    rng = random.Random(seed)
    async with httpx.AsyncClient(base_url=base, timeout=30) as http:
        while time.monotonic() < stop_at:
            method, path, body = mixed_request(rng, users, items)
            try:
                response = await http.request(method, path, json=body)
                codes[str(response.status_code)] += 1
            except httpx.HTTPError as exc:
                codes[f"transport:{type(exc).__name__}"] += 1


async def soak(args: argparse.Namespace) -> dict[str, Any]:
    port = free_port()
    server = start_server(args.run, port, args.workers, None, None, None)
    base = f"http://127.0.0.1:{port}"
    try:
        await wait_ready(base, server)
        users = run_users(args.run)
        items = json.loads((args.run / "id_map.json").read_text())["items"]
        codes: Counter = Counter()
        samples = []
        started = time.monotonic()
        stop_at = started + args.minutes * 60
        tasks = [
            asyncio.create_task(client(base, users, items, stop_at, seed, codes))
            for seed in range(args.clients)
        ]
        # Samples are taken under load only: none as clients close their connections at the end.
        while time.monotonic() + args.sample_seconds < stop_at:
            await asyncio.sleep(args.sample_seconds)
            sample = process_sample(server.pid)
            sample["minute"] = round((time.monotonic() - started) / 60, 2)
            sample["requests"] = sum(codes.values())
            samples.append(sample)
            print(json.dumps(sample), flush=True)
        await asyncio.gather(*tasks)
    finally:
        server.terminate()
        server.wait(timeout=30)
    total = sum(codes.values())
    errors_5xx = sum(n for code, n in codes.items() if code.startswith("5"))
    transport = sum(n for code, n in codes.items() if code.startswith("transport"))
    checked = samples[1:] if len(samples) > 1 else samples  # the first minute is warm-up

    def drift(key: str) -> float:
        values = [s[key] for s in checked]
        return (max(values) - min(values)) / max(1, values[0])

    result = {
        "command": " ".join([Path(sys.executable).name, *sys.argv]),
        "date": datetime.now(UTC).isoformat(timespec="seconds"),
        "cpu": cpu_model(),
        "cores": os.cpu_count(),
        "run": str(args.run),
        "workers": args.workers,
        "clients": args.clients,
        "minutes": args.minutes,
        "requests": total,
        "requests_per_second": total / (args.minutes * 60),
        "status_codes": dict(sorted(codes.items())),
        "errors_5xx": errors_5xx,
        "transport_errors": transport,
        "rss_drift": drift("rss_kib"),
        "fd_drift": drift("fds"),
        "samples": samples,
    }
    result["passed"] = (
        errors_5xx == 0
        and transport == 0
        and result["rss_drift"] <= FLAT_WITHIN
        and result["fd_drift"] <= FLAT_WITHIN
    )
    return result


def markdown(result: dict[str, Any]) -> str:
    lines = [
        "# Soak test",
        "",
        f"`{result['command']}` on {result['cpu']} ({result['cores']} cores), {result['date']}; "
        f"{result['workers']} worker(s), {result['clients']} clients, {result['minutes']} min.",
        "",
        f"- requests: {result['requests']:,} ({result['requests_per_second']:.0f}/s), "
        f"status codes {result['status_codes']}",
        f"- 5xx: {result['errors_5xx']}, transport errors: {result['transport_errors']}",
        f"- RSS drift after warm-up: {result['rss_drift']:.1%}, "
        f"file-descriptor drift: {result['fd_drift']:.1%} (bound {FLAT_WITHIN:.0%})",
        f"- verdict: {'PASS' if result['passed'] else 'FAIL'}",
        "",
        "| minute | RSS MiB | fds | requests so far |",
        "|---|---|---|---|",
    ]
    lines += [
        f"| {s['minute']} | {s['rss_kib'] / 1024:.1f} | {s['fds']} | {s['requests']:,} |"
        for s in result["samples"]
    ]
    return "\n".join(lines) + "\n"


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, default=Path("runs/embedding-net"))
    parser.add_argument("--clients", type=int, default=16)
    parser.add_argument("--minutes", type=float, default=10.0)
    parser.add_argument("--sample-seconds", type=float, default=60.0)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--out", type=Path, default=Path("benchmarks/results/soak.json"))
    args = parser.parse_args()
    result = asyncio.run(soak(args))
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text(json.dumps(result, indent=2) + "\n")
    args.out.with_suffix(".md").write_text(markdown(result))
    print(markdown(result))
    raise SystemExit(0 if result["passed"] else 1)


if __name__ == "__main__":
    main()
