"""Class weights for imbalanced training data (``edgeclf train --class-weight auto|none``).

``auto`` weighs each class by the inverse of its frequency in the training split,
``n_total / (n_classes * n_class)`` (scikit-learn's "balanced" rule): a balanced split gets weight
1.0 for every class, a 200-vs-40 split gets 0.6 and 3.0, so each class contributes the same total
weight to the loss. numpy only; Keras applies the weights through ``Model.fit(class_weight=...)``.
"""

from __future__ import annotations

import numpy as np

from edgeclf.runtime.errors import ConfigError, DatasetError

CLASS_WEIGHT_MODES = ("none", "auto")


def check_mode(mode: str) -> None:
    """Raise :class:`ConfigError` for an unknown ``--class-weight`` value."""
    if mode not in CLASS_WEIGHT_MODES:
        raise ConfigError(f"unknown --class-weight {mode!r}; known: {', '.join(CLASS_WEIGHT_MODES)}")


def class_weights(labels: np.ndarray, num_classes: int, mode: str) -> dict[int, float] | None:
    """Per-class loss weights for ``mode`` (``None`` for ``none``).

    Args:
        labels: integer class ids of the training images.
        num_classes: how many classes the model has.
        mode: ``"auto"`` (inverse frequency) or ``"none"``.

    Raises:
        ConfigError: unknown mode.
        DatasetError: ``auto`` with a class that has no training image (its weight would be infinite).
    """
    check_mode(mode)
    if mode == "none":
        return None
    counts = np.bincount(np.asarray(labels, dtype=np.int64), minlength=num_classes)[:num_classes]
    if np.any(counts == 0):
        missing = [int(i) for i in np.flatnonzero(counts == 0)]
        raise DatasetError(f"--class-weight auto: class id(s) {missing} have no training images")
    total = float(counts.sum())
    return {i: round(total / (num_classes * float(n)), 6) for i, n in enumerate(counts)}
