"""Datasets: ``datasets`` lists the catalogue, ``fetch`` caches one, ``synth`` writes one."""

from __future__ import annotations

from pathlib import Path

import typer
from rich.table import Table

from movierec.cli.options import JSON, OVERWRITE, QUIET
from movierec.cli.output import out, print_json, user_errors
from movierec.errors import ConfigError


@user_errors
def datasets(as_json: bool = JSON) -> None:
    """List the MovieLens catalogue and what is in the local cache."""
    from movierec.data.catalogue import CATALOGUE, cache_dir, cached_path

    rows = [
        {
            "name": spec.name,
            "description": spec.description,
            "size_bytes": spec.size_bytes,
            "md5": spec.md5,
            "cached": str(cached_path(name)) if cached_path(name) else None,
        }
        for name, spec in CATALOGUE.items()
    ]
    if as_json:
        print_json({"cache": str(cache_dir()), "datasets": rows})
        return
    table = Table(title=f"MovieLens datasets (cache: {cache_dir()})")
    for header in ("name", "description", "size", "cached"):
        table.add_column(header)
    for row in rows:
        size = f"{row['size_bytes'] / 1e6:,.1f} MB" if row["size_bytes"] else "?"
        table.add_row(row["name"], row["description"], size, row["cached"] or "-")
    out.print(table)


@user_errors
def fetch(
    name: str = typer.Argument(..., help="Dataset name, e.g. ml-100k."),
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Download (or rebuild from the offline mirror) a dataset into the cache."""
    from movierec.data.catalogue import fetch as fetch_dataset

    result = fetch_dataset(name, progress=not quiet)
    if as_json:
        print_json({"name": name, "path": str(result.path), "source": result.source})
    else:
        out.print(f"{name}: {result.path} (source: {result.source})", highlight=False)


@user_errors
def synth(
    users: int = typer.Option(162_541, "--users", help="Users (IDs 1..N)."),
    items: int = typer.Option(59_047, "--items", help="Items (IDs 1..N)."),
    ratings: int = typer.Option(25_000_000, "--ratings", help="Ratings to write."),
    out_path: Path = typer.Option(..., "--out", help="File to write (a folder for netflix)."),
    overwrite: bool = OVERWRITE,
    seed: int = typer.Option(0, "--seed", help="Seed of every random draw."),
    fmt: str = typer.Option("parquet", "--format", help="parquet, csv or netflix."),
    chunk_size: int = typer.Option(2_000_000, "--chunk-size", help="Ratings per chunk."),
    as_json: bool = JSON,
    quiet: bool = QUIET,
) -> None:
    """Write synthetic MovieLens-shaped ratings (Parquet, CSV or the Netflix layout)."""
    from movierec.artifacts import check_out_file
    from movierec.data.synthetic import write_synthetic

    check_out_file(out_path, overwrite)
    try:
        stats = write_synthetic(
            out_path,
            n_users=users,
            n_items=items,
            n_ratings=ratings,
            seed=seed,
            fmt=fmt,
            chunk_size=chunk_size,
            progress=not (quiet or as_json),
        )
    except ValueError as exc:
        raise ConfigError(f"synth: {exc}") from None
    if as_json:
        print_json(stats)
        return
    out.print(
        f"{stats['rows']:,} ratings -> {stats['path']} ({stats['bytes'] / 2**20:,.1f} MiB, "
        f"{stats['seconds']:.1f} s)",
        highlight=False,
    )
