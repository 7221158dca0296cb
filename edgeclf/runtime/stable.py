"""Stable labels from a stream of per-frame scores: smoothing and a hold before a change is announced.

A classifier's top label flickers between frames when two labels score close. Two knobs, usable
together, both for ``edgeclf camera`` and ``edgeclf serve``:

- ``smooth`` N: the scores used are the mean of the last N frames' scores;
- ``hold`` K: a new top label must win K frames in a row before it is announced (the first label too).
"""

from __future__ import annotations

import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from edgeclf.runtime.classifier import Prediction, top_predictions
from edgeclf.runtime.errors import ConfigError, EdgeclfError


@dataclass(frozen=True)
class StableOptions:
    """``smooth``: frames averaged (1 = none); ``hold``: frames a new label must win in a row (1 = at once)."""

    smooth: int = 1
    hold: int = 1

    def __post_init__(self) -> None:
        if self.smooth < 1:
            raise ConfigError(f"--smooth must be at least 1 frame, got {self.smooth}")
        if self.hold < 1:
            raise ConfigError(f"--hold must be at least 1 frame, got {self.hold}")


@dataclass(frozen=True)
class LabelChange:
    """An announced change of the stable label."""

    label: str
    score: float
    previous: str | None
    frame: int
    time: float  # seconds since the epoch, when it was announced

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready form (one line of ``--on-change``, one webhook body, one server-sent event)."""
        return {
            "event": "label-change",
            "label": self.label,
            "score": round(self.score, 6),
            "previous": self.previous,
            "frame": self.frame,
            "time": round(self.time, 3),
        }


class LabelStabilizer:
    """Feed it each frame's scores; it returns the smoothed top predictions and, rarely, a change.

    ``predict`` turns the smoothed scores into labels; pass the classifier's own
    :meth:`~edgeclf.runtime.classifier.Classifier.predictions` so its open-set decision (``unknown``
    with ``--threshold auto``) is taken on the smoothed scores. The default ranks them as they are.
    """

    def __init__(
        self,
        labels: Sequence[str],
        options: StableOptions | None = None,
        clock: Any = time.time,
        predict: Callable[[np.ndarray, int, float], list[Prediction]] | None = None,
    ) -> None:
        self.labels = tuple(labels)
        self.options = options or StableOptions()
        self._predict = predict or (
            lambda scores, top_k, threshold: top_predictions(scores, self.labels, top_k, threshold)
        )
        self._window: deque[np.ndarray] = deque(maxlen=self.options.smooth)
        self._clock = clock
        self.current: str | None = None  # the announced label
        self._candidate: str | None = None
        self._streak = 0
        self._frames = 0

    def update(
        self, scores: np.ndarray, top_k: int = 1, threshold: float = 0.0
    ) -> tuple[list[Prediction], LabelChange | None]:
        """Add one frame's per-label scores; return the smoothed top-``top_k`` and the change it caused, if any."""
        scores = np.asarray(scores, dtype=np.float32).ravel()
        if scores.shape != (len(self.labels),):
            raise EdgeclfError(f"expected {len(self.labels)} scores per frame, got {scores.shape}")
        self._frames += 1
        self._window.append(scores)
        smoothed = np.mean(np.stack(self._window), axis=0)
        predictions = self._predict(smoothed, top_k, threshold)
        leader = predictions[0].label if predictions else None
        if leader == self.current:
            self._candidate, self._streak = None, 0
            return predictions, None
        self._streak = self._streak + 1 if leader == self._candidate else 1
        self._candidate = leader
        if leader is None or self._streak < self.options.hold:
            return predictions, None
        change = LabelChange(leader, predictions[0].score, self.current, self._frames, self._clock())
        self.current, self._candidate, self._streak = leader, None, 0
        return predictions, change
