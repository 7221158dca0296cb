"""Model outputs to scores, and the figures every stage computes from them (numpy only).

The runtime turns outputs into per-label probabilities with :func:`to_scores`; the exporter's
parity check, ``edgeclf evaluate`` and the benchmarks score those probabilities with the functions
here, so a label decision or an accuracy means the same thing in every report.
"""

from __future__ import annotations

import numpy as np


def to_scores(outputs: np.ndarray, activation: str) -> np.ndarray:
    """Per-label probabilities ``(N, num_labels)`` from the model's real-valued outputs.

    ``sigmoid``: one column ``p`` (the second label's probability) becomes ``[1 - p, p]``; ``p`` is
    clipped to 0..1 because a dequantised int8 output can land a step outside it.
    ``softmax``: the columns already are the labels' probabilities.
    """
    outputs = np.asarray(outputs, dtype=np.float32).reshape(len(outputs), -1)
    if activation == "sigmoid":
        p = np.clip(outputs[:, :1], 0.0, 1.0)
        return np.concatenate([1.0 - p, p], axis=1)
    return outputs


def top1(scores: np.ndarray) -> np.ndarray:
    """The best label's index per image ``(N,)`` (the first one on a tie)."""
    return np.asarray(scores).argmax(axis=1)


def accuracy(scores: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of images whose top-1 label is the true one."""
    return float(np.mean(top1(scores) == np.asarray(labels)))


def agreement(scores: np.ndarray, reference: np.ndarray) -> float:
    """Fraction of images whose top-1 label equals the reference model's."""
    return float(np.mean(top1(scores) == top1(reference)))


def abs_diff(scores: np.ndarray, reference: np.ndarray) -> np.ndarray:
    """``|scores - reference|`` in float64, per image and label."""
    return np.abs(np.asarray(scores, np.float64) - np.asarray(reference, np.float64))


def confusion_matrix(y_true: np.ndarray, y_pred: np.ndarray, num_classes: int) -> np.ndarray:
    """``(num_classes, num_classes)`` int64 counts; rows are the true class, columns the predicted one."""
    matrix = np.zeros((num_classes, num_classes), dtype=np.int64)
    np.add.at(matrix, (np.asarray(y_true, dtype=np.int64), np.asarray(y_pred, dtype=np.int64)), 1)
    return matrix
