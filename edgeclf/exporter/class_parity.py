"""Per-class parity: how well an exported file agrees with the Keras model within each true class.

Overall top-1 agreement can stay inside its bound while int8 quantisation moves most of its
flips into one (often the minority) class. These figures are reported next to the overall ones
(export summary line, ``export_report.json`` and the artifact's ``validation`` in the manifest).
numpy only.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from edgeclf.runtime.metrics import top1


def per_class_agreement(
    reference: np.ndarray, scores: np.ndarray, labels: np.ndarray, names: Sequence[str] | None = None
) -> list[dict[str, Any]]:
    """One entry per class present in ``labels``: images, top-1 agreement with Keras, both recalls.

    Args:
        reference: Keras probabilities ``(N, C)``.
        scores: the artifact's probabilities ``(N, C)``.
        labels: true class ids ``(N,)``.
        names: label names by class id (default: the ids as text).
    """
    top_ref = top1(reference)
    top = top1(scores)
    labels = np.asarray(labels)
    out = []
    for class_id in range(reference.shape[1]):
        mask = labels == class_id
        count = int(mask.sum())
        if not count:
            continue
        out.append(
            {
                "label": names[class_id] if names is not None else str(class_id),
                "images": count,
                "agreement": float(np.mean(top[mask] == top_ref[mask])),
                "recall": float(np.mean(top[mask] == class_id)),
                "keras_recall": float(np.mean(top_ref[mask] == class_id)),
            }
        )
    return out


def weakest_class_line(per_class: Sequence[dict[str, Any]], min_agreement: float) -> str | None:
    """A warning line when some class agrees with Keras less than the overall bound asks of all images."""
    below = [c for c in per_class if c["agreement"] < min_agreement]
    if not below:
        return None
    worst = min(below, key=lambda c: c["agreement"])
    return (
        f"class {worst['label']!r} agrees with Keras on only {worst['agreement']:.2%} of its {worst['images']} images "
        f"(recall {worst['keras_recall']:.2%} -> {worst['recall']:.2%}), below the {min_agreement:.2%} bound applied "
        "to all images"
    )
