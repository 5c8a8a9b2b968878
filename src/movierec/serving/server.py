"""Run the API on uvicorn: :func:`serve` (what ``movierec serve`` calls).

With one worker the app is built in this process. With several, uvicorn starts each worker from
:func:`app_from_env` (its factory mode), and the run directory, admin token and options travel in
environment variables, so nothing but the run directory given here is ever loaded.

Each worker runs torch on one intra-op thread unless ``threads`` says otherwise: the threadpool
already runs requests side by side, more intra-op threads only make them fight over the cores
(the ML-100K precompute took 92 s on two threads of a busy 2-core machine, 13 s on one), and
the score matrix must be built on the thread count requests score on (see
:mod:`movierec.serving.app`).

Every worker runs with the same connection limits (:mod:`movierec.serving.protocol`: a
16 KiB request head, 10 s to send a request, 5 s idle keep-alive) and answers only the ``Host``
names of :func:`allowed_hosts_for` (DNS rebinding). The run is read, checked and prepared before
the port is bound, and answers from the moment it listens; the score matrix of every known user
is built on a thread after (``/health``: ``scores: "precomputing"``, then ``"precomputed"``).

``python -m movierec.serving.server RUN_DIR [--port 8000] [--workers 1]`` runs it without the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import ipaddress
import json
import logging
import os
import sys
from collections.abc import Sequence
from pathlib import Path

import torch
from fastapi import FastAPI

from movierec.errors import ConfigError
from movierec.serving.app import DEFAULT_SCORE_BUDGET, check_admin_token, create_app
from movierec.serving.protocol import GuardedHttpToolsProtocol
from movierec.serving.routes import ADMIN_TOKEN_ENV

RUN_DIR_ENV = "MOVIEREC_RUN_DIR"
CORS_ENV = "MOVIEREC_CORS_ORIGINS"
THREADS_ENV = "MOVIEREC_SERVE_THREADS"
SCORE_BUDGET_ENV = "MOVIEREC_SERVE_SCORE_BUDGET"
ALLOWED_HOSTS_ENV = "MOVIEREC_ALLOWED_HOSTS"
LOG_LEVEL_ENV = "MOVIEREC_SERVE_LOG_LEVEL"

LOOPBACK_NAMES = ("localhost", "127.0.0.1", "[::1]")
KEEP_ALIVE_S = 5  # an idle keep-alive connection is closed after this (uvicorn's default)
# uvicorn kills a worker that misses a 5 s health ping, and the first ping is sent while the
# worker still imports torch: on a busy 2-core machine every worker was killed before it
# served once, forever. The price of a longer wait: a hung worker is replaced after 60 s.
WORKER_PING_S = 60
# What every worker's uvicorn runs with; see movierec.serving.protocol for the request limits.
CONNECTION_LIMITS: dict[str, object] = {
    "http": GuardedHttpToolsProtocol,
    "timeout_keep_alive": KEEP_ALIVE_S,
}


def allowed_hosts_for(host: str, allowed: Sequence[str] | None = None) -> list[str]:
    """The ``Host`` header values a server bound to ``host`` answers.

    ``allowed`` (``--allowed-host``), when given, is the list. Otherwise: the bound name, plus
    ``localhost``, ``127.0.0.1`` and ``[::1]`` when it is a loopback address. A wildcard bind
    (``0.0.0.0``, ``::``) has no name of its own, so it needs ``allowed`` (``"*"`` accepts any
    Host, for a proxy in front that checks it).

    Raises:
        ConfigError: A wildcard bind without ``allowed``, or a pattern the check cannot use.
    """
    if allowed:
        return [_check_host_pattern(pattern) for pattern in allowed]
    bare = host.strip().strip("[]")
    try:
        address = ipaddress.ip_address(bare)
    except ValueError:
        address = None
    if not bare or (address is not None and address.is_unspecified):
        raise ConfigError(
            f"--host {host or '(empty)'} listens on every interface, so the server cannot tell "
            "which Host names are its own; name them with --allowed-host NAME (repeatable), "
            "or --allowed-host '*' behind a proxy that checks Host"
        )
    if address is None:
        name = bare.lower()
        loopback = name == "localhost"
    else:
        name = f"[{address}]" if address.version == 6 else str(address)
        loopback = address.is_loopback
    names = [name, *LOOPBACK_NAMES] if loopback else [name]
    return list(dict.fromkeys(names))


def _check_host_pattern(pattern: str) -> str:
    """One ``--allowed-host`` value, as starlette's ``TrustedHostMiddleware`` can match it."""
    value = pattern.strip().lower()
    wildcard_ok = value == "*" or (value.startswith("*.") and "*" not in value[1:])
    if not value or ("*" in value and not wildcard_ok):
        raise ConfigError(
            f"--allowed-host {pattern!r} is not a host name; give a name (api.example.org), "
            "a subdomain pattern (*.example.org) or '*'"
        )
    if value.startswith("[") and value.endswith("]"):
        return value  # an IPv6 literal, as the Host header spells it
    with contextlib.suppress(ValueError):  # an IPv6 address written without brackets
        address = ipaddress.ip_address(value)
        return f"[{address}]" if address.version == 6 else str(address)
    if ":" in value:
        raise ConfigError(
            f"--allowed-host {pattern!r} has a port; give the name alone (the port is not compared)"
        )
    return value


def log_to_stderr(level: str) -> None:
    """Show movierec's serving log lines (load, precompute, reload) beside uvicorn's."""
    logger = logging.getLogger("movierec.serving")
    logger.setLevel(level.upper())
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(logging.Formatter("%(levelname)s:     %(message)s"))
        logger.addHandler(handler)
        logger.propagate = False


def serving_threads(threads: int | None = None) -> int:
    """Torch intra-op threads per worker: ``threads`` if given, else 1."""
    return 1 if threads is None else max(1, threads)


def configure_torch(threads: int) -> None:
    torch.set_num_threads(threads)
    with contextlib.suppress(RuntimeError):  # set once per process already: keep it
        torch.set_num_interop_threads(1)


def app_from_env() -> FastAPI:
    """uvicorn's factory for worker processes: the app for ``$MOVIEREC_RUN_DIR``."""
    run_dir = os.environ.get(RUN_DIR_ENV)
    if not run_dir:
        raise RuntimeError(f"{RUN_DIR_ENV} is not set; start the server with serve()")
    configure_torch(int(os.environ.get(THREADS_ENV, "1")))
    log_to_stderr(os.environ.get(LOG_LEVEL_ENV, "info"))
    origins = json.loads(os.environ.get(CORS_ENV, "null"))
    hosts = json.loads(os.environ.get(ALLOWED_HOSTS_ENV, "null")) or list(LOOPBACK_NAMES)
    return create_app(
        Path(run_dir),
        admin_token=os.environ.get(ADMIN_TOKEN_ENV) or None,
        cors_origins=origins,
        score_budget=int(os.environ.get(SCORE_BUDGET_ENV, str(DEFAULT_SCORE_BUDGET))),
        allowed_hosts=hosts,
        warm_in_background=True,
    )


def serve(
    run_dir: Path,
    host: str = "127.0.0.1",
    port: int = 8000,
    workers: int = 1,
    *,
    admin_token: str | None = None,
    cors_origins: list[str] | None = None,
    threads: int | None = None,
    score_budget: int = DEFAULT_SCORE_BUDGET,
    log_level: str = "info",
    allowed_hosts: Sequence[str] | None = None,
) -> None:
    """Serve the run in ``run_dir`` over HTTP until interrupted.

    Args:
        run_dir: The run directory to serve (and to re-read on ``POST /admin/reload``).
        host: Interface to bind; the default keeps the server local to this machine.
        port: TCP port.
        workers: Worker processes; each loads its own copy of the model. Note that a reload
            request reaches one worker only, so with several workers restart to switch runs.
        admin_token: Bearer token for ``/admin/*``; defaults to ``$MOVIEREC_ADMIN_TOKEN``;
            unset or empty disables the admin endpoints.
        cors_origins: Origins to allow cross-origin requests from; None disables CORS.
        threads: Torch intra-op threads per worker (default 1).
        score_budget: Bytes of precomputed user x item scores per worker (0: score per
            request).
        log_level: uvicorn's log level (and movierec's serving log lines').
        allowed_hosts: ``Host`` names to answer (default: :func:`allowed_hosts_for`).

    Raises:
        ArtifactError: The run directory is missing or broken (checked before binding).
        ConfigError: A wildcard ``host`` without ``allowed_hosts``, a bad host pattern, or an
            admin token no request could match.
    """
    import uvicorn  # the serve extra; imported here so the rest of movierec works without it

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if admin_token is None:
        admin_token = os.environ.get(ADMIN_TOKEN_ENV) or None
    admin_token = check_admin_token(admin_token)
    hosts = allowed_hosts_for(host, allowed_hosts)
    log_to_stderr(log_level)
    per_worker = serving_threads(threads)
    if workers == 1:
        configure_torch(per_worker)
        app = create_app(
            Path(run_dir),
            admin_token=admin_token,
            cors_origins=cors_origins,
            score_budget=score_budget,
            allowed_hosts=hosts,
            warm_in_background=True,
        )
        uvicorn.run(
            app, host=host, port=port, log_level=log_level, access_log=False, **CONNECTION_LIMITS
        )
        return
    from movierec.artifacts import load_run

    load_run(Path(run_dir))  # fail here, with one clear error, rather than in every worker
    os.environ[RUN_DIR_ENV] = str(Path(run_dir).resolve())
    os.environ[THREADS_ENV] = str(per_worker)
    os.environ[SCORE_BUDGET_ENV] = str(score_budget)
    os.environ[CORS_ENV] = json.dumps(cors_origins)
    os.environ[ALLOWED_HOSTS_ENV] = json.dumps(hosts)
    os.environ[LOG_LEVEL_ENV] = log_level
    if admin_token:
        os.environ[ADMIN_TOKEN_ENV] = admin_token
    else:
        os.environ.pop(ADMIN_TOKEN_ENV, None)
    uvicorn.run(
        "movierec.serving.server:app_from_env",
        factory=True,
        host=host,
        port=port,
        workers=workers,
        log_level=log_level,
        access_log=False,
        timeout_worker_healthcheck=WORKER_PING_S,
        **CONNECTION_LIMITS,
    )


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="Serve a movierec run over HTTP.")
    parser.add_argument("run_dir", type=Path)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=8000)
    parser.add_argument("--workers", type=int, default=1)
    parser.add_argument("--threads", type=int, default=None)
    parser.add_argument(
        "--score-budget-mib",
        type=float,
        default=DEFAULT_SCORE_BUDGET / 2**20,
        help="precompute every known user's scores when they fit (0: score per request)",
    )
    parser.add_argument("--log-level", default="info")
    parser.add_argument(
        "--allowed-host",
        action="append",
        default=None,
        help="a Host name to answer (repeatable; default: the bound host)",
    )
    args = parser.parse_args(argv)
    serve(
        args.run_dir,
        args.host,
        args.port,
        args.workers,
        threads=args.threads,
        score_budget=int(args.score_budget_mib * 2**20),
        log_level=args.log_level,
        allowed_hosts=args.allowed_host,
    )


if __name__ == "__main__":
    main()
