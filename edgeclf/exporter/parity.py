"""How close an exported file stays to the Keras model: the comparison, and what it is compared with.

:class:`Reference` holds everything a file is judged against (the validation images, their labels,
Keras's scores on them and the bounds to hold); each format's validation and its checks in other
runtimes are handed one explicitly.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

import numpy as np

from edgeclf.exporter.class_parity import per_class_agreement
from edgeclf.exporter.formats import Bounds
from edgeclf.runtime import metrics

if TYPE_CHECKING:  # pragma: no cover
    from edgeclf.exporter.formats import ExportFormat


def keras_scores(model: Any, images: np.ndarray, activation: str, batch_size: int = 32) -> np.ndarray:
    """Per-label probabilities of the Keras model, in the same form the runtime's Classifier returns."""
    outputs = [np.asarray(model(images[i : i + batch_size], training=False)) for i in range(0, len(images), batch_size)]
    return metrics.to_scores(np.concatenate(outputs).astype(np.float32), activation)


def compare(
    reference: np.ndarray, scores: np.ndarray, labels: np.ndarray, names: Sequence[str] | None = None
) -> dict[str, Any]:
    """Top-1 agreement, |Δp| and accuracy of ``scores`` against the Keras ``reference`` probabilities,
    overall and per true class (``per_class``)."""
    diff = metrics.abs_diff(scores, reference)
    accuracy = metrics.accuracy(scores, labels)
    keras_accuracy = metrics.accuracy(reference, labels)
    return {
        "images": len(labels),
        "agreement": metrics.agreement(scores, reference),
        "disagreements": int(np.sum(metrics.top1(scores) != metrics.top1(reference))),
        "max_abs_diff": float(diff.max()),
        "mean_abs_diff": float(diff.mean()),
        "accuracy": accuracy,
        "keras_accuracy": keras_accuracy,
        "accuracy_change": accuracy - keras_accuracy,
        "per_class": per_class_agreement(reference, scores, labels, names),
    }


@dataclass(frozen=True)
class Reference:
    """What every exported file is compared with.

    Attributes:
        images: the validation images, uint8 ``(N, H, W, 3)``.
        labels: their true label indices ``(N,)``.
        scores: the Keras model's per-label probabilities on them ``(N, labels)``.
        names: the label names (for the per-class figures).
        bounds: per-format overrides of the formats' own parity bounds.
        unknown: photos of other kinds (``--unknown-data``), uint8 ``(M, H, W, 3)``: each file is run
            on them to fit its own "unknown" threshold; ``None`` when none were given.
    """

    images: np.ndarray
    labels: np.ndarray
    scores: np.ndarray
    names: Sequence[str] = ()
    bounds: Mapping[str, Bounds] = field(default_factory=dict)
    unknown: np.ndarray | None = None

    def bounds_for(self, fmt: ExportFormat) -> Bounds:
        """The bounds ``fmt`` is held to (an override, else its own)."""
        return self.bounds.get(fmt.name, fmt.bounds)

    def judge(self, fmt: ExportFormat, scores: np.ndarray) -> dict[str, Any]:
        """:func:`compare` of a runtime's ``scores`` on :attr:`images`, plus ``"failures"`` (one per missed bound)."""
        figures = compare(self.scores, scores, self.labels, self.names or None)
        return {**figures, "failures": self.bounds_for(fmt).check(figures)}
