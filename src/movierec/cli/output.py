"""What the commands print: one-line errors, JSON documents and Rich tables.

Errors users can cause print one line (``error: ...``) on stderr and exit with code 2; warnings
print one line (``warning: ...``).
"""

from __future__ import annotations

import functools
import json
import sys
import warnings
from collections.abc import Callable
from typing import Any, TypeVar

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from movierec.errors import MovieRecError, TrainingInterrupted

# Tables stay readable when piped or captured (no terminal to measure): assume a wide one.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 140)
err = Console(stderr=True, soft_wrap=True, width=None if sys.stderr.isatty() else 200)

F = TypeVar("F", bound=Callable[..., Any])


def user_errors(command: F) -> F:
    """Turn the project's own errors into one clear line and exit code 2; numeric flags outside
    their range (:data:`movierec.cli.options.NUMBER_RANGES`) are refused the same way first."""

    @functools.wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        from movierec.cli.options import check_numbers

        try:
            with warnings.catch_warnings():
                _one_line_warnings()
                check_numbers(command, kwargs)
                return command(*args, **kwargs)
        except TrainingInterrupted as exc:
            err.print(f"interrupted: {escape(str(exc))}", highlight=False)
            raise typer.Exit(130) from None
        except MovieRecError as exc:
            # escape: messages name TOML tables ([search]) that Rich would take for markup
            err.print(f"[bold red]error:[/] {escape(str(exc))}", highlight=False)
            raise typer.Exit(2) from None
        except KeyboardInterrupt:
            err.print("interrupted; nothing was written", highlight=False)
            raise typer.Exit(130) from None

    return wrapper  # type: ignore[return-value]


def _one_line_warnings() -> None:
    """Inside a command: movierec's warnings print as one ``warning:`` line on stderr, and
    numpy's and pandas' (an empty slice's mean, say) are not shown to users at all: what they
    would warn about is refused with a clear error before it happens."""

    def show(message: Any, category: type, *_args: Any, **_kwargs: Any) -> None:
        err.print(f"[bold yellow]warning:[/] {escape(str(message))}", highlight=False)

    warnings.showwarning = show
    warnings.filterwarnings("ignore", module=r"(numpy|pandas)(\.|$)")


def print_json(payload: Any) -> None:
    """One JSON document on stdout (``--json``); values JSON cannot hold print as text."""
    sys.stdout.write(json.dumps(payload, ensure_ascii=False, default=str) + "\n")


def fmt(value: Any) -> str:
    """A table cell: ``-`` for nothing, four decimals for small floats, thousands for big."""
    if value is None:
        return "-"
    if isinstance(value, float):
        return f"{value:,.4f}" if abs(value) < 100 else f"{value:,.0f}"
    return str(value)


def metrics_table(rows: list[dict[str, Any]], k: int, title: str) -> Table:
    """Models side by side: rating error, ranking quality, cost."""
    columns = [
        ("model", "model"),
        ("rmse", "RMSE"),
        ("mae", "MAE"),
        (f"precision@{k}", f"P@{k}"),
        (f"recall@{k}", f"R@{k}"),
        (f"ndcg@{k}", f"NDCG@{k}"),
        (f"map@{k}", f"MAP@{k}"),
        ("coverage", "coverage"),
        ("long_tail_share", "long tail"),
        ("epochs", "epochs"),
        ("train_seconds", "train s"),
        ("ratings_per_second", "ratings/s"),
    ]
    table = Table(title=title)
    for _, header in columns:
        table.add_column(header, justify="left" if header == "model" else "right")
    for row in rows:
        shown = dict(row)
        if row.get("label") and row["label"] != row.get("model"):
            shown["model"] = f"{row['label']} ({row.get('model')})"  # compare's "default"
        # Closed-form models take no optimiser steps: no throughput to show.
        shown["ratings_per_second"] = row.get("ratings_per_second") or None
        if isinstance(row.get("train_seconds"), float):
            shown["train_seconds"] = f"{row['train_seconds']:.2f}"
        table.add_row(*(fmt(shown.get(key)) for key, _ in columns))
    return table


def print_items(rows: list[dict[str, Any]], as_json: bool, title: str, score: str) -> None:
    """A ranked list of movies (recommend, similar): JSON rows or a table with titles."""
    if as_json:
        print_json(rows)
        return
    table = Table(title=title)
    explained = bool(rows) and "because" in rows[0]
    headers = ("#", "item", "title", "genres", score)
    headers += ("because you liked",) if explained else ()
    for header in headers:
        table.add_column(header, justify="right" if header in ("#", score) else "left")
    for rank, row in enumerate(rows, 1):
        cells = [
            str(rank),
            str(row["item"]),
            row["title"],
            row["genres"].replace("|", ", "),
            f"{row['score']:.3f}",
        ]
        if explained:
            cells.append(", ".join(r["title"] for r in row["because"]))
        table.add_row(*cells)
    out.print(table)


def benchmark_table(rows: list[dict[str, Any]], title: str) -> Table:
    """One line per model: RMSE and MAE mean +- sd, train seconds, parameters, config file."""
    table = Table(title=title)
    for header in ("model", "config", "runs", "RMSE", "MAE", "train s", "params"):
        table.add_column(header, justify="left" if header in ("model", "config") else "right")
    for row in rows:
        name = f"surprise {row['model']}" if row["source"] == "surprise" else row["model"]
        table.add_row(
            name,
            row["config"] or ("defaults" if row["source"] == "movierec" else "-"),
            str(row["runs"]),
            _pm(row["rmse_mean"], row["rmse_sd"]),
            _pm(row["mae_mean"], row["mae_sd"]),
            _pm(row["train_seconds_mean"], row["train_seconds_sd"], 1),
            f"{row['parameters']:,}" if row["parameters"] is not None else "-",
        )
    return table


def blend_table(report: dict[str, Any]) -> Table:
    """A blend's members and the blend: weight, validation RMSE (carve-out), test RMSE, MAE."""
    features = report.get("features") or []
    title = (
        f"blend of {len(report['members'])} runs (intercept {report['intercept']:.3f}, "
        f"alpha {report['alpha']:g}; "
        + (f"weights moving with {', '.join(features)}" if features else "plain weights")
        + ")"
    )
    table = Table(title=title)
    for header in ("member", "model", "weight", "valid RMSE", "test RMSE", "test MAE"):
        table.add_column(header, justify="left" if header in ("member", "model") else "right")
    test, valid = report["test"], report["validation_rmse"]
    for member in report["members"]:
        name = member["name"]
        table.add_row(
            name,
            member["model"],
            f"{member['weight']:.3f}",
            fmt(valid[name]),
            fmt(test[name]["rmse"]),
            fmt(test[name]["mae"]),
        )
    table.add_row(
        "blend",
        "-",
        "-",
        fmt(valid["blend"]),
        fmt(test["blend"]["rmse"]),
        fmt(test["blend"]["mae"]),
    )
    return table


def _pm(mean: float | None, sd: float | None, digits: int = 4) -> str:
    if mean is None:
        return "-"
    return f"{mean:.{digits}f}" + (f" ± {sd:.{digits}f}" if sd is not None else "")
