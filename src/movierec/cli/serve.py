"""``serve``: a saved run over HTTP (the app itself lives in :mod:`movierec.serving`)."""

from __future__ import annotations

from pathlib import Path

import typer

from movierec.cli.options import RUN_DIR
from movierec.cli.output import user_errors
from movierec.errors import ConfigError


@user_errors
def serve(
    run_dir: Path = RUN_DIR,
    host: str = typer.Option("127.0.0.1", "--host", help="Address to bind (loopback by default)."),
    port: int = typer.Option(8000, "--port", help="TCP port."),
    workers: int = typer.Option(1, "--workers", help="Server processes."),
    threads: int | None = typer.Option(
        None, "--threads", help="PyTorch threads per worker (default 1)."
    ),
    cors: str | None = typer.Option(
        None, "--cors", help="Comma-separated origins allowed by CORS (off by default)."
    ),
    allowed_host: list[str] | None = typer.Option(
        None,
        "--allowed-host",
        help="A Host name to answer, e.g. behind a proxy (repeatable; '*' for any). Default: "
        "the bound host (plus localhost names on loopback); required with --host 0.0.0.0.",
    ),
    score_budget_mib: float = typer.Option(
        256.0,
        "--score-budget-mib",
        help="Precompute every known user's scores at start-up when the float32 matrix fits in "
        "this many MiB per worker (0: score each request).",
    ),
) -> None:
    """Serve a run over HTTP: a JSON API (docs at /docs) and a web page at /."""
    from movierec.serving import serve as run_server

    if not 1 <= port <= 65535:
        raise ConfigError(f"--port must be between 1 and 65535, got {port}")
    if workers < 1:
        raise ConfigError(f"--workers must be at least 1, got {workers}")
    origins = [o.strip() for o in cors.split(",") if o.strip()] if cors else None
    run_server(
        run_dir,
        host,
        port,
        workers,
        cors_origins=origins,
        threads=threads,
        score_budget=int(score_budget_mib * 2**20),
        allowed_hosts=allowed_host or None,
    )
