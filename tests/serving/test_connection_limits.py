"""Attacks on the connection, against a real uvicorn on loopback, every wait bounded.

The server runs with the limits ``serve`` gives every worker (``CONNECTION_LIMITS``): a 16 KiB
head and :class:`GuardedHttpToolsProtocol`, whose request deadline is shortened here to
``DEADLINE`` seconds so that slow clients are dropped within the test's time. Each attack also
checks that another client is answered meanwhile. How fast a 16 MiB header is refused is
measured by ``benchmarks/serve_attacks.py``, not asserted here.
"""

from __future__ import annotations

import contextlib
import socket
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest

from movierec.serving import create_app
from movierec.serving.protocol import MAX_HEAD_BYTES, GuardedHttpToolsProtocol
from movierec.serving.server import CONNECTION_LIMITS, allowed_hosts_for
from tests.serving import make_run

DEADLINE = 1.0  # seconds a client gets to send its request, here
KEEP_ALIVE = 1
WAIT = 10.0  # the most any socket operation of a test waits


class QuickGuarded(GuardedHttpToolsProtocol):
    request_timeout = DEADLINE


def start_server(app, **limits) -> tuple[object, threading.Thread, socket.socket]:
    import uvicorn

    sock = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    sock.bind(("127.0.0.1", 0))  # a free port, held by us until uvicorn takes the socket
    options = {**CONNECTION_LIMITS, "http": QuickGuarded, "timeout_keep_alive": KEEP_ALIVE}
    config = uvicorn.Config(app, log_level="warning", access_log=False, **{**options, **limits})
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [sock]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            pytest.fail("the server did not start")
        time.sleep(0.05)
    return server, thread, sock


@pytest.fixture(scope="module")
def port(tmp_path_factory):
    run = make_run(tmp_path_factory.mktemp("limits") / "run")
    app = create_app(run, allowed_hosts=allowed_hosts_for("127.0.0.1"))
    server, thread, sock = start_server(app)
    yield sock.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)
    sock.close()


def connect(port: int) -> socket.socket:
    conn = socket.create_connection(("127.0.0.1", port), timeout=WAIT)
    conn.settimeout(WAIT)
    return conn


def read_response(conn: socket.socket) -> bytes:
    """Everything the server sends until it closes the connection (or WAIT passes)."""
    chunks = []
    try:
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    except ConnectionResetError:
        pass
    return b"".join(chunks)


def status_of(response: bytes) -> int:
    assert response.startswith(b"HTTP/1.1 "), response[:200]
    return int(response.split(b" ", 2)[1])


def get(port: int, path: str = "/health", host: str = "127.0.0.1") -> bytes:
    with connect(port) as conn:
        conn.sendall(f"GET {path} HTTP/1.1\r\nHost: {host}\r\nConnection: close\r\n\r\n".encode())
        return read_response(conn)


def send_quietly(conn: socket.socket, data: bytes) -> None:
    """Send what the server may stop reading: it closes the connection, we get a reset."""
    with contextlib.suppress(OSError):
        conn.sendall(data)


# -- the request head ----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "size", [MAX_HEAD_BYTES + 1, 1 << 20, 16 << 20], ids=["16K+1", "1M", "16M"]
)
def test_an_oversized_header_is_a_431_while_others_are_served(port, size):
    with connect(port) as attacker:
        head = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: "
        sender = threading.Thread(target=send_quietly, args=(attacker, head + b"a" * size))
        sender.start()
        assert status_of(get(port)) == 200  # another client, during the attack
        response = read_response(attacker)
        sender.join(timeout=WAIT)
    assert not sender.is_alive()
    assert status_of(response) == 431
    assert b'"error": "headers_too_large"' in response
    assert str(MAX_HEAD_BYTES).encode() in response


def test_a_head_over_the_limit_that_arrives_at_once_is_a_431(port):
    """A head that completes within one socket read is measured from the parser's callbacks."""
    with connect(port) as conn:
        big = b"X-A: " + b"a" * (MAX_HEAD_BYTES // 2) + b"\r\nX-B: " + b"b" * (MAX_HEAD_BYTES // 2)
        send_quietly(conn, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n" + big + b"\r\n\r\n")
        assert status_of(read_response(conn)) == 431


def test_a_post_whose_body_arrives_with_its_head_is_not_mistaken_for_a_big_head(port):
    body = b'{"ratings": [{"item": 1, "rating": 5}]}' + b" " * 40_000  # > the head limit
    head = (
        b"POST /recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
        b"Content-Type: application/json\r\nContent-Length: %d\r\n\r\n" % len(body)
    )
    with connect(port) as conn:
        conn.sendall(head + body)  # one write: head and body in the same read
        assert status_of(read_response(conn)) == 200


def test_a_head_just_under_the_limit_is_answered(port):
    filler = b"a" * (MAX_HEAD_BYTES - 200)
    with connect(port) as conn:
        conn.sendall(
            b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\nX-Big: "
            + filler
            + b"\r\n\r\n"
        )
        assert status_of(read_response(conn)) == 200


@pytest.mark.parametrize(("count", "status"), [(5000, 431), (101, 431), (90, 200)])
def test_too_many_headers_are_a_431(port, count, status):
    headers = b"".join(b"X-H%d: v\r\n" % i for i in range(count))
    with connect(port) as conn:
        send_quietly(
            conn, b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nConnection: close\r\n" + headers
        )
        send_quietly(conn, b"\r\n")
        assert status_of(read_response(conn)) == status


# -- slow and idle clients -----------------------------------------------------------------------


def closed_after(conn: socket.socket) -> tuple[bytes, float]:
    started = time.monotonic()
    response = read_response(conn)
    return response, time.monotonic() - started


def test_an_idle_connection_is_closed(port):
    with connect(port) as conn:
        response, waited = closed_after(conn)
    assert response == b""  # nothing was asked, nothing is answered
    assert waited < WAIT  # closed by the server, not by our timeout


def test_a_slow_header_is_a_408_even_while_it_trickles(port):
    with connect(port) as conn:
        conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n")
        started = time.monotonic()
        try:  # one byte at a time, each well within the deadline: the deadline still holds
            while time.monotonic() - started < WAIT:
                conn.sendall(b"X")
                time.sleep(DEADLINE / 5)
        except OSError:
            pass
        response = read_response(conn)
        assert time.monotonic() - started < WAIT
        assert status_of(get(port)) == 200
    assert status_of(response) == 408
    assert b'"error": "request_timeout"' in response


def test_a_slow_body_is_a_408(port):
    with connect(port) as conn:
        conn.sendall(
            b"POST /recommendations HTTP/1.1\r\nHost: 127.0.0.1\r\n"
            b"Content-Type: application/json\r\nContent-Length: 100\r\n\r\n"
            b'{"ratings": '
        )
        response, waited = closed_after(conn)
    assert waited < WAIT
    assert status_of(response) == 408


def test_an_idle_keep_alive_connection_is_closed_after_its_answers(port):
    with connect(port) as conn:
        for _ in range(2):  # the deadline is re-armed after each answer
            conn.sendall(b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
            head = conn.recv(65536)
            assert status_of(head) == 200
        response, waited = closed_after(conn)
    assert response == b"" and waited < WAIT


def test_a_slow_answer_is_not_cut_by_the_request_deadline(tmp_path):
    """The deadline is for receiving the request; the app's own time is not limited by it."""
    run = make_run(tmp_path / "run")
    app = create_app(run, allowed_hosts=["127.0.0.1"])

    @app.get("/slow")
    async def slow() -> dict[str, str]:
        import asyncio

        await asyncio.sleep(DEADLINE * 2)
        return {"ok": "yes"}

    server, thread, sock = start_server(app)
    try:
        response = get(sock.getsockname()[1], "/slow")
    finally:
        server.should_exit = True
        thread.join(timeout=10)
        sock.close()
    assert status_of(response) == 200 and b'"ok":"yes"' in response


# -- Host ----------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("host", "status"),
    [
        ("127.0.0.1", 200),
        ("127.0.0.1:8000", 200),
        ("localhost", 200),
        ("[::1]", 200),
        ("attacker.example", 400),  # a rebound DNS name pointing at 127.0.0.1
        ("127.0.0.1.attacker.example", 400),
    ],
)
def test_only_the_bound_host_names_are_answered(port, host, status):
    assert status_of(get(port, host=host)) == status


# -- every worker gets the limits ----------------------------------------------------------------


def test_every_worker_of_a_multi_worker_server_has_the_limits(tmp_path):
    run = make_run(tmp_path / "run")
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    root = Path(__file__).resolve().parents[2]
    command = [sys.executable, "-m", "movierec.serving.server", str(run), "--port", str(port)]
    server = subprocess.Popen(
        [*command, "--workers", "2", "--log-level", "warning"],
        cwd=root,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
    )
    try:
        deadline = time.monotonic() + 120
        while True:
            assert server.poll() is None, server.stderr.read().decode()[-2000:]
            assert time.monotonic() < deadline, "the workers did not become ready"
            try:
                if status_of(get(port)) == 200:
                    break
            except OSError:
                pass
            time.sleep(0.3)
        for _ in range(4):  # new connections, spread over the workers by the kernel
            with connect(port) as conn:
                big = b"GET /health HTTP/1.1\r\nHost: 127.0.0.1\r\nX-Big: " + b"a" * (1 << 20)
                send_quietly(conn, big)
                assert status_of(read_response(conn)) == 431
            assert status_of(get(port, host="attacker.example")) == 400
    finally:
        server.terminate()
        server.wait(timeout=30)
