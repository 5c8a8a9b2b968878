"""Pydantic models of every request and response body of the HTTP API.

IDs are the dataset's raw IDs (an integer for MovieLens, a string for datasets with string IDs),
never the model's internal indices. Every error response has the shape of :class:`ErrorBody`.
"""

from __future__ import annotations

from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, StrictInt, StringConstraints

MAX_K = 1000
MAX_ID_LENGTH = 64
MAX_QUERY_LENGTH = 100
MAX_VISITOR_RATINGS = 200

RawId = StrictInt | Annotated[str, StringConstraints(min_length=1, max_length=MAX_ID_LENGTH)]


class _Model(BaseModel):
    model_config = ConfigDict(extra="forbid", allow_inf_nan=False)


class ErrorBody(_Model):
    """Every 4xx and 5xx response."""

    error: str = Field(description="A stable machine-readable code, e.g. `unknown_user`.")
    detail: str = Field(description="What went wrong and how to fix it, for a person.")
    id: RawId | None = Field(
        default=None, description="The unknown user or item ID, for `unknown_*` errors."
    )
    errors: list[dict[str, str]] | None = Field(
        default=None, description="One entry per invalid field, for `invalid_request` errors."
    )


class Health(_Model):
    status: str = Field(examples=["ok"])
    model: str = Field(description="Registry name of the model being served.")
    dataset: str | None
    split: str | None
    n_users: int
    n_items: int
    rating_scale: tuple[float, float]
    similar_items: bool = Field(description="Whether the model has item embeddings to compare.")
    version: str = Field(description="movierec's version.")
    loaded_at: str = Field(description="When the run was loaded (ISO 8601, UTC).")
    scores: Literal["precomputed", "precomputing", "per-request"] = Field(
        description="How a known user's list is ranked: from the score matrix of every user "
        "(`precomputed`), per request while that matrix is built after start-up "
        "(`precomputing`), or per request because it does not fit the score budget "
        "(`per-request`). The lists are the same either way."
    )


class ItemSummary(_Model):
    item: RawId
    title: str
    genres: list[str]


class BecauseItem(_Model):
    item: RawId
    title: str
    weight: float = Field(
        description="EASE: the rated item's exact share of the score; other models: the "
        "cosine of the two items' vectors (or their Jaccard co-occurrence)."
    )


class RecommendedItem(ItemSummary):
    predicted_rating: float = Field(
        description="The model's predicted rating (rating scale), or its ranking score for a "
        "run that ranks."
    )
    because: list[BecauseItem] | None = Field(
        default=None,
        description="With `?explain=true`: the user's rated items this one came from, most first.",
    )


class SimilarItem(ItemSummary):
    similarity: float = Field(description="Cosine similarity of the item embeddings, -1..1.")


class Recommendations(_Model):
    user: RawId
    k: int
    exclude_seen: bool
    items: list[RecommendedItem]


class SimilarItems(_Model):
    item: ItemSummary
    k: int
    items: list[SimilarItem]


class Prediction(_Model):
    user: RawId
    item: ItemSummary
    predicted_rating: float


class ItemSearch(_Model):
    query: str
    total: int = Field(description="How many titles match (the list holds at most `limit`).")
    items: list[ItemSummary]


class VisitorRating(_Model):
    item: RawId = Field(description="Raw item ID, e.g. from `GET /items?query=`.")
    rating: float = Field(description="The visitor's rating, within the model's rating scale.")


class VisitorRequest(_Model):
    """A new visitor's ratings. The body is an object (a bare list is not accepted)."""

    ratings: list[VisitorRating] = Field(min_length=1, max_length=MAX_VISITOR_RATINGS)
    k: int = Field(default=10, ge=1, le=MAX_K)

    model_config = ConfigDict(
        extra="forbid",
        allow_inf_nan=False,
        json_schema_extra={
            "examples": [
                {
                    "ratings": [
                        {"item": 1, "rating": 5},
                        {"item": 50, "rating": 4},
                        {"item": 100, "rating": 2},
                    ],
                    "k": 10,
                }
            ]
        },
    )


class VisitorRecommendations(_Model):
    k: int
    method: str = Field(
        description="How the visitor was folded in: `ridge`, `adam` or `biases` for rating runs; "
        "`exact` (EASE), `popularity`, or `<loss>-adam` (e.g. `bpr-adam`) for runs that rank; "
        "both joined by `+` for joint runs."
    )
    fit_ms: float = Field(description="Time spent fitting the visitor, in milliseconds.")
    items: list[RecommendedItem]


class Reloaded(_Model):
    status: str = Field(examples=["reloaded"])
    model: str
    dataset: str | None
    n_users: int
    n_items: int
    loaded_at: str
    seconds: float = Field(description="Time spent loading the run.")
