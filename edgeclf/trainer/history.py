"""Per-epoch history: which epoch is best, and the files a finished run keeps (JSON, CSV, plots).

Needs neither TensorFlow nor Keras (matplotlib only for the plots, skipped without it).
"""

from __future__ import annotations

import csv
import io
import json
import math
from collections.abc import Sequence
from pathlib import Path

from edgeclf.runtime.fileio import atomic_path, atomic_write_text

HISTORY_NAME = "history.json"


def best_index(history: Sequence[dict]) -> int | None:
    """Index of the best epoch: highest val_accuracy, then lowest val_loss, then earliest."""
    best: int | None = None
    for i, row in enumerate(history):
        if "val_accuracy" not in row:
            continue
        if best is None:
            best = i
            continue
        b = history[best]
        if row["val_accuracy"] > b["val_accuracy"] or (
            row["val_accuracy"] == b["val_accuracy"] and row.get("val_loss", math.inf) < b.get("val_loss", math.inf)
        ):
            best = i
    return best


def write_history(run_dir: Path, history: list[dict]) -> None:
    """``history.json`` and ``history.csv`` (one row per epoch), atomically."""
    atomic_write_text(run_dir / HISTORY_NAME, json.dumps(history, indent=1) + "\n")
    keys: list[str] = []
    for row in history:
        keys.extend(k for k in row if k not in keys)
    buffer = io.StringIO()
    writer = csv.DictWriter(buffer, fieldnames=keys, lineterminator="\n")
    writer.writeheader()
    writer.writerows(history)
    atomic_write_text(run_dir / "history.csv", buffer.getvalue())


def write_plots(run_dir: Path, history: Sequence[dict], best_epoch: int | None) -> list[Path]:
    """accuracy.png, loss.png and (with a test split) test_accuracy.png; returns the written files."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return []
    epochs = [row["epoch"] for row in history]
    plots = [
        (
            "accuracy.png",
            "Accuracy",
            [("accuracy", "train"), ("val_accuracy", "validation"), ("test_accuracy", "test")],
        ),
        ("loss.png", "Loss", [("loss", "train"), ("val_loss", "validation"), ("test_loss", "test")]),
        ("test_accuracy.png", "Test accuracy after each epoch", [("test_accuracy", "test")]),
    ]
    written: list[Path] = []
    for name, title, series in plots:
        present = [(key, label) for key, label in series if any(key in row for row in history)]
        if not present or (name == "test_accuracy.png" and not any("test_accuracy" in row for row in history)):
            continue
        fig, ax = plt.subplots(figsize=(6.4, 4.0), dpi=100)
        for key, label in present:
            ax.plot(epochs, [row.get(key, math.nan) for row in history], marker="o", markersize=3, label=label)
        if best_epoch is not None:
            ax.axvline(best_epoch, color="grey", linestyle="--", linewidth=1, label=f"best epoch ({best_epoch})")
        ax.set_title(title)
        ax.set_xlabel("epoch")
        ax.grid(alpha=0.3)
        ax.legend()
        fig.tight_layout()
        target = run_dir / name
        try:
            with atomic_path(target, keep_suffix=True) as tmp:
                fig.savefig(tmp)
        finally:
            plt.close(fig)
        written.append(target)
    return written
