"""Run the API on uvicorn: :func:`serve` (what ``movierec serve`` calls).

With one worker the app is built in this process. With several, uvicorn starts each worker from
:func:`app_from_env` (its factory mode), and the run directory, admin token and options travel in
environment variables, so nothing but the run directory given here is ever loaded.

Each worker limits torch to a few threads: the threadpool already runs requests side by side, and
more intra-op threads than cores per worker only make them fight over the cores.

``python -m movierec.serving.server RUN_DIR [--port 8000] [--workers 1]`` runs it without the CLI.
"""

from __future__ import annotations

import argparse
import contextlib
import json
import os
from pathlib import Path

import torch
from fastapi import FastAPI

from movierec.serving.app import DEFAULT_SCORE_BUDGET, create_app
from movierec.serving.routes import ADMIN_TOKEN_ENV

RUN_DIR_ENV = "MOVIEREC_RUN_DIR"
CORS_ENV = "MOVIEREC_CORS_ORIGINS"
THREADS_ENV = "MOVIEREC_SERVE_THREADS"
SCORE_BUDGET_ENV = "MOVIEREC_SERVE_SCORE_BUDGET"


def serving_threads(workers: int, threads: int | None = None) -> int:
    """Torch intra-op threads per worker: ``threads`` if given, else 1-2 from the core count."""
    if threads is not None:
        return max(1, threads)
    cores = os.cpu_count() or 1
    return max(1, min(2, cores // max(1, workers)))


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
    origins = json.loads(os.environ.get(CORS_ENV, "null"))
    return create_app(
        Path(run_dir),
        admin_token=os.environ.get(ADMIN_TOKEN_ENV) or None,
        cors_origins=origins,
        score_budget=int(os.environ.get(SCORE_BUDGET_ENV, str(DEFAULT_SCORE_BUDGET))),
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
        threads: Torch threads per worker (default: 1-2, from the core count and workers).
        score_budget: Bytes of precomputed user x item scores per worker (0: score per
            request).
        log_level: uvicorn's log level.

    Raises:
        ArtifactError: The run directory is missing or broken (checked before binding).
    """
    import uvicorn  # the serve extra; imported here so the rest of movierec works without it

    if workers < 1:
        raise ValueError(f"workers must be >= 1, got {workers}")
    if admin_token is None:
        admin_token = os.environ.get(ADMIN_TOKEN_ENV) or None
    per_worker = serving_threads(workers, threads)
    if workers == 1:
        configure_torch(per_worker)
        app = create_app(
            Path(run_dir),
            admin_token=admin_token,
            cors_origins=cors_origins,
            score_budget=score_budget,
        )
        uvicorn.run(app, host=host, port=port, log_level=log_level, access_log=False)
        return
    from movierec.artifacts import load_run

    load_run(Path(run_dir))  # fail here, with one clear error, rather than in every worker
    os.environ[RUN_DIR_ENV] = str(Path(run_dir).resolve())
    os.environ[THREADS_ENV] = str(per_worker)
    os.environ[SCORE_BUDGET_ENV] = str(score_budget)
    os.environ[CORS_ENV] = json.dumps(cors_origins)
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
    args = parser.parse_args(argv)
    serve(
        args.run_dir,
        args.host,
        args.port,
        args.workers,
        threads=args.threads,
        score_budget=int(args.score_budget_mib * 2**20),
        log_level=args.log_level,
    )


if __name__ == "__main__":
    main()
