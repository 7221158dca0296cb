"""Evaluate a run's Keras model on labelled images: accuracy, per-class scores, confusion matrix.

Images are decoded through :func:`edge_runtime.dataset.load_samples` (the same preprocessing the
trainer and the runtime use). Which images are evaluated (``split``):

* ``auto``: the run's own data folder → its test split (or validation when there is no test split),
  exactly the files the trainer held out; another "splits" folder → its ``test/`` (else
  ``validation/``); a plain folder of class subfolders → every image in it.
* ``train`` / ``validation`` / ``test``: that split; ``all``: every split together.

The metric helpers (:func:`confusion_matrix`, :func:`per_class_scores`) are numpy only; Keras is
imported inside :func:`evaluate`.
"""

from __future__ import annotations

import json
import os
import tempfile
import zipfile
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from edge_runtime.dataset import LabelledFolder, Sample, load_samples, open_labelled_folder, reopen_from_manifest
from edge_runtime.errors import DatasetError, EdgeclfError, ManifestError, missing_extra
from edge_runtime.fileio import atomic_write_text
from edge_runtime.manifest import Manifest, run_file

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


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 counts; rows are the true class, columns the predicted one."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix


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


def probabilities(raw: np.ndarray, activation: str) -> np.ndarray:
    """Model output → ``(N, num_labels)`` per-class probabilities (a sigmoid ``p`` becomes ``[1-p, p]``)."""
    raw = np.asarray(raw, dtype=np.float32)
    if activation == "sigmoid":
        p = raw.reshape(-1)
        return np.stack([1.0 - p, p], axis=1)
    return raw.reshape(raw.shape[0], -1)


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
    target.parent.mkdir(parents=True, exist_ok=True)
    tmp = target.with_name(f".{target.name}.partial.png")
    fig.savefig(tmp)
    plt.close(fig)
    os.replace(tmp, target)
    return target


def finished_run_model(run_dir: Path) -> tuple[Manifest, Path]:
    """The manifest of a finished run and its ``model.keras``, checked without loading Keras.

    Raises:
        ManifestError: no valid manifest, or the model file is missing or not a Keras archive.
    """
    manifest = Manifest.load(run_dir)
    model_file = run_file(run_dir, manifest.model_file)
    if not model_file.exists():
        raise ManifestError(f"{model_file}: missing; re-run `edgeclf train`")
    _check_keras_archive(model_file)
    return manifest, model_file


def load_keras_model(model_file: Path) -> Any:
    """Load a run's ``model.keras`` (uncompiled) for prediction.

    Raises:
        BackendUnavailableError: TensorFlow is not installed.
        ManifestError: Keras cannot load the file.
    """
    try:
        os.environ.setdefault("TF_CPP_MIN_LOG_LEVEL", "2")
        import keras
    except ImportError:
        raise missing_extra("TensorFlow", "train") from None
    try:
        return keras.saving.load_model(model_file, compile=False)
    except Exception as error:  # Keras raises ValueError, OSError, zipfile errors… for a bad file
        text = str(error).strip().splitlines()
        raise ManifestError(
            f"{model_file}: cannot be loaded by Keras ({text[0] if text else type(error).__name__}); "
            "re-run `edgeclf train`"
        ) from None


def _check_keras_archive(path: Path) -> None:
    """A ``.keras`` file is a zip archive; Keras calls anything else "File not found", which misleads."""
    if not zipfile.is_zipfile(path):
        raise ManifestError(f"{path}: not a Keras archive (corrupt or truncated); re-run `edgeclf train`")


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
    manifest, model_file = finished_run_model(run_dir)
    out = Path(out_dir) if out_dir is not None else run_dir / EVALUATION_DIR
    _check_out_dir(out)  # before decoding and predicting, which take seconds to minutes
    folder, split, samples = _select(manifest, Path(data), split)
    loaded = load_samples(samples, manifest.input, workers=workers)
    if not len(loaded.labels):
        raise DatasetError(f"{data}: none of the {len(samples)} {split} image(s) could be decoded")
    model = load_keras_model(model_file)
    raw = model.predict(loaded.images, batch_size=batch_size, verbose=0)
    probs = probabilities(raw, manifest.output_activation)
    predicted = probs.argmax(axis=1)
    labels = manifest.labels
    matrix = confusion_matrix(loaded.labels, predicted, len(labels))
    wrong = np.flatnonzero(predicted != loaded.labels)
    misclassified = tuple(
        Misclassified(
            path=str(loaded.paths[i]),
            true=labels[int(loaded.labels[i])],
            predicted=labels[int(predicted[i])],
            score=round(float(probs[i, predicted[i]]), 6),
        )
        for i in wrong
    )
    png = write_confusion_png(matrix, labels, out / "confusion_matrix.png", f"{run_dir.name} on {split}")
    report = EvaluationReport(
        run_dir=str(run_dir),
        data=str(folder.root),
        split=split,
        labels=labels,
        count=len(loaded.labels),
        accuracy=round(float(np.mean(predicted == loaded.labels)), 6),
        per_class=per_class_scores(matrix, labels),
        confusion=tuple(tuple(int(n) for n in row) for row in matrix),
        misclassified=misclassified,
        skipped=tuple({"path": str(e.path), "reason": e.reason} for e in loaded.failed),
        confusion_png=None if png is None else str(png),
    )
    atomic_write_text(out / "evaluation.json", json.dumps(report.to_dict(), indent=2) + "\n")
    return report
