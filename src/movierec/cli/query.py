"""Questions to a saved run: ``recommend`` (top-k), ``similar`` (items), ``predict`` (a rating)."""

from __future__ import annotations

from pathlib import Path

import typer

from movierec.cli.options import JSON, RANK_BY, RUN_DIR, K
from movierec.cli.output import out, print_items, print_json, user_errors


@user_errors
def recommend(
    run_dir: Path = RUN_DIR,
    user: str = typer.Option(..., "--user", help="Raw user ID from the dataset."),
    k: int = K,
    include_seen: bool = typer.Option(
        False, "--include-seen", help="Also rank items rated in training."
    ),
    rank_by: str = RANK_BY,
    as_json: bool = JSON,
) -> None:
    """Top-k movies for a user, with titles and predicted ratings (ranking scores for runs
    trained with --objective bpr/bce, or ease/popularity)."""
    from movierec.artifacts import load_run

    recommender, _ = load_run(run_dir)
    recommender.rank_by = rank_by
    items = recommender.top_n(user, k, exclude_seen=not include_seen)
    label = "predicted" if recommender.predicts_ratings else "score"
    print_items([i.to_dict() for i in items], as_json, f"Top {k} for user {user}", label)


@user_errors
def similar(
    run_dir: Path = RUN_DIR,
    item: str = typer.Option(..., "--item", help="Raw item ID from the dataset."),
    k: int = K,
    similarity: str = typer.Option(
        "jaccard",
        "--similarity",
        help="jaccard (who rated both, over who rated either; measured best) or cosine (the "
        "model's item embeddings).",
    ),
    as_json: bool = JSON,
) -> None:
    """Movies most similar to one movie: by who rated them (jaccard) or by embeddings."""
    from movierec.artifacts import load_run

    recommender, _ = load_run(run_dir)
    items = recommender.similar_items(item, k, similarity=similarity)
    index = recommender.encoder.item_index(item)
    title = f"Movies similar to {recommender.title(index)}"
    print_items([i.to_dict() for i in items], as_json, title, similarity)


@user_errors
def predict(
    run_dir: Path = RUN_DIR,
    user: str = typer.Option(..., "--user", help="Raw user ID."),
    item: str = typer.Option(..., "--item", help="Raw item ID."),
    as_json: bool = JSON,
) -> None:
    """The predicted rating of one user for one movie (runs trained for ranking refuse)."""
    from movierec.artifacts import load_run

    recommender, _ = load_run(run_dir)
    rating = float(recommender.predict([user], [item], unknown="error")[0])
    title = recommender.title(recommender.encoder.item_index(item))
    if as_json:
        print_json({"user": user, "item": item, "title": title, "rating": rating})
    else:
        out.print(f"user {user} -> {title}: {rating:.3f}", highlight=False)
