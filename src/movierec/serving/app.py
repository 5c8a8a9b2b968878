"""The HTTP API and web page: a FastAPI app over one loaded run directory.

:func:`create_app` loads the run once and serves it; every request reads the current model through
one reference (:class:`ModelHolder`), so ``POST /admin/reload`` can build a new one completely
and swap that reference while requests in flight finish on the old one.

Safety rules the app keeps: no request names a filesystem path (reload re-reads the directory the
server started with); request bodies are capped at 64 KiB (declared and streamed size); invalid
input is a 4xx with an :class:`ErrorBody` that says what is wrong; any other failure is logged
with its traceback and answered with a generic 500, never the trace.

The model is frozen while it is served, so what a known user's top-k depends on is computed once
at load by the recommender (:meth:`Recommender.precompute_scores`): the whole score matrix
``[n_users, n_items]`` (when it fits ``score_budget`` bytes; 6 MiB
for MovieLens 100K). ``GET /users/{id}/recommendations`` then takes the user's row, masks the items
they rated and runs ``topk``, in microseconds, on the event loop. A run too large for the budget
is scored per request in FastAPI's threadpool instead (torch releases the GIL while it computes).
Reload recomputes the matrix before it swaps the model in. The matrix is scored on the torch
threads requests use (one per worker by default: per-user rows are small matmuls, and on a busy
2-core machine two threads fighting the other processes took 92 s for ML-100K where one took
13 s).

Started by the server (``warm_in_background=True``), the run's files are read and checked
and everything but the score matrix is prepared before the port is bound (a bad run is an
``ArtifactError``, not a server that answers 500). The server answers every route as soon as it
listens, scoring users per request, while the matrix is built on a background thread and put in
place when complete; ``/health`` says ``ok`` with ``scores: "precomputing"`` meanwhile, then
``"precomputed"``. Both ways rank through the same batch-of-one scoring, so a list is the same,
bit for bit, before and after the matrix is in place.
"""

from __future__ import annotations

import contextlib
import json
import logging
import threading
import time
from collections.abc import AsyncIterator, Awaitable, Callable, MutableMapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from math import isfinite
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import torch
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.middleware.cors import CORSMiddleware
from fastapi.responses import JSONResponse
from fastapi.staticfiles import StaticFiles
from starlette.exceptions import HTTPException as StarletteHTTPException
from starlette.middleware.trustedhost import TrustedHostMiddleware

from movierec import __version__
from movierec.artifacts import load_run
from movierec.data.encoder import normalise_ids
from movierec.errors import ConfigError, MovieRecError, UnknownIdError
from movierec.recommend import Recommender
from movierec.serving.routes import (
    DESCRIPTION,
    STATIC_DIR,
    ApiError,
    fold_text,
    router,
    split_genres,
)
from movierec.serving.schemas import MAX_ID_LENGTH, ErrorBody

log = logging.getLogger("movierec.serving")

MAX_BODY_BYTES = 64 * 1024
MAX_HEADERS = 100  # header lines per request (Apache's LimitRequestFields); their size: protocol
DEFAULT_SCORE_BUDGET = 256 * 1024 * 1024  # bytes of precomputed scores per loaded run

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]


# -- the served model ----------------------------------------------------------------------------


@dataclass(frozen=True)
class LoadedRun:
    """A recommender plus everything derived from it once at load time."""

    recommender: Recommender
    run: dict[str, Any]
    loaded_at: str
    load_seconds: float
    titles: np.ndarray  # object [n_items], item-index order
    genres: list[list[str]]  # [n_items]
    folded_titles: np.ndarray  # str_ [n_items], casefolded, for the title search
    raw_items: list[Any]  # plain Python raw IDs in index order
    raw_users: list[Any]  # plain Python raw IDs in index order
    has_vectors: bool
    answers: bool = True  # the first user's scores are finite numbers: the model can answer

    @property
    def model_name(self) -> str:
        return str(self.run.get("model") or self.recommender.model.name)

    def summary(self, item_idx: int) -> dict[str, Any]:
        return {
            "item": self.raw_items[item_idx],
            "title": str(self.titles[item_idx]),
            "genres": self.genres[item_idx],
        }

    def top_k(self, user: int, k: int, exclude_seen: bool) -> tuple[list[int], list[float]]:
        """A known user's top-``k`` item indices and scores, best first, as ``top_n`` ranks them
        (from the recommender's precomputed scores when they fitted the budget)."""
        found, scores = self.recommender.top_for_user(user, k, exclude_seen=exclude_seen)
        # Drop the slots a user who rated nearly everything could not fill (scored -inf).
        kept = [(i, s) for i, s in zip(found.tolist(), scores.tolist(), strict=True) if isfinite(s)]
        return [i for i, _ in kept], [s for _, s in kept]

    def user_index(self, raw: str) -> int:
        try:
            return self.recommender.user_index(raw)
        except UnknownIdError as exc:
            raise ApiError(404, "unknown_user", str(exc), id=raw) from None

    def item_index(self, raw: Any) -> int:
        try:
            return self.recommender.encoder.item_index(raw)
        except UnknownIdError as exc:
            raise ApiError(404, "unknown_item", str(exc), id=raw) from None


def load_served(run_dir: Path, score_budget: int = DEFAULT_SCORE_BUDGET) -> LoadedRun:
    """Load a run and precompute what requests share (scores, item side, titles, unit vectors).

    Args:
        run_dir: The run directory.
        score_budget: Most bytes the score matrix of every known user may take; a run whose
            matrix is larger (or a budget of 0) is scored per request.
    """
    started = time.perf_counter()
    return prepare_served(load_run(run_dir), score_budget, started)


def prepare_served(
    loaded: tuple[Recommender, dict[str, Any]],
    score_budget: int,
    started: float,
    *,
    precompute: bool = True,
) -> LoadedRun:
    """What :func:`load_served` does once the run is read: ``loaded`` is ``load_run``'s answer,
    ``started`` the ``perf_counter()`` the load began at (``load_seconds`` counts from it).
    With ``precompute=False`` the score matrix is left for :func:`_precompute` (users are
    scored per request until then)."""
    recommender, run = loaded
    encoder = recommender.encoder
    raw_items = [_plain(v) for v in encoder.item_ids.tolist()]
    raw_users = [_plain(v) for v in encoder.user_ids.tolist()]
    titles = np.array([recommender.title(i) for i in range(encoder.n_items)], dtype=object)
    genres: list[list[str]] = [[] for _ in range(encoder.n_items)]
    items = recommender.items
    if items is not None and not items.empty and "genres" in items:
        meta = items.drop_duplicates("item_id").set_index("item_id")
        meta.index = normalise_ids(meta.index)
        aligned = meta["genres"].reindex(encoder.item_ids)
        genres = [split_genres(None if _missing(g) else g) for g in aligned.tolist()]
    folded = np.array([fold_text(t) for t in titles], dtype=np.str_)
    with torch.inference_mode():
        # Warm the recommender's caches now so no request pays for them (or races to fill them).
        recommender.top_indices(torch.tensor([0]), 1)
        recommender.user_index(raw_users[0])
        has_vectors = recommender.model.item_vectors() is not None
        if encoder.n_items > 1:
            recommender.similar_items(raw_items[0], 1)  # builds the co-occurrence index
        if precompute:
            _precompute(recommender, score_budget)
        # A model whose scores are NaN answers nothing useful: /health says it is not ready.
        _, probe = recommender.top_for_user(0, min(encoder.n_items, 10), exclude_seen=False)
        answers = bool(torch.isfinite(probe).all())
    return LoadedRun(
        recommender=recommender,
        run=run,
        loaded_at=datetime.now(UTC).isoformat(timespec="seconds"),
        load_seconds=time.perf_counter() - started,
        titles=titles,
        genres=genres,
        folded_titles=folded,
        raw_items=raw_items,
        raw_users=raw_users,
        has_vectors=has_vectors,
        answers=answers,
    )


def _matrix_fits(recommender: Recommender, score_budget: int) -> bool:
    """Whether the float32 score matrix of every known user fits ``score_budget`` bytes."""
    return 4 * recommender.encoder.n_users * recommender.encoder.n_items <= score_budget


def _precompute(recommender: Recommender, score_budget: int) -> None:
    """``precompute_scores``, with a log line before and after.

    It runs on the torch threads requests use (the server's ``--threads``, 1 by default): with
    oneDNN a different thread count changes the last bits of a user's scores (seen on an AMX
    Xeon), and a list must be the same from the matrix as scored per request.
    """
    n_users, n_items = recommender.encoder.n_users, recommender.encoder.n_items
    need = 4 * n_users * n_items
    if not _matrix_fits(recommender, score_budget):
        log.info(
            "scores are computed per request: %s users x %s items would take %.0f MiB "
            "(budget %.0f MiB)",
            f"{n_users:,}",
            f"{n_items:,}",
            need / 2**20,
            score_budget / 2**20,
        )
        recommender.precompute_scores(score_budget)  # clears any matrix of an earlier budget
        return
    log.info("scoring %s users x %s items...", f"{n_users:,}", f"{n_items:,}")
    started = time.perf_counter()
    recommender.precompute_scores(score_budget)
    log.info("scores ready in %.1f s", time.perf_counter() - started)


def _missing(value: Any) -> bool:
    return value is None or (not isinstance(value, list | tuple | str) and bool(pd.isna(value)))


class ModelHolder:
    """The one reference to the served model; reload builds a new one fully, then swaps it.

    The run's files are read, checked and prepared in the constructor. With
    ``background=True`` the score matrix is left out: :meth:`start` builds it on a thread
    while requests are scored one user at a time, and puts it in place when complete.
    """

    def __init__(
        self,
        run_dir: Path,
        score_budget: int = DEFAULT_SCORE_BUDGET,
        *,
        background: bool = False,
    ):
        self.run_dir = Path(run_dir)
        self.score_budget = score_budget
        self._reload_lock = threading.Lock()
        started = time.perf_counter()
        loaded = load_run(self.run_dir)  # ArtifactError here, before the server binds
        later = background and _matrix_fits(loaded[0], score_budget)
        self.current = prepare_served(loaded, score_budget, started, precompute=not later)
        # The run whose matrix start() is to build (or is building), if any.
        self._precomputing: LoadedRun | None = self.current if later else None
        self._started = False
        log.info(
            "loaded %s in %.1f s%s",
            self.run_dir,
            self.current.load_seconds,
            "; users are scored per request until their scores are precomputed"
            if self._precomputing is not None
            else "",
        )

    def start(self) -> None:
        """Build the score matrix held back by ``background=True`` on a daemon thread (once)."""
        pending = self._precomputing
        if pending is None or self._started:
            return
        self._started = True
        threading.Thread(
            target=self._build_matrix, args=(pending,), name="movierec-precompute", daemon=True
        ).start()

    def _build_matrix(self, served: LoadedRun) -> None:
        with self._reload_lock:  # a reload waits for it (and counts the wait in its time)
            try:
                if served is self.current:
                    _precompute(served.recommender, self.score_budget)
            except Exception:  # lists stay right, just scored per request
                log.exception("precomputing the scores failed; users are scored per request")
            finally:
                self._precomputing = None

    def scores(self, served: LoadedRun) -> str:
        """How ``served`` ranks a known user: from its ``precomputed`` matrix, ``precomputing``
        (per request until the matrix being built is in place), or ``per-request``."""
        if served.recommender.precomputed_scores is not None:
            return "precomputed"
        return "precomputing" if self._precomputing is served else "per-request"

    def served(self) -> LoadedRun:
        """The model requests use (a request takes it once: a reload does not change it)."""
        return self.current

    def reload(self) -> tuple[LoadedRun, float]:
        """Re-read the run directory; on any failure the current model keeps serving.

        The new run's matrix is built before it is swapped in (the old one serves meanwhile).

        Returns:
            The new model, and the seconds the whole swap took: waiting for a reload or
            precompute in progress, reading, checking, precomputing.
        """
        started = time.perf_counter()
        with self._reload_lock:
            fresh = load_served(self.run_dir, self.score_budget)
            self.current = fresh  # one reference assignment: atomic under the GIL
        return fresh, time.perf_counter() - started


def check_admin_token(token: str | None) -> str | None:
    """The admin token, or None when unset or empty; a token no request can match is refused.

    HTTP strips spaces around a header value and carries bytes, not text, so a token with
    leading or trailing whitespace, control characters or non-ASCII characters could never be
    sent as ``Authorization: Bearer <token>``: the admin endpoints would refuse every request
    with no hint why.

    Raises:
        ConfigError: The token cannot be matched.
    """
    if not token:
        return None
    where = "the admin token ($MOVIEREC_ADMIN_TOKEN)"
    if token != token.strip():
        raise ConfigError(
            f"{where} starts or ends with whitespace, which HTTP strips, so no request could "
            "match it; remove the spaces"
        )
    bad = next((c for c in token if not 0x20 <= ord(c) <= 0x7E), None)
    if bad is not None:
        raise ConfigError(
            f"{where} holds {bad!r} (U+{ord(bad):04X}); a bearer token must be printable ASCII "
            "to be sent in a header; use letters, digits and punctuation "
            "(e.g. python -c 'import secrets; print(secrets.token_urlsafe(32))')"
        )
    return token


# -- middleware ----------------------------------------------------------------------------------


def _json_bytes(status: int, error: str, detail: str) -> bytes:
    return json.dumps({"error": error, "detail": detail}).encode()


async def _send_json(send: Send, status: int, body: bytes) -> None:
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
                (b"x-content-type-options", b"nosniff"),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


_PAGE_HEADERS = [
    (
        b"content-security-policy",
        b"default-src 'self'; img-src 'self' data:; frame-ancestors 'none'; base-uri 'none'",
    ),
    (b"x-frame-options", b"DENY"),
    (b"referrer-policy", b"no-referrer"),
]


class GuardMiddleware:
    """Body-size cap, security headers, and the catch-all that keeps traces off the wire.

    The body is read up front (at most ``max_body`` bytes, whatever Content-Length claims) and
    replayed to the app, so an oversized or lying upload is refused before any parsing.
    """

    def __init__(self, app: ASGIApp, max_body: int = MAX_BODY_BYTES):
        self.app = app
        self.max_body = max_body

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        too_large = _json_bytes(
            413, "body_too_large", f"request bodies are limited to {self.max_body} bytes"
        )
        if len(scope["headers"]) > MAX_HEADERS:
            detail = f"requests may carry at most {MAX_HEADERS} headers"
            await _send_json(send, 431, _json_bytes(431, "too_many_headers", detail))
            return
        declared = dict(scope["headers"]).get(b"content-length")
        if declared is not None:
            if not declared.isdigit():
                await _send_json(send, 400, _json_bytes(400, "bad_request", "bad Content-Length"))
                return
            if int(declared) > self.max_body:
                await _send_json(send, 413, too_large)
                return
        chunks, size = [], 0
        while True:
            message = await receive()
            if message["type"] == "http.disconnect":
                return
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body:
                await _send_json(send, 413, too_large)
                return
            chunks.append(chunk)
            if not message.get("more_body", False):
                break
        body = b"".join(chunks)
        replayed = False

        async def replay() -> Message:
            nonlocal replayed
            if not replayed:
                replayed = True
                return {"type": "http.request", "body": body, "more_body": False}
            return await receive()

        page = not scope["path"].startswith(("/docs", "/redoc"))
        started = False

        async def send_with_headers(message: Message) -> None:
            nonlocal started
            if message["type"] == "http.response.start":
                started = True
                headers = list(message.get("headers", []))
                headers.append((b"x-content-type-options", b"nosniff"))
                if page:
                    headers.extend(_PAGE_HEADERS)
                message = {**message, "headers": headers}
            await send(message)

        try:
            await self.app(scope, replay, send_with_headers)
        except Exception:
            log.exception("unhandled error serving %s %s", scope.get("method"), scope["path"])
            if not started:
                await _send_json(
                    send,
                    500,
                    _json_bytes(
                        500, "internal_error", "the server hit an unexpected error; it was logged"
                    ),
                )


# -- error handlers ------------------------------------------------------------------------------


def _error_response(exc: ApiError) -> JSONResponse:
    body = ErrorBody(error=exc.error, detail=exc.detail, id=_plain_id(exc.id))
    return JSONResponse(
        body.model_dump(exclude_none=True), status_code=exc.status, headers=exc.headers
    )


def _plain_id(value: Any) -> Any:
    if value is None or isinstance(value, int):
        return value
    return str(value)[:MAX_ID_LENGTH]


async def _on_api_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, ApiError)
    return _error_response(exc)


async def _on_validation_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = []
    for error in exc.errors():
        where = ".".join(str(part) for part in error.get("loc", ()))
        errors.append({"loc": where, "msg": str(error.get("msg", "invalid"))[:300]})
    detail = "; ".join(f"{e['loc']}: {e['msg']}" for e in errors[:5]) or "invalid request"
    body = ErrorBody(error="invalid_request", detail=detail, errors=errors[:20])
    return JSONResponse(body.model_dump(exclude_none=True), status_code=422)


_HTTP_CODES = {404: "not_found", 405: "method_not_allowed", 413: "body_too_large"}


async def _on_http_error(_: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, StarletteHTTPException)
    code = _HTTP_CODES.get(exc.status_code, "http_error")
    return JSONResponse(
        {"error": code, "detail": str(exc.detail)},
        status_code=exc.status_code,
        headers=getattr(exc, "headers", None),
    )


async def _on_user_error(_: Request, exc: Exception) -> JSONResponse:
    # A project error an endpoint did not translate itself: the client's input, not a bug.
    return _error_response(ApiError(422, "invalid_request", str(exc)))


# -- the app -------------------------------------------------------------------------------------


def create_app(
    run_dir: Path,
    *,
    admin_token: str | None = None,
    cors_origins: list[str] | None = None,
    score_budget: int = DEFAULT_SCORE_BUDGET,
    allowed_hosts: Sequence[str] | None = None,
    warm_in_background: bool = False,
) -> FastAPI:
    """Build the API over the run in ``run_dir`` (read now; raises ``ArtifactError`` if bad).

    Args:
        run_dir: A run directory written by ``movierec train``. ``POST /admin/reload`` re-reads
            this directory and no other.
        admin_token: Bearer token for ``/admin/*``; None or empty disables those endpoints.
        cors_origins: Origins allowed by CORS; None (the default) sends no CORS headers.
        score_budget: Bytes the precomputed scores of every known user may take (4 per user and
            item); over it, or at 0, each request scores its user on the fly.
        allowed_hosts: ``Host`` header values the app answers (starlette's
            ``TrustedHostMiddleware``: ``"*.example.org"`` patterns, ``"*"`` for any); others
            get a 400, so a web page whose DNS name was rebound to this address cannot read
            the API. None checks nothing: :func:`~movierec.serving.server.serve` always passes
            a list (the bound host by default).
        warm_in_background: Build the score matrix on a thread once the server has started,
            scoring per request until it is in place, instead of before returning.

    Raises:
        ArtifactError: The run directory is missing or broken.
        ConfigError: The admin token can never match (:func:`check_admin_token`).
    """
    admin_token = check_admin_token(admin_token)
    holder = ModelHolder(Path(run_dir), score_budget, background=warm_in_background)

    @contextlib.asynccontextmanager
    async def lifespan(_: FastAPI) -> AsyncIterator[None]:
        holder.start()
        yield

    app = FastAPI(
        title="movierec",
        version=__version__,
        description=DESCRIPTION,
        responses={500: {"model": ErrorBody, "description": "Unexpected server error"}},
        lifespan=lifespan,
    )
    app.state.holder = holder
    app.add_exception_handler(ApiError, _on_api_error)
    app.add_exception_handler(RequestValidationError, _on_validation_error)
    app.add_exception_handler(StarletteHTTPException, _on_http_error)
    app.add_exception_handler(MovieRecError, _on_user_error)
    if cors_origins:
        app.add_middleware(
            CORSMiddleware,
            allow_origins=list(cors_origins),
            allow_methods=["GET", "POST"],
            allow_headers=["Authorization", "Content-Type"],
        )
    if allowed_hosts is not None:
        app.add_middleware(TrustedHostMiddleware, allowed_hosts=list(allowed_hosts))
    app.add_middleware(GuardMiddleware)  # added last: the outermost of ours
    app.state.admin_token = admin_token
    app.include_router(router)
    app.mount("/static", StaticFiles(directory=STATIC_DIR), name="static")
    return app


def _plain(value: Any) -> Any:
    return value.item() if hasattr(value, "item") else value
