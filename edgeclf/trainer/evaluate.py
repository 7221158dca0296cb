"""Evaluate a run's Keras model on labelled images: accuracy, per-class scores, confusion matrix.

Images are decoded through :func:`edgeclf.runtime.dataset.load_samples` (the same preprocessing the
trainer and the runtime use). Which images are evaluated (``split``):

* ``auto``: the run's own data folder → its test split (or validation when there is no test split),
  exactly the files the trainer held out; another "splits" folder → its ``test/`` (else
  ``validation/``); a plain folder of class subfolders → every image in it.
* ``train`` / ``validation`` / ``test``: that split; ``all``: every split together.

The metrics are :mod:`edgeclf.runtime.metrics`' (numpy only, shared with the exporter and the
benchmarks) plus :func:`per_class_scores`; Keras is imported inside :func:`evaluate`.
"""

from __future__ import annotations

import json
import tempfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edgeclf.kerasio import load_run_model
from edgeclf.runtime.dataset import (
    LabelledFolder,
    LoadedImages,
    Sample,
    load_samples,
    open_labelled_folder,
    reopen_from_manifest,
)
from edgeclf.runtime.errors import DatasetError, EdgeclfError
from edgeclf.runtime.fileio import atomic_path, atomic_write_text
from edgeclf.runtime.manifest import Manifest
from edgeclf.runtime.metrics import accuracy, confusion_matrix, to_scores, top1

SPLIT_CHOICES = ("auto", "train", "validation", "test", "all")
EVALUATION_DIR = "evaluation"


@dataclass(frozen=True)
class ClassScores:
    """Precision, recall and F1 of one class (0.0 when undefined, e.g. never predicted)."""

    label: str
    precision: float
    recall: float
    f1: float
    support: int


@dataclass(frozen=True)
class Misclassified:
    """One wrongly classified file, with the score of the (wrong) predicted class."""

    path: str
    true: str
    predicted: str
    score: float


@dataclass(frozen=True)
class EvaluationReport:
    """What ``edgeclf evaluate`` prints (text or ``--json``)."""

    run_dir: str
    data: str
    split: str
    labels: tuple[str, ...]
    count: int
    accuracy: float
    per_class: tuple[ClassScores, ...]
    confusion: tuple[tuple[int, ...], ...]  # rows: true label, columns: predicted label
    misclassified: tuple[Misclassified, ...]
    skipped: tuple[dict[str, str], ...]  # files that could not be decoded: {"path", "reason"}
    confusion_png: str | None = None

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready dict."""
        out = asdict(self)
        out["labels"] = list(self.labels)
        out["confusion"] = [list(row) for row in self.confusion]
        return out

    def format_text(self) -> str:
        """The human-readable report: summary, per-class table, confusion matrix, mistakes."""
        width = max(10, *(len(label) for label in self.labels))
        lines = [
            f"evaluated {self.count} images of {self.data} (split: {self.split})",
            f"accuracy: {self.accuracy:.4f} ({round(self.accuracy * self.count)}/{self.count})",
            "",
            f"{'class':<{width}}  precision  recall     f1  support",
        ]
        for c in self.per_class:
            lines.append(f"{c.label:<{width}}  {c.precision:9.4f}  {c.recall:6.4f}  {c.f1:5.4f}  {c.support:7d}")
        lines += ["", "confusion matrix (rows: true, columns: predicted)"]
        cell = max(6, *(len(label) for label in self.labels), len(str(self.count)))
        lines.append(" " * width + "  " + " ".join(f"{label:>{cell}}" for label in self.labels))
        for label, row in zip(self.labels, self.confusion, strict=True):
            lines.append(f"{label:<{width}}  " + " ".join(f"{n:>{cell}d}" for n in row))
        if self.confusion_png:
            lines.append(f"(plot: {self.confusion_png})")
        lines += ["", f"misclassified: {len(self.misclassified)}"]
        lines += [f"  {m.path}: {m.true} -> {m.predicted} ({m.score:.3f})" for m in self.misclassified]
        if self.skipped:
            lines += ["", f"skipped {len(self.skipped)} unreadable file(s):"]
            lines += [f"  {s['path']}: {s['reason']}" for s in self.skipped]
        return "\n".join(lines)


def per_class_scores(matrix: np.ndarray, labels: tuple[str, ...]) -> tuple[ClassScores, ...]:
    """Precision/recall/F1/support per class from a confusion matrix (0.0 where a ratio is 0/0)."""
    matrix = np.asarray(matrix)
    out: list[ClassScores] = []
    for i, label in enumerate(labels):
        tp = float(matrix[i, i])
        predicted = float(matrix[:, i].sum())
        actual = float(matrix[i, :].sum())
        precision = tp / predicted if predicted else 0.0
        recall = tp / actual if actual else 0.0
        f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
        out.append(ClassScores(label, round(precision, 6), round(recall, 6), round(f1, 6), int(actual)))
    return tuple(out)


# Model output → per-label probabilities: the runtime's own post-processing, under this module's name.
probabilities = to_scores


def _misclassified(loaded: LoadedImages, probs: np.ndarray, labels: tuple[str, ...]) -> tuple[Misclassified, ...]:
    """The wrongly classified files, with the score of the (wrong) predicted class."""
    predicted = top1(probs)
    return tuple(
        Misclassified(
            path=str(loaded.paths[i]),
            true=labels[int(loaded.labels[i])],
            predicted=labels[int(predicted[i])],
            score=round(float(probs[i, predicted[i]]), 6),
        )
        for i in np.flatnonzero(predicted != loaded.labels)
    )


def _select(manifest: Manifest, data: Path, split: str) -> tuple[LabelledFolder, str, list[Sample]]:
    if split not in SPLIT_CHOICES:
        raise EdgeclfError(f"unknown split {split!r}; known: {', '.join(SPLIT_CHOICES)}")
    recorded = manifest.data.get("root")
    if recorded and Path(recorded).absolute() == data.absolute():
        folder = reopen_from_manifest(dict(manifest.data), manifest.labels)
    else:
        folder = open_labelled_folder(data, labels=manifest.labels)
        if folder.layout == "classes" and split == "auto":
            # Someone else's folder of classes: evaluate every image in it, not a random part.
            folder = open_labelled_folder(data, labels=manifest.labels, fractions=(1.0, 0.0, 0.0))
            return folder, "all", list(folder.split("train"))
    if split == "auto":
        split = "test" if folder.split("test") else "validation"
    if split == "all":
        return folder, split, [s for name in ("train", "validation", "test") for s in folder.split(name)]
    samples = list(folder.split(split))
    if not samples:
        raise DatasetError(
            f"{data}: no {split} images to evaluate; pass --split with one of {', '.join(SPLIT_CHOICES)}"
        )
    return folder, split, samples


def write_confusion_png(matrix: np.ndarray, labels: tuple[str, ...], target: Path, title: str) -> Path | None:
    """Plot the confusion matrix (counts in each cell) to ``target``; None without matplotlib."""
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        return None
    n = len(labels)
    fig, ax = plt.subplots(figsize=(1.2 * n + 2.5, 1.2 * n + 2.0), dpi=100)
    ax.imshow(matrix, cmap="Blues")
    ax.set_xticks(range(n), labels, rotation=45, ha="right")
    ax.set_yticks(range(n), labels)
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_title(title)
    peak = matrix.max() if matrix.size else 0
    for i in range(n):
        for j in range(n):
            ax.text(
                j, i, str(matrix[i, j]), ha="center", va="center", color="white" if matrix[i, j] > peak / 2 else "black"
            )
    fig.tight_layout()
    try:
        with atomic_path(target, keep_suffix=True) as tmp:
            fig.savefig(tmp)
    finally:
        plt.close(fig)
    return target


def _check_out_dir(out: Path) -> None:
    """Refuse an output folder that is a file or cannot be written, before any work."""
    if out.exists() and not out.is_dir():
        raise EdgeclfError(f"--out {out}: exists and is not a folder; pass a folder for the evaluation files")
    try:
        out.mkdir(parents=True, exist_ok=True)
        with tempfile.NamedTemporaryFile(dir=out, prefix=".write-test-", suffix=".partial"):
            pass
    except OSError as error:
        raise EdgeclfError(
            f"--out {out}: cannot write there ({error.strerror or error}); pass --out DIR in a writable place"
        ) from None


def evaluate(
    run_dir: str | Path,
    data: str | Path,
    *,
    split: str = "auto",
    batch_size: int = 32,
    workers: int = 4,
    out_dir: str | Path | None = None,
) -> EvaluationReport:
    """Run the run's ``model.keras`` over labelled images and score it.

    Args:
        run_dir: a finished run folder (with ``manifest.json``).
        data: a labelled folder with the run's classes (see the module docstring for ``split``).
        split: ``auto``, ``train``, ``validation``, ``test`` or ``all``.
        batch_size: images per prediction batch.
        workers: decoding threads.
        out_dir: where ``confusion_matrix.png`` and ``evaluation.json`` go (default
            ``RUN/evaluation``).

    Raises:
        ManifestError: ``run_dir`` is not a finished run.
        DatasetError: ``data`` is unusable, has other classes, or has nothing to evaluate.
        BackendUnavailableError: TensorFlow is not installed.
    """
    run_dir = Path(run_dir)
    manifest = Manifest.load(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / EVALUATION_DIR
    _check_out_dir(out)  # before loading, decoding and predicting, which take seconds to minutes
    model = load_run_model(run_dir, manifest)
    folder, split, samples = _select(manifest, Path(data), split)
    loaded = load_samples(samples, manifest.input, workers=workers)
    if not len(loaded.labels):
        raise DatasetError(f"{data}: none of the {len(samples)} {split} image(s) could be decoded")
    raw = model.predict(loaded.images, batch_size=batch_size, verbose=0)
    probs = to_scores(raw, manifest.output_activation)
    labels = manifest.labels
    matrix = confusion_matrix(loaded.labels, top1(probs), len(labels))
    png = write_confusion_png(matrix, labels, out / "confusion_matrix.png", f"{run_dir.name} on {split}")
    report = EvaluationReport(
        run_dir=str(run_dir),
        data=str(folder.root),
        split=split,
        labels=labels,
        count=len(loaded.labels),
        accuracy=round(accuracy(probs, loaded.labels), 6),
        per_class=per_class_scores(matrix, labels),
        confusion=tuple(tuple(int(n) for n in row) for row in matrix),
        misclassified=_misclassified(loaded, probs, labels),
        skipped=tuple({"path": str(e.path), "reason": e.reason} for e in loaded.failed),
        confusion_png=None if png is None else str(png),
    )
    atomic_write_text(out / "evaluation.json", json.dumps(report.to_dict(), indent=2) + "\n")
    return report
