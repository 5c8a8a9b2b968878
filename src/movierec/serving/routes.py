"""The API's routes: each reads the served run once and answers from its Recommender.

Handlers translate HTTP to :class:`~movierec.recommend.Recommender` calls and back; ranking,
seen-item masking, ID lookup and cold start live in the recommender and
:mod:`movierec.coldstart`. The app (:mod:`movierec.serving.app`) puts the model holder and the
admin token on ``app.state``; a request takes ``holder.served()`` once, so a reload mid-request
does not change the model under it.
"""

from __future__ import annotations

import hmac
import logging
import time
import unicodedata
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any, Literal

import numpy as np
import pandas as pd
from fastapi import APIRouter, Depends, Query, Request
from fastapi import Path as PathParam
from fastapi.responses import FileResponse, Response
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from starlette.concurrency import run_in_threadpool

from movierec import __version__
from movierec.coldstart import RatingScaleError, UnknownItemError, visitor_method
from movierec.errors import MovieRecError
from movierec.serving.schemas import (
    MAX_ID_LENGTH,
    MAX_K,
    MAX_QUERY_LENGTH,
    BecauseItem,
    ErrorBody,
    Health,
    ItemSearch,
    ItemSummary,
    Prediction,
    Recommendations,
    RecommendedItem,
    Reloaded,
    SimilarItem,
    SimilarItems,
    VisitorRecommendations,
    VisitorRequest,
)

if TYPE_CHECKING:
    from movierec.serving.app import LoadedRun, ModelHolder

log = logging.getLogger("movierec.serving")

STATIC_DIR = Path(__file__).parent / "static"
ADMIN_TOKEN_ENV = "MOVIEREC_ADMIN_TOKEN"

router = APIRouter()


class ApiError(Exception):
    """An error a client caused, answered as :class:`ErrorBody` with ``status``."""

    def __init__(
        self,
        status: int,
        error: str,
        detail: str,
        *,
        id: Any = None,
        headers: dict[str, str] | None = None,
    ):
        super().__init__(detail)
        self.status, self.error, self.detail, self.id = status, error, detail, id
        self.headers = headers


ERRORS: dict[int | str, dict[str, Any]] = {
    status: {"model": ErrorBody, "description": text}
    for status, text in {
        404: "Unknown user or item (the body names the ID)",
        413: "Body larger than 64 KiB",
        422: "Invalid parameters or body",
    }.items()
}

DESCRIPTION = """
Movie recommendations from a trained movierec run, by raw dataset IDs.

* `GET /users/{user_id}/recommendations`: the top-k for a user the model knows.
* `GET /items/{item_id}/similar`: the items the same users rated (``similarity=jaccard``,
  default) or with the closest embeddings (``similarity=cosine``).
* `GET /predict?user=&item=`: one predicted rating.
* `GET /items?query=`: title search (substring, ignoring case and accents).
* `POST /recommendations`: the top-k for a new visitor, from a handful of ratings, as
  `{"ratings": [{"item": 1, "rating": 5}, ...], "k": 10}` (an object; a bare list is refused).
* `POST /admin/reload`: re-read the run directory the server started with (bearer token).

Errors are JSON: `{"error": code, "detail": message}`; unknown IDs add `"id"`.
"""

UserPath = Annotated[
    str, PathParam(min_length=1, max_length=MAX_ID_LENGTH, description="Raw user ID")
]
ItemPath = Annotated[
    str, PathParam(min_length=1, max_length=MAX_ID_LENGTH, description="Raw item ID")
]
_BEARER = HTTPBearer(auto_error=False, description="The server's $MOVIEREC_ADMIN_TOKEN")
KQuery = Annotated[int, Query(ge=1, le=MAX_K, description="How many items (1..1000)")]


def _require_json(request: Request) -> None:
    content_type = request.headers.get("content-type", "")
    media = content_type.split(";", 1)[0].strip().lower()
    if media != "application/json" and not media.endswith("+json"):
        raise ApiError(
            415,
            "unsupported_media_type",
            f"send the body as application/json (got {content_type[:80] or 'no content type'})",
        )


def _holder(request: Request) -> ModelHolder:
    return request.app.state.holder


@router.get(
    "/health",
    response_model=Health,
    responses={503: {"description": "`not-ready`: the model's scores are not numbers (NaN)"}},
    tags=["service"],
)
def health(request: Request, response: Response) -> Health:
    holder = _holder(request)
    served = holder.served()
    rec = served.recommender
    if not served.answers:  # a load balancer must not send requests to a model answering NaN
        response.status_code = 503
    return Health(
        status="ok" if served.answers else "not-ready",
        model=served.model_name,
        dataset=_optional_str(served.run.get("dataset")),
        split=_optional_str(served.run.get("split")),
        n_users=rec.encoder.n_users,
        n_items=rec.encoder.n_items,
        rating_scale=rec.rating_scale,
        similar_items=True,  # jaccard needs no embeddings
        version=__version__,
        loaded_at=served.loaded_at,
        scores=holder.scores(served),
    )


@router.get(
    "/users/{user_id}/recommendations",
    response_model=Recommendations,
    responses=ERRORS,
    tags=["recommend"],
)
async def user_recommendations(
    request: Request,
    user_id: UserPath,
    k: KQuery = 10,
    exclude_seen: Annotated[
        bool, Query(description="Leave out items the user rated in training")
    ] = True,
    explain: Annotated[
        bool,
        Query(description="Add `because`: the user's rated items each one came from"),
    ] = False,
) -> Response:
    served = _holder(request).served()  # this request's model to the end, even across a reload
    user = served.user_index(user_id)
    if served.recommender.precomputed_scores is None or explain:  # ms of torch: off the loop
        items, scores = await run_in_threadpool(served.top_k, user, k, exclude_seen)
    else:  # microseconds: a threadpool hop would cost more than the work
        items, scores = served.top_k(user, k, exclude_seen)
    because = (
        await run_in_threadpool(_because, served, user, items) if explain else [None] * len(items)
    )
    answer = Recommendations(
        user=served.raw_users[user],
        k=k,
        exclude_seen=exclude_seen,
        items=[
            RecommendedItem(**served.summary(i), predicted_rating=round(s, 4), because=why)
            for i, s, why in zip(items, scores, because, strict=True)
        ],
    )
    # Serialised here and returned as is, so FastAPI does not validate it a second time; the
    # documented schema is still `Recommendations` (the route's response_model). Without
    # ?explain the items carry no `because` key.
    body = answer.model_dump_json(exclude_none=True).encode()
    return Response(body, media_type="application/json")


def _because(served: LoadedRun, user: int, items: list[int]) -> list[list[BecauseItem]]:
    """For each recommended item, the user's rated items it came from (``Recommender.explain``)."""
    out = []
    for item in items:
        rated, weights = served.recommender.explain_indices(user, item, 3)
        out.append(
            [
                BecauseItem(
                    item=served.raw_items[j], title=str(served.titles[j]), weight=round(w, 4)
                )
                for j, w in zip(rated.tolist(), weights.tolist(), strict=True)
            ]
        )
    return out


@router.get(
    "/items/{item_id}/similar",
    response_model=SimilarItems,
    responses={**ERRORS, 409: {"model": ErrorBody, "description": "No item embeddings"}},
    tags=["recommend"],
)
def similar_items(
    request: Request,
    item_id: ItemPath,
    k: KQuery = 10,
    similarity: Annotated[
        Literal["jaccard", "cosine"] | None,
        Query(description="jaccard (default: who rated both) or cosine (item embeddings)."),
    ] = None,
) -> SimilarItems:
    served = _holder(request).served()
    item = served.item_index(item_id)
    if similarity == "cosine" and not served.has_vectors:
        raise ApiError(
            409,
            "unsupported",
            f"the served model {served.model_name!r} has no item embeddings to compare; "
            "use similarity=jaccard, or serve an embedding-net or mf run",
        )
    found = served.recommender.similar_items(served.raw_items[item], k, similarity=similarity)
    return SimilarItems(
        item=ItemSummary(**served.summary(item)),
        k=k,
        items=[
            SimilarItem(
                item=r.item,
                title=r.title,
                genres=split_genres(r.genres),
                similarity=round(r.score, 4),
            )
            for r in found
        ],
    )


@router.get("/predict", response_model=Prediction, responses=ERRORS, tags=["recommend"])
def predict(
    request: Request,
    user: Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH)],
    item: Annotated[str, Query(min_length=1, max_length=MAX_ID_LENGTH)],
) -> Prediction:
    served = _holder(request).served()
    user_idx, item_idx = served.user_index(user), served.item_index(item)
    raw_user = served.raw_users[user_idx]
    raw_item = served.raw_items[item_idx]
    rating = served.recommender.predict([raw_user], [raw_item], unknown="error")[0]
    return Prediction(
        user=raw_user,
        item=ItemSummary(**served.summary(item_idx)),
        predicted_rating=round(float(rating), 4),
    )


@router.get("/items", response_model=ItemSearch, responses=ERRORS, tags=["catalogue"])
def search_items(
    request: Request,
    query: Annotated[
        str,
        Query(
            min_length=1,
            max_length=MAX_QUERY_LENGTH,
            description="Substring of the title, ignoring case and accents ('ceremonie' finds "
            "'Cérémonie')",
        ),
    ],
    limit: Annotated[int, Query(ge=1, le=100)] = 20,
) -> ItemSearch:
    served = _holder(request).served()
    control = next((c for c in query if unicodedata.category(c) == "Cc"), None)
    if control is not None:  # numpy drops a trailing NUL: '\0' would match every title
        raise ApiError(
            422,
            "invalid_request",
            f"query: control characters are not allowed (U+{ord(control):04X}); "
            "search with the words of a title",
        )
    needle = fold_text(query.strip())
    if not needle:
        raise ApiError(422, "invalid_request", "query must contain a non-space character")
    titles = served.folded_titles
    found = np.flatnonzero(np.strings.find(titles, needle) >= 0)
    # Titles that start with the query first ("toy" -> "Toy Story"), then catalogue order.
    starts = np.strings.startswith(titles[found], needle)
    ranked = np.concatenate([found[starts], found[~starts]])
    return ItemSearch(
        query=query,
        total=int(found.size),
        items=[ItemSummary(**served.summary(int(i))) for i in ranked[:limit]],
    )


@router.post(
    "/recommendations",
    response_model=VisitorRecommendations,
    responses={**ERRORS, 415: {"model": ErrorBody, "description": "Body is not JSON"}},
    tags=["recommend"],
    dependencies=[Depends(_require_json)],
)
def visitor_recommendations(request: Request, body: VisitorRequest) -> VisitorRecommendations:
    """Top-k for a new visitor: a fresh user is fitted to their ratings, the model frozen."""
    served = _holder(request).served()
    rec = served.recommender
    # A frame, not a mapping: a repeated item reaches the recommender's check (a 422).
    ratings = pd.DataFrame(
        {
            "item": pd.Series([entry.item for entry in body.ratings], dtype=object),
            "rating": [entry.rating for entry in body.ratings],
        }
    )
    started = time.perf_counter()
    try:  # the recommender validates, as for Python and the command line
        found = rec.recommend_for_ratings(ratings, body.k)
    except UnknownItemError as exc:
        raise ApiError(404, "unknown_item", str(exc), id=exc.item) from None
    except RatingScaleError as exc:
        raise ApiError(422, "invalid_rating", str(exc)) from None
    fit_seconds = time.perf_counter() - started
    items = [
        RecommendedItem(
            item=r.item,
            title=r.title,
            genres=split_genres(r.genres),
            predicted_rating=round(r.score, 4),
        )
        for r in found
    ]
    return VisitorRecommendations(
        k=body.k,
        method=visitor_method(rec, ratings["rating"].tolist()),
        fit_ms=round(fit_seconds * 1000, 2),
        items=items,
    )


@router.post(
    "/admin/reload",
    response_model=Reloaded,
    responses={
        401: {"model": ErrorBody, "description": "Missing or wrong bearer token"},
        404: {"model": ErrorBody, "description": "Admin endpoints are disabled"},
        409: {"model": ErrorBody, "description": "The run on disk is bad; old one kept"},
    },
    tags=["admin"],
)
def reload(
    request: Request,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(_BEARER)],
) -> Reloaded:
    """Re-read the server's own run directory and swap the model in atomically."""
    token = request.app.state.admin_token
    if token is None:
        raise ApiError(
            404,
            "admin_disabled",
            f"admin endpoints are disabled; start the server with {ADMIN_TOKEN_ENV} set "
            "to enable them",
        )
    challenge = {"WWW-Authenticate": "Bearer"}
    if credentials is None:
        raise ApiError(
            401,
            "unauthorized",
            "send the admin token as 'Authorization: Bearer <token>'",
            headers=challenge,
        )
    if not hmac.compare_digest(credentials.credentials.encode(), token.encode()):
        raise ApiError(401, "unauthorized", "the admin token is wrong", headers=challenge)
    old = _holder(request).served()
    try:
        fresh, seconds = _holder(request).reload()
    except Exception as exc:  # any bad run on disk: keep serving the old model
        if not isinstance(exc, MovieRecError):
            log.exception("reload failed")
        raise ApiError(
            409,
            "bad_run",
            f"the run on disk cannot be loaded, so the model loaded at {old.loaded_at} "
            f"keeps serving: {exc}",
        ) from None
    log.info("reloaded %s in %.2f s", fresh.model_name, seconds)
    rec = fresh.recommender
    return Reloaded(
        status="reloaded",
        model=fresh.model_name,
        dataset=_optional_str(fresh.run.get("dataset")),
        n_users=rec.encoder.n_users,
        n_items=rec.encoder.n_items,
        loaded_at=fresh.loaded_at,
        seconds=round(seconds, 3),
    )


@router.get("/", include_in_schema=False)
def index() -> FileResponse:
    return FileResponse(STATIC_DIR / "index.html", media_type="text/html")


@router.get("/favicon.ico", include_in_schema=False)
def favicon() -> FileResponse:
    # Browsers ask for /favicon.ico whatever the page links; an SVG answers them all.
    return FileResponse(STATIC_DIR / "favicon.svg", media_type="image/svg+xml")


def fold_text(text: str) -> str:
    """Text as the title search compares it: casefolded, accents and compatibility forms off.

    NFKD splits "é" into "e" and a combining accent, which is dropped, so "ceremonie" finds
    "Cérémonie" (and "ﬁ" becomes "fi").
    """
    decomposed = unicodedata.normalize("NFKD", text.casefold())
    return "".join(c for c in decomposed if not unicodedata.combining(c))


def split_genres(value: Any) -> list[str]:
    if isinstance(value, list | tuple):
        return [str(g) for g in value if str(g)]
    if not isinstance(value, str) or not value:
        return []
    return [g.strip() for g in value.replace(",", "|").split("|") if g.strip()]


def _optional_str(value: Any) -> str | None:
    return None if value is None else str(value)
