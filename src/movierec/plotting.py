"""The learning-curve figure: training and validation loss per epoch, as the article shows.

Drawn on a bare :class:`matplotlib.figure.Figure` (which renders with the Agg canvas on its own),
never through pyplot: saving a run from a notebook leaves the notebook's backend and figures as
they were.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

from matplotlib.figure import Figure

from movierec.train import EpochRecord


def plot_learning_curve(history: Sequence[EpochRecord], path: Path, title: str = "") -> None:
    """Write a PNG of training MSE and validation MSE per epoch (best epoch marked)."""
    epochs = [r.epoch for r in history]
    figure = Figure(figsize=(7, 4.2), dpi=110)
    axis = figure.subplots()
    axis.plot(epochs, [r.train_loss for r in history], marker="o", label="training loss (MSE)")
    valid = [(r.epoch, r.valid_loss) for r in history if r.valid_loss is not None]
    if valid:
        axis.plot(*zip(*valid, strict=True), marker="o", label="validation loss (MSE)")
        best_epoch, best_loss = min(valid, key=lambda pair: pair[1])
        axis.axvline(best_epoch, color="grey", linestyle=":", label=f"best epoch ({best_epoch})")
        axis.annotate(
            f"{best_loss:.4f}", (best_epoch, best_loss), textcoords="offset points", xytext=(6, 6)
        )
    axis.set_xlabel("epoch")
    axis.set_ylabel("mean squared error")
    axis.set_title(title or "Learning curve")
    axis.grid(alpha=0.3)
    axis.legend()
    figure.tight_layout()
    figure.savefig(path, format="png")
