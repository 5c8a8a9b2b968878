"""Connection attacks on the server, timed on loopback: how fast each is refused, and whether
another client keeps being served meanwhile.

Starts the server as ``movierec serve`` runs it (``python -m movierec.serving.server RUN``) and,
with ``--baseline``, also a bare ``uvicorn.run(create_app(RUN))`` (httptools, no limits: the
server before the hardening). Against each it sends ``--repeats`` requests with a 16 MiB header
(time to the answer's first byte, and its status; the same client with a 100-byte header as
the reference for what the machine and client add), holds one idle connection and one slow
(one byte every 0.5 s) header until the server drops them or ``--patience`` passes, while a
bystander client asks ``/health`` over and over (its worst latency during the attacks).

    python benchmarks/serve_attacks.py --run /tmp/h1-run --baseline \\
        --out benchmarks/results/serve_attacks.json
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
from pathlib import Path

import torch
from bench_serve import cpu_model, free_port, provenance

BIG = 16 << 20
HEALTH = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n"


def start(run: Path, port: int, baseline: bool) -> subprocess.Popen:
    src = Path(__file__).resolve().parents[1] / "src"
    env = {**os.environ, "PYTHONPATH": f"{src}{os.pathsep}{os.environ.get('PYTHONPATH', '')}"}
    if baseline:
        code = (
            "import sys, uvicorn; from pathlib import Path; from movierec.serving import "
            "create_app; uvicorn.run(create_app(Path(sys.argv[1])), port=int(sys.argv[2]), "
            "log_level='warning')"
        )
        command = [sys.executable, "-c", code, str(run), str(port)]
    else:
        command = [sys.executable, "-m", "movierec.serving.server", str(run), "--port", str(port)]
        command += ["--log-level", "warning"]
    return subprocess.Popen(command, env=env)


def status_of(data: bytes) -> int | None:
    return int(data[9:12]) if data.startswith(b"HTTP/1.1 ") else None


def wait_ready(port: int, server: subprocess.Popen, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if server.poll() is not None:
            raise SystemExit("the server exited")
        with contextlib.suppress(OSError), socket.create_connection(("127.0.0.1", port), 2) as c:
            c.sendall(HEALTH)
            if status_of(c.recv(64)) == 200:
                return
        time.sleep(0.2)
    raise SystemExit("the server did not become ready")


def read_answer(conn: socket.socket) -> bytes:
    """One whole response on a keep-alive connection (head, then Content-Length bytes)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("closed")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    length = next(
        int(line.split(b":", 1)[1])
        for line in head.split(b"\r\n")
        if line.lower().startswith(b"content-length:")
    )
    while len(body) < length:
        chunk = conn.recv(65536)
        if not chunk:
            raise OSError("closed")
        body += chunk
    return head


class Bystander(threading.Thread):
    """Asks /health over keep-alive connections in a loop; records each answer's latency."""

    def __init__(self, port: int):
        super().__init__(daemon=True)
        self.port, self.latencies, self.failures = port, [], 0
        self.stop = threading.Event()

    def run(self) -> None:
        conn = None
        while not self.stop.is_set():
            try:
                if conn is None:
                    conn = socket.create_connection(("127.0.0.1", self.port), timeout=30)
                started = time.perf_counter()
                conn.sendall(HEALTH)
                status = status_of(read_answer(conn))
                if status != 200:
                    raise OSError(f"status {status}")
                self.latencies.append(time.perf_counter() - started)
            except OSError:
                self.failures += 1
                conn = None
            time.sleep(0.01)


def big_header(port: int, size: int = BIG) -> tuple[int | None, float]:
    """Status and seconds to the first byte of the answer to a header of ``size`` bytes."""
    # Built before the clock starts: making 16 MiB of bytes took the client up to 100 ms.
    payload = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * size + b"\r\n\r\n"
    conn = socket.create_connection(("127.0.0.1", port), timeout=60)

    def send() -> None:
        with contextlib.suppress(OSError):
            conn.sendall(payload)

    sender = threading.Thread(target=send, daemon=True)
    started = time.perf_counter()
    sender.start()
    try:
        data = conn.recv(65536)
    except OSError:
        data = b""
    took = time.perf_counter() - started
    sender.join(timeout=60)
    conn.close()
    return status_of(data), took


def dropped_after(port: int, trickle: bool, patience: float) -> tuple[int | None, float | None]:
    """Hold a connection idle (or trickle a header); (status, seconds) when the server drops
    it, or (None, None) if it is still open after ``patience`` seconds."""
    conn = socket.create_connection(("127.0.0.1", port), timeout=0.5)
    started = time.perf_counter()
    if trickle:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
    data = b""
    try:
        while time.perf_counter() - started < patience:
            if trickle:
                conn.sendall(b"X")
            try:
                chunk = conn.recv(65536)
            except TimeoutError:
                continue
            if not chunk:
                return status_of(data), round(time.perf_counter() - started, 2)
            data += chunk
        return None, None
    except OSError:
        return status_of(data), round(time.perf_counter() - started, 2)
    finally:
        conn.close()


def attack(run: Path, baseline: bool, repeats: int, patience: float) -> dict:
    port = free_port()
    server = start(run, port, baseline)
    try:
        wait_ready(port, server)
        bystander = Bystander(port)
        bystander.start()
        time.sleep(1)
        calm = list(bystander.latencies)
        header = [big_header(port) for _ in range(repeats)]
        control = [big_header(port, 100) for _ in range(repeats)]  # the same, a small header
        idle = dropped_after(port, trickle=False, patience=patience)
        slow = dropped_after(port, trickle=True, patience=patience)
        bystander.stop.set()
        bystander.join(timeout=60)
        during = bystander.latencies[len(calm) :]
    finally:
        server.terminate()
        server.wait(timeout=30)
    return {
        "server": "bare uvicorn (httptools)" if baseline else "movierec serve",
        "header_16mib": {
            "statuses": [s for s, _ in header],
            "median_ms": round(statistics.median(t for _, t in header) * 1000, 1),
            "max_ms": round(max(t for _, t in header) * 1000, 1),
        },
        "small_header_same_client": {
            "statuses": [s for s, _ in control],
            "median_ms": round(statistics.median(t for _, t in control) * 1000, 1),
        },
        "idle_connection": {"status": idle[0], "dropped_after_s": idle[1]},
        "slow_header": {"status": slow[0], "dropped_after_s": slow[1]},
        "bystander": {
            "answers_during_attacks": len(during),
            "failures": bystander.failures,
            "median_ms": round(statistics.median(during) * 1000, 2) if during else None,
            "max_ms": round(max(during) * 1000, 1) if during else None,
        },
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--run", type=Path, required=True)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--patience", type=float, default=20.0)
    parser.add_argument("--baseline", action="store_true", help="also attack a bare uvicorn")
    parser.add_argument("--out", type=Path, default=None)
    args = parser.parse_args()
    isa = torch.backends.cpu.get_cpu_capability()
    print(f"CPU: {cpu_model()}, {os.cpu_count()} cores, torch ISA {isa}")
    results = []
    for baseline in [False, True] if args.baseline else [False]:
        results.append(attack(args.run, baseline, args.repeats, args.patience))
        print(json.dumps(results[-1], indent=2))
    if args.out:
        out = {
            **provenance(),
            "results": results,
        }
        args.out.parent.mkdir(parents=True, exist_ok=True)
        args.out.write_text(json.dumps(out, indent=2) + "\n")


if __name__ == "__main__":
    main()
