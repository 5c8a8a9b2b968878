"""Questions to a saved run: ``recommend`` (top-k), ``similar`` (items), ``predict`` (a rating)."""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

import typer

from movierec.cli.options import (
    EXCLUDE,
    JSON,
    ONLY,
    OVERWRITE,
    PRECISION,
    QUIET,
    RANK_BY,
    RUN_DIR,
    THREADS,
    K,
)
from movierec.cli.output import out, print_items, print_json, user_errors
from movierec.errors import ConfigError, MovieRecError

if TYPE_CHECKING:
    from movierec.recommend import Recommender


@user_errors
def recommend(
    run_dir: Path = RUN_DIR,
    user: str | None = typer.Option(None, "--user", help="Raw user ID from the dataset."),
    every_user: bool = typer.Option(
        False, "--all", help="Lists for every user the run knows (or --users), into --out."
    ),
    users_file: Path | None = typer.Option(
        None, "--users", help="With --all: only these users (one ID a line, or a user column)."
    ),
    out_file: Path | None = typer.Option(
        None, "--out", help="With --all: the file to write, .parquet or .csv (by suffix)."
    ),
    ratings_file: Path | None = typer.Option(
        None,
        "--ratings",
        help="A new visitor's ratings: a CSV with item and rating columns (raw item IDs).",
    ),
    overwrite: bool = OVERWRITE,
    k: int = K,
    include_seen: bool = typer.Option(
        False, "--include-seen", help="Also rank items rated in training."
    ),
    explain: bool = typer.Option(
        False, "--explain", help="With --user: the rated items each one came from."
    ),
    only: str | None = ONLY,
    exclude: str | None = EXCLUDE,
    rank_by: str = RANK_BY,
    precision: str | None = PRECISION,
    threads: int | None = THREADS,
    quiet: bool = QUIET,
    as_json: bool = JSON,
) -> None:
    """Top-k movies for a user, with titles and predicted ratings (ranking scores for runs
    trained with --objective bpr/bce, or ease/popularity); with --all, every user's list
    (user, rank, item, title, score) written to --out; with --ratings, a new visitor's.
    --only and --exclude limit what any of them lists."""
    from movierec.artifacts import load_run

    lists = _ItemLists(only, exclude)
    if ratings_file is not None:
        if user is not None or every_user or users_file is not None or out_file is not None:
            raise ConfigError("--ratings is a new visitor's list: drop --user, --all and --out")
        _recommend_visitor(run_dir, ratings_file, k, lists, as_json)
        return
    if explain and user is None:
        raise ConfigError("--explain explains one user's list: give --user ID")
    if every_user or users_file is not None:
        _recommend_all(
            run_dir,
            users_file,
            out_file,
            k,
            lists,
            include_seen=include_seen,
            rank_by=rank_by,
            precision=precision or "fp32",
            threads=threads,
            quiet=quiet,
            overwrite=overwrite,
        )
        return
    if user is None:
        raise ConfigError("give --user ID for one list, or --all --out FILE for every user's")
    if out_file is not None:
        raise ConfigError("--out writes every user's lists: add --all (or drop --out)")
    recommender, _ = load_run(run_dir)
    recommender.rank_by = rank_by
    recommender.precision = precision or "fp32"
    filters = lists.check(recommender)
    items = recommender.top_n(user, k, exclude_seen=not include_seen, **filters)
    label = "predicted" if recommender.predicts_ratings else "score"
    rows = [i.to_dict() for i in items]
    if explain:
        for row in rows:
            row["because"] = [
                {"item": r.item, "title": r.title, "weight": r.score}
                for r in recommender.explain(user, row["item"])
            ]
    print_items(rows, as_json, f"Top {k} for user {user}", label)


class _ItemLists:
    """``--only`` / ``--exclude``: read before the run loads (a missing file is refused before
    any work), checked against the run's items once it has (every unknown ID named)."""

    def __init__(self, only: str | None, exclude: str | None):
        from movierec.batch import id_list

        self._texts = (only, exclude)
        self._ids = [None if t is None else id_list(t, flag) for t, flag in self._flags()]

    def _flags(self) -> list[tuple[str | None, str]]:
        return list(zip(self._texts, ("--only", "--exclude"), strict=True))

    def check(self, recommender: Recommender) -> dict[str, Any]:
        """The lists as the recommender's ``items`` / ``filter_items`` keywords.

        Raises:
            UnknownIdsError: A filter naming unknown items ("in --only FILE: ...").
        """
        from movierec.recommend.filters import banned_items

        where = tuple(f"in {flag} {text}" for text, flag in self._flags())
        banned_items(recommender.encoder, recommender.model.n_items, *self._ids, where=where)
        return {"items": self._ids[0], "filter_items": self._ids[1]}


def _recommend_visitor(
    run_dir: Path, ratings_file: Path, k: int, lists: _ItemLists, as_json: bool
) -> None:
    """``recommend --ratings``: a visitor's list, as ``Recommender.recommend_for_ratings``."""
    import pandas as pd

    from movierec.artifacts import load_run

    try:
        ratings = pd.read_csv(ratings_file, dtype={"item": object, "item_id": object})
    except (OSError, ValueError) as exc:
        raise ConfigError(
            f"cannot read {ratings_file} as a CSV of item,rating: {exc}".splitlines()[0]
        ) from None
    recommender, _ = load_run(run_dir)
    filters = lists.check(recommender)
    try:
        items = recommender.recommend_for_ratings(ratings, k, **filters)
    except MovieRecError as exc:
        raise ConfigError(f"{ratings_file}: {exc}") from None
    label = "predicted" if recommender.predicts_ratings else "score"
    title = f"Top {k} for the visitor in {ratings_file} ({len(ratings)} ratings)"
    print_items([i.to_dict() for i in items], as_json, title, label)


def _recommend_all(
    run_dir: Path,
    users_file: Path | None,
    out_file: Path | None,
    k: int,
    lists: _ItemLists,
    *,
    include_seen: bool,
    rank_by: str,
    precision: str,
    threads: int | None,
    quiet: bool,
    overwrite: bool,
) -> None:
    """``recommend --all``: every (or every listed) user's top-k, one block of users at a time."""
    from tqdm.auto import tqdm

    from movierec.artifacts import check_out_file, load_run
    from movierec.batch import check_table_path, read_ids, write_table
    from movierec.train import configure_threads

    if out_file is None:
        raise ConfigError("--all writes a file: add --out recs.parquet (or recs.csv)")
    check_out_file(check_table_path(out_file), overwrite)
    recommender, _ = load_run(run_dir)
    recommender.rank_by = rank_by
    recommender.precision = precision
    configure_threads(threads)
    users = read_ids(users_file) if users_file is not None else None
    if users is not None:  # every unknown ID named before any work
        recommender.encoder.encode_known_users(users, f"in --users {users_file}")
    filters = lists.check(recommender)
    total = recommender.encoder.n_users if users is None else len(users)
    with tqdm(total=total, unit="user", disable=quiet, desc="recommend") as bar:
        frame = recommender.recommend(
            users, k, exclude_seen=not include_seen, on_block=bar.update, **filters
        )
    write_table(frame, out_file)
    out.print(
        f"{len(frame):,} recommendations for {total:,} users written to {out_file}",
        highlight=False,
    )


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
    only: str | None = ONLY,
    exclude: str | None = EXCLUDE,
    as_json: bool = JSON,
) -> None:
    """Movies most similar to one movie: by who rated them (jaccard) or by embeddings;
    --only and --exclude limit what it lists."""
    from movierec.artifacts import load_run

    lists = _ItemLists(only, exclude)
    recommender, _ = load_run(run_dir)
    filters = lists.check(recommender)
    items = recommender.similar_items(item, k, similarity=similarity, **filters)
    index = recommender.encoder.item_index(item)
    title = f"Movies similar to {recommender.title(index)}"
    print_items([i.to_dict() for i in items], as_json, title, similarity)


@user_errors
def predict(
    run_dir: Path = RUN_DIR,
    user: str | None = typer.Option(None, "--user", help="Raw user ID."),
    item: str | None = typer.Option(None, "--item", help="Raw item ID."),
    pairs: Path | None = typer.Option(
        None, "--pairs", help="A CSV of user,item pairs to predict (with --out)."
    ),
    out_file: Path | None = typer.Option(
        None,
        "--out",
        help="With --pairs: the file to write (user,item,prediction), .csv or .parquet.",
    ),
    overwrite: bool = OVERWRITE,
    as_json: bool = JSON,
) -> None:
    """The predicted rating of one user for one movie, or of every pair in --pairs (runs
    trained for ranking refuse)."""
    from movierec.artifacts import load_run
    from movierec.recommend.results import plain

    if pairs is not None:
        _predict_pairs(run_dir, pairs, out_file, overwrite)
        return
    if user is None or item is None:
        raise ConfigError("give --user ID --item ID, or --pairs pairs.csv --out preds.csv")
    recommender, _ = load_run(run_dir)
    rating = float(recommender.predict([user], [item], unknown="error")[0])
    encoder = recommender.encoder
    index = encoder.item_index(item)
    title = recommender.title(index)
    if as_json:  # the IDs as the dataset spells them, as recommend --json writes them
        user_id = plain(encoder.user_ids[encoder.user_index(user)])
        print_json(
            {
                "user": user_id,
                "item": plain(encoder.item_ids[index]),
                "title": title,
                "rating": rating,
            }
        )
    else:
        out.print(f"user {user} -> {title}: {rating:.3f}", highlight=False)


def _predict_pairs(run_dir: Path, pairs: Path, out_file: Path | None, overwrite: bool) -> None:
    from movierec.artifacts import check_out_file, load_run
    from movierec.batch import check_table_path, predict_pairs, read_pairs, write_table

    if out_file is None:
        raise ConfigError("--pairs writes a file: add --out preds.csv (or preds.parquet)")
    check_out_file(check_table_path(out_file), overwrite)
    recommender, _ = load_run(run_dir)
    frame = predict_pairs(recommender, read_pairs(pairs), f"in {pairs}")
    write_table(frame, out_file)
    out.print(f"{len(frame):,} predictions written to {out_file}", highlight=False)
